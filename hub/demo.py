"""A small demo care network, loaded through a transaction Bundle like any client would send.

Three clients in one region: each with a huisarts, a wijkverpleegkundige, home care and the
municipality's Wmo consultant in their CareTeam, one or two mantelzorgers, a shared care plan with
goals and who-does-what activities (including a respite arrangement), ACP wishes, and for one client
an overdracht to a verpleeghuis and a Wmo toewijzing. Identifiers are Dutch test numbers.
"""

from __future__ import annotations

from typing import Any

from hub.fhir.validation.bsn import BSN_SYSTEM as BSN

URA = "http://fhir.nl/fhir/NamingSystem/ura"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
UZI = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers"
SNOMED = "http://snomed.info/sct"
ORG_TYPE = "http://nictiz.nl/fhir/NamingSystem/organization-type"
ROLE_CS = "urn:oid:2.16.840.1.113883.2.4.3.11.22.472"
MANTELZORGER_CS = "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4.23.1"
HUB = "https://zorgnet-hub.nl/fhir"
IKNL = "https://fhir.iknl.nl/fhir/StructureDefinition/"

#: Demo organisations: (key, name, URA, organisation type code (Vektis), display)
ORGANISATIONS = [
    ("huisarts", "Huisartsenpraktijk De Linde", "00012345", "Z3", "Huisartspraktijk (zelfstandig of groepspraktijk)"),
    ("wijkverpleging", "Wijkverpleging Zorg Dichtbij", "00023456", "T2", "Thuiszorg"),
    ("thuiszorg", "Thuiszorg Samen Thuis", "00034567", "T2", "Thuiszorg"),
    ("gemeente", "Gemeente Rivierstad, Wmo-team", "00045678", "G6", "Gemeentelijke instelling"),
    ("verpleeghuis", "Verpleeghuis De Boomgaard", "00056789", "X3", "Verplegings- of verzorgingsinstelling"),
]

#: Demo professionals: (key, organisation key, given, family, UZI, role display)
PRACTITIONERS = [
    ("ha", "huisarts", "Anna", "de Vries", "900001111", "Huisarts"),
    ("wv", "wijkverpleging", "Karim", "El Amrani", "900002222", "Wijkverpleegkundige"),
    ("tz", "thuiszorg", "Sanne", "Bakker", "900003333", "Verzorgende IG"),
    ("wmo", "gemeente", "Peter", "Jansen", "900004444", "Wmo-consulent"),
    ("vh", "verpleeghuis", "Lotte", "Visser", "900005555", "Verpleegkundige"),
]

#: Demo clients: (key, BSN, given, family, gender, birth date, mantelzorgers [(given, family, role, code)])
CLIENTS = [
    (
        "c1",
        "999993653",
        "Johanna",
        "Smit",
        "female",
        "1938-04-12",
        [("Marieke", "Smit", "Dochter", "100001"), ("Henk", "de Boer", "Buurman", "19")],
    ),
    ("c2", "999990019", "Willem", "Mulder", "male", "1941-09-30", [("Els", "Mulder", "Echtgenote", "100001")]),
    (
        "c3",
        "999991772",
        "Fatima",
        "Ouali",
        "female",
        "1950-01-05",
        [("Youssef", "Ouali", "Zoon", "24"), ("Noor", "Ouali", "Kleindochter", "100001")],
    ),
]


def _activity(kind: str, code: str, status: str, description: str, performer: dict[str, str] | None) -> dict[str, Any]:
    """A care plan activity that says who does it (professional, mantelzorger, organisation)."""
    detail: dict[str, Any] = {
        "extension": [{"url": f"{HUB}/StructureDefinition/ext-ActivityPerformerKind", "valueCode": kind}],
        "code": {"coding": [{"system": f"{HUB}/CodeSystem/care-activity", "code": code}]},
        "status": status,
        "description": description,
    }
    if performer is not None:
        detail["performer"] = [performer]
    if code == "respijtzorg":
        detail["scheduledPeriod"] = {"start": "2026-03-03", "end": "2026-12-29"}
    return {"detail": detail}


def _ref(key: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{_uuid(key)}"}


def _uuid(key: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://zorgnet-hub.nl/demo/{key}"))


def _entry(key: str, resource: dict[str, Any], identifier: tuple[str, str] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
    if identifier:
        request["ifNoneExist"] = f"identifier={identifier[0]}|{identifier[1]}"
    return {"fullUrl": f"urn:uuid:{_uuid(key)}", "resource": resource, "request": request}


def demo_bundle() -> dict[str, Any]:
    """The whole demo network as one transaction Bundle."""
    entries: list[dict[str, Any]] = []
    for key, name, ura, type_code, type_display in ORGANISATIONS:
        entries.append(
            _entry(
                f"org-{key}",
                {
                    "resourceType": "Organization",
                    "identifier": [{"system": URA, "value": ura}],
                    "active": True,
                    "type": [
                        {
                            "coding": [
                                {
                                    "system": "http://nictiz.nl/fhir/NamingSystem/organization-type",
                                    "code": type_code,
                                    "display": type_display,
                                }
                            ]
                        }
                    ],
                    "name": name,
                    "address": [{"city": "Rivierstad", "country": "NL"}],
                },
                (URA, ura),
            )
        )
    for key, org, given, family, uzi, role in PRACTITIONERS:
        entries.append(
            _entry(
                f"pr-{key}",
                {
                    "resourceType": "Practitioner",
                    "identifier": [{"system": UZI, "value": uzi}],
                    "name": [{"family": family, "given": [given], "text": f"{given} {family}"}],
                },
                (UZI, uzi),
            )
        )
        entries.append(
            _entry(
                f"role-{key}",
                {
                    "resourceType": "PractitionerRole",
                    "practitioner": _ref(f"pr-{key}"),
                    "organization": _ref(f"org-{org}"),
                    "code": [{"text": role}],
                },
            )
        )
    for key, bsn, given, family, gender, birth, carers in CLIENTS:
        entries += _client_entries(key, bsn, given, family, gender, birth, carers)
    entries += _overdracht_and_toewijzing()
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _client_entries(
    key: str, bsn: str, given: str, family: str, gender: str, birth: str, carers: list[tuple[str, str, str, str]]
) -> list[dict[str, Any]]:
    out = [
        _entry(
            key,
            {
                "resourceType": "Patient",
                "identifier": [{"system": BSN, "value": bsn}],
                "active": True,
                "name": [{"family": family, "given": [given], "text": f"{given} {family}"}],
                "gender": gender,
                "birthDate": birth,
                "address": [
                    {"line": ["Dorpsstraat 1"], "city": "Rivierstad", "postalCode": "1234 AB", "country": "NL"}
                ],
                "generalPractitioner": [_ref("org-huisarts")],
            },
            (BSN, bsn),
        )
    ]
    participants = [{"member": _ref(key), "role": [{"text": "Cliënt"}]}]
    for i, (cg, cf, relation, code) in enumerate(carers):
        system = MANTELZORGER_CS if code == "100001" else ROLE_CS
        out.append(
            _entry(
                f"{key}-rp{i}",
                {
                    "resourceType": "RelatedPerson",
                    # the person who logs in (see demo_people): the performer of their care plan activities
                    "identifier": [{"system": f"{HUB}/NamingSystem/person-id", "value": cg.lower()}],
                    "patient": _ref(key),
                    "active": True,
                    "relationship": [{"coding": [{"system": system, "code": code}], "text": relation}],
                    "name": [{"family": cf, "given": [cg], "text": f"{cg} {cf}"}],
                    "telecom": [{"system": "phone", "value": f"06-1234{i}{key[-1]}00", "use": "mobile"}],
                },
            )
        )
        participants.append({"member": _ref(f"{key}-rp{i}"), "role": [{"text": relation}]})
    for pkey, org, *_rest in PRACTITIONERS[:4]:
        participants.append(
            {"member": _ref(f"role-{pkey}"), "onBehalfOf": _ref(f"org-{org}"), "role": [{"text": _rest[-1]}]}
        )
    out.append(
        _entry(
            f"{key}-team",
            {
                "resourceType": "CareTeam",
                "status": "active",
                "name": f"Zorgnetwerk {given} {family}",
                "subject": _ref(key),
                "participant": participants,
            },
        )
    )
    out.append(
        _entry(
            f"{key}-goal-own",
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "category": [{"coding": [{"system": f"{HUB}/CodeSystem/goal-category", "code": "eigen-doel"}]}],
                "description": {"text": "Zo lang mogelijk zelfstandig thuis blijven wonen"},
                "subject": _ref(key),
                "expressedBy": _ref(key),
            },
        )
    )
    out.append(
        _entry(
            f"{key}-goal-falls",
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "Geen valincidenten"},
                "subject": _ref(key),
                "expressedBy": _ref("role-wv"),
            },
        )
    )
    first_carer = f"{key}-rp0"
    out.append(
        _entry(
            f"{key}-plan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "category": [
                    {"coding": [{"system": f"{HUB}/CodeSystem/careplan-category", "code": "gedeeld-zorgplan"}]}
                ],
                "title": f"Gedeeld zorgplan {given} {family}",
                "subject": _ref(key),
                "period": {"start": "2026-01-01"},
                "author": _ref("role-wv"),  # the coordinator (regiehouder): the wijkverpleging
                "careTeam": [_ref(f"{key}-team")],
                "goal": [_ref(f"{key}-goal-own"), _ref(f"{key}-goal-falls")],
                "activity": [
                    _activity(
                        "professional",
                        "persoonlijke-verzorging",
                        "in-progress",
                        "Hulp bij wassen en aankleden, dagelijks 's ochtends",
                        _ref("role-tz"),
                    ),
                    _activity(
                        "mantelzorger",
                        "maaltijden",
                        "in-progress",
                        "Boodschappen en samen eten op woensdag",
                        _ref(first_carer),
                    ),
                    {
                        **_activity(
                            "organisatie",
                            "respijtzorg",
                            "scheduled",
                            "Respijtzorg: dagbesteding op dinsdag zodat de mantelzorger ontlast wordt",
                            None,
                        ),
                    },
                ],
            },
        )
    )
    out.append(
        _entry(
            f"{key}-acp-resus",
            {
                "resourceType": "Consent",
                "meta": {"profile": [f"{IKNL}ACP-TreatmentDirective"]},
                "status": "active",
                "scope": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]
                },
                "category": [
                    {"coding": [{"system": SNOMED, "code": "129125009", "display": "procedure with explicit context"}]}
                ],
                "patient": _ref(key),
                "dateTime": "2026-02-10",
                "policy": [{"uri": "https://wetten.overheid.nl/"}],
                "provision": {
                    "type": "deny",
                    "actor": [
                        {
                            "role": {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "CST",
                                    }
                                ]
                            },
                            "reference": _ref(key),
                        }
                    ],
                    "code": [{"coding": [{"system": SNOMED, "code": "89666000", "display": "Reanimatie"}]}],
                },
            },
        )
    )
    out.append(
        _entry(
            f"{key}-acp-place",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {
                    "coding": [{"system": SNOMED, "code": "395091006", "display": "Voorkeursplaats van overlijden"}]
                },
                "subject": _ref(key),
                "effectiveDateTime": "2026-02-10",
                "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "264362003", "display": "Thuis"}]},
            },
        )
    )
    return out


def _overdracht_and_toewijzing() -> list[dict[str, Any]]:
    return [
        _entry(
            "c2-overdracht",
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "code": {"coding": [{"system": SNOMED, "code": "308292007", "display": "Overdracht van zorg"}]},
                "for": _ref("c2"),
                "requester": _ref("org-wijkverpleging"),
                "owner": _ref("org-verpleeghuis"),
                "authoredOn": "2026-11-20T10:00:00+01:00",
                "description": "Overdracht wijkverpleging naar verpleeghuis na opname",
                "input": [
                    {
                        "type": {
                            "coding": [{"system": "http://loinc.org", "code": "57830-2", "display": "Aanmeldbericht"}]
                        },
                        "valueReference": _ref("c2-aanmelding"),
                    }
                ],
            },
        ),
        _entry(
            "c2-aanmelding",
            {
                "resourceType": "Composition",
                "status": "final",
                "type": {"coding": [{"system": "http://loinc.org", "code": "57830-2", "display": "Aanmeldbericht"}]},
                "subject": _ref("c2"),
                "date": "2026-11-20T10:00:00+01:00",
                "author": [_ref("org-wijkverpleging")],
                "title": "Aanmeldbericht Willem Mulder",
                "section": [
                    {
                        "title": "Reden van overdracht",
                        "text": {
                            "status": "generated",
                            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Opname verpleeghuis na herhaald vallen; '
                            "gewenste datum 2026-12-01</div>",
                        },
                        "entry": [_ref("c2")],
                    }
                ],
            },
        ),
        _entry(
            "c1-toewijzing",
            {
                "resourceType": "ServiceRequest",
                "extension": [
                    {
                        "url": f"{HUB}/StructureDefinition/ext-WmoFrequentie",
                        "valueCoding": {"system": f"{HUB}/CodeSystem/iwmo-frequentie", "code": "2"},
                    }
                ],
                "identifier": [{"system": f"{HUB}/NamingSystem/iwmo-toewijzingnummer", "value": "TW-2026-0001"}],
                "status": "active",
                "intent": "order",
                "category": [
                    {"coding": [{"system": f"{HUB}/CodeSystem/servicerequest-category", "code": "wmo-toewijzing"}]}
                ],
                "code": {
                    "coding": [
                        {"system": f"{HUB}/CodeSystem/iwmo-productcategorie", "code": "02", "display": "Begeleiding"}
                    ]
                },
                "quantityQuantity": {
                    "value": 4,
                    "unit": "Uur",
                    "system": f"{HUB}/CodeSystem/iwmo-eenheid",
                    "code": "04",
                },
                "subject": _ref("c1"),
                "occurrencePeriod": {"start": "2026-01-01", "end": "2026-12-31"},
                "requester": _ref("org-gemeente"),
                "performer": [_ref("org-thuiszorg")],
                "basedOn": [_ref("c1-plan")],
            },
        ),
    ]


async def load_demo_if_empty(services: Any) -> bool:
    """Load the demo network through the transaction code path when no Patient exists yet."""
    from sqlalchemy import func, select

    from hub.access.decision import SYSTEM
    from hub.api.context import Call
    from hub.api.handlers import handle
    from hub.api.interaction import FhirRequest
    from hub.store.tables import resource

    async with services.repo.db.read() as conn:
        count = (
            await conn.execute(select(func.count()).select_from(resource).where(resource.c.res_type == "Patient"))
        ).scalar_one()
    if count:
        return False
    await register_demo_organisations(services.repo.db)
    call = Call(services, services.settings.fhir_base, policy=SYSTEM)
    await handle(call, FhirRequest("POST", "", body=demo_bundle()))
    async with services.repo.db.write() as conn:
        await register_demo_people(conn)
    return True


def demo_people() -> list[tuple[str, str]]:
    """The demo's mantelzorgers as people who may log in: (login name, full name), e.g. ``marieke``."""
    return [(given.lower(), f"{given} {family}") for *_c, carers in CLIENTS for given, family, _r, _code in carers]


async def register_demo_people(conn: Any) -> None:
    """Register the demo's mantelzorgers (clients log in with their BSN and need no registration)."""
    from hub.access.registration import add_person, list_people

    known = {p.person_id for p in await list_people(conn)}
    for person_id, name in demo_people():
        if person_id not in known:
            await add_person(conn, person_id=person_id, name=name)


async def register_demo_organisations(db: Any) -> None:
    """The demo organisations in the organisation registry (what an administrator would do)."""
    from hub.access.organisations import register

    async with db.write() as conn:
        for _key, name, ura, type_code, _display in ORGANISATIONS:
            kind = "gemeente" if type_code == "G6" else "zorgaanbieder"
            await register(conn, ura, name=name, kind=kind, types=(type_code,))


async def load_demo_standalone(settings: Any) -> bool:
    from hub.app import build_services
    from hub.store.db import Database
    from hub.store.migrate import prepare_database

    db = Database(settings.database_url)
    try:
        await prepare_database(db, settings)
        return await load_demo_if_empty(build_services(settings, db))
    finally:
        await db.dispose()

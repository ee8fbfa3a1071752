"""Deterministic care networks for benchmarking: a registry of organisations and professionals, and one
transaction Bundle per client holding that client's whole network.

Everything is derived from ``(seed, client index)`` through :class:`random.Random` seeded with a string
(SHA-512 based, so independent of ``PYTHONHASHSEED``): the same seed gives byte-identical Bundles on
every machine, and client *i* is the same whether 1,000 or 100,000 clients are generated, which is
what lets a run grow one database step by step (1k, then 10k) instead of loading each size afresh.

References to shared resources (organisations, practitioners) are FHIR conditional references
(``Organization?identifier=...|URA``), so a Bundle is complete and valid on its own; a loader that
already knows the server ids rewrites them to literal references with :func:`resolve_references`,
as a real client with a cache would.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
UZI = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ORG_TYPE = "http://nictiz.nl/fhir/NamingSystem/organization-type"
ROLE_CS = "urn:oid:2.16.840.1.113883.2.4.3.11.22.472"
MANTELZORGER_CS = "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4.23.1"
HUB = "https://zorgnet-hub.nl/fhir"
TOEWIJZING = f"{HUB}/NamingSystem/iwmo-toewijzingnummer"
ROLE_ID = "https://zorgnet-hub.nl/bench/NamingSystem/practitionerrole"

#: Organisation kinds: (kind, Vektis type code, display, clients per organisation, professional role).
ORG_KINDS: tuple[tuple[str, str, str, int, str], ...] = (
    ("huisarts", "Z3", "Huisartspraktijk (zelfstandig of groepspraktijk)", 100, "Huisarts"),
    ("wijkverpleging", "T2", "Thuiszorg", 250, "Wijkverpleegkundige"),
    ("thuiszorg", "T2", "Thuiszorg", 250, "Verzorgende IG"),
    ("gemeente", "G6", "Gemeentelijke instelling", 2000, "Wmo-consulent"),
    ("verpleeghuis", "X3", "Verplegings- of verzorgingsinstelling", 500, "Verpleegkundige"),
)

#: Observations recorded over time: (LOINC code, display, unit, low, high).
VITALS: tuple[tuple[str, str, str, float, float], ...] = (
    ("29463-7", "Body weight", "kg", 48.0, 95.0),
    ("8867-4", "Heart rate", "/min", 55.0, 100.0),
    ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 0.0, 8.0),
)

GIVEN = (
    "Johanna",
    "Willem",
    "Fatima",
    "Hendrik",
    "Maria",
    "Cornelis",
    "Aaltje",
    "Gerrit",
    "Sientje",
    "Jan",
    "Truus",
    "Mohamed",
    "Greetje",
    "Pieter",
    "Ans",
    "Kees",
    "Riet",
    "Ahmet",
    "Wilhelmina",
    "Dirk",
)
FAMILY = (
    "Smit",
    "Mulder",
    "Ouali",
    "de Vries",
    "Jansen",
    "Bakker",
    "Visser",
    "de Boer",
    "Meijer",
    "Bos",
    "Yilmaz",
    "van Dijk",
    "Peters",
    "Hendriks",
    "de Groot",
    "Dekker",
    "van Leeuwen",
    "Brouwer",
)
CITIES = ("Rivierstad", "Heuvelland", "Polderdam", "Bosrijk", "Zeewolde-Oost")
#: Contact-person roles: (code system, code, text).
CARER_ROLES = (
    (MANTELZORGER_CS, "100001", "Mantelzorger"),
    (ROLE_CS, "24", "Wettelijke vertegenwoordiger"),
    (ROLE_CS, "19", "Buur"),
    (ROLE_CS, "20", "Vriend"),
    (ROLE_CS, "15", "Mentor"),
)
ACTIVITIES = (
    ("persoonlijke-verzorging", "Hulp bij wassen en aankleden", "professional"),
    ("verpleging", "Wondzorg en medicatiecontrole", "professional"),
    ("huishoudelijke-hulp", "Schoonmaken van de woning", "professional"),
    ("gezelschap", "Boodschappen en gezelschap op woensdag", "mantelzorger"),
    ("respijtzorg", "Dagbesteding op dinsdag om de mantelzorger te ontlasten", "organisatie"),
    ("maaltijden", "Warme maaltijd door de buurvrouw", "vrijwilliger"),
)
SCHEDULES = ("dagelijks 's ochtends", "maandag en donderdag", "dinsdag 9:00-16:00", "wekelijks op woensdag")
#: Treatment limits of an ACP treatment directive (zib BehandelingCodelijst): (SNOMED code, display).
TREATMENTS = (("89666000", "cardiopulmonale resuscitatie"), ("305351004", "Opname op intensive care"))
#: The open states of an overdracht Task (the search mix asks for these; the generator writes
#: new ones, which start 'requested' with their advance notice: the hub's overdracht rules).
OPEN_TASK_STATES = ("requested", "received", "accepted", "in-progress")
#: The aanmeldbericht (advance notice) code, LOINC 57830-2.
ADVANCE_NOTICE = "57830-2"


@dataclass(frozen=True, slots=True)
class Organisation:
    key: str
    kind: str
    name: str
    ura: str
    type_code: str
    type_display: str

    @property
    def conditional(self) -> str:
        return f"Organization?identifier={URA}|{self.ura}"


@dataclass(frozen=True, slots=True)
class Professional:
    key: str
    org: Organisation
    given: str
    family: str
    uzi: str
    role: str

    @property
    def conditional(self) -> str:
        return f"Practitioner?identifier={UZI}|{self.uzi}"

    @property
    def spec(self) -> str:
        """The ``hub token --as`` spec of this professional acting for their organisation."""
        return f"org:{self.org.ura}:practitioner:{self.uzi}"


@dataclass(slots=True)
class ClientNetwork:
    """One client's Bundle plus the facts workloads need (who is in the team, which codes were used)."""

    index: int
    bsn: str
    bundle: dict[str, Any]
    team: list[Professional]
    observation_codes: list[str]
    #: The professional whose system registers the network (a nurse of the wijkverpleging in the team).
    author: Professional
    #: The client's privacy consent (Mitz-like opt-in for the team's organisations): written by the
    #: client or an administrator, never by a professional, so it is not part of ``bundle``; its
    #: ``patient`` is the Bundle's ``urn:uuid`` of the Patient until the loader knows the id.
    consent: dict[str, Any]
    task_owner: Organisation | None = None
    #: Bundle entry index of each resource kind (``Patient``, ``CarePlan`` ...), to map server ids.
    entry_of: dict[str, int] = field(default_factory=dict)

    @property
    def resource_count(self) -> int:
        return len(self.bundle["entry"])


def elfproef_bsn(index: int) -> str:
    """A unique 9-digit test BSN that passes the elfproef (11-test), for client ``index``."""
    for k in range(3):
        prefix = f"{20_000_000 + index * 3 + k:08d}"
        total = sum(int(d) * w for d, w in zip(prefix, range(9, 1, -1), strict=True))
        check = total % 11
        if check < 10:
            return prefix + str(check)
    raise AssertionError(f"no BSN for index {index}")  # consecutive prefixes differ by 2 mod 11


def _ura(kind_no: int, n: int) -> str:
    return f"{kind_no + 1}{n:07d}"


def _uzi(kind_no: int, org_no: int, n: int) -> str:
    return f"9{kind_no + 1}{org_no:05d}{n:02d}"


@dataclass(frozen=True)
class Network:
    """The whole synthetic region: ``clients`` clients and the organisations serving them."""

    clients: int
    seed: str = "zorgnet-bench-1"

    @cached_property
    def organisations(self) -> dict[str, list[Organisation]]:
        out: dict[str, list[Organisation]] = {}
        for kind_no, (kind, code, display, per_org, _role) in enumerate(ORG_KINDS):
            count = max(2, -(-self.clients // per_org))
            out[kind] = [
                Organisation(
                    f"{kind}-{n}",
                    kind,
                    f"{kind.capitalize()} {CITIES[n % len(CITIES)]} {n}",
                    _ura(kind_no, n),
                    code,
                    display,
                )
                for n in range(count)
            ]
        return out

    @cached_property
    def professionals(self) -> dict[str, list[Professional]]:
        """Professionals per organisation key (2-5 each, fixed by the seed)."""
        out: dict[str, list[Professional]] = {}
        for kind_no, (kind, *_rest, role) in enumerate(ORG_KINDS):
            for org_no, org in enumerate(self.organisations[kind]):
                rng = random.Random(f"{self.seed}:org:{org.key}")
                out[org.key] = [
                    Professional(
                        f"{org.key}-p{n}", org, rng.choice(GIVEN), rng.choice(FAMILY), _uzi(kind_no, org_no, n), role
                    )
                    for n in range(rng.randint(2, 5))
                ]
        return out

    def registry_bundles(self, chunk: int = 500) -> Iterator[dict[str, Any]]:
        """Transaction Bundles creating organisations, practitioners and roles: about ``chunk`` entries
        each, never splitting an organisation from its people (roles refer to it by ``urn:uuid``)."""
        entries: list[dict[str, Any]] = []
        for orgs in self.organisations.values():
            for org in orgs:
                group = [_organisation_entry(org)]
                for pro in self.professionals[org.key]:
                    group.extend(_professional_entries(pro))
                if entries and len(entries) + len(group) > chunk:
                    yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}
                    entries = []
                entries.extend(group)
        if entries:
            yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    def client(self, index: int) -> ClientNetwork:
        """Client ``index``'s network as one transaction Bundle."""
        return _ClientBuilder(self, index).build()


def _entry(full_url: str, resource: dict[str, Any], if_none_exist: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": full_url, "resource": resource, "request": request}


def _organisation_entry(org: Organisation) -> dict[str, Any]:
    return _entry(
        f"urn:uuid:{_uuid(org.key)}",
        {
            "resourceType": "Organization",
            "identifier": [{"system": URA, "value": org.ura}],
            "active": True,
            "type": [{"coding": [{"system": ORG_TYPE, "code": org.type_code, "display": org.type_display}]}],
            "name": org.name,
            "address": [{"city": org.name.split()[1], "country": "NL"}],
        },
        f"identifier={URA}|{org.ura}",
    )


def _professional_entries(pro: Professional) -> list[dict[str, Any]]:
    practitioner = _entry(
        f"urn:uuid:{_uuid(pro.key)}",
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": UZI, "value": pro.uzi}],
            "active": True,
            "name": [{"family": pro.family, "given": [pro.given], "text": f"{pro.given} {pro.family}"}],
        },
        f"identifier={UZI}|{pro.uzi}",
    )
    role = _entry(
        f"urn:uuid:{_uuid(pro.key + '-role')}",
        {
            "resourceType": "PractitionerRole",
            "identifier": [{"system": ROLE_ID, "value": pro.uzi}],
            "active": True,
            "practitioner": {"reference": f"urn:uuid:{_uuid(pro.key)}"},
            "organization": {"reference": f"urn:uuid:{_uuid(pro.org.key)}"},
            "code": [{"text": pro.role}],
        },
        f"identifier={ROLE_ID}|{pro.uzi}",
    )
    return [practitioner, role]


def _uuid(key: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://zorgnet-hub.nl/bench/{key}"))


def _ref(target: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": target}
    if display:
        out["display"] = display
    return out


class _ClientBuilder:
    """Builds one client's entries; every random choice comes from the client's own generator."""

    def __init__(self, net: Network, index: int) -> None:
        self.net = net
        self.index = index
        self.rng = random.Random(f"{net.seed}:client:{index}")
        self.entries: list[dict[str, Any]] = []
        self.entry_of: dict[str, int] = {}
        self.key = f"c{index}"

    def urn(self, part: str) -> str:
        return f"urn:uuid:{_uuid(f'{self.key}-{part}')}"

    def add(self, part: str, resource: dict[str, Any], if_none_exist: str | None = None) -> str:
        full_url = self.urn(part)
        self.entry_of.setdefault(resource["resourceType"], len(self.entries))
        self.entry_of[part] = len(self.entries)
        self.entries.append(_entry(full_url, resource, if_none_exist))
        return full_url

    def pick_org(self, kind: str) -> Organisation:
        orgs = self.net.organisations[kind]
        # Clients are spread evenly, with a little randomness, so every organisation has a caseload.
        return orgs[(self.index + self.rng.randrange(2)) % len(orgs)]

    def pick_pros(self, org: Organisation, k: int) -> list[Professional]:
        pros = self.net.professionals[org.key]
        return self.rng.sample(pros, min(k, len(pros)))

    def build(self) -> ClientNetwork:
        rng = self.rng
        bsn = elfproef_bsn(self.index)
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        city = rng.choice(CITIES)
        gp = self.pick_org("huisarts")
        patient = self.add(
            "patient",
            {
                "resourceType": "Patient",
                "identifier": [{"system": BSN, "value": bsn}],
                "active": True,
                "name": [{"family": family, "given": [given], "text": f"{given} {family}"}],
                "gender": rng.choice(("female", "male")),
                "birthDate": f"{rng.randint(1925, 1960)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "address": [
                    {
                        "line": [f"Dorpsstraat {rng.randint(1, 250)}"],
                        "city": city,
                        "postalCode": f"{rng.randint(1000, 9999)} {rng.choice('ABCDEFGHJK')}{rng.choice('LMNPRSTVWX')}",
                        "country": "NL",
                    }
                ],
                "generalPractitioner": [_ref(gp.conditional, gp.name)],
            },
            f"identifier={BSN}|{bsn}",
        )
        team = self._team(gp)
        carers = self._carers(patient, family)
        care_team = self._care_team(patient, given, family, team, carers)
        goals = self._goals(patient, team)
        self._care_plan(patient, given, family, team, carers, care_team, goals)
        self._acp(patient, team)
        codes = self._observations(patient, team)
        owner = self._overdracht(patient, team)
        self._toewijzing(patient, team)
        consent = self._privacy_consent(patient, team)
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}
        author = next(p for p in team if p.org.kind == "wijkverpleging")
        return ClientNetwork(self.index, bsn, bundle, team, codes, author, consent, owner, self.entry_of)

    def _team(self, gp: Organisation) -> list[Professional]:
        """3-8 professionals across organisations: GP, wijkverpleging, home care, maybe Wmo and others."""
        rng = self.rng
        size = rng.randint(3, 8)
        team = self.pick_pros(gp, 1)
        team += self.pick_pros(self.pick_org("wijkverpleging"), 1 + (size > 5))
        team += self.pick_pros(self.pick_org("thuiszorg"), 1 + (size > 6))
        if size > 3:
            team += self.pick_pros(self.pick_org("gemeente"), 1)
        while len(team) < size:
            extra = self.pick_pros(self.pick_org(rng.choice(("huisarts", "wijkverpleging", "thuiszorg"))), 1)
            if extra[0] not in team:
                team += extra
            elif rng.random() < 0.5:
                break
        return team

    def _carers(self, patient: str, family: str) -> list[tuple[str, str]]:
        rng = self.rng
        out: list[tuple[str, str]] = []
        for i in range(rng.randint(1, 3)):
            system, code, text = CARER_ROLES[0] if i == 0 else rng.choice(CARER_ROLES)
            cg = rng.choice(GIVEN)
            cf = family if i == 0 else rng.choice(FAMILY)
            url = self.add(
                f"rp{i}",
                {
                    "resourceType": "RelatedPerson",
                    "patient": _ref(patient),
                    "active": True,
                    "relationship": [{"coding": [{"system": system, "code": code}], "text": text}],
                    "name": [{"family": cf, "given": [cg], "text": f"{cg} {cf}"}],
                    "telecom": [
                        {"system": "phone", "value": f"06-{rng.randint(10_000_000, 99_999_999)}", "use": "mobile"}
                    ],
                },
            )
            out.append((url, text))
        return out

    def _care_team(
        self, patient: str, given: str, family: str, team: list[Professional], carers: list[tuple[str, str]]
    ) -> str:
        participants: list[dict[str, Any]] = [{"member": _ref(patient), "role": [{"text": "Cliënt"}]}]
        participants += [{"member": _ref(url), "role": [{"text": text}]} for url, text in carers]
        participants += [
            {
                "member": _ref(p.conditional, f"{p.given} {p.family}"),
                "onBehalfOf": _ref(p.org.conditional),
                "role": [{"text": p.role}],
            }
            for p in team
        ]
        return self.add(
            "team",
            {
                "resourceType": "CareTeam",
                "status": "active",
                "name": f"Zorgnetwerk {given} {family}",
                "subject": _ref(patient),
                "participant": participants,
            },
        )

    def _goals(self, patient: str, team: list[Professional]) -> list[str]:
        texts = (
            ("eigen-doel", "Zo lang mogelijk zelfstandig thuis blijven wonen", patient),
            ("professioneel-doel", "Geen valincidenten", team[1].conditional),
            ("gezamenlijk-doel", "Mantelzorger houdt het vol", patient),
        )
        out = []
        for i, (category, text, by) in enumerate(texts[: self.rng.randint(2, 3)]):
            out.append(
                self.add(
                    f"goal{i}",
                    {
                        "resourceType": "Goal",
                        "lifecycleStatus": "active",
                        "category": [{"coding": [{"system": f"{HUB}/CodeSystem/goal-category", "code": category}]}],
                        "description": {"text": text},
                        "subject": _ref(patient),
                        "expressedBy": _ref(by),
                    },
                )
            )
        return out

    def _care_plan(
        self,
        patient: str,
        given: str,
        family: str,
        team: list[Professional],
        carers: list[tuple[str, str]],
        care_team: str,
        goals: list[str],
    ) -> None:
        activities = []
        for code, text, kind in self.rng.sample(ACTIVITIES, self.rng.randint(2, 4)):
            if kind == "mantelzorger":
                performer = _ref(carers[0][0])
            elif kind == "organisatie" or kind == "vrijwilliger":
                performer = _ref(team[-1].org.conditional)
                kind = "organisatie"
            else:
                performer = _ref(self.rng.choice(team).conditional)
            activities.append(
                {
                    "detail": {
                        "extension": [
                            {"url": f"{HUB}/StructureDefinition/ext-ActivityPerformerKind", "valueCode": kind}
                        ],
                        "kind": "ServiceRequest",
                        "code": {"coding": [{"system": f"{HUB}/CodeSystem/care-activity", "code": code}]},
                        "status": self.rng.choice(("in-progress", "scheduled")),
                        "scheduledString": self.rng.choice(SCHEDULES),
                        "description": text,
                        "performer": [performer],
                    }
                }
            )
        self.add(
            "plan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "category": [
                    {"coding": [{"system": f"{HUB}/CodeSystem/careplan-category", "code": "gedeeld-zorgplan"}]}
                ],
                "title": f"Gedeeld zorgplan {given} {family}",
                "subject": _ref(patient),
                "period": {"start": f"2025-{self.rng.randint(1, 12):02d}-01"},
                "author": _ref(team[1].conditional),
                "careTeam": [_ref(care_team)],
                "goal": [_ref(g) for g in goals],
                "activity": activities,
            },
        )

    def _acp(self, patient: str, team: list[Professional]) -> None:
        """The ACP set: a treatment directive (no resuscitation or yes) and recorded wishes."""
        rng = self.rng
        when = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        treatment = rng.choice(TREATMENTS)
        self.add(
            "acp-resus",
            {
                "resourceType": "Consent",
                "status": "active",
                "scope": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]
                },
                "category": [
                    {
                        "coding": [
                            {"system": SNOMED, "code": "129125009", "display": "Procedure with explicit context"}
                        ],
                        "text": "Behandelgrens",
                    }
                ],
                "patient": _ref(patient),
                "dateTime": when,
                "performer": [_ref(patient)],
                "policy": [{"uri": "https://wetten.overheid.nl/"}],
                "provision": {
                    "type": rng.choice(("deny", "permit")),
                    "code": [{"coding": [{"system": SNOMED, "code": treatment[0], "display": treatment[1]}]}],
                },
            },
        )
        place = rng.choice((("264362003", "Thuis"), ("284546000", "Hospice"), ("42665001", "Verpleeghuis")))
        self.add(
            "acp-place",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {
                    "coding": [{"system": SNOMED, "code": "395091006", "display": "Voorkeursplaats van overlijden"}]
                },
                "subject": _ref(patient),
                "effectiveDateTime": when,
                "performer": [_ref(team[0].conditional)],
                "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": place[0], "display": place[1]}]},
            },
        )
        if rng.random() < 0.5:
            self.add(
                "acp-wishes",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {
                        "coding": [
                            {
                                "system": SNOMED,
                                "code": "153851000146100",
                                "display": "Wensen en verwachtingen ten aanzien van zorg",
                            }
                        ]
                    },
                    "subject": _ref(patient),
                    "effectiveDateTime": when,
                    "valueString": "Wil niet meer naar het ziekenhuis; comfort staat voorop.",
                },
            )

    def _observations(self, patient: str, team: list[Professional]) -> list[str]:
        """Measurements over time: 2-8 per client, over 2025-2026, by a nurse in the team."""
        rng = self.rng
        codes: list[str] = []
        for i in range(rng.randint(2, 8)):
            code, display, unit, low, high = rng.choice(VITALS)
            codes.append(code)
            self.add(
                f"obs{i}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                    "code": "vital-signs",
                                }
                            ]
                        }
                    ],
                    "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                    "subject": _ref(patient),
                    "effectiveDateTime": f"{rng.choice((2025, 2026))}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                    f"T{rng.randint(7, 20):02d}:{rng.randint(0, 59):02d}:00+01:00",
                    "performer": [_ref(rng.choice(team[1:]).conditional)],
                    "valueQuantity": {
                        "value": round(rng.uniform(low, high), 1),
                        "unit": unit,
                        "system": UCUM,
                        "code": unit,
                    },
                },
            )
        return codes

    def _overdracht(self, patient: str, team: list[Professional]) -> Organisation | None:
        """An overdracht for about one client in six (wijkverpleging -> verpleeghuis), as the sender
        starts one: the advance notice (aanmeldbericht) and the Task ``requested`` with it as input,
        written in the past; returns the receiving organisation (the Task's owner)."""
        rng = self.rng
        if rng.random() >= 0.16:
            return None
        owner = self.pick_org("verpleeghuis")
        sender = next(p for p in team if p.org.kind == "wijkverpleging")
        when = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00+01:00"
        notice = self.add(
            "aanmeldbericht",
            {
                "resourceType": "Composition",
                "status": "final",
                "type": {"coding": [{"system": LOINC, "code": ADVANCE_NOTICE, "display": "Aanmeldbericht"}]},
                "subject": _ref(patient),
                "date": when,
                "author": [_ref(sender.org.conditional)],
                "title": "Aanmelding overdracht naar verpleeghuis",
            },
        )
        self.add(
            "overdracht",
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "code": {"coding": [{"system": SNOMED, "code": "308292007", "display": "Overdracht van zorg"}]},
                "for": _ref(patient),
                "requester": _ref(sender.org.conditional),
                "owner": _ref(owner.conditional),
                "authoredOn": when,
                "description": "Overdracht wijkverpleging naar verpleeghuis na opname",
                "input": [
                    {
                        "type": {"coding": [{"system": LOINC, "code": ADVANCE_NOTICE}]},
                        "valueReference": {"reference": notice},
                    }
                ],
            },
        )
        return owner

    def _toewijzing(self, patient: str, team: list[Professional]) -> None:
        """A Wmo toewijzing (iWmo WMO301) for about one client in three."""
        rng = self.rng
        if rng.random() >= 0.33:
            return
        gemeente = self.pick_org("gemeente")
        provider = next(p for p in team if p.org.kind == "thuiszorg").org
        year = rng.choice((2025, 2026))
        self.add(
            "toewijzing",
            {
                "resourceType": "ServiceRequest",
                "identifier": [{"system": TOEWIJZING, "value": f"TW-{year}-{self.index:07d}"}],
                "status": "active",
                "intent": "order",
                "category": [
                    {"coding": [{"system": f"{HUB}/CodeSystem/servicerequest-category", "code": "wmo-toewijzing"}]}
                ],
                "code": {
                    "coding": [
                        {
                            "system": f"{HUB}/CodeSystem/iwmo-productcategorie",
                            "code": "02",
                            "display": "Hulp bij het huishouden",
                        }
                    ]
                },
                "subject": _ref(patient),
                "occurrencePeriod": {"start": f"{year}-01-01", "end": f"{year}-12-31"},
                "quantityQuantity": {
                    "value": rng.randint(2, 8),
                    "unit": "uur",
                    "system": f"{HUB}/CodeSystem/iwmo-eenheid",
                    "code": "04",
                },
                "requester": _ref(gemeente.conditional),
                "performer": [_ref(provider.conditional)],
            },
        )

    def _privacy_consent(self, patient: str, team: list[Professional]) -> dict[str, Any]:
        """The client's consent (Mitz-like): share with care relations, medical data (opt-in) with the team."""
        orgs = list(dict.fromkeys(p.org for p in team))
        return {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
            },
            "category": [{"coding": [{"system": f"{HUB}/CodeSystem/consent-category", "code": "gegevensdeling"}]}],
            "patient": _ref(patient),
            "dateTime": "2025-01-15",
            "performer": [_ref(patient)],
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {
                "type": "permit",
                "provision": [
                    {
                        "type": "permit",
                        "actor": [
                            {
                                "role": {
                                    "coding": [
                                        {
                                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "IRCP",
                                        }
                                    ]
                                },
                                "reference": _ref(org.conditional),
                            }
                        ],
                        "code": [{"coding": [{"system": f"{HUB}/CodeSystem/data-category", "code": "medisch"}]}],
                    }
                    for org in orgs
                ],
            },
        }


def resolve_references(value: Any, mapping: Mapping[str, str]) -> Any:
    """A copy of ``value`` with every ``reference`` found in ``mapping`` replaced by its literal form."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "reference" and isinstance(v, str):
                out[k] = mapping.get(v, v)
            else:
                out[k] = resolve_references(v, mapping)
        return out
    if isinstance(value, list):
        return [resolve_references(v, mapping) for v in value]
    return value


__all__ = [
    "ClientNetwork",
    "Network",
    "Organisation",
    "Professional",
    "elfproef_bsn",
    "resolve_references",
]

"""The client's privacy pages: who looked at my data (the hub's audit log) and my permissions
(``Patient/$access``, objections as Consents, delegations to mantelzorgers)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from apps.common import fhirtext as ft
from apps.common.hubclient import HubClient

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PURPOSES = {
    "TREAT": "voor uw zorg",
    "ETREAT": "noodgeval",
    "BTG": "noodgeval",
    "PATRQT": "op uw verzoek",
    "HOPERAT": "beheer",
    "HPAYMT": "betaling",
}
ACTIONS = {"R": "bekeek", "C": "voegde toe aan", "U": "wijzigde", "D": "verwijderde", "E": "bekeek"}
TYPE_WORDS = {
    "CarePlan": "uw zorgplan",
    "Goal": "een doel",
    "CareTeam": "uw netwerk",
    "Patient": "uw gegevens",
    "RelatedPerson": "uw naasten",
    "Consent": "uw wensen of toestemmingen",
    "Observation": "uw gegevens",
    "Task": "een overdracht",
    "ServiceRequest": "een Wmo-toewijzing",
    "Composition": "een overdracht",
}


@dataclass
class Look:
    when: str
    who: str
    organisation: str
    what: str
    why: str
    emergency: bool
    emergency_reason: str
    denied: bool


@dataclass
class LookPage:
    looks: list[Look]
    own_hidden: int


def _who(agent: dict[str, Any]) -> tuple[str | None, str | None]:
    ident = (agent.get("who") or {}).get("identifier") or {}
    return ident.get("system"), ident.get("value")


async def looks(hub: HubClient, patient: str, *, my_bsn: str | None, show_own: bool = False) -> LookPage:
    """Recent accesses to the client's data, newest first, with names instead of numbers."""
    bundle = await hub.search("AuditEvent", [("patient", f"Patient/{patient}"), ("_count", "200")])
    events = [e["resource"] for e in bundle.get("entry") or [] if "resource" in e]
    uras: set[str] = set()
    uzis: set[str] = set()
    for event in events:
        for agent in event.get("agent") or []:
            system, value = _who(agent)
            if system == ft.URA and value:
                uras.add(value)
            elif system == ft.UZI and value:
                uzis.add(value)
    orgs = await _names(hub, "Organization", ft.URA, uras)
    people = await _names(hub, "Practitioner", ft.UZI, uzis)
    out: list[Look] = []
    own = 0
    for event in events:
        who, organisation, own_access = "", "", False
        for agent in event.get("agent") or []:
            system, value = _who(agent)
            if system == ft.URA and value:
                organisation = orgs.get(value, "Een zorgorganisatie")
            if not agent.get("requestor"):
                continue
            if system == ft.UZI and value:
                who = people.get(value, "Een zorgverlener")
            elif system == ft.BSN and value:
                own_access = value == my_bsn
                who = "U zelf" if own_access else "Iemand met uw BSN"
            elif system == ft.PERSON and value and value == f"bsn:{my_bsn}":
                own_access = True
                who = "U zelf"
            elif system == ft.PERSON and value:
                who = f"Uw naaste ({value})"
            elif system == ft.URA:
                who = organisation or "Een zorgorganisatie"
            elif system == ft.CLIENT_ID:
                who = "Een koppeling van een zorgorganisatie"
        if own_access and not show_own:
            own += 1
            continue
        purposes = event.get("purposeOfEvent") or []
        codes = [c.get("code") for p in purposes for c in p.get("coding") or []]
        emergency = "BTG" in codes or "ETREAT" in codes
        why = ", ".join(dict.fromkeys(PURPOSES.get(str(c), "") for c in codes if PURPOSES.get(str(c)))) or (
            "voor uw zorg" if organisation else ""
        )
        out.append(
            Look(
                ft.dutch_date(event.get("recorded"), with_time=True),
                who or organisation or "Onbekend",
                organisation if who != organisation else "",
                _what(event),
                why,
                emergency,
                " ".join(str(p.get("text")) for p in purposes if p.get("text")),
                event.get("outcome") not in (None, "0"),
            )
        )
    return LookPage(out, own)


def _what(event: dict[str, Any]) -> str:
    action = ACTIONS.get(str(event.get("action")), "bekeek")
    types: list[str] = []
    for entity in event.get("entity") or []:
        ref = (entity.get("what") or {}).get("reference") or ""
        kind = ref.split("/")[0] if "/" in ref else ""
        if kind and kind != "Patient":
            types.append(TYPE_WORDS.get(kind, "uw gegevens"))
        elif entity.get("query") and not types:
            try:
                query = base64.b64decode(entity["query"]).decode()
            except ValueError:
                query = ""
            path = str(entity.get("description", "")).split(" ")[-1]
            kind = path.split("/")[0].split("?")[0]
            types.append(TYPE_WORDS.get(kind, "uw gegevens") if kind else "uw gegevens")
            del query
    if not types:
        types = ["uw gegevens"]
    words = ", ".join(dict.fromkeys(types))
    return f"{action} {words}"


async def _names(hub: HubClient, res_type: str, system: str, values: set[str]) -> dict[str, str]:
    if not values:
        return {}
    found = await hub.search_all(res_type, [("identifier", ",".join(f"{system}|{v}" for v in sorted(values)))])
    out: dict[str, str] = {}
    for res in found:
        value = ft.identifier(res, system)
        if value:
            out[value] = str(res.get("name")) if res_type == "Organization" else ft.human_name(res)
    return out


# --- permissions ----------------------------------------------------------------------------------


@dataclass
class CategoryAccess:
    code: str
    label: str
    allowed: bool
    reason: str


@dataclass
class OrgAccess:
    ura: str
    name: str
    categories: list[CategoryAccess]


@dataclass
class DelegationView:
    person: str
    role: str
    categories: list[str]
    until: str


@dataclass
class Objection:
    consent_id: str
    organisation: str
    categories: list[str]
    date: str


@dataclass
class Permissions:
    organisations: list[OrgAccess] = field(default_factory=list)
    delegations: list[DelegationView] = field(default_factory=list)
    objections: list[Objection] = field(default_factory=list)


def reason_in_dutch(reason: str) -> str:
    if reason.startswith("The client objects"):
        return "U heeft hier bezwaar tegen gemaakt."
    if reason.startswith("The client permits"):
        return "U heeft hier toestemming voor gegeven."
    if "opt-in" in reason:
        return "Hiervoor is eerst uw toestemming nodig."
    if "open by default" in reason:
        return "Deze organisatie helpt u, en u heeft hier niets over afgesproken."
    return "Volgens de regels van het zorgnetwerk."


def _parts(param: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in param.get("part") or [] if isinstance(p, dict)]


def _value(part: dict[str, Any]) -> Any:
    for key, value in part.items():
        if key.startswith("value"):
            return value
    return None


async def permissions(hub: HubClient, patient: str) -> Permissions:
    access = await hub.operation(f"Patient/{patient}/$access")
    out = Permissions()
    for param in access.get("parameter") or []:
        parts = _parts(param)
        if param.get("name") == "organisation":
            ura = next((str(_value(p)) for p in parts if p.get("name") == "ura"), "")
            name = next((str(_value(p)) for p in parts if p.get("name") == "name"), "") or "Een zorgorganisatie"
            cats = []
            for p in parts:
                if p.get("name") != "category":
                    continue
                fields = {q.get("name"): _value(q) for q in _parts(p)}
                code = str(fields.get("code"))
                cats.append(
                    CategoryAccess(
                        code,
                        ft.CATEGORY_LABELS.get(code, code),
                        bool(fields.get("access")),
                        reason_in_dutch(str(fields.get("reason", ""))),
                    )
                )
            out.organisations.append(OrgAccess(ura, name, cats))
        elif param.get("name") == "delegation":
            person = next((str(_value(p)) for p in parts if p.get("name") == "person"), "")
            role = next((str(_value(p)) for p in parts if p.get("name") == "role"), "")
            codes = [str(_value(p)) for p in parts if p.get("name") == "category"]
            labels = [ft.CATEGORY_LABELS.get(c, c) for c in codes]
            until = next((ft.dutch_date(str(_value(p))) for p in parts if p.get("name") == "until"), "")
            out.delegations.append(DelegationView(person, role, labels, until))
    out.objections = await objections(hub, patient, {o.ura: o.name for o in out.organisations})
    return out


async def objections(hub: HubClient, patient: str, org_names: dict[str, str]) -> list[Objection]:
    """The client's active objections: privacy Consents (gegevensdeling) whose provision denies."""
    found = await hub.search_all(
        "Consent",
        [
            ("patient", f"Patient/{patient}"),
            ("status", "active"),
            ("category", f"{ft.CONSENT_CATEGORY}|gegevensdeling"),
        ],
    )
    out = []
    for consent in found:
        provision = consent.get("provision") or {}
        if provision.get("type") != "deny":
            continue
        orgs = []
        for actor in provision.get("actor") or []:
            ident = (actor.get("reference") or {}).get("identifier") or {}
            value = ident.get("value")
            orgs.append(org_names.get(str(value), "een zorgorganisatie") if value else "een zorgorganisatie")
        cats = [
            ft.CATEGORY_LABELS.get(c, c)
            for cc in provision.get("code") or []
            for c in [ft.code_of(cc, ft.DATA_CATEGORY)]
            if c
        ]
        out.append(
            Objection(
                consent["id"],
                ", ".join(orgs) or "alle organisaties",
                cats or ["alle gegevens"],
                ft.dutch_date(consent.get("dateTime")),
            )
        )
    return out


def objection_consent(patient: str, ura: str, category: str, today: str) -> dict[str, Any]:
    """A privacy Consent by which the client objects to one organisation seeing one category."""
    provision: dict[str, Any] = {
        "type": "deny",
        "actor": [
            {
                "role": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]
                },
                "reference": {"identifier": {"system": ft.URA, "value": ura}},
            }
        ],
    }
    if category:
        provision["code"] = [{"coding": [{"system": ft.DATA_CATEGORY, "code": category}]}]
    return {
        "resourceType": "Consent",
        "meta": {"profile": ["https://zorgnet-hub.nl/fhir/StructureDefinition/zorgnet-Consent"]},
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": ft.CONSENT_CATEGORY, "code": "gegevensdeling"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "dateTime": today,
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
        "provision": provision,
    }

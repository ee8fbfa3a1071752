"""What the admin console reads from and writes to the hub, as plain view models and FHIR JSON."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from apps.common import fhirtext as ft
from apps.common.hubclient import HubClient, HubError

URA_RE = re.compile(r"^\d{8}$")
BSN_RE = re.compile(r"^\d{9}$")
ORG_TYPE_SYSTEM = "http://nictiz.nl/fhir/NamingSystem/organization-type"
#: Organisation types (Vektis) an administrator can choose.
ORG_TYPES: dict[str, str] = {
    "Z3": "Huisartspraktijk",
    "T2": "Thuiszorg",
    "X3": "Verplegings- of verzorgingsinstelling",
    "G6": "Gemeentelijke instelling",
    "V4": "Ziekenhuis",
    "A1": "Apotheek",
}
DECISIONS = {"permit": "Toestemming", "deny": "Bezwaar"}
PAPER_PREFIX = "Papieren formulier"


@dataclass
class Org:
    id: str
    name: str
    ura: str
    kind: str
    active: bool


async def organisations(hub: HubClient) -> list[Org]:
    found = await hub.search_all("Organization", [("_count", "200"), ("_sort", "name")])
    out = []
    for org in found:
        ura = ft.identifier(org, ft.URA) or ""
        kind = ft.concept_text((org.get("type") or [{}])[0]) or ORG_TYPES.get(
            ft.code_of(org.get("type") or [], ORG_TYPE_SYSTEM) or "", ""
        )
        out.append(Org(org["id"], str(org.get("name", "")), ura, kind, org.get("active", True) is not False))
    return out


def organisation(name: str, ura: str, kind: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "identifier": [{"system": ft.URA, "value": ura}],
        "active": True,
        "type": [{"coding": [{"system": ORG_TYPE_SYSTEM, "code": kind, "display": ORG_TYPES[kind]}]}],
        "name": name,
    }


async def patient_by_bsn(hub: HubClient, bsn: str) -> dict[str, Any] | None:
    found = await hub.search_all("Patient", [("identifier", f"{ft.BSN}|{bsn}")], max_pages=1)
    return found[0] if found else None


def check_paper(fields: dict[str, str]) -> str | None:
    """The plain-Dutch reason a paper-consent form cannot be recorded, or None."""
    if not BSN_RE.match(fields.get("bsn", "")):
        return "Vul het BSN van de cliënt in (9 cijfers)."
    if fields.get("decision") not in DECISIONS:
        return "Kies of het om toestemming of om bezwaar gaat."
    if fields.get("category") and fields["category"] not in ft.CATEGORY_LABELS:
        return "Kies welke gegevens het betreft."
    if fields.get("ura") and not URA_RE.match(fields["ura"]):
        return "Kies een organisatie uit de lijst."
    if len(fields.get("reason", "")) < 5:
        return "Vul de reden in waarom u dit namens de cliënt vastlegt (verplicht)."
    try:
        signed = date.fromisoformat(fields.get("signed", ""))
    except ValueError:
        return "Vul de datum in waarop de cliënt het formulier tekende."
    if signed > date.today():
        return "De datum van ondertekening ligt in de toekomst."
    return None


def paper_consent(patient_id: str, fields: dict[str, str], recorded_by: str) -> dict[str, Any]:
    """A privacy Consent from a signed paper form; the reason travels in the Consent itself, so it
    is kept in every version and in the audit trail of the write."""
    decision = fields["decision"]
    provision: dict[str, Any] = {"type": decision}
    if fields.get("ura"):
        provision["actor"] = [
            {
                "role": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]
                },
                "reference": {"identifier": {"system": ft.URA, "value": fields["ura"]}},
            }
        ]
    if fields.get("category"):
        provision["code"] = [{"coding": [{"system": ft.DATA_CATEGORY, "code": fields["category"]}]}]
    title = f"{PAPER_PREFIX}, getekend {fields['signed']}; vastgelegd door {recorded_by}. Reden: {fields['reason']}"
    return {
        "resourceType": "Consent",
        "meta": {"profile": ["https://zorgnet-hub.nl/fhir/StructureDefinition/zorgnet-Consent"]},
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": ft.CONSENT_CATEGORY, "code": "gegevensdeling"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": fields["signed"],
        "performer": [{"reference": f"Patient/{patient_id}"}],
        "sourceAttachment": {"contentType": "text/plain", "title": title[:1000]},
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "OPTIN" if decision == "permit" else "OPTOUT",
                }
            ]
        },
        "provision": provision,
    }


@dataclass
class PaperRecord:
    id: str
    patient: str
    decision: str
    what: str
    organisation: str
    note: str
    date: str


async def paper_consents(hub: HubClient, org_names: dict[str, str]) -> list[PaperRecord]:
    """The most recent consents recorded from paper (their source attachment says so)."""
    found = await hub.search_all(
        "Consent",
        [
            ("category", f"{ft.CONSENT_CATEGORY}|gegevensdeling"),
            ("_sort", "-_lastUpdated"),
            ("_count", "50"),
            ("_include", "Consent:patient"),
        ],
        max_pages=1,
    )
    patients = {f"Patient/{r['id']}": ft.human_name(r) for r in found if r["resourceType"] == "Patient"}
    out = []
    for consent in (r for r in found if r["resourceType"] == "Consent"):
        title = str((consent.get("sourceAttachment") or {}).get("title", ""))
        if not title.startswith(PAPER_PREFIX):
            continue
        provision = consent.get("provision") or {}
        ura = next(
            (
                str(((a.get("reference") or {}).get("identifier") or {}).get("value", ""))
                for a in provision.get("actor") or []
            ),
            "",
        )
        cats = [
            ft.CATEGORY_LABELS.get(c, c)
            for cc in provision.get("code") or []
            for c in [ft.code_of(cc, ft.DATA_CATEGORY)]
            if c
        ]
        out.append(
            PaperRecord(
                consent["id"],
                patients.get(ft.ref_key(consent.get("patient")) or "", "Cliënt"),
                DECISIONS.get(str(provision.get("type")), ""),
                ", ".join(cats) or "Alle gegevens",
                org_names.get(ura, "Alle organisaties") if ura else "Alle organisaties",
                title.split("Reden: ", 1)[-1],
                ft.dutch_date(consent.get("dateTime")),
            )
        )
    return out


# --- the audit log --------------------------------------------------------------------------------

INTERACTIONS = {
    "read": "las",
    "vread": "las versie",
    "search-type": "zocht",
    "search-system": "zocht",
    "search": "zocht",
    "create": "maakte aan",
    "update": "wijzigde",
    "patch": "wijzigde",
    "delete": "verwijderde",
    "history-instance": "las geschiedenis",
    "history": "las geschiedenis",
    "operation": "voerde uit",
    "transaction": "transactie",
    "batch": "batch",
}


@dataclass
class AuditRow:
    seq: str
    when: str
    who: str
    organisation: str
    app: str
    action: str
    what: str
    outcome: str
    emergency: str


@dataclass
class AuditResult:
    rows: list[AuditRow]
    total: int | None
    error: str


async def audit_search(hub: HubClient, query: dict[str, str], org_names: dict[str, str]) -> AuditResult:
    params: list[tuple[str, str]] = [("_count", "50")]
    if query.get("bsn"):
        if not BSN_RE.match(query["bsn"]):
            return AuditResult([], 0, "Een BSN heeft 9 cijfers.")
        patient = await patient_by_bsn(hub, query["bsn"])
        if patient is None:
            return AuditResult([], 0, "Er is geen cliënt met dit BSN in de hub.")
        params.append(("patient", f"Patient/{patient['id']}"))
    agents = [v for v in (query.get("ura"), query.get("app")) if v]
    for agent in agents:
        params.append(("agent", agent))
    for key, prefix in (("from", "ge"), ("to", "le")):
        if query.get(key):
            try:
                date.fromisoformat(query[key])
            except ValueError:
                return AuditResult([], 0, "Vul datums in als jjjj-mm-dd.")
            params.append(("date", f"{prefix}{query[key]}"))
    try:
        bundle = await hub.search("AuditEvent", params)
    except HubError as exc:
        return AuditResult([], 0, exc.message)
    rows = []
    for entry in bundle.get("entry") or []:
        event = entry.get("resource") or {}
        who = organisation = app = ""
        for agent in event.get("agent") or []:
            ident = (agent.get("who") or {}).get("identifier") or {}
            system, value = ident.get("system"), str(ident.get("value", ""))
            if system == ft.CLIENT_ID:
                app = value
            elif system == ft.URA:
                organisation = org_names.get(value, value)
            elif agent.get("requestor") and value:
                label = {ft.BSN: "cliënt", ft.PERSON: "persoon", ft.UZI: "UZI"}.get(str(system), "")
                who = f"{label} {value}".strip()
        subtype = [c.get("code") for c in event.get("subtype") or []]
        action = INTERACTIONS.get(str(subtype[0]) if subtype else "", str(subtype[0]) if subtype else "")
        if len(subtype) > 1:
            action = f"{action} {subtype[1]}"
        what = ", ".join(
            str((e.get("what") or {}).get("reference", ""))
            for e in event.get("entity") or []
            if (e.get("what") or {}).get("reference")
        )
        purposes = event.get("purposeOfEvent") or []
        codes = [c.get("code") for p in purposes for c in p.get("coding") or []]
        emergency = ""
        if "BTG" in codes or "ETREAT" in codes:
            emergency = " ".join(str(p.get("text", "")) for p in purposes).strip() or "noodtoegang"
        outcome = "gelukt" if event.get("outcome") == "0" else (event.get("outcomeDesc") or "geweigerd")
        rows.append(
            AuditRow(
                str(event.get("id", "")),
                ft.dutch_date(event.get("recorded"), with_time=True),
                who or organisation or app,
                organisation,
                app,
                action,
                what,
                str(outcome),
                emergency,
            )
        )
    return AuditResult(rows, bundle.get("total"), "")

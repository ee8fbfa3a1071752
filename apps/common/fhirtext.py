"""Small readers of FHIR JSON for display: names, dates, codes, identifiers (plain functions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
UZI = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
BIG = "http://fhir.nl/fhir/NamingSystem/big"
PERSON = "https://zorgnet-hub.nl/fhir/NamingSystem/person-id"
CLIENT_ID = "https://zorgnet-hub.nl/fhir/NamingSystem/client-id"
DATA_CATEGORY = "https://zorgnet-hub.nl/fhir/CodeSystem/data-category"
CONSENT_CATEGORY = "https://zorgnet-hub.nl/fhir/CodeSystem/consent-category"

#: The hub's data categories in plain Dutch (CodeSystem data-category).
CATEGORY_LABELS: dict[str, str] = {
    "zorgplan": "Zorgplan (doelen en afspraken)",
    "acp": "Wensen voor zorg en behandeling",
    "overdracht": "Overdracht naar een andere zorgverlener",
    "medisch": "Medische gegevens",
    "agenda": "Afspraken",
    "wmo": "Wmo (gemeente)",
    "netwerk": "Mijn netwerk",
    "toestemming": "Toestemmingen",
    "registratie": "Adresboek",
    "documenten": "Documenten en berichten",
    "audit": "Wie keek mee",
}

MONTHS = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)


def human_name(resource: dict[str, Any] | None) -> str:
    if not resource:
        return ""
    names = resource.get("name")
    if isinstance(names, str):
        return names
    for name in names or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return ""


def identifier(resource: dict[str, Any] | None, system: str) -> str | None:
    for ident in (resource or {}).get("identifier") or []:
        if ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def code_of(concept: Any, system: str | None = None) -> str | None:
    concepts = concept if isinstance(concept, list) else [concept]
    for cc in concepts:
        for coding in (cc or {}).get("coding") or []:
            if system is None or coding.get("system") == system:
                if coding.get("code"):
                    return str(coding["code"])
    return None


def concept_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if coding.get("display"):
            return str(coding["display"])
    return ""


def parse_instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def dutch_date(value: str | None, with_time: bool = False) -> str:
    """``2026-11-30T10:00:00Z`` -> ``30 november 2026, 11:00`` (time in the Netherlands)."""
    if not value:
        return ""
    if len(value) == 10:
        try:
            day = datetime.fromisoformat(value)
        except ValueError:
            return value
        return f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    moment = parse_instant(value)
    if moment is None:
        return value
    if moment.tzinfo is not None:
        from zoneinfo import ZoneInfo

        moment = moment.astimezone(ZoneInfo("Europe/Amsterdam"))
    text = f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"
    return f"{text}, {moment:%H:%M}" if with_time else text


def ref_id(ref: Any, res_type: str | None = None) -> str | None:
    """``Patient/123`` -> ``123`` (any base, version stripped), when of ``res_type``."""
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    parts = ref["reference"].split("/_history/")[0].rstrip("/").split("/")
    if len(parts) < 2 or (res_type and parts[-2] != res_type):
        return None
    return parts[-1]


def ref_key(ref: Any) -> str | None:
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    parts = ref["reference"].split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None

"""From the GP system's records to what the care network needs, in the hub's profiles.

Two steps, both pure functions:

- :func:`in_summary` decides whether a source resource belongs in the "huisartsgegevens voor het
  netwerk" summary: active episodes and problems, alerts, allergies, current medication, measurements
  of the last 14 months (blood pressure, weight, eGFR...), SOEP journal lines the GP tagged for the
  care network, and treatment directives. A resource that was synced before always follows (a status
  change, an entered-in-error at the source).
- :func:`to_hub` maps one source resource (FHIR STU3 / zib2017, or R4 / zib2020) to an R4 resource in
  the nl-core / hub profile, with the client's hub Patient as subject, a source identifier that makes
  every write idempotent, and ``meta.source`` naming the GP system.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

NL = "http://nictiz.nl/fhir/StructureDefinition/"
IKNL = "https://fhir.iknl.nl/fhir/StructureDefinition/"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICPC = "http://hl7.org/fhir/sid/icpc-1-nl"
NHG45 = "https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen"
JOURNAAL = "http://fhir.nl/fhir/NamingSystem/journaalregeltypen"
OBS_CATEGORY_R4 = "http://terminology.hl7.org/CodeSystem/observation-category"
OBS_CATEGORY_STU3 = "http://hl7.org/fhir/observation-category"
SHARE_TAG = ("https://zorgnet-hub.nl/fhir/CodeSystem/delen", "zorgnetwerk")
EPISODE_TITLE_STU3 = "http://nictiz.nl/fhir/StructureDefinition/EpisodeOfCare-Title"
EPISODE_TITLE_R4 = "http://nictiz.nl/fhir/StructureDefinition/ext-EpisodeOfCare.EpisodeOfCareName"
DIRECTIVE_TREATMENT = "http://nictiz.nl/fhir/StructureDefinition/zib-TreatmentDirective-Treatment"
DIRECTIVE_PERMITTED = "http://nictiz.nl/fhir/StructureDefinition/zib-TreatmentDirective-TreatmentPermitted"
URA = "http://fhir.nl/fhir/NamingSystem/ura"

#: The resource types (and searches) of the summary, in the order they are written.
SUMMARY_TYPES = (
    "Condition",
    "EpisodeOfCare",
    "Flag",
    "AllergyIntolerance",
    "MedicationRequest",
    "Observation",
    "Consent",
)

#: NHG table 45 measurements the network needs -> (LOINC code, display, hub profile).
MEASUREMENTS: dict[str, tuple[str, str, str]] = {
    "1743": ("85354-9", "Blood pressure panel", "nl-core-BloodPressure"),
    "357": ("29463-7", "Body weight", "nl-core-BodyWeight"),
    "3583": ("62238-1", "eGFR CKD-EPI", "nl-core-LaboratoryTestResult"),
    "3584": ("33914-3", "eGFR MDRD", "nl-core-LaboratoryTestResult"),
    "2939": ("4548-4", "HbA1c", "nl-core-LaboratoryTestResult"),
}
LOINC_MEASUREMENTS = {loinc: (nhg, display, profile) for nhg, (loinc, display, profile) in MEASUREMENTS.items()}
#: SOEP journal line types -> the zib SOAPReport SNOMED codes.
SOEP = {
    "S": ("255362007", "Subjective"),
    "O": ("260224007", "Objective"),
    "E": ("129265001", "evaluatie"),
    "P": ("129271007", "beleid"),
}
#: STU3 Condition.verificationStatus -> (R4 code, zib VerificatieStatus SNOMED code or None for UNK).
CONDITION_VERIFICATION = {
    "confirmed": ("confirmed", "410605003"),
    "provisional": ("provisional", "415684004"),
    "differential": ("differential", "410590009"),
    "refuted": ("refuted", "410516002"),
    "entered-in-error": ("entered-in-error", None),
    "unknown": ("unconfirmed", None),
}
MEASUREMENT_WINDOW = timedelta(days=14 * 31)


@dataclass(frozen=True)
class Context:
    """What a mapping needs to know besides the resource."""

    practice_id: str
    practice_name: str
    practice_ura: str
    source_base: str
    fhir_version: str  # "stu3" or "r4"
    hub_patient_id: str
    today: date

    def source_system(self, res_type: str) -> str:
        """The identifier system of one practice's resources of one type (idempotent writes)."""
        return f"urn:zorgnet:huisarts:{self.practice_id}:{res_type}"


class MappingError(ValueError):
    """A source resource that cannot be mapped; the message names it and what is wrong."""


# --- the summary -------------------------------------------------------------------------------------


def _codes(concept: Any) -> set[tuple[str, str]]:
    return {(c.get("system", ""), c.get("code", "")) for c in (concept or {}).get("coding", [])}


def _status_code(value: Any) -> str:
    """A status that is a code (STU3) or a CodeableConcept (R4), as its code."""
    if isinstance(value, str):
        return value
    for _system, code in _codes(value):
        if code:
            return code
    return ""


def is_journal_line(resource: dict[str, Any]) -> bool:
    return any(system == JOURNAAL for system, _ in _codes(resource.get("code")))


def measurement_of(resource: dict[str, Any]) -> tuple[str, str, str] | None:
    """(LOINC code, display, hub profile) of a measurement the network needs, or None."""
    for system, code in _codes(resource.get("code")):
        if system == NHG45 and code in MEASUREMENTS:
            return MEASUREMENTS[code]
        if system == LOINC and code in LOINC_MEASUREMENTS:
            _nhg, display, profile = LOINC_MEASUREMENTS[code]
            return code, display, profile
    return None


def in_summary(resource: dict[str, Any], today: date, *, synced_before: bool = False) -> bool:
    """Whether a source resource belongs in the network's GP summary."""
    if synced_before:
        return True
    kind = resource.get("resourceType")
    if kind == "EpisodeOfCare":
        return resource.get("status") in ("active", "onhold", "waitlist")
    if kind == "Condition":
        return _status_code(resource.get("clinicalStatus")) in ("active", "recurrence", "relapse")
    if kind == "Flag":
        return resource.get("status") == "active"
    if kind == "AllergyIntolerance":
        return _status_code(resource.get("clinicalStatus")) in ("active", "")
    if kind == "MedicationRequest":
        return resource.get("status") == "active"
    if kind == "Consent":
        return resource.get("status") == "active"
    if kind == "Observation":
        if is_journal_line(resource):
            tags = {(t.get("system"), t.get("code")) for t in (resource.get("meta") or {}).get("tag", [])}
            return SHARE_TAG in tags and resource.get("status") != "entered-in-error"
        if measurement_of(resource) is None:
            return False
        effective = str(resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start", ""))
        return effective[:10] >= (today - MEASUREMENT_WINDOW).isoformat()
    return False


# --- mapping -------------------------------------------------------------------------------------------


def _display_only(ref: Any) -> dict[str, Any] | None:
    """A reference into the GP system, kept as its display (the hub does not hold the GP's records)."""
    if not isinstance(ref, dict):
        return None
    display = ref.get("display")
    return {"display": str(display)} if display else None


def _base(resource: dict[str, Any], ctx: Context, profile: str | None) -> dict[str, Any]:
    kind = resource["resourceType"]
    out: dict[str, Any] = {"resourceType": kind}
    meta: dict[str, Any] = {"source": f"{ctx.source_base.rstrip('/')}/{kind}/{resource['id']}"}
    if profile:
        meta["profile"] = [profile]
    out["meta"] = meta
    identifiers = resource.get("identifier", [])
    if isinstance(identifiers, dict):  # STU3 resources with 0..1 identifier (Consent)
        identifiers = [identifiers]
    out["identifier"] = [{"system": ctx.source_system(kind), "value": resource["id"]}] + [
        {k: v for k, v in i.items() if k in ("system", "value")}
        for i in identifiers
        if isinstance(i, dict) and i.get("value")
    ]
    return out


def _subject(ctx: Context) -> dict[str, str]:
    return {"reference": f"Patient/{ctx.hub_patient_id}"}


def _condition(r: dict[str, Any], ctx: Context) -> dict[str, Any]:
    out = _base(r, ctx, NL + "nl-core-Problem")
    clinical = _status_code(r.get("clinicalStatus"))
    if clinical:
        out["clinicalStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]
        }
    verification = _status_code(r.get("verificationStatus")) or "unknown"
    r4_code, zib_code = CONDITION_VERIFICATION.get(verification, (verification, None))
    zib = (
        {"system": SNOMED, "code": zib_code}
        if zib_code
        else {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"}
    )
    out["verificationStatus"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": r4_code}, zib]
    }
    for name in ("category", "code", "onsetDateTime", "onsetPeriod", "abatementDateTime", "abatementPeriod", "note"):
        if name in r:
            out[name] = copy.deepcopy(r[name])
    out["subject"] = _subject(ctx)
    recorded = r.get("recordedDate") or r.get("assertedDate")
    if recorded:
        out["recordedDate"] = recorded
    asserter = _display_only(r.get("asserter"))
    if asserter:
        out["asserter"] = asserter
    return out


def _episode(r: dict[str, Any], ctx: Context) -> dict[str, Any]:
    out = _base(r, ctx, NL + "nl-core-EpisodeOfCare")
    title = next(
        (
            e.get("valueString")
            for e in r.get("extension", [])
            if e.get("url") in (EPISODE_TITLE_STU3, EPISODE_TITLE_R4)
        ),
        None,
    )
    if title:
        out["extension"] = [{"url": EPISODE_TITLE_R4, "valueString": title}]
    out["status"] = r.get("status", "active")
    for name in ("type", "period"):
        if name in r:
            out[name] = copy.deepcopy(r[name])
    diagnoses = []
    for d in r.get("diagnosis", []):
        kind, _, source_id = str((d.get("condition") or {}).get("reference", "")).partition("/")
        if kind == "Condition" and source_id:
            # a conditional reference: the hub resolves it to the Condition synced from the same record
            diagnoses.append(
                {"condition": {"reference": f"Condition?identifier={ctx.source_system('Condition')}|{source_id}"}}
            )
    if diagnoses:
        out["diagnosis"] = diagnoses
    out["patient"] = _subject(ctx)
    out["managingOrganization"] = {
        "identifier": {"system": URA, "value": ctx.practice_ura},
        "display": ctx.practice_name,
    }
    return out


def _flag(r: dict[str, Any], ctx: Context) -> dict[str, Any]:
    out = _base(r, ctx, NL + "nl-core-Alert")
    out["status"] = r.get("status", "active")
    if "category" in r:  # STU3: one CodeableConcept; R4: a list
        out["category"] = copy.deepcopy(r["category"] if isinstance(r["category"], list) else [r["category"]])
    for name in ("code", "period"):
        if name in r:
            out[name] = copy.deepcopy(r[name])
    out["subject"] = _subject(ctx)
    author = _display_only(r.get("author"))
    if author:
        out["author"] = author
    return out


def _allergy(r: dict[str, Any], ctx: Context) -> dict[str, Any]:
    out = _base(r, ctx, NL + "nl-core-AllergyIntolerance")
    clinical = _status_code(r.get("clinicalStatus"))
    verification = _status_code(r.get("verificationStatus"))
    if clinical and verification != "entered-in-error":
        out["clinicalStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": clinical}
            ]
        }
    if verification:
        out["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "code": verification,
                }
            ]
        }
    for name in ("type", "category", "criticality", "code", "onsetDateTime", "note", "reaction", "lastOccurrence"):
        if name in r:
            out[name] = copy.deepcopy(r[name])
    out["patient"] = _subject(ctx)
    recorded = r.get("recordedDate") or r.get("assertedDate")
    if recorded:
        out["recordedDate"] = recorded
    recorder = _display_only(r.get("recorder"))
    if recorder:
        out["recorder"] = recorder
    return out


def _dosage(d: dict[str, Any]) -> dict[str, Any]:
    """STU3 Dosage -> R4 Dosage (dose and rate moved into ``doseAndRate``)."""
    out = {
        k: copy.deepcopy(v)
        for k, v in d.items()
        if k not in ("doseQuantity", "doseRange", "rateRatio", "rateRange", "rateQuantity")
    }
    dose_and_rate = {
        k: copy.deepcopy(d[k])
        for k in ("doseQuantity", "doseRange", "rateRatio", "rateRange", "rateQuantity")
        if k in d
    }
    if dose_and_rate:
        out["doseAndRate"] = [dose_and_rate]
    return out


def _medication_request(r: dict[str, Any], ctx: Context, medication: dict[str, Any] | None) -> dict[str, Any]:
    out = _base(r, ctx, None)
    out["status"] = r.get("status", "active")
    out["intent"] = r.get("intent", "order")
    category = r.get("category")
    if category:
        out["category"] = copy.deepcopy(category if isinstance(category, list) else [category])
    if "medicationCodeableConcept" in r:
        out["medicationCodeableConcept"] = copy.deepcopy(r["medicationCodeableConcept"])
    elif medication is not None and medication.get("code"):
        out["medicationCodeableConcept"] = copy.deepcopy(medication["code"])
    else:
        display = (r.get("medicationReference") or {}).get("display")
        if not display:
            raise MappingError(f"MedicationRequest/{r.get('id')}: its Medication is not in the GP's answer")
        out["medicationCodeableConcept"] = {"text": display}
    out["subject"] = _subject(ctx)
    if "authoredOn" in r:
        out["authoredOn"] = r["authoredOn"]
    requester = r.get("requester")
    if isinstance(requester, dict) and "agent" in requester:  # STU3
        requester = requester["agent"]
    shown = _display_only(requester)
    if shown:
        out["requester"] = shown
    if r.get("dosageInstruction"):
        out["dosageInstruction"] = [_dosage(d) for d in r["dosageInstruction"]]
    if "note" in r:
        out["note"] = copy.deepcopy(r["note"])
    return out


def _category_r4(categories: list[Any]) -> list[Any]:
    out = copy.deepcopy(categories)
    for concept in out:
        for coding in concept.get("coding", []):
            if coding.get("system") == OBS_CATEGORY_STU3:
                coding["system"] = OBS_CATEGORY_R4
    return out


def _observation(r: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if is_journal_line(r):
        kind = next(code for system, code in _codes(r.get("code")) if system == JOURNAAL)
        if kind not in SOEP:
            raise MappingError(f"Observation/{r.get('id')}: unknown journaalregeltype {kind!r}")
        out = _base(r, ctx, NL + "nl-core-SOAPReport.SOAPLine")
        out["status"] = r.get("status", "final")
        code, display = SOEP[kind]
        out["code"] = {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": kind}
        out["subject"] = _subject(ctx)
        for name in ("effectiveDateTime", "valueString"):
            if name in r:
                out[name] = r[name]
        return out
    measured = measurement_of(r)
    if measured is None:
        raise MappingError(f"Observation/{r.get('id')}: not a measurement of the summary")
    loinc, display, profile = measured
    out = _base(r, ctx, NL + profile)
    out["status"] = r.get("status", "final")
    categories = _category_r4(r.get("category", []))
    if profile == "nl-core-LaboratoryTestResult" and not any(
        (OBS_CATEGORY_R4, "laboratory") in _codes(c) for c in categories
    ):
        categories.append({"coding": [{"system": OBS_CATEGORY_R4, "code": "laboratory"}]})
    if profile != "nl-core-LaboratoryTestResult" and not any(
        (OBS_CATEGORY_R4, "vital-signs") in _codes(c) for c in categories
    ):
        categories.append({"coding": [{"system": OBS_CATEGORY_R4, "code": "vital-signs"}]})
    out["category"] = categories
    code = copy.deepcopy(r["code"])
    if (LOINC, loinc) not in _codes(code):
        code.setdefault("coding", []).append({"system": LOINC, "code": loinc, "display": display})
    out["code"] = code
    out["subject"] = _subject(ctx)
    for name in (
        "effectiveDateTime",
        "effectivePeriod",
        "valueQuantity",
        "valueString",
        "valueCodeableConcept",
        "interpretation",
        "note",
        "referenceRange",
        "component",
    ):
        if name in r:
            out[name] = copy.deepcopy(r[name])
    return out


def _directive(r: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """A treatment directive (zib2017 BehandelAanwijzing) -> the hub's ACP TreatmentDirective."""
    ext = {e.get("url"): e for e in r.get("extension", [])}
    treatment = (ext.get(DIRECTIVE_TREATMENT) or {}).get("valueCodeableConcept")
    if treatment is None and isinstance(r.get("provision"), dict):
        treatment = (r["provision"].get("code") or [None])[0]
    if treatment is None:
        raise MappingError(f"Consent/{r.get('id')}: a treatment directive without the treatment")
    permitted = _status_code((ext.get(DIRECTIVE_PERMITTED) or {}).get("valueCodeableConcept"))
    if not permitted and isinstance(r.get("provision"), dict):
        permitted = "JA" if r["provision"].get("type") == "permit" else "NEE"
    out = _base(r, ctx, IKNL + "ACP-TreatmentDirective")
    out["status"] = r.get("status", "active")
    out["scope"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]}
    out["category"] = [
        {"coding": [{"system": SNOMED, "code": "129125009", "display": "procedure with explicit context"}]}
    ]
    out["patient"] = _subject(ctx)
    if "dateTime" in r:
        out["dateTime"] = r["dateTime"]
    out["policy"] = copy.deepcopy(r.get("policy") or [{"uri": "https://wetten.overheid.nl/"}])
    out["provision"] = {
        "type": "permit" if permitted in ("JA", "JA_MAAR") else "deny",
        "actor": [
            {
                "role": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "CST"}]
                },
                "reference": _subject(ctx),
            }
        ],
        "code": [copy.deepcopy(treatment)],
    }
    return out


def to_hub(resource: dict[str, Any], ctx: Context, *, medication: dict[str, Any] | None = None) -> dict[str, Any]:
    """The hub's R4 resource for one source resource (raises :class:`MappingError`)."""
    kind = resource.get("resourceType")
    if not isinstance(resource.get("id"), str):
        raise MappingError(f"{kind}: a source resource without an id cannot be synced idempotently")
    if kind == "Condition":
        return _condition(resource, ctx)
    if kind == "EpisodeOfCare":
        return _episode(resource, ctx)
    if kind == "Flag":
        return _flag(resource, ctx)
    if kind == "AllergyIntolerance":
        return _allergy(resource, ctx)
    if kind == "MedicationRequest":
        return _medication_request(resource, ctx, medication)
    if kind == "Observation":
        return _observation(resource, ctx)
    if kind == "Consent":
        return _directive(resource, ctx)
    raise MappingError(f"{kind}/{resource.get('id')}: not a resource type of the GP summary")


def entered_in_error(hub_resource: dict[str, Any]) -> dict[str, Any]:
    """The same resource marked entered-in-error (it was removed or voided at the source)."""
    out = copy.deepcopy(hub_resource)
    kind = out["resourceType"]
    if kind == "Condition":
        out["verificationStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"},
                {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"},
            ]
        }
        out.pop("clinicalStatus", None)
    elif kind == "AllergyIntolerance":
        out["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "code": "entered-in-error",
                }
            ]
        }
        out.pop("clinicalStatus", None)
    elif kind == "Consent":
        out["status"] = "entered-in-error"
    else:
        out["status"] = "entered-in-error"
    return out


__all__ = [
    "MEASUREMENTS",
    "SUMMARY_TYPES",
    "Context",
    "MappingError",
    "entered_in_error",
    "in_summary",
    "is_journal_line",
    "measurement_of",
    "to_hub",
]

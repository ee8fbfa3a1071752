"""The public FHIR server benchmark's CRUD chain: create nine linked resources (Patient, Location,
Organization, Practitioner, Encounter, Observation, MedicationRequest, Claim, ExplanationOfBenefit),
read each, update each, delete each (newest first, so nothing is left pointing at a deleted resource).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from bench.driver import Recorder

Ref = dict[str, str]
Builder = Callable[[str, dict[str, Ref]], dict[str, Any]]


def _ref(refs: dict[str, Ref], res_type: str) -> Ref:
    return refs[res_type]


def _patient(tag: str, _refs: dict[str, Ref]) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:bench:crud", "value": tag}],
        "name": [{"family": "Benchmark", "given": [f"Chain {tag}"]}],
        "gender": "female",
        "birthDate": "1950-03-14",
    }


def _location(tag: str, _refs: dict[str, Ref]) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "status": "active",
        "name": f"Locatie {tag}",
        "address": {"city": "Rivierstad", "country": "NL"},
    }


def _organization(tag: str, _refs: dict[str, Ref]) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "active": True,
        "name": f"Zorgaanbieder {tag}",
        "identifier": [{"system": "urn:bench:crud-org", "value": tag}],
    }


def _practitioner(tag: str, _refs: dict[str, Ref]) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "active": True, "name": [{"family": "Arts", "given": [f"Chain {tag}"]}]}


def _encounter(_tag: str, refs: dict[str, Ref]) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH", "display": "home health"},
        "subject": _ref(refs, "Patient"),
        "serviceProvider": _ref(refs, "Organization"),
        "participant": [{"individual": _ref(refs, "Practitioner")}],
        "location": [{"location": _ref(refs, "Location")}],
        "period": {"start": "2026-03-01T09:00:00+01:00", "end": "2026-03-01T09:30:00+01:00"},
    }


def _observation(_tag: str, refs: dict[str, Ref]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "subject": _ref(refs, "Patient"),
        "encounter": _ref(refs, "Encounter"),
        "performer": [_ref(refs, "Practitioner")],
        "effectiveDateTime": "2026-03-01T09:10:00+01:00",
        "valueQuantity": {"value": 71.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }


def _medication_request(_tag: str, refs: dict[str, Ref]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "N02BE01", "display": "paracetamol"}]
        },
        "subject": _ref(refs, "Patient"),
        "encounter": _ref(refs, "Encounter"),
        "requester": _ref(refs, "Practitioner"),
        "authoredOn": "2026-03-01",
        "dosageInstruction": [{"text": "3 maal daags 500 mg"}],
    }


def _claim(_tag: str, refs: dict[str, Ref]) -> dict[str, Any]:
    return {
        "resourceType": "Claim",
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim",
        "patient": _ref(refs, "Patient"),
        "created": "2026-03-02",
        "provider": _ref(refs, "Organization"),
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Basisverzekering"}}],
        "item": [{"sequence": 1, "productOrService": {"text": "Consult"}, "encounter": [_ref(refs, "Encounter")]}],
    }


def _eob(_tag: str, refs: dict[str, Ref]) -> dict[str, Any]:
    return {
        "resourceType": "ExplanationOfBenefit",
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim",
        "patient": _ref(refs, "Patient"),
        "created": "2026-03-05",
        "insurer": {"display": "Zorgverzekeraar"},
        "provider": _ref(refs, "Organization"),
        "claim": _ref(refs, "Claim"),
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"display": "Basisverzekering"}}],
    }


#: In creation order; later ones reference earlier ones.
CHAIN: tuple[tuple[str, Builder], ...] = (
    ("Patient", _patient),
    ("Location", _location),
    ("Organization", _organization),
    ("Practitioner", _practitioner),
    ("Encounter", _encounter),
    ("Observation", _observation),
    ("MedicationRequest", _medication_request),
    ("Claim", _claim),
    ("ExplanationOfBenefit", _eob),
)


def chain_resources(tag: str) -> list[dict[str, Any]]:
    """The nine resources with placeholder ids (for tests: they must all be valid)."""
    refs = {t: {"reference": f"{t}/placeholder"} for t, _ in CHAIN}
    return [build(tag, refs) for _, build in CHAIN]


async def run_chain(rec: Recorder, tag: str, headers: dict[str, str]) -> None:
    """One chain: 9 creates, 9 reads, 9 updates, 9 deletes (36 requests)."""
    refs: dict[str, Ref] = {}
    created: list[tuple[str, str, dict[str, Any]]] = []
    for res_type, build in CHAIN:
        body = build(tag, refs)
        status, payload = await rec.request("create", "POST", res_type, body=body, headers=headers, expect=(201,))
        if status != 201:
            return
        stored = orjson.loads(payload)
        refs[res_type] = {"reference": f"{res_type}/{stored['id']}"}
        created.append((res_type, stored["id"], stored))
    for res_type, res_id, _ in created:
        await rec.request("read", "GET", f"{res_type}/{res_id}", headers=headers)
    for res_type, res_id, stored in created:
        updated = {k: v for k, v in stored.items() if k != "meta"}
        updated["text"] = {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{tag}</div>'}
        await rec.request("update", "PUT", f"{res_type}/{res_id}", body=updated, headers=headers)
    for res_type, res_id, _ in reversed(created):
        await rec.request("delete", "DELETE", f"{res_type}/{res_id}", headers=headers, expect=(200, 204))


__all__ = ["CHAIN", "chain_resources", "run_chain"]

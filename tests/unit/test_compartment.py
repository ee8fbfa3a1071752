"""Tests for hub.fhir.compartment: Patient compartment membership from reference rows."""

from __future__ import annotations

from hub.fhir.compartment import (
    patient_compartment_ids,
    patient_compartment_params,
    patient_compartment_types,
)


def _ref(param: str, rtype: str | None, rid: str | None, url: str | None = None) -> dict[str, str | None]:
    return {"param": param, "target_type": rtype, "target_id": rid, "target_url": url}


def test_params_from_the_compartment_definition() -> None:
    assert patient_compartment_params("Observation") == ("subject", "performer")
    assert patient_compartment_params("CarePlan") == ("patient", "performer")
    assert patient_compartment_params("Patient") == ("link",)
    assert patient_compartment_params("Organization") == ()
    assert {"Observation", "Encounter", "Patient"} <= patient_compartment_types()


def test_ids_from_reference_rows() -> None:
    rows = [
        _ref("subject", "Patient", "p1"),
        _ref("performer", "Practitioner", "x"),
        _ref("performer", "Patient", "p2"),
        _ref("subject", "Patient", "p1"),
        _ref("specimen", "Patient", "p9"),  # not a compartment param
        _ref("performer", "Patient", None, "#contained"),
        _ref("performer", "Patient", "p3", "http://elsewhere.example/fhir/Patient/p3"),
    ]
    assert patient_compartment_ids("Observation", "o1", rows) == ["p1", "p2"]


def test_absolute_references_count_only_for_this_server() -> None:
    rows = [_ref("subject", "Patient", "p3", "https://hub.example/fhir/Patient/p3")]
    assert patient_compartment_ids("Observation", "o1", rows) == []
    assert patient_compartment_ids("Observation", "o1", rows, base_url="https://hub.example/fhir/") == ["p3"]
    assert patient_compartment_ids("Observation", "o1", rows, base_url="https://hub.example/fhir") == ["p3"]


def test_patient_is_in_its_own_compartment_and_linked_ones() -> None:
    assert patient_compartment_ids("Patient", "p1", []) == ["p1"]
    assert patient_compartment_ids("Patient", "p1", [_ref("link", "Patient", "p0")]) == ["p1", "p0"]
    assert patient_compartment_ids("Organization", "o", [_ref("partof", "Patient", "p1")]) == []

"""A write and ``$validate`` agree: core required bindings hold for every type (not only profiled
ones), a Patient's BSN must pass the elfproef, and a claimed profile the hub does not know is a
warning (the resource is held to its base type), never a refusal by itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
LOINC = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
UNKNOWN_PROFILE = "http://example.org/fhir/StructureDefinition/not-known-here"


async def _validate(client: httpx.AsyncClient, resource: dict[str, Any]) -> list[dict[str, Any]]:
    r = await client.post(f"/fhir/{resource['resourceType']}/$validate", json=resource)
    assert r.status_code == 200, r.text
    issues: list[dict[str, Any]] = r.json()["issue"]
    return issues


def _errors(issues: list[dict[str, Any]]) -> list[str]:
    return [i["expression"][0] for i in issues if i["severity"] in ("error", "fatal")]


BAD_CODES = [
    # (resource, the element whose required binding it breaks)
    ({"resourceType": "Observation", "status": "done", "code": LOINC}, "Observation.status"),
    ({"resourceType": "Patient", "gender": "vrouw"}, "Patient.gender"),
    (
        {
            "resourceType": "Encounter",
            "status": "busy",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"},
        },
        "Encounter.status",
    ),
    (
        {
            "resourceType": "Observation",
            "status": "final",
            "code": LOINC,
            "dataAbsentReason": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "nope"}]
            },
        },
        None,
    ),
]


@pytest.mark.parametrize(("resource", "element"), BAD_CODES, ids=[str(b[1]) for b in BAD_CODES])
async def test_required_bindings_on_write_as_in_validate(
    client: httpx.AsyncClient, resource: dict[str, Any], element: str | None
) -> None:
    issues = await _validate(client, resource)
    r = await client.post(f"/fhir/{resource['resourceType']}", json=resource)
    if element is None:  # an extensible binding: a warning at most, so the write goes through
        assert _errors(issues) == [] and r.status_code == 201, r.text
        return
    assert element in _errors(issues)
    assert r.status_code == 422, r.text
    assert element in r.json()["issue"][0]["expression"][0]
    # and fixed, both accept it
    fixed = dict(resource)
    fixed.update({"status": "final"} if "status" in resource and resource["status"] in ("done",) else {})
    if element == "Patient.gender":
        fixed["gender"] = "female"
    if element == "Encounter.status":
        fixed["status"] = "in-progress"
    assert _errors(await _validate(client, fixed)) == []
    assert (await client.post(f"/fhir/{resource['resourceType']}", json=fixed)).status_code == 201


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("999993653", True),
        ("111222333", True),
        ("123456789", False),
        ("999993654", False),
        ("12345678", False),
        ("99999365a", False),
        ("000000000", False),
    ],
)
async def test_bsn_elfproef(client: httpx.AsyncClient, value: str, valid: bool) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": BSN, "value": value}], "name": [{"family": "Smit"}]}
    issues = await _validate(client, patient)
    r = await client.post("/fhir/Patient", json=patient)
    if valid:
        assert _errors(issues) == [] and r.status_code == 201, r.text
    else:
        assert set(_errors(issues)) == {"Patient.identifier[0].value"}
        # a BSN of digits fails the elfproef; one with another character is refused before it
        reason = "elfproef" if value.isdigit() else "digits 0-9"
        assert r.status_code == 422 and reason in r.text, r.text
    # the elfproef is for BSNs only: the same number under another system is not checked
    other = {"resourceType": "Patient", "identifier": [{"system": "urn:oid:2.16.528.1.1007.3.3", "value": value}]}
    assert (await client.post("/fhir/Patient", json=other)).status_code == 201


async def test_unknown_profile_is_a_warning_and_the_base_type_still_holds(client: httpx.AsyncClient) -> None:
    patient = {"resourceType": "Patient", "meta": {"profile": [UNKNOWN_PROFILE]}, "name": [{"family": "Smit"}]}
    issues = await _validate(client, patient)
    assert _errors(issues) == []
    warnings = [i for i in issues if i["severity"] == "warning"]
    assert any(UNKNOWN_PROFILE in w["diagnostics"] and w["expression"] == ["Patient.meta.profile"] for w in warnings)
    r = await client.post("/fhir/Patient", json=patient)
    assert r.status_code == 201, r.text
    # held to the base type: a broken required binding is still an error, in both
    broken = patient | {"gender": "vrouw"}
    assert "Patient.gender" in _errors(await _validate(client, broken))
    assert (await client.post("/fhir/Patient", json=broken)).status_code == 422

"""PATCH over HTTP: JSON Patch and FHIRPath Patch, with If-Match and errors."""

from __future__ import annotations

import httpx


async def _patient(client: httpx.AsyncClient) -> str:
    r = await client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "birthDate": "1920-01-01", "name": [{"family": "Smit"}]}
    )
    return str(r.json()["id"])


async def test_json_patch(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    ops = [
        {"op": "replace", "path": "/birthDate", "value": "1930-01-01"},
        {"op": "add", "path": "/name/0/given", "value": ["Johanna"]},
    ]
    r = await client.patch(f"/fhir/Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["birthDate"] == "1930-01-01" and r.json()["meta"]["versionId"] == "2"
    bad = [{"op": "test", "path": "/birthDate", "value": "2000-01-01"}]
    r = await client.patch(f"/fhir/Patient/{pid}", json=bad, headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 422
    invalid = [{"op": "replace", "path": "/birthDate", "value": 12}]
    r = await client.patch(
        f"/fhir/Patient/{pid}", json=invalid, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code in (400, 422)
    assert (await client.get(f"/fhir/Patient/{pid}")).json()["meta"]["versionId"] == "2"


async def test_fhirpath_patch(client: httpx.AsyncClient) -> None:
    pid = await _patient(client)
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.birthDate"},
                    {"name": "value", "valueDate": "1940-02-03"},
                ],
            }
        ],
    }
    r = await client.patch(f"/fhir/Patient/{pid}", json=params, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200, r.text
    assert r.json()["birthDate"] == "1940-02-03"
    r = await client.patch(
        f"/fhir/Patient/{pid}", json=params, headers={"Content-Type": "application/fhir+json", "If-Match": 'W/"1"'}
    )
    assert r.status_code == 412


async def test_patch_missing_resource(client: httpx.AsyncClient) -> None:
    r = await client.patch("/fhir/Patient/nope", json=[], headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 404

"""JSON and XML in and out, _format, Accept, _pretty."""

from __future__ import annotations

import httpx

XML_PATIENT = b"""<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <identifier><system value="http://fhir.nl/fhir/NamingSystem/bsn"/><value value="999993653"/></identifier>
  <name><family value="Smit"/><given value="Johanna"/></name>
  <birthDate value="1938-04-12"/>
</Patient>"""


async def test_xml_in_json_out_and_back(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", content=XML_PATIENT, headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    pid = r.json()["id"]
    assert r.json()["name"][0]["given"] == ["Johanna"]
    r = await client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/fhir+xml"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+xml")
    assert b'<family value="Smit"/>' in r.content and b'<Patient xmlns="http://hl7.org/fhir">' in r.content
    r = await client.get(f"/fhir/Patient/{pid}?_format=xml")
    assert r.headers["content-type"].startswith("application/fhir+xml")
    r = await client.get(f"/fhir/Patient/{pid}?_format=json", headers={"Accept": "application/fhir+xml"})
    assert r.headers["content-type"].startswith("application/fhir+json")


async def test_xml_search_bundle_and_errors(client: httpx.AsyncClient) -> None:
    await client.post("/fhir/Patient", content=XML_PATIENT, headers={"Content-Type": "application/fhir+xml"})
    r = await client.get("/fhir/Patient?_format=xml")
    assert r.status_code == 200 and b"<Bundle" in r.content and b"<Patient" in r.content
    r = await client.get("/fhir/Patient/nope?_format=xml")
    assert r.status_code == 404 and b"<OperationOutcome" in r.content


async def test_pretty_and_bad_format(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True})
    pid = r.json()["id"]
    r = await client.get(f"/fhir/Patient/{pid}?_pretty=true")
    assert b'\n  "resourceType"' in r.content
    r = await client.get(f"/fhir/Patient/{pid}?_format=csv")
    assert r.status_code == 400


async def test_decimal_precision_is_kept(client: httpx.AsyncClient) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "gewicht"},
        "valueQuantity": {"value": 70.50, "unit": "kg"},
    }
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"g"},'
        b'"valueQuantity":{"value":70.50,"unit":"kg"}}'
    )
    r = await client.post("/fhir/Observation", content=raw, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 201, r.text
    assert b'"value":70.50' in r.content.replace(b" ", b"")
    r = await client.get(f"/fhir/Observation/{r.json()['id']}")
    assert b'"value":70.50' in r.content.replace(b" ", b"")
    assert obs["status"] == "final"


async def test_capability_statement(client: httpx.AsyncClient) -> None:
    r = await client.get("/fhir/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    assert "application/fhir+xml" in cs["format"]
    resources = {res["type"]: res for res in cs["rest"][0]["resource"]}
    assert len(resources) == 146
    patient = resources["Patient"]
    assert {i["code"] for i in patient["interaction"]} >= {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "create",
        "search-type",
        "history-instance",
        "history-type",
    }
    params = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert params["identifier"] == "token" and params["birthdate"] == "date" and params["name"] == "string"
    assert {i["code"] for i in cs["rest"][0]["interaction"]} >= {"transaction", "batch", "history-system"}


async def test_capability_statement_says_audit_events_are_read_only(client: httpx.AsyncClient) -> None:
    cs = (await client.get("/fhir/metadata")).json()
    audit = next(r for r in cs["rest"][0]["resource"] if r["type"] == "AuditEvent")
    assert {i["code"] for i in audit["interaction"]} == {"read", "search-type"}

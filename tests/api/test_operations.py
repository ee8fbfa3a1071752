"""$validate, Patient/$access and the delegation operations, on the demo network."""

from __future__ import annotations

from typing import Any

import httpx
import pytest_asyncio

from hub.demo import demo_bundle
from tests.conftest import clean

C1 = "999993653"  # Johanna Smit: huisarts, wijkverpleging, thuiszorg and gemeente in her team
HUISARTS = "org:00012345:practitioner:900001111"
STRANGER = "org:00077777"


@pytest_asyncio.fixture(loop_scope="session")
async def demo(hub_app: Any) -> dict[str, str]:
    """The demo network, loaded through the internal (unrestricted) path; returns Patient ids by BSN."""
    from hub.access.decision import SYSTEM
    from hub.api.context import Call
    from hub.api.handlers import handle
    from hub.api.interaction import FhirRequest

    await clean(hub_app)
    services = hub_app.state.services
    result = await handle(
        Call(services, "http://hub.test/fhir", policy=SYSTEM), FhirRequest("POST", "", body=demo_bundle())
    )
    assert result.status == 200
    from hub.access.facts import patient_ids_for_bsn

    async with services.repo.db.read() as conn:
        ids = await patient_ids_for_bsn(conn, [C1, "999990019", "999991772"])
    return {bsn: found[0] for bsn, found in ids.items()}


async def _count(c: httpx.AsyncClient, query: str) -> int:
    r = await c.get(f"/fhir/{query}{'&' if '?' in query else '?'}_summary=count")
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


async def test_validate_type_and_instance(client: httpx.AsyncClient) -> None:
    # The organisation registers the client first: a CarePlan about a client it has no care relation
    # with is refused with 403 before validation, as its real write would be.
    bad_plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/x"}}
    r = await client.post("/fhir/CarePlan/$validate", json=bad_plan)
    assert r.status_code == 403
    assert (await client.put("/fhir/Patient/x", json={"resourceType": "Patient", "id": "x"})).status_code == 201
    r = await client.post("/fhir/CarePlan/$validate", json=bad_plan)
    assert r.status_code == 200
    issues = r.json()["issue"]
    assert any(i["severity"] == "error" and "CarePlan.category" in i.get("expression", [""])[0] for i in issues)
    ok = {"resourceType": "Patient", "name": [{"family": "Smit"}]}
    r = await client.post("/fhir/Patient/$validate", json=ok)
    assert {i["severity"] for i in r.json()["issue"]} == {"information"}
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient", "gender": "unknown-gender"}},
            {"name": "mode", "valueCode": "create"},
        ],
    }
    r = await client.post("/fhir/Patient/$validate", json=params)
    assert r.status_code == 200
    assert any(i["severity"] == "error" and i["expression"] == ["Patient.gender"] for i in r.json()["issue"])
    pid = (await client.post("/fhir/Patient", json=ok)).json()["id"]
    r = await client.get(f"/fhir/Patient/{pid}/$validate")
    assert r.status_code == 200 and {i["severity"] for i in r.json()["issue"]} == {"information"}
    r = await client.post("/fhir/Patient/$validate?profile=http://example.org/nope", json=ok)
    assert r.status_code == 400


async def test_invalid_profiled_write_is_422(client: httpx.AsyncClient) -> None:
    pid = (await client.post("/fhir/Patient", json={"resourceType": "Patient"})).json()["id"]
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{pid}"},
    }
    r = await client.post("/fhir/CarePlan", json=plan)
    assert r.status_code == 422
    assert "CarePlan.category" in r.json()["issue"][0]["expression"][0]


async def test_access_explains_who_sees_what(demo: dict[str, str], client_as: Any) -> None:
    c1 = demo[C1]
    r = await client_as(f"client:{C1}").get(f"/fhir/Patient/{c1}/$access")
    assert r.status_code == 200, r.text
    orgs = {p["part"][0]["valueString"]: p for p in r.json()["parameter"] if p["name"] == "organisation"}
    assert set(orgs) == {"00012345", "00023456", "00034567", "00045678"}
    cats = {
        c["part"][0]["valueCode"]: c["part"][1]["valueBoolean"]
        for c in orgs["00012345"]["part"]
        if c["name"] == "category"
    }
    assert cats["zorgplan"] is True and cats["medisch"] is False  # medisch needs an opt-in
    assert (await client_as(HUISARTS).get(f"/fhir/Patient/{c1}/$access")).status_code == 403
    assert (await client_as(STRANGER).get(f"/fhir/Patient/{c1}/$access")).status_code == 404


async def test_delegation_grant_and_withdraw_take_effect_at_once(demo: dict[str, str], client_as: Any) -> None:
    c1 = demo[C1]
    me = client_as(f"client:{C1}")
    daughter = client_as(f"person:marieke:for:{C1}")
    assert await _count(daughter, "CarePlan") == 0
    grant = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "person", "valueString": "marieke"},
            {"name": "category", "valueCode": "zorgplan"},
            {"name": "category", "valueCode": "netwerk"},
        ],
    }
    r = await me.post(f"/fhir/Patient/{c1}/$grant-delegation", json=grant)
    assert r.status_code == 201, r.text
    assert await _count(daughter, "CarePlan") == 1
    assert await _count(daughter, "Patient") == 1
    assert await _count(daughter, "Consent") == 0  # acp and toestemming were not delegated
    # a mantelzorger may not grant delegations herself
    r = await daughter.post(f"/fhir/Patient/{c1}/$grant-delegation", json=grant)
    assert r.status_code == 403
    r = await me.post(
        f"/fhir/Patient/{c1}/$withdraw-delegation",
        json={"resourceType": "Parameters", "parameter": [{"name": "person", "valueString": "marieke"}]},
    )
    assert r.status_code == 200, r.text
    assert await _count(daughter, "CarePlan") == 0
    assert (await daughter.get(f"/fhir/Patient/{c1}")).status_code == 404

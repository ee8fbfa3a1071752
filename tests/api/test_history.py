"""_history at instance, type and system level: _since, _at, _count and cursor paging."""

from __future__ import annotations

import asyncio

import httpx


async def test_history_levels_and_paging(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": f"P{i}"}]})
        ids.append(r.json()["id"])
    for i in range(3):
        body = {"resourceType": "Patient", "id": ids[0], "active": i % 2 == 0}
        await client.put(f"/fhir/Patient/{ids[0]}", json=body)
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    await client.post("/fhir/Observation", json=observation)

    inst = (await client.get(f"/fhir/Patient/{ids[0]}/_history")).json()
    assert [e["resource"]["meta"]["versionId"] for e in inst["entry"]] == ["4", "3", "2", "1"]
    typ = (await client.get("/fhir/Patient/_history")).json()
    assert len(typ["entry"]) == 8
    system = (await client.get("/fhir/_history")).json()
    assert len(system["entry"]) == 9 and system["entry"][0]["resource"]["resourceType"] == "Observation"

    seen = []
    url = "/fhir/_history?_count=4"
    while url:
        page = (await client.get(url)).json()
        seen += [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        # a write while paging does not shift or repeat what the client sees
        await client.post("/fhir/Patient", json={"resourceType": "Patient"})
        url = nxt[0].replace("http://hub.test", "") if nxt else ""
    assert len(seen) == 9 and len(set(seen)) == 9


async def test_since_and_at(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True})
    pid = r.json()["id"]
    first = r.json()["meta"]["lastUpdated"]
    await asyncio.sleep(0.01)
    r = await client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid, "active": False})
    second = r.json()["meta"]["lastUpdated"]
    since = (await client.get(f"/fhir/Patient/{pid}/_history", params={"_since": second})).json()
    assert [e["resource"]["meta"]["versionId"] for e in since["entry"]] == ["2"]
    at = (await client.get(f"/fhir/Patient/{pid}/_history", params={"_at": first})).json()
    assert [e["resource"]["meta"]["versionId"] for e in at["entry"]] == ["1"]
    assert (await client.get("/fhir/_history?_since=yesterday")).status_code == 400
    assert (await client.get("/fhir/Patient/nope/_history")).status_code == 404

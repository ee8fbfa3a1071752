"""Concurrent writers: If-Match gives exactly one winner per version; no update is ever lost."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def test_parallel_if_match_updates_have_one_winner(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True})
    pid = r.json()["id"]

    async def update(i: int, version: int) -> int:
        body = {"resourceType": "Patient", "id": pid, "name": [{"family": f"writer-{i}"}]}
        resp = await client.put(f"/fhir/Patient/{pid}", json=body, headers={"If-Match": f'W/"{version}"'})
        return resp.status_code

    for version in (1, 2, 3):
        statuses = await asyncio.gather(*(update(i, version) for i in range(20)))
        assert sorted(statuses) == [200] + [412] * 19, statuses
    history = (await client.get(f"/fhir/Patient/{pid}/_history")).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["4", "3", "2", "1"]


async def test_parallel_patches_lose_nothing(client: httpx.AsyncClient) -> None:
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "identifier": []} | {"active": True})
    pid = r.json()["id"]

    async def add(i: int) -> int:
        ops = [{"op": "add", "path": "/identifier/-", "value": {"system": "urn:test", "value": str(i)}}]
        resp = await client.patch(
            f"/fhir/Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"}
        )
        return resp.status_code

    r = await client.patch(
        f"/fhir/Patient/{pid}",
        json=[{"op": "add", "path": "/identifier", "value": []}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    statuses = await asyncio.gather(*(add(i) for i in range(20)))
    assert statuses == [200] * 20
    final = (await client.get(f"/fhir/Patient/{pid}")).json()
    assert sorted(int(i["value"]) for i in final["identifier"]) == list(range(20))
    assert final["meta"]["versionId"] == "22"


async def test_parallel_update_as_create_same_id(client: httpx.AsyncClient) -> None:
    async def put(i: int) -> int:
        body = {"resourceType": "Patient", "id": "same", "name": [{"family": f"w{i}"}]}
        return (await client.put("/fhir/Patient/same", json=body)).status_code

    statuses = await asyncio.gather(*(put(i) for i in range(10)))
    assert sorted(statuses) == [200] * 9 + [201]
    final = (await client.get("/fhir/Patient/same")).json()
    assert final["meta"]["versionId"] == "10"


async def test_parallel_single_writes_keep_one_verifiable_audit_chain(
    client: httpx.AsyncClient, client_as: Any
) -> None:
    """Creates, updates and deletes at once, each its own transaction appending its audit record
    (chained by the database under the head's lock): the chain verifies, one record per write."""
    admin = client_as("admin")
    before = (await admin.get("/admin/audit/verify")).json()
    assert before["ok"] is True, before

    async def chain(i: int) -> list[int]:
        body = {"resourceType": "Organization", "name": f"Parallel {i}"}
        created = await client.post("/fhir/Organization", json=body)
        oid = created.json()["id"]
        updated = await client.put(f"/fhir/Organization/{oid}", json={**body, "id": oid, "active": True})
        deleted = await client.delete(f"/fhir/Organization/{oid}")
        return [created.status_code, updated.status_code, deleted.status_code]

    statuses = await asyncio.gather(*(chain(i) for i in range(16)))
    assert statuses == [[201, 200, 200]] * 16
    after = (await admin.get("/admin/audit/verify")).json()
    assert after["ok"] is True, after["summary"]
    assert after["records"] >= before["records"] + 48

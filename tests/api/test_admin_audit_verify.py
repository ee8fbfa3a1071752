"""``GET /admin/audit/verify``: the chain status for the admin console, for administrators only."""

from __future__ import annotations

from typing import Any

from tests.api.test_audit_log import tamper


async def test_admin_sees_an_intact_chain(client: Any, client_as: Any) -> None:
    created = await client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "A"})
    assert created.status_code == 201
    await client.get(f"/fhir/Organization/{created.json()['id']}")
    answer = await client_as("admin").get("/admin/audit/verify")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True and body["problems"] == []
    assert body["records"] >= 2 and body["summary"].startswith("OK")
    assert answer.headers["cache-control"] == "no-store"


async def test_tampering_is_reported(client: Any, client_as: Any, hub_app: Any) -> None:
    await client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "B"})
    admin = client_as("admin")
    before = (await admin.get("/admin/audit/verify")).json()
    assert before["ok"] is True
    db = hub_app.state.services.repo.db
    last = before["last_seq"]
    await tamper(
        db,
        ("UPDATE audit_log SET event = REPLACE(event, '\"outcome\"', '\"outcomx\"') WHERE seq = :seq", {"seq": last}),
    )
    try:
        after = (await admin.get("/admin/audit/verify")).json()
        assert after["ok"] is False
        assert after["problems"] and after["problems"][0]["seq"] <= last
        assert after["summary"].startswith("FAILED")
    finally:
        await tamper(
            db,
            (
                "UPDATE audit_log SET event = REPLACE(event, '\"outcomx\"', '\"outcome\"') WHERE seq = :seq",
                {"seq": last},
            ),
        )


async def test_only_administrators(client_as: Any) -> None:
    assert (await client_as(None).get("/admin/audit/verify")).status_code == 401
    refused = await client_as("client:999993653").get("/admin/audit/verify")
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert (await client_as("org:00012345").get("/admin/audit/verify")).status_code == 403

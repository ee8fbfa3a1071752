"""The access log: one JSON line per request, with a request id that also lands in the AuditEvent."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.api.accesslog import ACCESS_LOGGER
from hub.audit.tables import audit_log


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]


async def test_one_json_line_per_request(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    r = await client.post("/fhir/Patient?_pretty=false", json={"resourceType": "Patient", "active": True})
    assert r.status_code == 201
    await client.get("/fhir/Patient", params={"identifier": "http://fhir.nl/fhir/NamingSystem/bsn|999993653"})
    lines = access_lines(caplog)
    assert len(lines) == 2
    first, second = lines
    assert first["method"] == "POST" and first["path"] == "/fhir/Patient" and first["status"] == 201
    assert first["interaction"] == "create" and first["duration_ms"] > 0 and first["bytes"] > 0
    assert first["request_id"] == r.headers["x-request-id"]
    assert first["client_id"]
    assert second["interaction"] == "search-type"
    assert "999993653" not in json.dumps(second)  # never the query string: it can hold a BSN
    assert first["request_id"] != second["request_id"]


async def test_request_id_in_and_out_and_in_the_audit_event(
    hub_app: Any, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    r = await client.get("/fhir/Patient", headers={"X-Request-ID": "proxy-7f3a.42"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "proxy-7f3a.42"
    assert access_lines(caplog)[-1]["request_id"] == "proxy-7f3a.42"
    async with hub_app.state.db.read() as conn:
        events = (await conn.execute(select(audit_log.c.event).order_by(audit_log.c.seq.desc()).limit(5))).scalars()
        found = [json.loads(e) for e in events if "proxy-7f3a.42" in e]
    assert len(found) == 1
    query = [e for e in found[0]["entity"] if e["role"]["code"] == "24"][0]
    assert query["detail"] == [{"type": "request-id", "valueString": "proxy-7f3a.42"}]


async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces<script>"})
    assert r.headers["x-request-id"] != "bad id with spaces<script>"
    assert len(r.headers["x-request-id"]) == 32

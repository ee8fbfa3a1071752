"""``hub serve --workers N``: several processes starting together on an empty database, metrics summed
over them, JSON access lines, and a graceful stop on SIGTERM (the request in flight is answered, its audit
record committed)."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from hub.audit.cli import run_verify
from hub.audit.tables import audit_log
from hub.store.db import Database
from tests.ops.conftest import hub_env, serve

#: Entries of the Bundle in flight at shutdown: enough to take well over the 0.6 s before SIGTERM.
ENTRIES = 2000


def _bundle(n: int) -> dict[str, Any]:
    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": f"gewicht {i}"},
                "valueQuantity": {"value": 70 + i / 100, "unit": "kg"},
            },
            "request": {"method": "POST", "url": "Observation"},
        }
        for i in range(n)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def _count(database_url: str, interaction: str) -> int:
    db = Database(database_url, pool_size=1)
    try:
        async with db.read() as conn:
            stmt = select(func.count()).select_from(audit_log).where(audit_log.c.interaction == interaction)
            return int((await conn.execute(stmt)).scalar_one())
    finally:
        await db.dispose()


async def test_workers_serve_and_stop_gracefully(fresh_database_url: str, tmp_path: Path) -> None:
    env = hub_env(fresh_database_url, tmp_path, HUB_LOG_FORMAT="json", HUB_GRACEFUL_TIMEOUT="60")
    # An empty database: both workers start at once, one migrates and loads the conformance package,
    # the other waits for it (advisory locks) instead of failing.
    with serve(env, "--workers", "2") as hub:
        headers = {"Authorization": f"Bearer {hub.token('org:00099999:practitioner:900009999')}"}
        async with httpx.AsyncClient(base_url=hub.base, headers=headers, timeout=120) as client:
            for _ in range(6):
                assert (await client.get("/fhir/Patient")).status_code == 200
            families = {f.name: f for f in text_string_to_metric_families((await client.get("/metrics")).text)}
        served = sum(
            s.value
            for s in families["hub_http_requests"].samples
            if s.name == "hub_http_requests_total" and s.labels["interaction"] == "search-type"
        )
        assert served == 6  # summed over both worker processes

        answer: dict[str, Any] = {}

        def post() -> None:
            with httpx.Client(base_url=hub.base, headers=headers, timeout=180) as c:
                answer["response"] = c.post("/fhir", json=_bundle(ENTRIES))

        sender = threading.Thread(target=post)
        sender.start()
        await asyncio.sleep(0.6)  # the Bundle is being handled now
        stopped_at = datetime.now(UTC)
        code = await asyncio.to_thread(hub.stop, 120)
        await asyncio.to_thread(sender.join, 180)
        assert code == 0
    response = answer["response"]
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["entry"]) == ENTRIES
    assert await _count(fresh_database_url, "transaction") == 1
    result = await run_verify(fresh_database_url, tmp_path / "audit-keys")
    assert result.ok, result.summary()
    lines = [json.loads(line) for line in hub.log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "hub.access"]
    kinds = [line["interaction"] for line in access]
    assert (kinds.count("search-type"), kinds.count("metrics"), kinds.count("transaction")) == (6, 1, 1)
    assert set(kinds) == {"health", "search-type", "metrics", "transaction"}
    bundle = next(line for line in access if line["interaction"] == "transaction")
    # It was in flight when SIGTERM came: begun before, answered after.
    ended = datetime.fromisoformat(bundle["ts"].replace("Z", "+00:00"))
    assert bundle["status"] == 200
    assert ended - timedelta(milliseconds=bundle["duration_ms"]) < stopped_at < ended, (bundle, stopped_at)
    assert all(line["level"] for line in lines)

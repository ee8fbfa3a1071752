"""Scale-out: two ``hub serve`` processes on one PostgreSQL under a mixed load for a bounded time.

Clients read-modify-write counters with If-Match through either process, post transaction Bundles that
update a counter (If-Match inside the Bundle) and create Observations with it, and search. Afterwards:

- no lost update: every counter equals the number of its successful increments, its history holds
  every version once, each version exactly one more than the last;
- every 412 was correct: the version it named had been replaced by a successful write of another client;
- a failed transaction left nothing behind (its Observations do not exist);
- both processes stop cleanly on SIGTERM, and ``hub audit verify`` passes: one chain, no gap, signed.

Marked ``scale`` (``pytest -m scale``); it runs in ``make test`` too. ``HUB_SCALE_SECONDS`` sets the
load time (default 12 s). Notifications are not part of it yet.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from hub.audit.cli import run_verify
from tests.conftest import _pg_create, _pg_drop
from tests.ops.conftest import HUB, hub_env, serve

pytestmark = pytest.mark.scale

COUNTERS = 6
CLIENTS = 8
AS = "org:00099999:practitioner:900009999"


@pytest_asyncio.fixture(loop_scope="session")
async def pg_url() -> AsyncIterator[str]:
    name = f"hub_scale_{uuid.uuid4().hex[:10]}"
    url = await _pg_create(name)
    try:
        yield url
    finally:
        await _pg_drop(name)


@dataclass
class Tally:
    """What the clients saw: successful writes by (counter, new version), refused ones by (counter, version)."""

    written: dict[tuple[str, int], int] = field(default_factory=dict)  # (id, version) -> value written
    refused: list[tuple[str, int]] = field(default_factory=list)
    tx_ok: list[list[str]] = field(default_factory=list)  # Observation ids created by committed Bundles
    tx_refused: list[str] = field(default_factory=list)  # marker codes of refused Bundles
    searches: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_server: Counter[str] = field(default_factory=Counter)


def _patient(pid: str, value: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "active": True, "multipleBirthInteger": value}


async def _increment(c: httpx.AsyncClient, pid: str, tally: Tally) -> None:
    r = await c.get(f"/fhir/Patient/{pid}")
    tally.statuses[r.status_code] += 1
    assert r.status_code == 200, r.text
    version = int(r.json()["meta"]["versionId"])
    value = int(r.json()["multipleBirthInteger"])
    w = await c.put(f"/fhir/Patient/{pid}", json=_patient(pid, value + 1), headers={"If-Match": f'W/"{version}"'})
    tally.statuses[w.status_code] += 1
    if w.status_code == 200:
        new = int(w.json()["meta"]["versionId"])
        assert new == version + 1
        tally.written[(pid, new)] = value + 1
    else:
        assert w.status_code == 412, w.text
        assert w.json()["resourceType"] == "OperationOutcome"
        tally.refused.append((pid, version))


async def _transaction(c: httpx.AsyncClient, pid: str, tally: Tally) -> None:
    r = await c.get(f"/fhir/Patient/{pid}")
    version, value = int(r.json()["meta"]["versionId"]), int(r.json()["multipleBirthInteger"])
    marker = uuid.uuid4().hex
    entries: list[dict[str, Any]] = [{
        "resource": _patient(pid, value + 1),
        "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": f'W/"{version}"'},
    }]
    for i in range(2):
        entries.append({
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{pid}"},
                         "code": {"coding": [{"system": "urn:scale", "code": marker}]}, "valueInteger": i},
            "request": {"method": "POST", "url": "Observation"},
        })
    w = await c.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    tally.statuses[w.status_code] += 1
    if w.status_code == 200:
        results = w.json()["entry"]
        new = int(results[0]["response"]["etag"].split('"')[1])
        assert new == version + 1
        tally.written[(pid, new)] = value + 1
        tally.tx_ok.append([e["response"]["location"].split("/")[1] for e in results[1:]])
    else:
        assert w.status_code in (409, 412), w.text
        tally.refused.append((pid, version))
        tally.tx_refused.append(marker)


async def _search(c: httpx.AsyncClient, pid: str, tally: Tally) -> None:
    r = await c.get("/fhir/Observation", params={"subject": f"Patient/{pid}", "_count": "5", "_total": "accurate"})
    tally.statuses[r.status_code] += 1
    assert r.status_code == 200, r.text
    assert r.json()["total"] >= 0
    tally.searches += 1


async def _client(bases: list[str], token: str, ids: list[str], until: float, seed: int, tally: Tally) -> None:
    rnd = random.Random(seed)  # noqa: S311 - load mix, not security
    clients = [httpx.AsyncClient(base_url=b, headers={"Authorization": f"Bearer {token}"}, timeout=60) for b in bases]
    try:
        while time.monotonic() < until:
            i = rnd.randrange(len(clients))
            pid = rnd.choice(ids)
            op = rnd.random()
            tally.by_server[bases[i]] += 1
            if op < 0.55:
                await _increment(clients[i], pid, tally)
            elif op < 0.75:
                await _transaction(clients[i], pid, tally)
            else:
                await _search(clients[i], pid, tally)
    finally:
        for c in clients:
            await c.aclose()


async def test_two_hubs_one_database(pg_url: str, tmp_path: Path) -> None:
    seconds = float(os.environ.get("HUB_SCALE_SECONDS", "12"))
    # One public URL for both, as behind a load balancer: the token issuer and audience are the same.
    env = hub_env(pg_url, tmp_path / "var", HUB_DB_POOL_SIZE="8", HUB_BASE_URL="http://hub.scale.test")
    subprocess.run([HUB, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=180)  # noqa: S603
    with ExitStack() as stack:
        hubs = [stack.enter_context(serve(env)) for _ in range(2)]
        token = hubs[0].token(AS)
        bases = [h.base for h in hubs]
        ids = [f"counter-{i}" for i in range(COUNTERS)]
        async with httpx.AsyncClient(base_url=bases[0], headers={"Authorization": f"Bearer {token}"}) as c:
            for pid in ids:
                assert (await c.put(f"/fhir/Patient/{pid}", json=_patient(pid, 0))).status_code == 201
        tally = Tally()
        started = time.monotonic()
        await asyncio.gather(*(
            _client(bases, token, ids, started + seconds, seed, tally) for seed in range(CLIENTS)))
        elapsed = time.monotonic() - started

        async with httpx.AsyncClient(base_url=bases[1], headers={"Authorization": f"Bearer {token}"},
                                     timeout=60) as c:
            finals: dict[str, dict[str, Any]] = {}
            for pid in ids:
                finals[pid] = (await c.get(f"/fhir/Patient/{pid}")).json()
                history = (await c.get(f"/fhir/Patient/{pid}/_history", params={"_count": "1000"})).json()
                versions = sorted(int(e["resource"]["meta"]["versionId"]) for e in history["entry"])
                values = {int(e["resource"]["meta"]["versionId"]): int(e["resource"]["multipleBirthInteger"])
                          for e in history["entry"]}
                final_version = int(finals[pid]["meta"]["versionId"])
                # every version once, 1..n; each one exactly one more than the one before it
                assert versions == list(range(1, final_version + 1))
                assert all(values[v] == v - 1 for v in versions)
                # no lost update: every success the clients saw is in the history, and nothing else is
                successes = {v: val for (p, v), val in tally.written.items() if p == pid}
                assert successes == {v: values[v] for v in versions if v > 1}
                assert finals[pid]["multipleBirthInteger"] == len(successes)
            # every 412 was right: the version it named had been replaced by another client's write
            for pid, version in tally.refused:
                assert (pid, version + 1) in tally.written, (pid, version)
            # committed Bundles left their Observations, refused ones none
            for created in tally.tx_ok:
                for oid in created:
                    assert (await c.get(f"/fhir/Observation/{oid}")).status_code == 200
            for marker in tally.tx_refused[:50]:
                found = (await c.get("/fhir/Observation", params={"code": f"urn:scale|{marker}"})).json()
                assert found.get("total", len(found.get("entry", []))) == 0 and not found.get("entry")
        codes = [h.stop(120) for h in hubs]
    # One uvicorn process re-raises SIGTERM after its graceful shutdown (exit -15); the log shows it finished.
    assert all(code in (0, -15) for code in codes), codes
    for h in hubs:
        assert "Application shutdown complete" in h.log.read_text()
    result = await run_verify(pg_url, tmp_path / "var" / "audit-keys")
    assert result.ok, result.summary()
    requests = sum(tally.statuses.values())
    assert result.records >= requests
    figures = {
        "seconds": round(elapsed, 1), "clients": CLIENTS, "requests": requests,
        "requests_per_s": round(requests / elapsed, 1), "by_server": list(tally.by_server.values()),
        "updates_ok": len(tally.written), "refused_412": len(tally.refused),
        "transactions_ok": len(tally.tx_ok), "transactions_refused": len(tally.tx_refused),
        "searches": tally.searches, "statuses": dict(sorted(tally.statuses.items())),
        "audit_records": result.records, "audit_checkpoints": result.checkpoints,
    }
    print("scale-out:", json.dumps(figures))
    assert len(tally.written) > 0 and len(tally.refused) > 0 and tally.searches > 0 and tally.tx_ok
    assert min(tally.by_server.values()) > 0

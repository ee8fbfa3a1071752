"""Scale-out: two ``hub serve`` processes and two ``hub worker`` processes on one PostgreSQL under a
mixed load for a bounded time.

Clients read-modify-write counters with If-Match through either process, create care plans, post
transaction Bundles that update a counter (If-Match inside the Bundle) and create Observations and a
care plan with it, and search. A care plan subscription (rest-hook) of the writing organisation
points at a healthy receiver in its own process (real HTTP on loopback). Halfway through, one
worker is stopped with SIGTERM and a new one started. Afterwards:

- no lost update: every counter equals the number of its successful increments, its history holds
  every version once, each version exactly one more than the last;
- every 412 was correct: the version it named had been replaced by a successful write of another client;
- a failed transaction left nothing behind (its Observations and CarePlan do not exist);
- every notification delivered once: the receiver acknowledged event numbers 1..N each exactly once,
  in order, and they name exactly the care plans of the committed transactions (none lost, none of a
  refused one); the hub's ``$status`` counts the same N;
- the workers stop cleanly on SIGTERM (exit 0, every lease given back, nothing lost), both hub
  processes too, and ``hub audit verify`` passes: one chain, no gap, signed.

Marked ``scale`` (``pytest -m scale``); it runs in ``make test`` too. ``HUB_SCALE_SECONDS`` sets the
load time (default 12 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
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
from tests.api.events_helpers import Receiver, receiver, subscription, wait_for
from tests.conftest import _pg_create, _pg_drop
from tests.ops.conftest import HUB, hub_env, serve

pytestmark = pytest.mark.scale

COUNTERS = 6
CLIENTS = 8
AS = "org:00099999:practitioner:900009999"
CAREPLAN_CATEGORY = "https://zorgnet-hub.nl/fhir/CodeSystem/careplan-category"


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
    plans: list[str] = field(default_factory=list)  # CarePlan ids created (alone or by committed Bundles)
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
    entries: list[dict[str, Any]] = [
        {
            "resource": _patient(pid, value + 1),
            "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": f'W/"{version}"'},
        }
    ]
    for i in range(2):
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": "urn:scale", "code": marker}]},
                    "valueInteger": i,
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    entries.append(
        {  # a care plan event for the subscription, only if the whole Bundle commits
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": _plan(pid, marker),
            "request": {"method": "POST", "url": "CarePlan"},
        }
    )
    w = await c.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    tally.statuses[w.status_code] += 1
    if w.status_code == 200:
        results = w.json()["entry"]
        new = int(results[0]["response"]["etag"].split('"')[1])
        assert new == version + 1
        tally.written[(pid, new)] = value + 1
        tally.tx_ok.append([_id_of(e, "Observation") for e in results[1:3]])
        tally.plans.append(_id_of(results[3], "CarePlan"))
    else:
        assert w.status_code in (409, 412), w.text
        tally.refused.append((pid, version))
        tally.tx_refused.append(marker)


def _plan(pid: str, marker: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "description": marker,
        "category": [{"coding": [{"system": CAREPLAN_CATEGORY, "code": "gedeeld-zorgplan"}]}],
        "subject": {"reference": f"Patient/{pid}"},
    }


async def _care_plan(c: httpx.AsyncClient, pid: str, tally: Tally) -> None:
    """A new care plan: one event for the subscription."""
    w = await c.post("/fhir/CarePlan", json=_plan(pid, uuid.uuid4().hex))
    tally.statuses[w.status_code] += 1
    assert w.status_code == 201, w.text
    tally.plans.append(str(w.json()["id"]))


def _id_of(entry: dict[str, Any], res_type: str) -> str:
    """The id in a transaction response's location (``[base/]Type/id/_history/n``)."""
    location = str(entry["response"]["location"]).split("/_history/")[0]
    kind, _, res_id = location.rpartition("/")
    assert kind.endswith(res_type) and res_id, location
    return res_id


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
            if op < 0.45:
                await _increment(clients[i], pid, tally)
            elif op < 0.6:
                await _care_plan(clients[i], pid, tally)
            elif op < 0.75:
                await _transaction(clients[i], pid, tally)
            else:
                await _search(clients[i], pid, tally)
    finally:
        for c in clients:
            await c.aclose()


class Workers:
    """``hub worker`` processes on the test's database, each logging to its own file."""

    def __init__(self, env: dict[str, str], var: Path) -> None:
        self.env = {**env, "HUB_EVENTS_POLL_SECONDS": "0.1", "HUB_LOG_LEVEL": "warning"}
        self.var = var
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.stopped: list[int] = []

    def start(self, n: int) -> None:
        for _ in range(n):
            log = self.var / f"worker-{len(self.procs)}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("wb") as fh:
                self.procs.append(
                    subprocess.Popen(
                        [HUB, "worker"],
                        env=self.env,
                        stdout=fh,  # noqa: S603
                        stderr=subprocess.STDOUT,
                    )
                )
            self.logs.append(log)

    def running(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p.poll() is None]

    def terminate(self, i: int) -> int:
        """SIGTERM, as Kubernetes sends it; the exit code (a worker that needs longer than 30 s fails)."""
        self.procs[i].send_signal(signal.SIGTERM)
        return self.procs[i].wait(timeout=30)

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def _arrived(rx: Receiver, kind: str) -> int:
    """Handshakes, or events in event notifications, the receiver acknowledged."""
    notes = rx.state()["accepted"]
    if kind == "handshake":
        return sum(1 for n in notes if n["type"] == "handshake")
    return sum(len(n["events"]) for n in notes if n["type"] == kind)


def _check_notifications(rx: Receiver, sub_id: str, tally: Tally) -> None:
    """Event numbers 1..N each acknowledged exactly once, in order, naming exactly the committed care plans."""
    notes = [n for n in rx.state()["accepted"] if n["subscription"] == sub_id and n["type"] == "event-notification"]
    events = [e for n in notes for e in n["events"]]
    numbers = [e["number"] for e in events]
    assert numbers == list(range(1, len(tally.plans) + 1)), (len(numbers), len(tally.plans))
    focus = [str(e["focus"]).rsplit("/", 2)[-2:] for e in events]
    assert all(f[0] == "CarePlan" for f in focus)
    assert sorted(f[1] for f in focus) == sorted(tally.plans)


async def _check_leases_given_back(pg_url: str, sub_id: str, total: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        row = await conn.fetchrow(
            "SELECT lease_owner, lease_until, delivered, events_total, failures "
            "FROM subscription_state WHERE sub_id = $1",
            sub_id,
        )
        left = await conn.fetchval("SELECT count(*) FROM outbox_event")
    finally:
        await conn.close()
    assert row is not None
    assert (row["lease_owner"], row["lease_until"]) == (None, 0)
    assert (row["delivered"], row["events_total"], row["failures"]) == (total, total, 0)
    assert left == 0


async def test_two_hubs_one_database(pg_url: str, tmp_path: Path) -> None:
    seconds = float(os.environ.get("HUB_SCALE_SECONDS", "12"))
    # One public URL for both, as behind a load balancer: the token issuer and audience are the same.
    env = hub_env(pg_url, tmp_path / "var", HUB_DB_POOL_SIZE="8", HUB_BASE_URL="http://hub.scale.test")
    subprocess.run([HUB, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=180)  # noqa: S603
    with ExitStack() as stack:
        rx = stack.enter_context(receiver())
        hubs = [stack.enter_context(serve(env)) for _ in range(2)]
        workers = Workers(env, tmp_path / "var")
        stack.callback(workers.kill)
        workers.start(2)
        token = hubs[0].token(AS)
        bases = [h.base for h in hubs]
        ids = [f"counter-{i}" for i in range(COUNTERS)]
        async with httpx.AsyncClient(base_url=bases[0], headers={"Authorization": f"Bearer {token}"}) as c:
            for pid in ids:
                assert (await c.put(f"/fhir/Patient/{pid}", json=_patient(pid, 0))).status_code == 201
            made = await c.post("/fhir/Subscription", json=subscription("careplan", f"{rx.url}/hook", max_count=50))
            assert made.status_code == 201, made.text
            sub_id = str(made.json()["id"])
        await wait_for(lambda: _arrived(rx, "handshake") == 1, timeout=60, step=0.1)
        tally = Tally()
        started = time.monotonic()

        async def relieve() -> None:
            """Halfway: SIGTERM one worker mid-stream (it finishes its notification, gives its leases
            back and exits 0), and start a new one, as a rolling update does."""
            await asyncio.sleep(seconds / 2)
            workers.stopped.append(await asyncio.to_thread(workers.terminate, 0))
            workers.start(1)

        await asyncio.gather(
            relieve(), *(_client(bases, token, ids, started + seconds, seed, tally) for seed in range(CLIENTS))
        )
        elapsed = time.monotonic() - started

        # Every committed care plan is delivered; then nothing more arrives (no duplicate in flight).
        await wait_for(lambda: _arrived(rx, "event-notification") >= len(tally.plans), timeout=90, step=0.25)
        delivery_lag = time.monotonic() - started - elapsed
        await asyncio.sleep(1.0)
        workers.stopped.extend([await asyncio.to_thread(workers.terminate, i) for i in workers.running()])
        _check_notifications(rx, sub_id, tally)
        async with httpx.AsyncClient(base_url=bases[1], headers={"Authorization": f"Bearer {token}"}) as c:
            status = (await c.get(f"/fhir/Subscription/{sub_id}/$status")).json()
        params = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
        assert params["events-since-subscription-start"]["valueString"] == str(len(tally.plans))
        assert params["status"]["valueCode"] == "active"
        await _check_leases_given_back(pg_url, sub_id, len(tally.plans))
        assert workers.stopped == [0] * 3, workers.stopped  # clean exits: the relieved one and the last two
        for log in workers.logs:
            text = log.read_text(errors="replace")
            assert "Traceback" not in text and " ERROR " not in text, text[-2000:]

        async with httpx.AsyncClient(base_url=bases[1], headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            finals: dict[str, dict[str, Any]] = {}
            for pid in ids:
                finals[pid] = (await c.get(f"/fhir/Patient/{pid}")).json()
                history = (await c.get(f"/fhir/Patient/{pid}/_history", params={"_count": "1000"})).json()
                versions = sorted(int(e["resource"]["meta"]["versionId"]) for e in history["entry"])
                values = {
                    int(e["resource"]["meta"]["versionId"]): int(e["resource"]["multipleBirthInteger"])
                    for e in history["entry"]
                }
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
        "seconds": round(elapsed, 1),
        "clients": CLIENTS,
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "by_server": list(tally.by_server.values()),
        "updates_ok": len(tally.written),
        "refused_412": len(tally.refused),
        "transactions_ok": len(tally.tx_ok),
        "transactions_refused": len(tally.tx_refused),
        "searches": tally.searches,
        "statuses": dict(sorted(tally.statuses.items())),
        "audit_records": result.records,
        "audit_checkpoints": result.checkpoints,
        "care_plan_events_delivered": len(tally.plans),
        "delivery_lag_after_load_s": round(delivery_lag, 2),
    }
    print("scale-out:", json.dumps(figures))
    assert len(tally.written) > 0 and len(tally.refused) > 0 and tally.searches > 0 and tally.tx_ok
    assert min(tally.by_server.values()) > 0

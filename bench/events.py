"""Notification delivery: events/s from commit to the receiver's 200, and the delay (p50/p95/p99),
with one and with two ``hub worker`` processes on a fresh PostgreSQL database (or SQLite).

    python -m bench events [--workers 1,2] [--events 10000] [--rate 1000] [--subscriptions 2] [--max-count 500]

Per worker count, two runs:

- ``steady``: events committed at ``--rate`` per second (transactions of ``rate/50`` every 20 ms)
  while the workers deliver; the delay is measured per event from its commit (the event's
  timestamp, which is the write's time) to its arrival at the receiver;
- ``burst``: ``--events`` committed at once, then drained; events/s is the drain rate.

Each event is an outbox row of a real stored CarePlan version (what a write leaves; the write
path's own cost is what the CRUD benchmarks measure). Every subscription (owner: the organisation
that wrote the care plans, payload id-only, up to ``--max-count`` events per notification) gets every event,
so deliveries = events x subscriptions. The receiver is ``bench/events_receiver.py`` in its own
process; everything runs on loopback and every loop is bounded by a count and a time limit.
Results: ``bench/results/events-<time>.json`` and ``bench/results/events_latest.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
RECEIVER = Path(__file__).resolve().parent / "events_receiver.py"
URA_A, URA_B = "00071001", "00071002"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _network(app: Any, plans: int) -> list[tuple[int, str, int]]:
    """Organisation A registers a client and writes ``plans`` care plans; returns (pid, id, version)."""
    from hub.access.policy import build_policy
    from hub.access.principal import Principal

    repo = app.state.services.repo
    a = Principal("professional", f"org:{URA_A}", frozenset({"system/*.cruds"}), organisation_ura=URA_A)
    as_a = repo.with_policy(await build_policy(None, a))
    internal = repo
    async with repo.db.write() as conn:
        for i, ura in enumerate((URA_A, URA_B)):
            await internal.update("Organization", f"org-{i}", {
                "resourceType": "Organization", "id": f"org-{i}", "name": f"Org {i}",
                "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": ura}]}, conn=conn)
        await as_a.update("Patient", "pat-0", {
            "resourceType": "Patient", "id": "pat-0", "name": [{"family": "Bench"}],
            "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999911120"}]}, conn=conn)
    out = []
    async with repo.db.write() as conn:
        for i in range(plans):
            done = await as_a.update("CarePlan", f"plan-{i}", {
                "resourceType": "CarePlan", "id": f"plan-{i}", "status": "active", "intent": "plan",
                "subject": {"reference": "Patient/pat-0"}, "description": f"plan {i}"}, conn=conn)
            out.append((done.stored.pid, done.stored.res_id, done.stored.version))
    return out


async def _append(app: Any, plans: list[tuple[int, str, int]], n: int, offset: int) -> None:
    """``n`` events in one transaction: outbox rows of the care plans' current versions."""
    from sqlalchemy import insert

    from hub.events.tables import outbox_event
    from hub.fhir.instants import now_us

    now = now_us()
    rows = []
    for i in range(n):
        pid, res_id, version = plans[(offset + i) % len(plans)]
        rows.append({"recorded": now, "pid": pid, "res_type": "CarePlan", "res_id": res_id, "version": version,
                     "change": "update", "category": "zorgplan", "patients": "pat-0", "orgs": "",
                     "old_status": None, "new_status": None})
    async with app.state.services.repo.db.write() as conn:
        await conn.execute(insert(outbox_event), rows)


def _start_workers(settings: Any, count: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "HUB_DATABASE_URL": settings.database_url, "HUB_VAR_DIR": str(settings.var_dir),
           "HUB_ENVIRONMENT": "test", "HUB_LOG_LEVEL": "warning", "HUB_EVENTS_POLL_SECONDS": "0.05"}
    hub = Path(sys.executable).parent / "hub"
    return [subprocess.Popen([str(hub), "worker"], env=env) for _ in range(count)]  # noqa: S603


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


async def _one_run(
    database_url: str, workers: int, mode: str, events: int, rate: int, subs: int, max_count: int
) -> dict[str, Any]:
    from hub.app import create_app
    from hub.settings import Settings

    var = Path(tempfile.mkdtemp(prefix="hub-bench-events-"))
    settings = Settings(database_url=database_url, environment="test", var_dir=var, events_in_process=False,
                        validate_on_write=False, db_pool_size=4)
    app = create_app(settings)
    receiver = subprocess.Popen([sys.executable, str(RECEIVER)], stdout=subprocess.PIPE)  # noqa: S603
    procs: list[subprocess.Popen[bytes]] = []
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline().decode().split()[1])
        rx = f"http://127.0.0.1:{port}"
        async with app.router.lifespan_context(app):
            from hub.access.authserver import token_for
            from hub.access.wiring import auth_config

            plans = await _network(app, 50)
            token = token_for(f"org:{URA_A}", auth_config(settings))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub",
                                         headers={"Authorization": f"Bearer {token}"}) as hub:
                for i in range(subs):
                    resp = await hub.post("/fhir/Subscription", json={
                        "resourceType": "Subscription", "status": "requested", "reason": "bench",
                        "criteria": "http://zorgnet.nl/fhir/SubscriptionTopic/careplan",
                        "channel": {"type": "rest-hook", "endpoint": f"{rx}/hook/{i}",
                                    "payload": "application/fhir+json",
                                    "extension": [{"url": BACKPORT + "backport-max-count",
                                                   "valuePositiveInt": max_count}],
                                    "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content",
                                                                "valueCode": "id-only"}]}},
                    })
                    assert resp.status_code == 201, resp.text
            procs = _start_workers(settings, workers)
            async with httpx.AsyncClient() as client:

                async def count() -> dict[str, Any]:
                    return dict((await client.get(f"{rx}/count", timeout=30)).json())

                deadline = time.monotonic() + 60
                while (await count())["handshakes"] < subs:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the workers did not handshake in 60 s")
                    await asyncio.sleep(0.1)
                t0 = time.time()
                if mode == "burst":
                    for start in range(0, events, 2000):
                        await _append(app, plans, min(2000, events - start), start)
                else:
                    per_tick = max(1, rate // 50)
                    sent = 0
                    while sent < events:
                        target = t0 + sent / rate
                        delay = target - time.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        k = min(per_tick, events - sent)
                        await _append(app, plans, k, sent)
                        sent += k
                committed = time.time()
                deadline = time.monotonic() + 120
                while (await count())["events"] < events * subs:
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                state = (await client.get(f"{rx}/state", timeout=60)).json()
        delays: list[float] = []
        first_stamp, last_arrival = float("inf"), 0.0
        seen: set[tuple[str, int]] = set()
        duplicates = 0
        for note in state["accepted"]:
            if note["type"] != "event-notification":
                continue
            last_arrival = max(last_arrival, note["received"])
            for e in note["events"]:
                key = (note["subscription"], e["number"])
                duplicates += key in seen
                seen.add(key)
                delays.append(note["received"] - e["timestamp"])
                first_stamp = min(first_stamp, e["timestamp"])
        delivered = len(seen)
        span = max(1e-9, last_arrival - first_stamp)
        return {
            "mode": mode, "workers": workers, "subscriptions": subs, "events": events, "max_count": max_count,
            "rate_asked": rate if mode == "steady" else None,
            "commit_seconds": round(committed - t0, 3),
            "deliveries_expected": events * subs, "deliveries": delivered, "duplicates": duplicates,
            "notifications": sum(1 for n in state["accepted"] if n["type"] == "event-notification"),
            "span_seconds": round(span, 3),
            "events_per_s": round(delivered / subs / span, 1),
            "deliveries_per_s": round(delivered / span, 1),
            "delay_p50_s": round(_percentile(delays, 0.50), 4),
            "delay_p95_s": round(_percentile(delays, 0.95), 4),
            "delay_p99_s": round(_percentile(delays, 0.99), 4),
            "delay_max_s": round(max(delays), 4) if delays else None,
            "delay_mean_s": round(statistics.fmean(delays), 4) if delays else None,
        }
    finally:
        _stop(procs)
        receiver.terminate()
        receiver.wait(timeout=10)
        if receiver.stdout is not None:
            receiver.stdout.close()


async def run(
    workers: list[int], events: int, rate: int, subs: int, backend: str, max_count: int
) -> dict[str, Any]:
    from bench import server
    from bench.runner import machine

    results = []
    for w in workers:
        for mode in ("steady", "burst"):
            if backend == "postgresql":
                db = await server.create_database()
                try:
                    results.append(await _one_run(db.hub_url, w, mode, events, rate, subs, max_count))
                finally:
                    await server.drop_database(db)
            else:
                path = Path(tempfile.mkdtemp(prefix="hub-bench-events-")) / "hub.db"
                results.append(await _one_run(f"sqlite+aiosqlite:///{path}", w, mode, events, rate, subs,
                                              max_count))
            print(json.dumps(results[-1]), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,  # noqa: S607
                            check=False).stdout.strip()
    out = {
        "benchmark": "events", "backend": backend, "commit": commit, "machine": machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": {"events_per_s": 1000, "delay_p95_s": 1.0}, "runs": results,
        "generator": "outbox rows appended in-process (transactions of rate/50 every 20 ms, or 2,000 at once); "
                     "receiver: bench/events_receiver.py (stdlib ThreadingHTTPServer) in its own process",
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"events-{backend}-{stamp}.json", f"events_latest_{backend}.json"):
        (RESULTS / name).write_text(json.dumps(out, indent=2) + "\n")
    return out


def main(workers: str = "1,2", events: int = 10_000, rate: int = 1000, subscriptions: int = 2,
         backend: str = "postgresql", max_count: int = 500) -> None:
    counts = [int(w) for w in workers.split(",") if w.strip()]
    asyncio.run(run(counts, events, rate, subscriptions, backend, max_count))

"""Notification delivery: events/s from commit to the receiver's 200, and the delay (p50/p95/p99),
with one and with two ``hub worker`` processes on a fresh PostgreSQL database (or SQLite).

    python -m bench events [--workers 1,2] [--events 10000] [--rate 1000] [--subscriptions 2] [--max-count 500]
                           [--modes steady,burst] [--raw/--no-raw]

Per worker count, two runs:

- ``steady``: events committed at ``--rate`` per second (every 20 ms one transaction with the events
  due by then, so a generator that gets less CPU commits more at once and the offered rate holds)
  while the workers deliver; the delay is measured per event from its commit (the event's
  timestamp, which is the write's time) to its arrival at the receiver. ``events_per_s`` cannot
  exceed the offered rate: it says whether delivery kept up; the p95 delay says how well;
- ``burst``: ``--events`` committed at once, then drained; events/s is the drain rate (the ceiling).

Each run records the load average before and after, and the CPU seconds per wall second of the
workers, PostgreSQL's backends of the run's database, the receiver and this process (the
generator), plus the machine's busy CPU (all processes, other users of the box included).

``--raw`` (default) first measures what the parts can do without the hub, on the same box and
receiver: a bare httpx client POSTing notification Bundles of 1 and of 100 events to the receiver
over one keep-alive connection, and raw asyncpg on the outbox table (inserts in transactions of 20,
as the generator commits, and a claim-and-fan-out pass: ``DELETE ... RETURNING`` 500 outbox rows
and insert them for two subscriptions, in one transaction).

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
from collections.abc import Iterator
from contextlib import contextmanager
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
            await internal.update(
                "Organization",
                f"org-{i}",
                {
                    "resourceType": "Organization",
                    "id": f"org-{i}",
                    "name": f"Org {i}",
                    "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": ura}],
                },
                conn=conn,
            )
        await as_a.update(
            "Patient",
            "pat-0",
            {
                "resourceType": "Patient",
                "id": "pat-0",
                "name": [{"family": "Bench"}],
                "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999911120"}],
            },
            conn=conn,
        )
    out = []
    async with repo.db.write() as conn:
        for i in range(plans):
            done = await as_a.update(
                "CarePlan",
                f"plan-{i}",
                {
                    "resourceType": "CarePlan",
                    "id": f"plan-{i}",
                    "status": "active",
                    "intent": "plan",
                    "subject": {"reference": "Patient/pat-0"},
                    "description": f"plan {i}",
                },
                conn=conn,
            )
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
        rows.append(
            {
                "recorded": now,
                "pid": pid,
                "res_type": "CarePlan",
                "res_id": res_id,
                "version": version,
                "change": "update",
                "category": "zorgplan",
                "patients": "pat-0",
                "orgs": "",
                "old_status": None,
                "new_status": None,
            }
        )
    async with app.state.services.repo.db.write() as conn:
        await conn.execute(insert(outbox_event), rows)


def _start_workers(settings: Any, count: int) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_VAR_DIR": str(settings.var_dir),
        "HUB_ENVIRONMENT": "test",
        "HUB_LOG_LEVEL": "warning",
        "HUB_EVENTS_POLL_SECONDS": "0.05",
    }
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


@contextmanager
def _receiver() -> Iterator[tuple[str, int]]:
    """The receiver process; yields its base URL and process id."""
    proc = subprocess.Popen([sys.executable, str(RECEIVER)], stdout=subprocess.PIPE)  # noqa: S603
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline().decode().split()[1])}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, every process)."""
    from bench.procs import _TICK

    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6, 7)) / _TICK


class _Cpu:
    """CPU seconds per wall second over one run, by part: workers, PostgreSQL (the backends of the
    run's database), receiver, this process (the generator), and the machine as a whole."""

    def __init__(self, workers: list[int], receiver: int, database: str | None) -> None:
        self.parts = {"workers": workers, "receiver": [receiver], "generator": [os.getpid()]}
        self.database = database

    def _now(self) -> dict[str, Any]:
        from bench.procs import cpu_seconds, postgres_cpu

        out: dict[str, Any] = {k: {p: cpu_seconds([p]) for p in pids} for k, pids in self.parts.items()}
        out["postgres"] = postgres_cpu(self.database) if self.database else {}
        out["machine"] = _machine_busy()
        out["wall"] = time.monotonic()
        return out

    def start(self) -> None:
        self._start = self._now()
        self.load_before = [round(x, 2) for x in os.getloadavg()]

    def stop(self) -> dict[str, Any]:
        end = self._now()
        wall = max(1e-9, end["wall"] - self._start["wall"])
        per_s = {
            k: round(sum(v - self._start[k].get(p, 0.0) for p, v in end[k].items()) / wall, 2)
            for k in (*self.parts, "postgres")
        }
        per_s["machine"] = round((end["machine"] - self._start["machine"]) / wall, 2)
        return {
            "cpu_per_wall_s": per_s,
            "load_avg_before": self.load_before,
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        }


async def _one_run(
    database_url: str,
    workers: int,
    mode: str,
    events: int,
    rate: int,
    subs: int,
    max_count: int,
    database: str | None = None,
) -> dict[str, Any]:
    from hub.app import create_app
    from hub.settings import Settings

    var = Path(tempfile.mkdtemp(prefix="hub-bench-events-"))
    settings = Settings(
        database_url=database_url,
        environment="test",
        var_dir=var,
        events_in_process=False,
        validate_on_write=False,
        db_pool_size=4,
    )
    app = create_app(settings)
    procs: list[subprocess.Popen[bytes]] = []
    with _receiver() as (rx, receiver_pid):
        try:
            used, state, committed, t0 = await _drive(
                app, settings, rx, receiver_pid, procs, workers, mode, events, rate, subs, max_count, database
            )
        finally:
            _stop(procs)
    return _figures(state, used, committed, t0, mode, workers, subs, events, rate, max_count)


async def _drive(
    app: Any,
    settings: Any,
    rx: str,
    receiver_pid: int,
    procs: list[subprocess.Popen[bytes]],
    workers: int,
    mode: str,
    events: int,
    rate: int,
    subs: int,
    max_count: int,
    database: str | None,
) -> tuple[dict[str, Any], dict[str, Any], float, float]:
    """Subscriptions, workers, the events; returns (CPU and load, the receiver's state, commit end, start)."""
    async with app.router.lifespan_context(app):
        from hub.access.authserver import token_for
        from hub.access.wiring import auth_config

        plans = await _network(app, 50)
        token = token_for(f"org:{URA_A}", auth_config(settings))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub", headers={"Authorization": f"Bearer {token}"}
        ) as hub:
            for i in range(subs):
                resp = await hub.post(
                    "/fhir/Subscription",
                    json={
                        "resourceType": "Subscription",
                        "status": "requested",
                        "reason": "bench",
                        "criteria": "http://zorgnet.nl/fhir/SubscriptionTopic/careplan",
                        "channel": {
                            "type": "rest-hook",
                            "endpoint": f"{rx}/hook/{i}",
                            "payload": "application/fhir+json",
                            "extension": [{"url": BACKPORT + "backport-max-count", "valuePositiveInt": max_count}],
                            "_payload": {
                                "extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": "id-only"}]
                            },
                        },
                    },
                )
                assert resp.status_code == 201, resp.text
        procs.extend(_start_workers(settings, workers))
        async with httpx.AsyncClient() as client:

            async def count() -> dict[str, Any]:
                return dict((await client.get(f"{rx}/count", timeout=30)).json())

            deadline = time.monotonic() + 60
            while (await count())["handshakes"] < subs:
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not handshake in 60 s")
                await asyncio.sleep(0.1)
            cpu = _Cpu([p.pid for p in procs], receiver_pid, database)
            cpu.start()
            t0 = time.time()
            if mode == "burst":
                for start in range(0, events, 2000):
                    await _append(app, plans, min(2000, events - start), start)
            else:
                # Every 20 ms, one transaction with the events due by now: the offered rate holds
                # even when this process gets less CPU (a late tick commits more at once).
                sent = 0
                tick = 0
                while sent < events:
                    tick += 1
                    delay = t0 + tick * 0.02 - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    k = min(events, int((time.time() - t0) * rate), sent + 2000) - sent
                    if k > 0:
                        await _append(app, plans, k, sent)
                        sent += k
            committed = time.time()
            deadline = time.monotonic() + 120
            while (await count())["events"] < events * subs:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            used = cpu.stop()
            state = (await client.get(f"{rx}/state", timeout=60)).json()
    return used, state, committed, t0


def _figures(
    state: dict[str, Any],
    used: dict[str, Any],
    committed: float,
    t0: float,
    mode: str,
    workers: int,
    subs: int,
    events: int,
    rate: int,
    max_count: int,
) -> dict[str, Any]:
    """Throughput and delays from what the receiver acknowledged (deduplicated by event number)."""
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
        "mode": mode,
        "workers": workers,
        "subscriptions": subs,
        "events": events,
        "max_count": max_count,
        "rate_asked": rate if mode == "steady" else None,
        "commit_seconds": round(committed - t0, 3),
        "deliveries_expected": events * subs,
        "deliveries": delivered,
        "duplicates": duplicates,
        "notifications": sum(1 for n in state["accepted"] if n["type"] == "event-notification"),
        "span_seconds": round(span, 3),
        "events_per_s": round(delivered / subs / span, 1),
        "deliveries_per_s": round(delivered / span, 1),
        "delay_p50_s": round(_percentile(delays, 0.50), 4),
        "delay_p95_s": round(_percentile(delays, 0.95), 4),
        "delay_p99_s": round(_percentile(delays, 0.99), 4),
        "delay_max_s": round(max(delays), 4) if delays else None,
        "delay_mean_s": round(statistics.fmean(delays), 4) if delays else None,
        **used,
    }


# -- raw baselines ---------------------------------------------------------------------------------


def _sample_bundle(n: int) -> bytes:
    """A notification Bundle of ``n`` id-only events, as the hub builds it."""
    from hub.events.notifications import Event, dumps, notification_bundle
    from hub.fhir.instants import now_us

    now = now_us()
    events = [Event(i + 1, now, 1000 + i, "CarePlan", f"plan-{i % 50}", 2, "update", ("pat-0",)) for i in range(n)]
    return dumps(
        notification_bundle(
            base="http://hub/fhir",
            sub_id="raw",
            topic="http://zorgnet.nl/fhir/SubscriptionTopic/careplan",
            status="active",
            kind="event-notification",
            events_since_start=n,
            events=events,
            payload="id-only",
        )
    )


async def _raw_http(rx: str, seconds: float) -> list[dict[str, Any]]:
    """A bare httpx client POSTing the same Bundles to the same receiver, one at a time (one keep-alive
    connection), for ``seconds`` per body size."""
    out = []
    for n in (1, 100):
        body = _sample_bundle(n)
        async with httpx.AsyncClient() as client:
            for _ in range(20):  # warm-up: connection, receiver thread
                await client.post(f"{rx}/raw", content=body, headers={"Content-Type": "application/fhir+json"})
            posts = 0
            load = [round(x, 2) for x in os.getloadavg()]
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                r = await client.post(f"{rx}/raw", content=body, headers={"Content-Type": "application/fhir+json"})
                assert r.status_code == 200
                posts += 1
            elapsed = time.perf_counter() - start
        out.append(
            {
                "operation": f"httpx_post_{n}_events",
                "body_bytes": len(body),
                "posts": posts,
                "posts_per_s": round(posts / elapsed, 1),
                "events_per_s": round(posts * n / elapsed, 1),
                "ms_per_post": round(1000 * elapsed / max(1, posts), 3),
                "load_avg_before": load,
            }
        )
    return out


async def _raw_outbox(dsn: str, seconds: float) -> list[dict[str, Any]]:
    """Raw asyncpg on the hub's own outbox and subscription_event tables (a migrated database)."""
    import asyncpg

    from hub.fhir.instants import now_us

    conn = await asyncpg.connect(dsn)
    out = []
    try:
        cols = ("recorded", "pid", "res_type", "res_id", "version", "change", "category", "patients", "orgs")
        ins = (
            f"INSERT INTO outbox_event ({', '.join(cols)}) "  # noqa: S608 - fixed column names
            "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[], "
            "$7::text[], $8::text[], $9::text[])"
        )

        def batch(n: int, offset: int) -> list[list[Any]]:
            now = now_us()
            return [
                [now] * n,
                [1000 + (offset + i) % 50 for i in range(n)],
                ["CarePlan"] * n,
                [f"plan-{(offset + i) % 50}" for i in range(n)],
                [2] * n,
                ["update"] * n,
                ["zorgplan"] * n,
                ["pat-0"] * n,
                [""] * n,
            ]

        rows = 0
        load = [round(x, 2) for x in os.getloadavg()]
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            async with conn.transaction():
                await conn.execute(ins, *batch(20, rows))
            rows += 20
        elapsed = time.perf_counter() - start
        out.append(
            {
                "operation": "outbox_insert_tx_of_20",
                "rows": rows,
                "rows_per_s": round(rows / elapsed, 1),
                "load_avg_before": load,
            }
        )

        claim = (
            "DELETE FROM outbox_event WHERE seq IN (SELECT seq FROM outbox_event ORDER BY seq LIMIT 500 "
            "FOR UPDATE SKIP LOCKED) RETURNING seq, recorded, pid, res_type, res_id, version, change, patients"
        )
        fan = (
            "INSERT INTO subscription_event (sub_id, number, recorded, pid, res_type, res_id, version, change, "
            "patients) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], "
            "$6::text[], $7::int[], $8::text[], $9::text[])"
        )
        taken = 0
        numbers = {"raw-a": 0, "raw-b": 0}
        load = [round(x, 2) for x in os.getloadavg()]
        start = time.perf_counter()
        while True:
            async with conn.transaction():
                got = await conn.fetch(claim)
                if not got:
                    break
                cols_out: list[list[Any]] = [[] for _ in range(9)]
                for sub in numbers:
                    for r in got:
                        numbers[sub] += 1
                        for i, v in enumerate(
                            (
                                sub,
                                numbers[sub],
                                r["recorded"],
                                r["pid"],
                                r["res_type"],
                                r["res_id"],
                                r["version"],
                                r["change"],
                                r["patients"],
                            )
                        ):
                            cols_out[i].append(v)
                await conn.execute(fan, *cols_out)
            taken += len(got)
        elapsed = time.perf_counter() - start
        out.append(
            {
                "operation": "outbox_claim_500_and_fan_out_to_2",
                "rows": taken,
                "events_per_s": round(taken / elapsed, 1),
                "load_avg_before": load,
            }
        )
        await conn.execute("DELETE FROM subscription_event WHERE sub_id LIKE 'raw-%'")
    finally:
        await conn.close()
    return out


async def raw_baselines(seconds: float = 3.0) -> dict[str, Any]:
    """The raw figures on a fresh, migrated database and a fresh receiver."""
    from bench import server
    from hub.settings import Settings
    from hub.store.db import Database
    from hub.store.migrate import prepare_database

    db = await server.create_database()
    try:
        var = Path(tempfile.mkdtemp(prefix="hub-bench-events-raw-"))
        hub_db = Database(db.hub_url, pool_size=1)
        try:
            await prepare_database(hub_db, Settings(database_url=db.hub_url, environment="test", var_dir=var))
        finally:
            await hub_db.dispose()
        pg = await _raw_outbox(db.dsn, seconds)
    finally:
        await server.drop_database(db)
    with _receiver() as (rx, _pid):
        http = await _raw_http(rx, seconds)
    return {"http": http, "postgresql": pg}


async def run(
    workers: list[int],
    events: int,
    rate: int,
    subs: int,
    backend: str,
    max_count: int,
    modes: tuple[str, ...] = ("steady", "burst"),
    raw: bool = True,
) -> dict[str, Any]:
    from bench import server
    from bench.runner import machine

    baselines = await raw_baselines() if raw else None
    if baselines is not None:
        print(json.dumps(baselines), flush=True)
    results = []
    for w in workers:
        for mode in modes:
            if backend == "postgresql":
                db = await server.create_database()
                try:
                    results.append(await _one_run(db.hub_url, w, mode, events, rate, subs, max_count, db.name))
                finally:
                    await server.drop_database(db)
            else:
                path = Path(tempfile.mkdtemp(prefix="hub-bench-events-")) / "hub.db"
                results.append(await _one_run(f"sqlite+aiosqlite:///{path}", w, mode, events, rate, subs, max_count))
            print(json.dumps(results[-1]), flush=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,  # noqa: S607
        check=False,
    ).stdout.strip()
    out = {
        "benchmark": "events",
        "backend": backend,
        "commit": commit,
        "machine": machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": {"events_per_s": 1000, "delay_p95_s": 1.0},
        "runs": results,
        "raw": baselines,
        "generator": "outbox rows appended in-process (every 20 ms one transaction with the events due at --rate, "
        "or 2,000 at once); receiver: bench/events_receiver.py (stdlib ThreadingHTTPServer) in its "
        "own process; load averages are the box's (shared with other users)",
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"events-{backend}-{stamp}.json", f"events_latest_{backend}.json"):
        (RESULTS / name).write_text(json.dumps(out, indent=2) + "\n")
    return out


def main(
    workers: str = "1,2",
    events: int = 10_000,
    rate: int = 1000,
    subscriptions: int = 2,
    backend: str = "postgresql",
    max_count: int = 500,
    modes: str = "steady,burst",
    raw: bool = True,
) -> None:
    counts = [int(w) for w in workers.split(",") if w.strip()]
    kinds = tuple(m.strip() for m in modes.split(",") if m.strip())
    asyncio.run(run(counts, events, rate, subscriptions, backend, max_count, kinds, raw))

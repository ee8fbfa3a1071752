"""What the audit log costs: the group-commit writer alone, and read throughput with audit on vs off.

Run: ``.venv/bin/python bench/audit_overhead.py [--backends sqlite,postgresql] [--seconds 8]``
(PostgreSQL from HUB_BENCH_PG_ADMIN_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
Writes bench/results/audit_overhead.json.

1. writer: N concurrent producers each awaiting ``writer.record()`` in a loop (records/s, batches).
2. reads: the real hub app (create_app, its lifespan, a fresh database with 200 Patients written
   by the reading organisation), C concurrent clients doing ``GET /fhir/Patient/{id}`` as a
   professional (token checked, consent decided) for a fixed time, through httpx's ASGI
   transport. "audit on" is the app as shipped: the dispatcher logs every access and answers
   only once the record is committed. "audit off" is the same app with HUB_AUDIT_ENABLED=false.
   The ratio on/off is the figure the issue asks for (>= 0.70).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from hub.audit.records import AuditRecord  # noqa: E402
from hub.audit.writer import AuditWriter  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "audit_overhead.json"


def pg_admin() -> str:
    return os.environ.get("HUB_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def fresh_url(backend: str, tmp: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}", None
    import asyncpg

    name = f"hub_bench_audit_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_admin())
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return pg_admin().rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}", name


async def drop(name: str | None) -> None:
    if name is None:
        return
    import asyncpg

    conn = await asyncpg.connect(pg_admin())
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def sample(i: int) -> AuditRecord:
    return AuditRecord(
        "read",
        200,
        principal_kind="professional",
        client_id="ecd-1",
        organisation_ura="00012345",
        practitioner=("http://fhir.nl/fhir/NamingSystem/uzi-nr-pers", "900001111"),
        method="GET",
        path=f"Patient/p{i % 200}",
        resources=(("Patient", f"p{i % 200}", "1"),),
        patient_ids=(f"p{i % 200}",),
        purpose_of_use=("TREAT",),
        scopes=("system/*.rs",),
    )


# --- 1. the writer alone ---


async def bench_writer(backend: str, tmp: Path, producers: int, seconds: float) -> dict[str, Any]:
    from hub.store.db import Database
    from hub.store.migrate import upgrade

    url, name = await fresh_url(backend, tmp)
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url, pool_size=4)
        writer = AuditWriter(db, key_dir=tmp / f"keys-{uuid.uuid4().hex[:6]}", checkpoint_every=10_000)
        await writer.start()
        stop = time.perf_counter() + seconds
        latencies: list[float] = []

        async def producer(k: int) -> int:
            n = 0
            while time.perf_counter() < stop:
                t = time.perf_counter()
                await writer.record(sample(k * 1_000_000 + n))
                latencies.append(time.perf_counter() - t)
                n += 1
            return n

        t0 = time.perf_counter()
        counts = await asyncio.gather(*(producer(k) for k in range(producers)))
        elapsed = time.perf_counter() - t0
        await writer.stop()
        await db.dispose()
        latencies.sort()
        total = sum(counts)
        return {
            "backend": backend,
            "producers": producers,
            "records": total,
            "records_per_s": round(total / elapsed),
            "batches": writer.batches,
            "mean_batch": round(total / max(1, writer.batches), 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        }
    finally:
        await drop(name)


# --- 2. reads through the app, audit on vs off ---


async def bench_reads(backend: str, tmp: Path, audit: bool, clients: int, seconds: float) -> dict[str, Any]:
    from hub.app import create_app
    from hub.settings import Settings

    url, name = await fresh_url(backend, tmp)
    try:
        settings = Settings(
            database_url=url,
            environment="test",
            var_dir=tmp / f"var-{uuid.uuid4().hex[:6]}",
            demo=False,
            audit_enabled=audit,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            writer = app.state.services.audit
            asgi: Any = app
            from hub.access.authserver import token_for
            from hub.access.wiring import auth_config

            token = token_for("org:00012345", auth_config(settings), lifetime=3600)
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://hub.bench", headers={"Authorization": f"Bearer {token}"}
            ) as client:
                ids = []
                for i in range(200):
                    r = await client.put(
                        f"/fhir/Patient/p{i}",
                        json={
                            "resourceType": "Patient",
                            "id": f"p{i}",
                            "active": True,
                            "name": [{"family": f"Bench{i}", "given": ["Anna"]}],
                            "birthDate": "1940-01-01",
                        },
                    )
                    assert r.status_code in (200, 201), r.text
                    ids.append(f"p{i}")
                for i in range(200):  # warm-up
                    await client.get(f"/fhir/Patient/{ids[i]}")
                stop = time.perf_counter() + seconds
                rng = random.Random(1)

                async def reader() -> int:
                    n = 0
                    while time.perf_counter() < stop:
                        r = await client.get(f"/fhir/Patient/{rng.choice(ids)}")
                        assert r.status_code == 200
                        n += 1
                    return n

                t0, c0 = time.perf_counter(), time.process_time()
                counts = await asyncio.gather(*(reader() for _ in range(clients)))
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            batches, records = (writer.batches, writer.records) if audit else (0, 0)
        total = sum(counts)
        return {
            "backend": backend,
            "audit": audit,
            "clients": clients,
            "reads": total,
            "reads_per_s": round(total / elapsed),
            # this process's CPU (hub and client alike) per read: steadier than reads/s on a busy box
            "cpu_ms_per_read": round(1000 * cpu / max(1, total), 4),
            "audit_records": records,
            "mean_batch": round(records / batches, 1) if batches else None,
        }
    finally:
        await drop(name)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--skip-writer", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {
        "load_average_at_start": os.getloadavg(),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "writer": [],
        "reads": [],
        "ratio": {},
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for backend in args.backends.split(","):
            for producers in () if args.skip_writer else (1, 8, 64):
                res = await bench_writer(backend, tmp, producers, args.seconds / 2)
                print("writer", res, flush=True)
                out["writer"].append(res)
            pair_ratios = []
            cpu_ratios = []
            for _ in range(args.pairs):  # off/on pairs back to back: each ratio sees the same machine load
                off = await bench_reads(backend, tmp, False, args.clients, args.seconds)
                on = await bench_reads(backend, tmp, True, args.clients, args.seconds)
                print("reads ", off, "\nreads ", on, flush=True)
                out["reads"] += [off, on]
                pair_ratios.append(on["reads_per_s"] / off["reads_per_s"])
                cpu_ratios.append(off["cpu_ms_per_read"] / on["cpu_ms_per_read"])
            pair_ratios.sort()
            cpu_ratios.sort()
            out["ratio"][backend] = {
                "median": round(pair_ratios[len(pair_ratios) // 2], 3),
                "pairs": [round(r, 3) for r in pair_ratios],
                # CPU per read off / on: the throughput ratio a CPU-bound hub would show
                "cpu_median": round(cpu_ratios[len(cpu_ratios) // 2], 3),
                "cpu_pairs": [round(r, 3) for r in cpu_ratios],
            }
            print(f"{backend}: audit on/off = {out['ratio'][backend]}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())

"""Search latency: p50/p95 of five typical searches at 1k and 10k synthetic clients, SQLite and PostgreSQL.

Runs in-process: resources are loaded with transaction Bundles and searches are made through
:func:`hub.api.handlers.handle` (the code path of an HTTP request after authentication), so the
figures are handler + engine + database + Bundle serialisation, without HTTP and token checks.

    .venv/bin/python -m bench.search_latency [--clients 1000,10000] [--backends sqlite,postgresql]

Writes ``bench/results/search_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.generator import elfproef_bsn

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
LOINC = "http://loinc.org"
CODES = [f"{8000 + k}-{k % 10}" for k in range(20)]
OBS_PER_CLIENT = 3
BATCH = 500
RESULTS = Path(__file__).resolve().parent / "results" / "search_latency.json"


def client_resources(i: int) -> list[dict[str, Any]]:
    """One synthetic client: a Patient and a few Observations about them."""
    pid = f"c{i}"
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": BSN, "value": elfproef_bsn(i)}],
            "name": [{"family": f"Fam{i % 997:03d}", "given": ["Test"]}],
            "gender": ("male", "female")[i % 2],
            "birthDate": f"{1930 + i % 90}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        }
    ]
    for k in range(OBS_PER_CLIENT):
        n = i * OBS_PER_CLIENT + k
        out.append(
            {
                "resourceType": "Observation",
                "id": f"o{n}",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": CODES[n % len(CODES)]}]},
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": f"{2020 + n % 3}-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z",
                "valueQuantity": {"value": n % 200, "system": "http://unitsofmeasure.org", "code": "kg"},
            }
        )
    return out


def searches(n_clients: int) -> dict[str, Callable[[random.Random], str]]:
    """The five typical searches, each a function of a random source (so each run asks something new)."""
    return {
        "patient_by_bsn": lambda rnd: f"Patient?identifier={BSN}|{elfproef_bsn(rnd.randrange(n_clients))}",
        "patient_by_family": lambda rnd: f"Patient?family=fam{rnd.randrange(997):03d}&_count=20",
        "observations_of_patient_sorted": lambda rnd: (
            f"Observation?subject=Patient/c{rnd.randrange(n_clients)}&_sort=-date"
        ),
        "observations_by_code_and_date": lambda rnd: (
            f"Observation?code={LOINC}|{rnd.choice(CODES)}&date=ge2021-06-01&_count=50&_total=none"
        ),
        "patient_everything": lambda rnd: f"Patient/c{rnd.randrange(n_clients)}/$everything",
    }


async def _run(database_url: str, n_clients: int, repeat: int) -> dict[str, Any]:
    from hub.access.decision import SYSTEM
    from hub.api.context import Call
    from hub.api.handlers import handle
    from hub.api.interaction import FhirRequest
    from hub.app import build_services
    from hub.settings import Settings
    from hub.store.db import Database
    from hub.store.migrate import prepare_database

    settings = Settings(database_url=database_url, environment="test", var_dir=Path(tempfile.mkdtemp()), demo=False)
    db = Database(database_url, pool_size=5)
    try:
        await prepare_database(db, settings)
        services = build_services(settings, db)
        call = Call(services, "http://bench.test/fhir", policy=SYSTEM)
        started = time.perf_counter()
        resources = [r for i in range(n_clients) for r in client_resources(i)]
        for start in range(0, len(resources), BATCH):
            entries = [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in resources[start : start + BATCH]
            ]
            body = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            result = await handle(call, FhirRequest("POST", "", body=body))
            assert result.status == 200, result.body
        load_s = time.perf_counter() - started
        if not db.is_sqlite:
            from sqlalchemy import text

            async with db.write() as conn:
                await conn.execute(text("ANALYZE"))
        rnd = random.Random(42)
        out: dict[str, Any] = {"resources": len(resources), "load_seconds": round(load_s, 1), "searches": {}}
        for label, make in searches(n_clients).items():
            times: list[float] = []
            for k in range(repeat + 5):
                req = FhirRequest.from_url("GET", make(rnd))
                t0 = time.perf_counter()
                result = await handle(call, req)
                from hub.fhir import jsonio

                jsonio.dumps(result.body)
                if k >= 5:  # the first few warm caches up
                    times.append((time.perf_counter() - t0) * 1000)
                assert result.status == 200
            times.sort()
            out["searches"][label] = {
                "example": make(random.Random(0)),
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
                "runs": len(times),
            }
        return out
    finally:
        await db.dispose()


async def _pg_database(admin: str) -> tuple[str, Callable[[], Any]]:
    import asyncpg

    name = f"hub_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        c = await asyncpg.connect(admin, timeout=10)
        try:
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await c.close()

    return admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}", drop


async def main(clients: list[int], backends: list[str], repeat: int, pg_admin: str) -> dict[str, Any]:
    import platform

    report: dict[str, Any] = {
        "what": "p50/p95 latency of five typical searches, in-process (handler + engine + DB + JSON)",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "results": {},
    }
    for backend in backends:
        for n in clients:
            if backend == "sqlite":
                tmp = Path(tempfile.mkdtemp())
                result = await _run(f"sqlite+aiosqlite:///{tmp / 'bench.db'}", n, repeat)
            else:
                url, drop = await _pg_database(pg_admin)
                try:
                    result = await _run(url, n, repeat)
                finally:
                    await drop()
            report["results"].setdefault(backend, {})[str(n)] = result
            print(backend, n, json.dumps(result["searches"]), flush=True)
    return report


if __name__ == "__main__":
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,10000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    admin = os.environ.get("HUB_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    report = asyncio.run(main([int(c) for c in args.clients.split(",")], args.backends.split(","), args.repeat, admin))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")

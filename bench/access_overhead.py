"""Issue 5's overhead figure: read-by-id and a typical search as a professional, with the access
layer (policy filter + decision) and without it (the same interaction as an internal call), run
in-process through the dispatcher on PostgreSQL so that HTTP and token costs are left out.

    python -m bench.access_overhead [--n 2000]      # writes bench/results/access_overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HUISARTS = "org:00012345:practitioner:900001111"


async def _measure(n: int, call: Any, req_factory: Any) -> dict[str, float]:
    from hub.api.handlers import handle

    for _ in range(50):
        await handle(call, req_factory())
    times = []
    t0 = time.perf_counter()
    for _ in range(n):
        s = time.perf_counter()
        result = await handle(call, req_factory())
        assert result.status == 200
        times.append(time.perf_counter() - s)
    total = time.perf_counter() - t0
    times.sort()
    return {"per_s": n / total, "p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * times[int(0.95 * n)]}


async def run(n: int) -> dict[str, Any]:
    import asyncpg

    from hub.access.authserver import token_for
    from hub.access.decision import SYSTEM
    from hub.access.policy import build_policy
    from hub.access.wiring import auth_config
    from hub.api.context import Call
    from hub.api.interaction import FhirRequest
    from hub.app import build_services
    from hub.demo import load_demo_if_empty
    from hub.settings import Settings
    from hub.store.db import Database
    from hub.store.migrate import prepare_database

    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute("DROP DATABASE IF EXISTS bench_access WITH (FORCE)")
    await admin.execute("CREATE DATABASE bench_access")
    await admin.close()
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_access"
    settings = Settings(database_url=url, environment="test", var_dir=Path("/tmp/bench-access-var"))
    db = Database(url)
    try:
        await prepare_database(db, settings)
        services = build_services(settings, db)
        await load_demo_if_empty(services)
        from hub.access.tokens import TokenVerifier
        from hub.access.wiring import hub_keys

        config = auth_config(settings)
        verifier = TokenVerifier(config, hub_keys(config))
        principal = await verifier.verify(token_for(HUISARTS, config))
        policy = await build_policy(None, principal)
        base = "http://bench/fhir"
        async with db.read() as conn:
            from hub.access.facts import patient_ids_for_bsn

            pid = (await patient_ids_for_bsn(conn, ["999993653"]))["999993653"][0]
        read = lambda: FhirRequest("GET", f"Patient/{pid}")  # noqa: E731
        search = lambda: FhirRequest.from_url("GET", f"CarePlan?subject=Patient/{pid}&_include=CarePlan:goal")  # noqa: E731
        out: dict[str, Any] = {}
        for name, factory in (("read_by_id", read), ("search_careplan_include", search)):
            without = await _measure(n, Call(services, base, policy=SYSTEM), factory)
            with_access = await _measure(n, Call(services, base, policy=policy), factory)
            out[name] = {
                "without_access": without,
                "with_access": with_access,
                "throughput_ratio": with_access["per_s"] / without["per_s"],
            }
        await verifier.aclose()
        return out
    finally:
        await db.dispose()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute("DROP DATABASE IF EXISTS bench_access WITH (FORCE)")
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    result = asyncio.run(run(args.n))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "access_overhead.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

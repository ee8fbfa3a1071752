"""GP summary sync: the huisarts adapter bringing a practice's summary into the hub, end to end.

    python -m bench.huisarts_sync [--clients 1000] [--concurrency 8] [--backend sqlite|postgresql]

A live hub (``hub serve``) and the fake GP system (STU3) run as their own processes on loopback; the
network (a Patient and a care team per client) is built first, then timed: a first full sync (every
summary record mapped, compared and written with its Provenance, one transaction per client) and an
incremental sync with nothing new. Writes ``bench/results/huisarts-sync-<backend>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.adapters.huisarts_env import GP_URA, HuisartsWorld, build_network, fake_gp
from tests.adapters.registration import register_system_app
from tests.api.live import live_hub

RESULTS = Path(__file__).resolve().parent / "results"


async def _timed(world: HuisartsWorld, work: Path, concurrency: int) -> dict[str, Any]:
    async with world.hub_client() as hub:
        syncer, gp, state = world.syncer(hub, work / "state.sqlite")
        try:
            start = time.perf_counter()
            first = await syncer.run(concurrency=concurrency)
            first_s = time.perf_counter() - start
            start = time.perf_counter()
            again = await syncer.run(concurrency=concurrency)
            again_s = time.perf_counter() - start
        finally:
            await gp.aclose()
            state.close()
    return {
        "first_sync": {
            "seconds": round(first_s, 2),
            "fetched": first.fetched,
            "written": first.written,
            "resources_per_s": round(first.written / first_s, 1),
            "clients_per_s": round(len(first.clients) / first_s, 1),
        },
        "incremental_nothing_new": {
            "seconds": round(again_s, 2),
            "written": again.written,
            "clients_per_s": round(len(again.clients) / again_s, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-huisarts-"))
    pg_name = None
    if args.backend == "sqlite":
        url = f"sqlite+aiosqlite:///{work / 'hub.db'}"
    else:
        from tests.conftest import _pg_create

        pg_name = f"bench_huisarts_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(_pg_create(pg_name))
    try:
        with live_hub(url, work) as hub, fake_gp("stu3", args.clients) as gp:
            adapter = register_system_app(hub.env, work, "his-de-linde", GP_URA)
            start = time.perf_counter()
            patients = build_network(hub, args.clients)
            network_s = time.perf_counter() - start
            figures = asyncio.run(
                _timed(HuisartsWorld(hub, gp, adapter, work, patients, "stu3"), work, args.concurrency)
            )
    finally:
        if pg_name is not None:
            from tests.conftest import _pg_drop

            asyncio.run(_pg_drop(pg_name))
    result = {
        "benchmark": "huisarts GP summary sync",
        "backend": args.backend,
        "clients": args.clients,
        "concurrency": args.concurrency,
        "network_build_seconds": round(network_s, 1),
        **figures,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "hub, database, fake GP system and adapter share the same cores",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"huisarts-sync-{args.backend}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

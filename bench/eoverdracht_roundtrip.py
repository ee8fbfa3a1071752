"""A full eOverdracht round trip through the wijkverpleging adapter, end to end, timed per handover.

    python -m bench.eoverdracht_roundtrip [--handovers 30] [--backend sqlite|postgresql]

A live hub (``hub serve``) and the fake STU3 sender (the Kwalificatie 1.1b example transfer) run as their
own processes on loopback; the adapter's receiver works in this process against both over real HTTP. One
round trip is the whole handover from the sender's first notification to the sender seeing 'completed':
notification (advance notice pulled, converted, one hub transaction), the receiving organisation accepts
in the hub, the adapter mirrors it, the sender attaches the nursing handoff and notifies again (the handoff
and its 40-odd resources pulled and written), in-progress and completed in the hub, each mirrored. Every
handover has its own Task id; the documents are the same transfer's. Writes
``bench/results/eoverdracht-roundtrip-<backend>.json`` with p50/p95 and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from adapters.common.client import RetryPolicy
from adapters.wijkverpleging.convert import NURSING_HANDOFF
from adapters.wijkverpleging.receiver import Receiver
from adapters.wijkverpleging.state import State
from tests.adapters.eoverdracht_env import (
    TASK_ID,
    WIJKZORG_URA,
    WijkWorld,
    build_network,
    counterpart,
    repaired_transfer,
)
from tests.adapters.registration import register_system_app
from tests.api.live import live_hub

RESULTS = Path(__file__).resolve().parent / "results"
HANDOFF_ID = "eOverdracht-NursingHandoff-Adults-eov-cert-1.1b-01"


def _transfer(handovers: int) -> list[dict[str, Any]]:
    data = repaired_transfer("requested")
    task = next(r for r in data if r["resourceType"] == "Task")
    others = [r for r in data if r["resourceType"] != "Task"]
    return [*others, *({**task, "id": f"{TASK_ID}-{i}"} for i in range(handovers))]


async def _set(org: httpx.AsyncClient, task_id: str, status: str) -> None:
    task = (await org.get(f"/Task/{task_id}")).json()
    task["status"] = status
    r = await org.put(f"/Task/{task_id}", json=task)
    r.raise_for_status()


async def _round_trip(world: WijkWorld, receiver: Receiver, http: httpx.AsyncClient, fhir: str, task_id: str) -> float:
    start = time.perf_counter()
    task = (await http.get(f"{fhir}/Task/{task_id}")).json()
    stored = await receiver.receive(fhir, task)
    async with world.as_org() as org:
        await _set(org, stored.hub_task_id, "accepted")
        await receiver.mirror()
        theirs = (await http.get(f"{fhir}/Task/{task_id}")).json()
        theirs["input"].append(
            {"type": {"coding": [NURSING_HANDOFF]}, "valueReference": {"reference": f"Composition/{HANDOFF_ID}"}}
        )
        (await http.put(f"{fhir}/Task/{task_id}", json=theirs)).raise_for_status()
        await receiver.receive(fhir, theirs)
        for status in ("in-progress", "completed"):
            await _set(org, stored.hub_task_id, status)
            await receiver.mirror()
    seconds = time.perf_counter() - start
    final = (await http.get(f"{fhir}/Task/{task_id}")).json()
    if final["status"] != "completed":
        raise RuntimeError(f"Task/{task_id} ended {final['status']} at the sender")
    return seconds


async def _timed(world: WijkWorld, work: Path, fhir: str, handovers: int) -> list[float]:
    async with world.hub_client() as hub, httpx.AsyncClient(timeout=60) as http:
        times = []
        for i in range(handovers):
            state = State(work / f"state-{i}.sqlite")  # one handover per state: mirror() sees only its own
            receiver = Receiver(hub, http, state, WIJKZORG_URA, RetryPolicy(attempts=3, base_delay=0.1))
            times.append(await _round_trip(world, receiver, http, fhir, f"{TASK_ID}-{i}"))
            state.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handovers", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-eoverdracht-"))
    pg_name = None
    if args.backend == "sqlite":
        url = f"sqlite+aiosqlite:///{work / 'hub.db'}"
    else:
        from tests.conftest import _pg_create

        pg_name = f"bench_eov_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(_pg_create(pg_name))
    try:
        with live_hub(url, work) as hub, counterpart(_transfer(args.handovers), work) as sender:
            adapter = register_system_app(hub.env, work, "wijkzorg-bench", WIJKZORG_URA)
            world = WijkWorld(hub, adapter, work, build_network(hub))
            load_before = os.getloadavg()
            times = asyncio.run(_timed(world, work, sender.fhir, args.handovers))
            load_after = os.getloadavg()
    finally:
        if pg_name is not None:
            from tests.conftest import _pg_drop

            asyncio.run(_pg_drop(pg_name))
    ms = sorted(t * 1000 for t in times)
    result = {
        "benchmark": "eOverdracht round trip (STU3 sender -> adapter -> hub -> mirrored back, to completed)",
        "backend": args.backend,
        "handovers": args.handovers,
        "round_trip_ms": {
            "p50": round(statistics.median(ms), 1),
            "p95": round(ms[max(0, int(len(ms) * 0.95) - 1)], 1),
            "min": round(ms[0], 1),
            "max": round(ms[-1], 1),
        },
        "first_ms": round(times[0] * 1000, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "hub, database, fake STU3 sender and adapter share the same cores, with other agents' work",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"eoverdracht-roundtrip-{args.backend}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

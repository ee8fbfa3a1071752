"""WMO301 messages per second end to end: the gemeente adapter (XSD validation, checks, retour, state;
WMO301s that arrive together applied as a group: one batch read and one transaction per group) over
real HTTP into a live ``hub serve``, with the figures to judge it by:

- ``hub_transaction``: the same resources (Patient, ServiceRequest, CarePlan, CareTeam per message,
  plain creates) for as many messages again, posted straight to the hub as one transaction Bundle;
- ``raw_postgresql`` (PostgreSQL only): raw asyncpg inserts of the same rows (resource, history, its
  index rows, copied from the rows the run stored) in transactions of one group's resources.

    python -m bench.gemeente_wmo301 [--messages 1000] [--concurrency 100] [--backend sqlite|postgresql]

``--concurrency`` is how many messages are offered at once (a file drop's batch, or concurrent POSTs
to the HTTP inbox). Writes ``bench/results/gemeente-wmo301-<backend>.json``; the load average of the
(shared) machine before and after is in it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient, RetryPolicy
from adapters.common.xmlsafe import XmlLimits, parse_xml
from adapters.gemeente import toewijzing
from adapters.gemeente.config import GemeenteSettings
from adapters.gemeente.inbound import Context
from adapters.gemeente.messages import Node, read_header
from adapters.gemeente.processor import Processor
from adapters.gemeente.state import State
from tests.adapters.iwmo_builders import Client, Product, valid_bsns, wmo301
from tests.adapters.registration import register_system_app
from tests.api.live import live_hub

RESULTS = Path(__file__).resolve().parent / "results"


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


async def _hub_transaction(processor: Processor, messages: int) -> dict[str, Any]:
    """The resources the adapter would write for ``messages`` new clients, as one plain transaction."""
    ctx = Context(processor.hub, processor.settings, processor.catalogue, dt.date.today(), processor._organisations)
    bsns = valid_bsns(messages, start=400000000)
    group = []
    for i, bsn in enumerate(bsns):
        node = Node(parse_xml(wmo301(f"T{i:06d}", Client(bsn=bsn), [Product(str(500000 + i))]), XmlLimits()))
        checked = toewijzing.check(ctx, node, read_header("301", node))
        assert isinstance(checked, toewijzing.Checked), checked
        group.append(checked)
    empty = toewijzing._Held({}, {}, [], {}, {}, set())
    entries = []
    for m in group:
        findings, own, used = toewijzing._build(ctx, m, empty, toewijzing._Shared())
        assert not findings and not used, (findings, used)  # the organisations exist after the warm-up
        for entry in own:
            entry["request"].pop("ifNoneExist", None)
        entries += own
    once = RetryPolicy(attempts=1)  # plain creates: never sent twice
    async with HubClient(processor.hub.base, processor.hub.credentials, retry=once, timeout=900) as hub:
        t0 = time.perf_counter()
        await hub.transaction(entries)
        seconds = time.perf_counter() - t0
    return {
        "messages": messages,
        "resources": len(entries),
        "seconds": round(seconds, 2),
        "resources_per_second": round(len(entries) / seconds, 1),
        "messages_per_second": round(messages / seconds, 1),
    }


async def _raw_postgresql(dsn: str, resources_per_tx: int, resources: int, per_message: float) -> dict[str, Any]:
    from bench.raw import RawBench

    raw = RawBench(dsn, concurrency=2)
    try:
        out = await raw.measure("write_bundle", max_ops=resources, max_seconds=30, bundle_size=resources_per_tx)
    finally:
        await raw.close()
    out["messages_per_second"] = round(float(out.get("resources_per_s", 0)) / per_message, 1)
    return out


async def _run(
    base: str, client_id: str, key: Path, work: Path, messages: int, concurrency: int, dsn: str | None
) -> dict[str, Any]:
    settings = GemeenteSettings(hub_base=base, client_id=client_id, private_key=key, state=work / "state.sqlite")
    creds = ClientCredentials(client_id, load_private_key(key), settings.resolved_token_url())
    bsns = valid_bsns(messages, start=200000000)
    data = [wmo301(f"B{i:06d}", Client(bsn=b), [Product(str(300000 + i))]) for i, b in enumerate(bsns)]
    async with HubClient(base, creds) as hub:
        processor = Processor(hub, State(settings.state), settings)
        for i, bsn in enumerate(valid_bsns(10, start=199000000)):  # the hub's first writes of each type are slow
            warm = await processor.process(wmo301(f"WARM{i}", Client(bsn=bsn), [Product(str(i + 1))]))
            assert warm.status == "accepted", warm.reasons
        semaphore = asyncio.Semaphore(concurrency)
        latencies: list[float] = []

        async def one(message: bytes) -> None:
            async with semaphore:
                t0 = time.perf_counter()
                result = await processor.process(message)
                latencies.append(time.perf_counter() - t0)
                assert result.status == "accepted", result.reasons

        load_before = _loadavg()
        processor._groups.sizes.clear()
        start = time.perf_counter()
        await asyncio.gather(*(one(m) for m in data))
        elapsed = time.perf_counter() - start
        load_after = _loadavg()
        sizes = processor._groups.sizes
        baseline = await _hub_transaction(processor, messages)
    latencies.sort()
    figures: dict[str, Any] = {
        "messages": messages,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "messages_per_second": round(messages / elapsed, 1),
        "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
        "latency_ms_p95": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
        "groups": len(sizes),
        "group_size_mean": round(sum(sizes) / max(1, len(sizes)), 1),
        "group_size_max": max(sizes, default=0),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "baseline_hub_transaction": baseline,
    }
    if dsn is not None:
        per_message = baseline["resources"] / baseline["messages"]
        group = processor.settings.group_size * round(per_message)
        figures["baseline_raw_postgresql"] = await _raw_postgresql(dsn, group, baseline["resources"], per_message)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--hub-workers", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-gemeente-"))
    pg_name = None
    if args.backend == "sqlite":
        url = f"sqlite+aiosqlite:///{work / 'hub.db'}"
    else:
        from tests.conftest import _pg_create

        pg_name = f"bench_gemeente_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(_pg_create(pg_name))
    try:
        with live_hub(url, work, HUB_WORKERS=str(args.hub_workers)) as hub:
            registered = register_system_app(hub.env, work, "gemeente-bench", "00045678")
            dsn = None if pg_name is None else url.replace("postgresql+asyncpg://", "postgresql://")
            figures = asyncio.run(
                _run(hub.base, registered.client_id, registered.key_file, work, args.messages, args.concurrency, dsn)
            )
    finally:
        if pg_name is not None:
            from tests.conftest import _pg_drop

            asyncio.run(_pg_drop(pg_name))
    result = {
        "benchmark": "gemeente adapter: WMO301 end to end into the hub",
        "backend": args.backend,
        "hub_workers": args.hub_workers,
        "adapter_group_size": GemeenteSettings().group_size,
        "adapter_groups_in_flight": GemeenteSettings().groups_in_flight,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target_messages_per_second": 100,
        **figures,
    }
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.hub_workers == 1 else f"-w{args.hub_workers}"
    (RESULTS / f"gemeente-wmo301-{args.backend}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

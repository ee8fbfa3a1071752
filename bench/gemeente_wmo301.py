"""WMO301 messages per second end to end: the gemeente adapter (XSD validation, checks, one batch read
and one transaction per message over real HTTP, retour, state) into a live ``hub serve``.

    python -m bench.gemeente_wmo301 [--messages 1000] [--concurrency 8] [--backend sqlite|postgresql]

Writes ``bench/results/gemeente-wmo301-<backend>.json``.
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

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient
from adapters.gemeente.config import GemeenteSettings
from adapters.gemeente.processor import Processor
from adapters.gemeente.state import State
from tests.adapters.iwmo_builders import Client, Product, valid_bsns, wmo301
from tests.adapters.registration import register_system_app
from tests.api.live import live_hub

RESULTS = Path(__file__).resolve().parent / "results"


async def _run(base: str, client_id: str, key: Path, work: Path, messages: int, concurrency: int) -> dict[str, float]:
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

        start = time.perf_counter()
        await asyncio.gather(*(one(m) for m in data))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "messages": messages, "concurrency": concurrency, "seconds": round(elapsed, 2),
        "messages_per_second": round(messages / elapsed, 1),
        "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
        "latency_ms_p95": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
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
        with live_hub(url, work) as hub:
            registered = register_system_app(hub.env, work, "gemeente-bench", "00045678")
            figures = asyncio.run(_run(hub.base, registered.client_id, registered.key_file, work, args.messages,
                                       args.concurrency))
    finally:
        if pg_name is not None:
            from tests.conftest import _pg_drop

            asyncio.run(_pg_drop(pg_name))
    result = {
        "benchmark": "gemeente adapter: WMO301 end to end into the hub",
        "backend": args.backend, "hub_workers": 1, "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "target_messages_per_second": 100, **figures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"gemeente-wmo301-{args.backend}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""What one group of WMO301 messages costs the hub, in process and independent of the machine's load:
SQL statements and CPU milliseconds per message for the gemeente adapter's group apply (its batch read
and its one transaction Bundle), against an in-process hub (no HTTP server, no other process).

    python -m bench.wmo301_group_cost [--backend sqlite|postgresql] [--group 50] [--groups 3] [--profile N]
                                      [--out bench/results/wmo301-group-cost-postgresql.json]

The first group warms the hub up (first writes of each type, the Organizations); the others are
measured. ``--profile N`` prints cProfile's top N functions (by cumulative time) of the measured groups.
Wall-clock throughput is :mod:`bench.gemeente_wmo301`'s; this is the per-message cost behind it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import json
import pstats
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from adapters.common.client import HubClient
from adapters.common.xmlsafe import XmlLimits, parse_xml
from adapters.gemeente import toewijzing
from adapters.gemeente.config import Catalogue, GemeenteSettings
from adapters.gemeente.inbound import Context
from adapters.gemeente.messages import Node, read_header
from tests.adapters.iwmo_builders import Client, Product, valid_bsns, wmo301


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _group(ctx: Context, size: int, start: int, prefix: str, products: int) -> list[toewijzing.Checked]:
    out = []
    for i, bsn in enumerate(valid_bsns(size, start=start)):
        node = Node(parse_xml(wmo301(f"{prefix}{i:06d}", Client(bsn=bsn), [Product(str(products + i))]), XmlLimits()))
        checked = toewijzing.check(ctx, node, read_header("301", node))
        assert isinstance(checked, toewijzing.Checked), checked
        out.append(checked)
    return out


async def _measure(url: str, size: int, groups: int, profile: int) -> dict[str, Any]:
    from hub.app import create_app
    from tests.conftest import make_settings, token_for_app

    app = create_app(make_settings(url, Path(tempfile.mkdtemp(prefix="wmo301-cost-"))))
    statements: list[str] = []
    async with app.router.lifespan_context(app):
        engines = [e.sync_engine for e in app.state.services.repo.db.engines]
        settings = GemeenteSettings()
        headers = {"Authorization": f"Bearer {token_for_app(app, f'org:{settings.ura}')}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", headers=headers) as http:
            hub = HubClient("http://hub.test/fhir", None, http=http, timeout=600)
            ctx = Context(hub, settings, Catalogue.load(settings.products), dt.date.today(), {})
            outcomes = await toewijzing.apply(ctx, _group(ctx, size, 100000000, "W", 100000))
            assert all(not o.findings for o in outcomes)

            def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                statements.append(statement)

            profiler = cProfile.Profile() if profile else None
            cpu = 0.0
            wall = 0.0
            from hub.store import sqlite_writes

            one_trip = sqlite_writes.statements  # (SQLite: a version's statements in one trip, not seen by events)
            for engine in engines:
                event.listen(engine, "before_cursor_execute", count)
            try:
                for g in range(groups):
                    group = _group(ctx, size, 110000000 + g * 1000000, f"M{g}", 200000 + g * 10000)
                    c0, w0 = time.process_time(), time.perf_counter()
                    if profiler is not None:
                        profiler.enable()
                    outcomes = await toewijzing.apply(ctx, group)
                    if profiler is not None:
                        profiler.disable()
                    cpu += time.process_time() - c0
                    wall += time.perf_counter() - w0
                    assert all(not o.findings for o in outcomes), outcomes
            finally:
                for engine in engines:
                    event.remove(engine, "before_cursor_execute", count)
                one_trip = sqlite_writes.statements - one_trip
    messages = size * groups
    kinds: dict[str, int] = {}
    for s in statements:
        head = " ".join(s.split()[:3])[:60]
        kinds[head] = kinds.get(head, 0) + 1
    out: dict[str, Any] = {
        "messages": messages,
        "group_size": size,
        "statements_per_message": round((len(statements) + one_trip) / messages, 2),
        "of_which_in_one_trip_writes": round(one_trip / messages, 2),
        "cpu_ms_per_message": round(cpu * 1000 / messages, 2),
        "wall_ms_per_message": round(wall * 1000 / messages, 2),
        "statements_by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:25]),
    }
    if profiler is not None:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(profile)
        out["profile"] = buf.getvalue()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--group", type=int, default=50)
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--out", help="also write the figures (JSON) to this file")
    args = parser.parse_args()
    pg_name = None
    if args.backend == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='wmo301-cost-')) / 'hub.db'}"
    else:
        from tests.conftest import _pg_create

        pg_name = f"bench_wmo301_cost_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(_pg_create(pg_name))
    try:
        figures = asyncio.run(_measure(url, args.group, args.groups, args.profile))
    finally:
        if pg_name is not None:
            from tests.conftest import _pg_drop

            asyncio.run(_pg_drop(pg_name))
    profile_text = figures.pop("profile", None)
    result = {
        "benchmark": "the hub's cost per WMO301 message (group apply, in process)",
        "backend": args.backend,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg": _loadavg(),
        **figures,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if profile_text:
        print(profile_text)


if __name__ == "__main__":
    main()

"""What the hub's writes cost in SQL statements, in process and independent of the machine's load:
per ingest transaction Bundle (a client's whole network, as the ``ingest`` workload sends it) and
per request of the public CRUD chain (``crud``: create, read, update, delete), against an in-process
hub (no HTTP server, no other process).

    python -m bench.write_cost [--backend sqlite|postgresql] [--clients 20] [--chains 5]

The first client and chain warm the hub up (first writes of each type); the others are measured.
Wall-clock throughput is the ``ingest`` and ``crud`` workloads' (``python -m bench.compare``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import event

from bench import crud_chain
from bench.generator import Network
from bench.workloads import Loaded, _location_id, resolve_references

FHIR_JSON = "application/fhir+json"


class _Counting:
    """Statements run on the engine, by what the caller says it is doing."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.by_kind: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.heads: dict[str, Counter[str]] = {}
        self.cpu: dict[str, float] = {}

    def one_trip(self, statements: int) -> None:
        """Statements a SQLite write ran in one trip to its thread (hub.store.sqlite_writes)."""
        if self.kind is not None and statements:
            self.by_kind[self.kind] += statements
            self.heads.setdefault(self.kind, Counter())["(one-trip and batched write statements)"] += statements

    def __call__(self, _c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if self.kind is not None:
            self.by_kind[self.kind] += 1
            self.heads.setdefault(self.kind, Counter())[" ".join(statement.split()[:3])[:60]] += 1


def _one_trip_statements() -> int:
    """Statements SQLAlchemy's events do not see, run so far: SQLite writes' in one trip to the
    database's thread, PostgreSQL's batched creates of transaction Bundles (0 in a checkout without
    hub.store.sqlite_writes)."""
    try:
        from hub.store import sqlite_writes
    except ImportError:
        return 0
    try:
        from hub.store import pg_batch
    except ImportError:  # (a checkout before transaction Bundles' creates were batched)
        return sqlite_writes.statements
    return sqlite_writes.statements + pg_batch.statements


class _Recorder:
    """What :func:`bench.crud_chain.run_chain` asks of a recorder, over the in-process app."""

    def __init__(self, http: httpx.AsyncClient, counting: _Counting) -> None:
        self.http = http
        self.counting = counting

    async def request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, bytes]:
        hdrs = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON, **(headers or {})}
        self.counting.kind = kind
        c0, s0 = time.process_time(), _one_trip_statements()
        content = orjson.dumps(body) if body else None
        resp = await self.http.request(method, f"/fhir/{path}", content=content, headers=hdrs)
        self.counting.one_trip(_one_trip_statements() - s0)
        self.counting.cpu[kind] = self.counting.cpu.get(kind, 0.0) + time.process_time() - c0
        self.counting.kind = None
        self.counting.requests[kind] += 1
        if resp.status_code not in expect:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.status_code, resp.content


async def _measure(url: str, clients: int, chains: int) -> dict[str, Any]:
    from hub.app import create_app
    from tests.conftest import make_settings, token_for_app

    app = create_app(make_settings(url, Path(tempfile.mkdtemp(prefix="write-cost-"))))
    counting = _Counting()
    written: dict[str, list[list[tuple[str, str]]]] = defaultdict(list)  # author -> its clients' resources
    loaded = Loaded(Network(clients + 1, "zorgnet-write-cost"))
    async with app.router.lifespan_context(app):
        engines = [e.sync_engine for e in app.state.services.repo.db.engines]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
            rec = _Recorder(http, counting)
            admin = {"Authorization": f"Bearer {token_for_app(app, 'admin')}", "Prefer": "return=minimal"}
            for bundle in loaded.network.registry_bundles():
                _status, body = await rec.request("registry", "POST", "", body=bundle, headers=admin)
                for entry, answer in zip(bundle["entry"], orjson.loads(body)["entry"], strict=True):
                    res_type, res_id = _location_id(answer["response"]["location"])
                    ident = entry["resource"]["identifier"][0]
                    loaded.literal[f"{res_type}?identifier={ident['system']}|{ident['value']}"] = f"{res_type}/{res_id}"
            for engine in engines:
                event.listen(engine, "before_cursor_execute", counting)
            try:
                entries = 0
                for index in range(clients + 1):
                    client = loaded.network.client(index)
                    bundle = resolve_references(client.bundle, loaded.literal)
                    headers = {
                        "Authorization": f"Bearer {token_for_app(app, client.author.spec)}",
                        "Prefer": "return=minimal",
                    }
                    kind = "warm-up" if index == 0 else "ingest"
                    _status, body = await rec.request(kind, "POST", "", body=bundle, headers=headers)
                    entries += len(bundle["entry"]) if index else 0
                    if index:
                        written[client.author.spec].append(
                            [_location_id(a["response"]["location"]) for a in orjson.loads(body)["entry"]]
                        )
                update_entries = await _update_bundle(app, rec, written)
                spec = loaded.network.professionals[loaded.network.organisations["huisarts"][0].key][0].spec
                crud_headers = {"Authorization": f"Bearer {token_for_app(app, spec)}"}
                counting.kind = None
                await crud_chain.run_chain(_WarmUp(rec), "warm", crud_headers)
                for i in range(chains):
                    await crud_chain.run_chain(rec, f"chain-{i}-{uuid.uuid4().hex[:6]}", crud_headers)
            finally:
                for engine in engines:
                    event.remove(engine, "before_cursor_execute", counting)
    out: dict[str, Any] = {
        "ingest_bundles": clients,
        "ingest_entries_per_bundle": round(entries / clients, 1),
        "statements_per_ingest_bundle": round(counting.by_kind["ingest"] / clients, 1),
        "statements_per_ingest_entry": round(counting.by_kind["ingest"] / entries, 2),
        "cpu_ms_per_ingest_bundle": round(counting.cpu.get("ingest", 0.0) * 1000 / clients, 1),
    }
    if update_entries:
        out["update_bundle_entries"] = update_entries
        out["statements_per_update_bundle"] = counting.by_kind["update-bundle"]
        heads = counting.heads["update-bundle"]
        # (one statement rewrites relations and grants on PostgreSQL: hub.access.facts._replace)
        out["recomputes_per_update_bundle"] = heads["DELETE FROM access_grant"] + heads["WITH dr AS"]
    for kind in ("create", "read", "update", "delete"):
        n = counting.requests[kind]
        out[f"statements_per_{kind}"] = round(counting.by_kind[kind] / n, 2) if n else None
        out[f"cpu_ms_per_{kind}"] = round(counting.cpu.get(kind, 0.0) * 1000 / n, 2) if n else None
    out["statements_by_kind"] = {
        kind: dict(counting.heads.get(kind, Counter()).most_common(15))
        for kind in ("ingest", "update-bundle", "create", "update", "delete")
    }
    return out


#: The resources of each client a multi-client update Bundle rewrites (each implies access facts).
_UPDATED = ("CareTeam", "CarePlan")


async def _update_bundle(app: Any, rec: _Recorder, written: dict[str, list[list[tuple[str, str]]]]) -> int:
    """One transaction Bundle updating the care networks of every client one author loaded (as a
    system sending a day's changes would): a PUT of each client's CareTeam and CarePlan. Returns its
    number of entries (0: no author loaded two clients)."""
    from tests.conftest import token_for_app

    author, clients = max(written.items(), key=lambda kv: len(kv[1]))
    if len(clients) < 2:
        return 0
    headers = {"Authorization": f"Bearer {token_for_app(app, author)}"}
    entries = []
    for resources in clients:
        for res_type, res_id in resources:
            if res_type in _UPDATED:
                _status, body = await rec.request("warm-up", "GET", f"{res_type}/{res_id}", headers=headers)
                current = {k: v for k, v in orjson.loads(body).items() if k != "meta"}
                current["text"] = {
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">bijgewerkt</div>',
                }
                entries.append({"resource": current, "request": {"method": "PUT", "url": f"{res_type}/{res_id}"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    await rec.request("update-bundle", "POST", "", body=bundle, headers={**headers, "Prefer": "return=minimal"})
    return len(entries)


class _WarmUp:
    """A recorder whose requests are not counted (the first chain)."""

    def __init__(self, rec: _Recorder) -> None:
        self.rec = rec

    async def request(self, _kind: str, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        return await self.rec.request("warm-up", method, path, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--chains", type=int, default=5)
    parser.add_argument("--out", help="also write the figures (JSON) to this file")
    args = parser.parse_args()
    pg_name = None
    if args.backend == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='write-cost-')) / 'hub.db'}"
    else:
        from tests.conftest import _pg_create

        pg_name = f"bench_write_cost_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(_pg_create(pg_name))
    try:
        figures = asyncio.run(_measure(url, args.clients, args.chains))
    finally:
        if pg_name is not None:
            from tests.conftest import _pg_drop

            asyncio.run(_pg_drop(pg_name))
    result = {
        "benchmark": "the hub's statements per write (ingest Bundle, CRUD requests), in process",
        "backend": args.backend,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg": [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]],
        **figures,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

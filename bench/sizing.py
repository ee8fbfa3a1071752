"""Storage per client, measured: load N generated clients into a fresh PostgreSQL database through the hub
(in process, real HTTP semantics over the ASGI transport), read each client's data a few times, then
read PostgreSQL's own sizes of every table with its indexes. deploy/SIZING.md scales these figures.

    python -m bench.sizing --clients 300 --reads 10      # writes bench/results/sizing.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

RESULTS = Path(__file__).resolve().parent / "results"


async def measure(admin_url: str, clients: int, reads: int) -> dict[str, Any]:
    import asyncpg

    from bench.generator import Network, resolve_references
    from hub.access.authserver import token_for
    from hub.access.wiring import auth_config
    from hub.app import create_app
    from hub.settings import Settings

    name = f"hub_sizing_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    try:
        with tempfile.TemporaryDirectory() as var:
            settings = Settings(database_url=url, environment="test", var_dir=Path(var), db_pool_size=4)
            app = create_app(settings)
            config = auth_config(settings)
            net = Network(clients)
            started = time.monotonic()
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", timeout=120) as c:
                    admin_h = {"Authorization": f"Bearer {token_for('admin', config, lifetime=3600)}"}
                    literal: dict[str, str] = {}
                    for bundle in net.registry_bundles():
                        r = await c.post("/fhir", json=bundle, headers=admin_h)
                        r.raise_for_status()
                        for entry, answer in zip(bundle["entry"], r.json()["entry"], strict=True):
                            ident = entry["resource"]["identifier"][0]
                            ref = _type_id(answer["response"]["location"])
                            literal[f"{ref.split('/')[0]}?identifier={ident['system']}|{ident['value']}"] = ref
                    baseline = await _sizes(app)
                    patients: list[tuple[str, str]] = []
                    for i in range(clients):
                        cn = net.client(i)
                        author = {"Authorization": f"Bearer {token_for(cn.author.spec, config, lifetime=3600)}"}
                        r = await c.post("/fhir", json=resolve_references(cn.bundle, literal), headers=author)
                        r.raise_for_status()
                        refs = [_type_id(e["response"]["location"]) for e in r.json()["entry"]]
                        pid = next(ref.split("/")[1] for ref in refs if ref.startswith("Patient/"))
                        consent = resolve_references(
                            cn.consent, {cn.consent["patient"]["reference"]: f"Patient/{pid}", **literal}
                        )
                        (await c.post("/fhir/Consent", json=consent, headers=admin_h)).raise_for_status()
                        patients.append((pid, cn.bsn))
                    loaded = time.monotonic() - started
                    after_load = await _sizes(app)
                    for pid, bsn in patients:
                        me = {"Authorization": f"Bearer {token_for(f'client:{bsn}', config, lifetime=3600)}"}
                        for k in range(reads):
                            path = f"/fhir/Patient/{pid}/$everything" if k % 2 else f"/fhir/Patient/{pid}/CarePlan"
                            (await c.get(path, headers=me)).raise_for_status()
                after_reads = await _sizes(app)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    store = [t for t in after_load if t.startswith(("resource", "idx_"))]
    audit_tables = [t for t in after_load if t.startswith("audit_")]

    def delta(a: dict[str, Any], b: dict[str, Any], tables: list[str], what: str) -> int:
        return sum(b[t][what] - a[t][what] for t in tables)

    resources = delta(baseline, after_load, ["resource"], "rows")
    index_rows = delta(baseline, after_load, [t for t in store if t.startswith("idx_")], "rows")
    audit_records = delta(after_load, after_reads, ["audit_log"], "rows")
    return {
        "clients": clients,
        "reads_per_client": reads,
        "load_seconds": round(loaded, 1),
        "resources_per_client": round(resources / clients, 1),
        "index_rows_per_resource": round(index_rows / resources, 2),
        "index_rows_per_table_per_resource": {
            t: round(delta(baseline, after_load, [t], "rows") / resources, 2) for t in store if t.startswith("idx_")
        },
        "store_bytes_per_client": round(delta(baseline, after_load, store, "bytes") / clients),
        "store_bytes_per_resource": round(delta(baseline, after_load, store, "bytes") / resources),
        "audit_records_per_client_load": round(delta(baseline, after_load, ["audit_log"], "rows") / clients, 1),
        "audit_bytes_per_record": round(delta(after_load, after_reads, audit_tables, "bytes") / audit_records),
        "avg_audit_event_json_bytes": after_reads["_avg_event_bytes"],
        "tables_after_reads": {t: v for t, v in sorted(after_reads.items()) if not t.startswith("_")},
    }


async def _sizes(app: Any) -> dict[str, Any]:
    """Rows and total bytes (heap, indexes, TOAST) of every table."""
    out: dict[str, Any] = {}
    async with app.state.db.read() as conn:
        await conn.execute(text("ANALYZE"))
        for table, total in (
            await conn.execute(
                text(
                    "SELECT tablename, pg_total_relation_size(quote_ident(tablename)) FROM pg_tables "
                    "WHERE schemaname = 'public'"
                )
            )
        ).all():
            count = text(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - names from pg_tables
            out[table] = {"rows": int((await conn.execute(count)).scalar_one()), "bytes": int(total)}
        out["_avg_event_bytes"] = round(
            float((await conn.execute(text("SELECT avg(octet_length(event)) FROM audit_log"))).scalar_one() or 0)
        )
    return out


def _type_id(location: str) -> str:
    """``.../Patient/123/_history/1`` -> ``Patient/123``."""
    parts = location.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        return f"{parts[-4]}/{parts[-3]}"
    return f"{parts[-2]}/{parts[-1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--reads", type=int, default=10)
    parser.add_argument(
        "--admin-url", default=os.environ.get("HUB_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()
    result = asyncio.run(measure(args.admin_url, args.clients, args.reads))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sizing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "tables_after_reads"}, indent=2))


if __name__ == "__main__":
    main()

"""Raw PostgreSQL doing the hub's work directly (asyncpg, prepared statements, same concurrency), in the
same database and the same run: the denominators of every hub ÷ raw ratio.

- ``pk_read``: the current row of one resource by (type, id) through the unique index, JSONB content
  returned as text (what a FHIR read does underneath);
- ``write_1``: one resource + its history row + its index rows in one transaction (a FHIR create);
- ``write_bundle``: the same for a whole client network in one transaction (what ingest does);
- ``ref_lookup``: an indexed reference-index lookup joined to the resources (a search by subject);
- ``compartment``: every resource in one Patient compartment (what ``$everything`` reads).

Writes go to copies of the hub's tables (``CREATE TABLE ... (LIKE ... INCLUDING ALL)``, so the same
indexes) in a separate schema, so they neither disturb the hub's data nor share its sequences.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.driver import latency_summary

INDEX_TABLES = ("idx_string", "idx_token", "idx_date", "idx_reference", "idx_quantity", "idx_compartment")
SCHEMA = "rawbench"


async def _pool(dsn: str, size: int) -> Any:
    import asyncpg

    return await asyncpg.create_pool(dsn, min_size=size, max_size=size)


async def _loop(
    pool: Any,
    name: str,
    op: Callable[[Any, int], Awaitable[int]],
    *,
    concurrency: int,
    max_ops: int,
    max_seconds: float,
    unit: str = "tx",
) -> dict[str, Any]:
    """Run ``op`` from ``concurrency`` tasks until ``max_ops`` or ``max_seconds``; returns the stats."""
    deadline = time.monotonic() + max_seconds
    latencies: list[float] = []
    counter = iter(range(max_ops))
    units = 0

    async def worker() -> None:
        nonlocal units
        async with pool.acquire() as conn:
            while time.monotonic() < deadline:
                i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                done = await op(conn, i)  # not `units += await ...`: that reads units before the await
                units += done
                latencies.append(time.perf_counter() - start)

    # Warm-up: prepare the statements on every connection.
    warm = iter(range(concurrency * 5))

    async def warm_worker() -> None:
        async with pool.acquire() as conn:
            for i in warm:
                await op(conn, i)

    await asyncio.gather(*(warm_worker() for _ in range(concurrency)))
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {
        "operation": name,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "ops": len(latencies),
        "ops_per_s": round(len(latencies) / elapsed, 1),
        f"{unit}_per_s": round(units / elapsed, 1),
        **latency_summary(latencies),
    }


async def _sample(conn: Any) -> dict[str, Any]:
    """Real keys and shapes from the loaded data: ids to read, patients to look up, row counts per table."""
    keys = [
        tuple(r)
        for r in await conn.fetch(
            "SELECT res_type, res_id FROM resource WHERE NOT deleted ORDER BY random() LIMIT 5000"
        )
    ]
    patients = [
        r[0]
        for r in await conn.fetch(
            "SELECT res_id FROM resource WHERE res_type = 'Patient' AND NOT deleted ORDER BY random() LIMIT 2000"
        )
    ]
    resources = await conn.fetchval("SELECT count(*) FROM resource") or 1
    per_table = {t: (await conn.fetchval(f"SELECT count(*) FROM {t}")) / resources for t in INDEX_TABLES}  # noqa: S608
    content = (
        await conn.fetchval("SELECT content::text FROM resource WHERE res_type = 'CarePlan' AND NOT deleted LIMIT 1")
        or '{"resourceType":"Basic"}'
    )
    sizes = await conn.fetchval("SELECT avg(pg_column_size(content)) FROM resource WHERE NOT deleted")
    return {
        "keys": keys,
        "patients": patients,
        "per_table": per_table,
        "content": content,
        "avg_content_bytes": round(float(sizes or 0)),
    }


async def _index_rows(conn: Any) -> dict[str, dict[str, Any]]:
    """One real row per table (a CarePlan's, when there is one), to copy into the raw writes."""
    out = {}
    res = await conn.fetchrow("SELECT * FROM resource WHERE res_type = 'CarePlan' AND NOT deleted LIMIT 1")
    if res is not None:
        out["resource"] = dict(res)
        hist = await conn.fetchrow("SELECT * FROM resource_history WHERE pid = $1 LIMIT 1", res["pid"])
        out["resource_history"] = dict(hist) if hist is not None else {}
    for t in INDEX_TABLES:
        row = await conn.fetchrow(f"SELECT * FROM {t} LIMIT 1")  # noqa: S608
        if row is not None:
            out[t] = dict(row)
    return out


async def _prepare_schema(conn: Any) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    for t in ("resource", "resource_history", *INDEX_TABLES):
        await conn.execute(f"CREATE TABLE {SCHEMA}.{t} (LIKE public.{t} INCLUDING ALL)")
    for t, col in (("resource", "pid"), ("resource_history", "hid")):
        await conn.execute(f"CREATE SEQUENCE {SCHEMA}.{t}_{col}_seq")
        await conn.execute(f"ALTER TABLE {SCHEMA}.{t} ALTER COLUMN {col} SET DEFAULT nextval('{SCHEMA}.{t}_{col}_seq')")


def _insert_sql(table: str, columns: list[str], returning: str = "") -> str:
    cols = ", ".join(columns)
    values = ", ".join(f"${i + 1}" for i in range(len(columns)))
    return f"INSERT INTO {SCHEMA}.{table} ({cols}) VALUES ({values}){returning}"  # noqa: S608


def _writer(
    sample: dict[str, Any],
    templates: dict[str, dict[str, Any]],
    resources_per_tx: int,
) -> Callable[[Any, int], Awaitable[int]]:
    """A transaction writing ``resources_per_tx`` resources, each with history and its share of index rows.

    Rows are copies of real rows of the loaded database (whatever columns the schema has now), with a
    new id; each table gets one executemany, as the hub does.
    """
    rng = random.Random(7)
    per_table = sample["per_table"]
    res_row = {k: v for k, v in templates["resource"].items() if k != "pid"}
    hist_row = {k: v for k, v in templates["resource_history"].items() if k not in ("hid", "pid")}
    res_cols, hist_cols = list(res_row), ["pid", *hist_row]
    insert_resource = _insert_sql("resource", res_cols, " RETURNING pid")
    insert_history = _insert_sql("resource_history", hist_cols)
    plan = [
        (t, _insert_sql(t, list(templates[t])), [c for c in templates[t] if c != "pid"])
        for t in INDEX_TABLES
        if t in templates and per_table.get(t, 0) > 0
    ]

    async def op(conn: Any, i: int) -> int:
        async with conn.transaction():
            for _ in range(resources_per_tx):
                res_id = str(uuid.uuid4())
                now = int(time.time() * 1_000_000)
                row = {**res_row, "res_id": res_id, "last_updated": now}
                pid = await conn.fetchval(insert_resource, *row.values())
                hist = {**hist_row, "res_id": res_id, "last_updated": now}
                await conn.execute(insert_history, pid, *hist.values())
                for t, sql, cols in plan:
                    n = int(per_table[t]) + (rng.random() < per_table[t] % 1)
                    if n:
                        values = [templates[t][c] for c in cols]
                        await conn.executemany(sql, [(pid, *values)] * n)
        return resources_per_tx

    return op


_READ_SQL = (
    "SELECT pid, version, last_updated, deleted, content::text FROM resource WHERE res_type = $1 AND res_id = $2"
)
_REF_SQL = (
    "SELECT r.pid, r.content::text FROM idx_reference i JOIN resource r ON r.pid = i.pid "
    "WHERE i.res_type = 'Observation' AND i.param = 'subject' AND i.target_type = 'Patient' "
    "AND i.target_id = $1 AND NOT r.deleted ORDER BY r.pid LIMIT 21"
)
_COMP_SQL = (
    "SELECT r.pid, r.content::text FROM resource r WHERE NOT r.deleted AND r.pid IN "
    "(SELECT pid FROM idx_compartment WHERE comp_type = 'Patient' AND comp_id = $1)"
)
#: Baseline name -> what its unit counts.
UNITS = {
    "pk_read": "tx",
    "ref_lookup": "rows",
    "compartment": "rows",
    "write_1": "resources",
    "write_bundle": "resources",
}


class RawBench:
    """The raw operations on one database; :meth:`measure` runs one of them right after the hub workload
    it is the baseline of, so both see the same (noisy) machine."""

    def __init__(self, dsn: str, concurrency: int) -> None:
        self.dsn = dsn
        self.concurrency = concurrency
        self.pool: Any = None
        self.sample: dict[str, Any] = {}
        self.templates: dict[str, dict[str, Any]] = {}

    async def refresh(self) -> None:
        """(Re)read keys and row shapes from the data as loaded now; (re)create the write tables."""
        if self.pool is None:
            self.pool = await _pool(self.dsn, self.concurrency)
        async with self.pool.acquire() as conn:
            self.sample = await _sample(conn)
            self.templates = await _index_rows(conn)
            await _prepare_schema(conn)

    async def close(self) -> None:
        if self.pool is not None:
            async with self.pool.acquire() as conn:
                await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await self.pool.close()
            self.pool = None

    def _op(self, name: str, bundle_size: int) -> Callable[[Any, int], Awaitable[int]]:
        keys, patients = self.sample["keys"], self.sample["patients"]

        async def pk_read(conn: Any, i: int) -> int:
            await conn.fetchrow(_READ_SQL, *keys[i % len(keys)])
            return 1

        async def ref_lookup(conn: Any, i: int) -> int:
            return len(await conn.fetch(_REF_SQL, patients[i % len(patients)]))

        async def compartment(conn: Any, i: int) -> int:
            return len(await conn.fetch(_COMP_SQL, patients[i % len(patients)]))

        ops: dict[str, Callable[[], Callable[[Any, int], Awaitable[int]]]] = {
            "pk_read": lambda: pk_read,
            "ref_lookup": lambda: ref_lookup,
            "compartment": lambda: compartment,
            "write_1": lambda: _writer(self.sample, self.templates, 1),
            "write_bundle": lambda: _writer(self.sample, self.templates, bundle_size),
        }
        return ops[name]()

    async def measure(self, name: str, *, max_ops: int, max_seconds: float, bundle_size: int = 16) -> dict[str, Any]:
        if not self.sample:
            await self.refresh()
        if name == "write_bundle":
            max_ops = max(10, max_ops // bundle_size)
        out = await _loop(
            self.pool,
            name,
            self._op(name, bundle_size),
            concurrency=self.concurrency,
            max_ops=max_ops,
            max_seconds=max_seconds,
            unit=UNITS[name],
        )
        if name == "write_bundle":
            out["resources_per_tx"] = bundle_size
        out["avg_content_bytes"] = self.sample["avg_content_bytes"]
        return out


async def baselines(
    dsn: str, *, concurrency: int, max_ops: int, max_seconds: float, bundle_size: int
) -> dict[str, Any]:
    """Every raw baseline, one after the other, measured now on the loaded database."""
    bench = RawBench(dsn, concurrency)
    try:
        await bench.refresh()
        out: dict[str, Any] = {"sample": {k: bench.sample[k] for k in ("per_table", "avg_content_bytes")}}
        for name in UNITS:
            out[name] = await bench.measure(name, max_ops=max_ops, max_seconds=max_seconds, bundle_size=bundle_size)
        return out
    finally:
        await bench.close()


__all__ = ["UNITS", "RawBench", "baselines"]

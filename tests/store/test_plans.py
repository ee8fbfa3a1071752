"""Which pool a statement runs on: lookups by key may keep generic plans on PostgreSQL, searches
always get a plan for their own values (a generic plan made a care plan search 500x slower)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, text

from hub.store.db import Database


async def _plan_mode(db: Database, kind: str) -> str:
    async with getattr(db, kind)() as conn:
        if db.is_sqlite:
            return "sqlite"
        return str((await conn.execute(text("SHOW plan_cache_mode"))).scalar())


async def test_lookups_and_keyed_writes_keep_generic_plans_and_reads_and_writes_do_not(
    database_url: str, backend: str
) -> None:
    db = Database(database_url, pool_size=8)
    audit = Database(database_url, pool_size=2, custom_plans=False)
    try:
        modes = {kind: await _plan_mode(db, kind) for kind in ("lookup", "read", "write")}
        async with db.write(keyed=True) as conn:
            keyed = "sqlite" if db.is_sqlite else str((await conn.execute(text("SHOW plan_cache_mode"))).scalar())
        if backend == "sqlite":
            assert db.engines == (db.engine,)
            return
        assert modes == {"lookup": "force_generic_plan", "read": "force_custom_plan", "write": "force_custom_plan"}
        assert keyed == "force_generic_plan"  # a write of one resource by id finds every row by key
        assert await _plan_mode(audit, "write") == "auto"
        assert audit.engines == (audit.engine,)
        # The two pools together open no more connections than the one pool did (2 * pool_size).
        pools = [e.sync_engine.pool for e in db.engines]
        assert sum(p.size() + p._max_overflow for p in pools) == 16  # type: ignore[attr-defined]
    finally:
        await db.dispose()
        await audit.dispose()


@contextmanager
def statements_by_pool(db: Database) -> Iterator[dict[str, list[str]]]:
    """The statements run on each pool ("main", "lookup") while the block runs."""
    seen: dict[str, list[str]] = {"main": [], "lookup": []}

    def on(name: str) -> Any:
        def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
            seen[name].append(statement)

        return record

    listeners = [(db.engine.sync_engine, on("main"))]
    if db.lookup_engine is not db.engine:
        listeners.append((db.lookup_engine.sync_engine, on("lookup")))
    for engine, fn in listeners:
        event.listen(engine, "before_cursor_execute", fn)
    try:
        yield seen
    finally:
        for engine, fn in listeners:
            event.remove(engine, "before_cursor_execute", fn)


async def test_a_read_by_id_runs_on_the_lookup_pool_and_a_search_does_not(
    hub_app: Any, client: httpx.AsyncClient, backend: str
) -> None:
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Plan"}]})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    db: Database = hub_app.state.services.repo.db
    with statements_by_pool(db) as seen:
        r = await client.get(f"/fhir/Patient/{pid}")
        assert r.status_code == 200
        read = {k: list(v) for k, v in seen.items()}
        for v in seen.values():
            v.clear()
        r = await client.get("/fhir/Patient", params={"family": "Plan"})
        assert r.status_code == 200 and r.json()["total"] == 1
        search = {k: list(v) for k, v in seen.items()}
    if backend == "sqlite":  # one pool
        assert read["main"] and search["main"]
        return
    assert any("FROM resource" in s for s in read["lookup"]), read
    assert not any("FROM resource" in s for s in read["main"]), read["main"]
    assert any("FROM resource" in s for s in search["main"]) and not search["lookup"], search


async def test_writes_by_id_run_on_the_lookup_pool_and_a_conditional_create_does_not(
    hub_app: Any, client: httpx.AsyncClient, backend: str
) -> None:
    db: Database = hub_app.state.services.repo.db
    with statements_by_pool(db) as seen:
        patient = {"resourceType": "Patient", "name": [{"family": "Keyed"}]}
        r = await client.post("/fhir/Patient", json=patient)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        r = await client.put(f"/fhir/Patient/{pid}", json={**patient, "id": pid, "gender": "female"})
        assert r.status_code == 200, r.text
        r = await client.delete(f"/fhir/Patient/{pid}")
        assert r.status_code == 200, r.text
        by_id = {k: list(v) for k, v in seen.items()}
        for v in seen.values():
            v.clear()
        r = await client.post("/fhir/Patient", json=patient, headers={"If-None-Exist": "family=Keyed-Conditional"})
        assert r.status_code == 201, r.text
        conditional = {k: list(v) for k, v in seen.items()}
    if backend == "sqlite":  # one pool
        assert by_id["main"] and conditional["main"]
        return
    writes = [s for s in by_id["lookup"] if "INSERT INTO resource" in s or "UPDATE resource" in s]
    assert len(writes) == 3, by_id["lookup"]
    assert not any("resource" in s for s in by_id["main"]), by_id["main"]
    assert any("INSERT INTO resource" in s for s in conditional["main"]), conditional
    assert not any("resource" in s for s in conditional["lookup"]), conditional["lookup"]


async def test_a_pinned_search_runs_on_the_lookup_pool(hub_app: Any, client: httpx.AsyncClient, backend: str) -> None:
    """A search that names its matches by key (here a literal reference) may keep a generic plan."""
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Pinned"}]})
    pid = r.json()["id"]
    db: Database = hub_app.state.services.repo.db
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    if db.lookup_engine is db.engine:
        return  # one pool (SQLite)
    event.listen(db.lookup_engine.sync_engine, "before_cursor_execute", record)
    try:
        r = await client.get("/fhir/Observation", params={"subject": f"Patient/{pid}", "status": "final"})
        assert r.status_code == 200
    finally:
        event.remove(db.lookup_engine.sync_engine, "before_cursor_execute", record)
    assert any("FROM idx_reference" in s and "idx_token.pid = resource.pid" in s for s in seen), seen


_OBSERVATIONS = [
    ("final", "1-1", "2024-01-05"),
    ("final", "2-2", "2025-06-01"),
    ("amended", "1-1", "2025-07-01"),
    ("preliminary", "3-3", "2026-02-01"),
]

#: Pinned searches, each with criteria the stable form checks per row.
_PINNED = [
    [("status", "final")],
    [("code", "http://loinc.org|1-1")],
    [("code", "http://loinc.org|1-1"), ("status", "final,amended")],
    [("date", "ge2025-01-01"), ("date", "lt2026-01-01")],
    [("status", "cancelled")],
    [("_lastUpdated", "ge2020-01-01"), ("code", "2-2,3-3")],
]


async def test_the_stable_form_finds_what_the_plain_form_finds(
    hub_app: Any, client: httpx.AsyncClient, backend: str
) -> None:
    """Differential: criteria checked per row (the form a generic plan may run) select exactly the
    rows the plain semi-joins select, on both databases."""
    from hub.access.decision import SYSTEM

    ids = []
    for _ in range(2):
        r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Diff"}]})
        ids.append(r.json()["id"])
    for patient in ids:
        for status, code, date in _OBSERVATIONS:
            obs = {
                "resourceType": "Observation",
                "status": status,
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": date,
            }
            assert (await client.post("/fhir/Observation", json=obs)).status_code == 201
    services = hub_app.state.services
    search = services.search
    async with services.repo.db.read() as conn:
        for extra in _PINNED:
            params = [("subject", f"Patient/{ids[0]}"), *extra, ("_count", "50")]
            query = search.parse("Observation", params, strict=True)
            assert search.plan_stable(query)
            found = []
            for stable in (False, True):
                stmt = search.page_statement(query, visible=SYSTEM.sql_filter, stable=stable)
                found.append(sorted(row[0] for row in (await conn.execute(stmt)).all()))
            assert found[0] == found[1], (extra, found)
        # and through the API, the answer of each is the same as its plain form's
        r = await client.get("/fhir/Observation", params=[("subject", f"Patient/{ids[0]}"), ("status", "final")])
        assert r.json()["total"] == 2

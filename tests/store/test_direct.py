"""The read-by-id statement run on the asyncpg connection (hub.store.direct) answers exactly what the
same statement answers through SQLAlchemy: the same rows, the same access decision, the same
clients, and the same errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import bindparam, event, literal, select, text
from sqlalchemy.exc import DBAPIError

from hub.access.decision import SYSTEM
from hub.access.policy import build_policy
from hub.store import resources as dao
from hub.store.db import Database
from hub.store.direct import DirectQuery
from tests.api.test_operations import C1, HUISARTS, STRANGER, demo  # noqa: F401  (fixture)
from tests.conftest import DEFAULT_AS, token_for_app

CALLERS = (HUISARTS, STRANGER, DEFAULT_AS, f"client:{C1}", "client:999990019", "admin")


async def _policies(hub_app: Any) -> list[Any]:
    verifier = hub_app.state.services.verifier
    out: list[Any] = [SYSTEM]
    for spec in CALLERS:
        principal = await verifier.verify(token_for_app(hub_app, spec))
        out.append(await build_policy(None, principal))
    return out


@contextmanager
def observed_lookups(db: Database) -> Iterator[list[str]]:
    """The statements run on the lookup pool while the block runs (someone listening to them turns
    the driver's path off)."""
    seen: list[str] = []

    def listen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    event.listen(db.lookup_engine.sync_engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(db.lookup_engine.sync_engine, "before_cursor_execute", listen)


async def deleted_observation(client_as: Any, patient: str, label: str) -> str:
    """The id of an Observation of ``patient`` the huisarts created and deleted (its row stays)."""
    r = await client_as(HUISARTS).post(
        "/fhir/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": label},
            "subject": {"reference": f"Patient/{patient}"},
        },
    )
    assert r.status_code == 201, r.text
    gone = str(r.json()["id"])
    assert (await client_as(HUISARTS).delete(f"/fhir/Observation/{gone}")).status_code in (200, 204)
    return gone


async def test_direct_read_matches_the_sqlalchemy_read(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
) -> None:
    db = hub_app.state.services.repo.db
    if backend != "postgresql":
        assert not db.direct_lookups  # the driver path is asyncpg's; SQLite reads never take it
        return
    # a deleted resource too: its row is still there, with deleted set and no content
    gone = await deleted_observation(client_as, demo[C1], "direct")
    async with db.lookup() as conn:
        keys = [(t, i) for t, i in (await conn.execute(text("SELECT res_type, res_id FROM resource"))).all()]
    keys += [("Patient", "no-such-id"), ("Observation", gone)]
    assert len(keys) > 20
    policies = await _policies(hub_app)
    seen_visible = seen_hidden = 0
    for policy in policies:
        for res_type, res_id in keys:
            async with db.lookup() as conn:
                slow = await dao.get_current_checked(conn, res_type, res_id, policy)
            async with db.lookup_driver() as fairy:
                fast = await dao.get_current_checked_direct(fairy, db.lookup_engine.dialect, res_type, res_id, policy)
            assert fast == slow, (policy, res_type, res_id)
            seen_visible += bool(slow[0] is not None and slow[1])
            seen_hidden += bool(slow[0] is not None and not slow[1])
    assert seen_visible and seen_hidden  # both decisions were compared


async def test_direct_read_is_taken_when_nothing_observes_the_statements(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[str] = []
    original = DirectQuery.arguments

    def counted(self: DirectQuery, params: Any) -> Any:
        if "read_id" in params:  # (the audit writer's appends take the driver's path too)
            runs.append(params["read_id"])
        return original(self, params)

    monkeypatch.setattr(DirectQuery, "arguments", counted)
    r = await client_as(HUISARTS).get(f"/fhir/Patient/{demo[C1]}")
    assert r.status_code == 200
    assert r.json()["id"] == demo[C1]
    assert runs == ([demo[C1]] if backend == "postgresql" else [])
    # with someone listening to the lookup pool's statements, reads go through SQLAlchemy (they see it)
    db = hub_app.state.services.repo.db
    with observed_lookups(db) as seen:
        assert not db.direct_lookups
        r = await client_as(HUISARTS).get(f"/fhir/Patient/{demo[C1]}")
    assert r.status_code == 200
    assert len(runs) == (1 if backend == "postgresql" else 0)
    assert any("FROM resource" in s for s in seen)
    assert db.direct_lookups == (backend == "postgresql")


@pytest.mark.parametrize("lengths", [(0, 0), (1, 3), (3, 1), (2, 2)])
async def test_lists_of_every_length_give_their_own_statement(
    hub_app: Any, backend: str, lengths: tuple[int, int]
) -> None:
    db = hub_app.state.services.repo.db
    if backend != "postgresql":
        assert db.is_sqlite  # the driver path is asyncpg's; SQLite reads never take it (see above)
        return
    stmt = select(
        literal("x").in_(bindparam("a", expanding=True)).label("in_a"),
        literal(2).in_(bindparam("b", expanding=True)).label("in_b"),
        bindparam("c").label("c"),
        literal("fixed").label("fixed"),
    )
    params = {"a": ["x", "y", "z"][: lengths[0]], "b": [1, 2, 3][: lengths[1]], "c": "plain"}
    query = DirectQuery(stmt, db.lookup_engine.dialect)
    async with db.lookup() as conn:
        slow = (await conn.execute(stmt, params)).first()
    async with db.lookup_driver() as fairy:
        fast = await query.fetchrow(fairy, params)
        again = await query.fetchrow(fairy, {**params, "c": "other"})  # the cached form, other values
    assert fast is not None and slow is not None and again is not None
    assert tuple(fast) == tuple(slow)
    assert tuple(again)[2] == "other"


async def test_driver_errors_come_out_as_sqlalchemy_errors(hub_app: Any, backend: str) -> None:
    db = hub_app.state.services.repo.db
    if backend != "postgresql":
        assert db.is_sqlite  # the driver path is asyncpg's; SQLite reads never take it
        return
    stmt = select((literal(1) / bindparam("z", type_=literal(1).type)).label("q"))
    async with db.lookup() as conn:
        with pytest.raises(DBAPIError) as slow:
            await conn.execute(stmt, {"z": 0})
    async with db.lookup_driver() as fairy:
        with pytest.raises(DBAPIError) as fast:
            await DirectQuery(stmt, db.lookup_engine.dialect).fetchrow(fairy, {"z": 0})
        # the connection is still usable after the error
        assert await fairy.driver_connection.fetchval("SELECT 1") == 1  # type: ignore[union-attr]
    assert type(fast.value) is type(slow.value)
    assert type(fast.value.orig) is type(slow.value.orig)
    assert getattr(fast.value.orig, "sqlstate", None) == getattr(slow.value.orig, "sqlstate", None) == "22012"


async def test_held_lookup_connections_are_reused_capped_and_discarded_after_a_failure(
    database_url: str, backend: str
) -> None:
    db = Database(database_url, pool_size=8)  # a lookup pool of 4 on PostgreSQL; 2 of them held
    try:
        if backend != "postgresql":
            assert not db.direct_lookups
            return
        held = db._driver_lookups
        assert held.keep == 2
        async with db.lookup_driver() as first:
            pid = await first.driver_connection.fetchval("SELECT pg_backend_pid()")  # type: ignore[union-attr]
        async with db.lookup_driver() as again:  # the same session, without a pool checkout
            assert await again.driver_connection.fetchval("SELECT pg_backend_pid()") == pid  # type: ignore[union-attr]
        # three at once: two held, the third checked out of the pool for its one use
        async with db.lookup_driver() as a, db.lookup_driver() as b, db.lookup_driver() as c:
            pids = {await f.driver_connection.fetchval("SELECT pg_backend_pid()") for f in (a, b, c)}  # type: ignore[union-attr]
            assert len(pids) == 3
        assert held._held == 2 and len(held._idle) == 2
        pool = db.lookup_engine.sync_engine.pool
        assert pool.checkedout() == 2  # type: ignore[attr-defined]
        # a failed use is not reused: its session may be mid-statement
        with pytest.raises(DBAPIError):
            async with db.lookup_driver() as broken:
                await DirectQuery(
                    select(literal(1) / bindparam("z", type_=literal(1).type)), db.lookup_engine.dialect
                ).fetchrow(broken, {"z": 0})
        assert held._held == 1 and len(held._idle) == 1
        async with db.lookup_driver() as fresh:
            assert await fresh.driver_connection.fetchval("SELECT 1") == 1  # type: ignore[union-attr]
    finally:
        await db.dispose()
    assert db.lookup_engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_more_concurrent_reads_than_lookup_connections_all_finish(database_url: str, backend: str) -> None:
    """Held connections are counted before their checkout awaits: with more readers at once than the
    lookup pool has connections, no more than ``keep`` stay held and the rest go back to the pool
    (counted after the await, every reader held one and the pool ran dry: a 30 s timeout)."""
    db = Database(database_url, pool_size=8)
    try:
        if backend != "postgresql":
            assert not db.direct_lookups
            return

        async def read() -> int:
            async with db.lookup_driver() as fairy:
                await asyncio.sleep(0.01)  # all of them inside at once
                return int(await fairy.driver_connection.fetchval("SELECT 1"))  # type: ignore[union-attr]

        results = await asyncio.wait_for(asyncio.gather(*(read() for _ in range(32))), timeout=20)
        assert results == [1] * 32
        held = db._driver_lookups
        assert held._held == len(held._idle) <= held.keep
        assert db.lookup_engine.sync_engine.pool.checkedout() == held._held  # type: ignore[attr-defined]
    finally:
        await db.dispose()

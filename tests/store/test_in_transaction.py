"""A write transaction's statements run on the asyncpg connection (hub.store.direct.InTransaction) do
what the same statements do through SQLAlchemy: the same rows, in the same transaction (committed
and rolled back with it), after the Bundle's waiting creates they may read (hub.store.pg_batch), with
SQLAlchemy's errors; and through SQLAlchemy whenever someone listens to the statements."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, event, func, select, text
from sqlalchemy.exc import IntegrityError

from hub.access.tables import organisation
from hub.fhir import jsonio
from hub.fhir.extract import extract
from hub.fhir.searchparams import load_registry
from hub.store import pg_batch, resources
from hub.store.db import Database
from hub.store.direct import InTransaction
from hub.store.tables import resource
from tests.conformance.examples import ALL

_COUNT = select(func.count()).select_from(resource).where(resource.c.res_id == bindparam("id"))
_SEES_WAITING = InTransaction(_COUNT)
_SEES_NONE = InTransaction(_COUNT.execution_options(**{pg_batch.READS: frozenset({"Organization"})}))
_REGISTER = InTransaction(
    text(
        "INSERT INTO organisation (ura, name, kind, types, active, created) "
        "VALUES (:ura, 'x', 'gemeente', '[]', true, 1)"
    )
)


async def _wait_create(conn: Any, res_id: str) -> None:
    """A Patient create that waits in the transaction's buffer (PostgreSQL; SQLite writes it at once)."""
    res = {**ALL["zorgnet-Patient"](), "id": res_id}
    pg_batch.start(conn, 2)
    await resources.insert_new(
        conn, "Patient", res_id, jsonio.dumps(res).decode(), 1, "POST", extract(res, load_registry()), server_id=True
    )


async def test_statements_see_the_waiting_creates_they_may_read_and_commit_with_the_transaction(
    fresh_db: Database,
) -> None:
    async with fresh_db.write() as conn:
        await _wait_create(conn, "tx-1")
        waits = not fresh_db.is_sqlite
        assert (await _SEES_NONE.fetch(conn, {"id": "tx-1"}))[0][0] == (0 if waits else 1)
        buffer = pg_batch.buffer_of(conn)
        assert (buffer is not None and len(buffer.pending) == 1) == waits  # (still waiting)
        assert (await _SEES_WAITING.fetch(conn, {"id": "tx-1"}))[0][0] == 1  # written first
        await _REGISTER.execute(conn, {"ura": "00000777"})
    async with fresh_db.read() as conn:
        assert (await conn.execute(_COUNT, {"id": "tx-1"})).scalar() == 1
        ura = (await conn.execute(select(organisation.c.ura).where(organisation.c.ura == "00000777"))).scalar()
        assert ura == "00000777"


async def test_a_rolled_back_transaction_keeps_nothing_its_driver_statements_wrote(fresh_db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with fresh_db.write() as conn:
            await _wait_create(conn, "tx-2")
            assert (await _SEES_WAITING.fetch(conn, {"id": "tx-2"}))[0][0] == 1
            await _REGISTER.execute(conn, {"ura": "00000778"})
            raise RuntimeError("abandon")
    async with fresh_db.read() as conn:
        assert (await conn.execute(_COUNT, {"id": "tx-2"})).scalar() == 0
        assert (await conn.execute(select(organisation.c.ura).where(organisation.c.ura == "00000778"))).first() is None


async def test_driver_errors_come_out_as_sqlalchemy_errors_and_roll_back(fresh_db: Database) -> None:
    async with fresh_db.write() as conn:
        await _REGISTER.execute(conn, {"ura": "00000779"})
    with pytest.raises(IntegrityError):
        async with fresh_db.write() as conn:
            await _REGISTER.execute(conn, {"ura": "00000779"})  # the same key again


async def test_statements_go_through_sqlalchemy_while_someone_listens(fresh_db: Database) -> None:
    seen: list[str] = []

    def listen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    event.listen(fresh_db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        async with fresh_db.write() as conn:
            assert (await _SEES_WAITING.fetch(conn, {"id": "none"}))[0][0] == 0
    finally:
        event.remove(fresh_db.engine.sync_engine, "before_cursor_execute", listen)
    assert any("count(*)" in s for s in seen)  # (seen: it ran through SQLAlchemy)

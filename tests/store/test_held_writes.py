"""Writes of one resource by id on PostgreSQL take a held ``AsyncConnection`` (``HeldWriteConnections``
in ``hub.store.db``): the same session again without a pool checkout, a transaction begun only by a
statement through SQLAlchemy and committed, and a connection whose use failed or left a transaction
open given back to the pool, not kept."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.store.db import Database, on_its_own


async def _backend_pid(db: Database) -> int:
    async with db.write(keyed=True) as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_keyed_writes_reuse_a_held_connection_and_drop_a_failed_one(database_url: str, backend: str) -> None:
    db = Database(database_url, pool_size=8)
    try:
        if backend != "postgresql":
            return
        await db.ping()  # (the schema is not needed: statements of their own)
        held = db._keyed_writes
        first = await _backend_pid(db)
        assert await _backend_pid(db) == first  # the same session, kept between writes
        assert held._held == 1 and len(held._idle) == 1
        async with db.write(keyed=True) as conn:
            async with on_its_own(conn) as alone:  # nothing sent yet: a statement commits on its own
                assert alone
                await conn.execute(text("SELECT 1"))
            assert not (await conn.get_raw_connection()).dbapi_connection._transaction  # type: ignore[union-attr]
        assert len(held._idle) == 1
        # a statement through SQLAlchemy begins the transaction; it commits when the block ends
        async with db.write(keyed=True) as conn:
            await conn.execute(text("SELECT 1"))
            assert conn.in_transaction()
        assert len(held._idle) == 1 and not held._idle[0].in_transaction()
        # a failed use is not kept: the connection goes back to the pool, rolled back
        with pytest.raises(ZeroDivisionError):
            async with db.write(keyed=True) as conn:
                await conn.execute(text("SELECT 1"))
                raise ZeroDivisionError
        assert held._held == 0 and not held._idle
        assert await _backend_pid(db) > 0
    finally:
        await db.dispose()
    assert db.lookup_engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]

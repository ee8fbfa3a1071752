"""The deferred work of a write transaction (hub/store/deferred.py): what a settle does, in and out of a scope."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store import deferred


class _Conn:
    """What :mod:`hub.store.deferred` keeps its state in: the connection's ``info``."""

    def __init__(self) -> None:
        self.info: dict[Any, Any] = {}


def _conn() -> AsyncConnection:
    return cast(AsyncConnection, _Conn())


def _recorder(done: list[set[str]]) -> deferred.Settle:
    async def settle(_conn: Any, items: set[str]) -> None:
        done.append(set(items))

    return settle


async def test_a_settle_does_all_that_is_owed_once() -> None:
    conn, done = _conn(), list[set[str]]()
    work = _recorder(done)
    deferred.owe(conn, work, ["a", "b"])
    deferred.owe(conn, work, ["b", "c"])
    assert deferred.owed(conn) == {"a", "b", "c"}
    await deferred.settle(conn)
    await deferred.settle(conn)
    assert done == [{"a", "b", "c"}]
    assert not deferred.owed(conn)


async def test_in_a_scope_nothing_is_done_unless_the_scope_is_owed() -> None:
    conn, done = _conn(), list[set[str]]()
    work = _recorder(done)
    deferred.owe(conn, work, ["a", "b"])
    with deferred.scoped(conn, ["c"]):
        await deferred.settle(conn)
    assert done == []  # what the scope's reads depend on was not owed
    with deferred.scoped(conn, ["b", "c"]):
        await deferred.settle(conn)
    assert done == [{"a", "b"}]  # owed for the scope: all of it, in one go
    assert not deferred.owed(conn)


async def test_a_scope_does_not_narrow_an_explicit_settle_and_ends_with_its_block() -> None:
    conn, done = _conn(), list[set[str]]()
    work = _recorder(done)
    deferred.owe(conn, work, ["a", "b"])
    with deferred.scoped(conn, ["c"]):
        await deferred.settle(conn, ["a"])
    assert done == [{"a"}]
    await deferred.settle(conn)  # (outside the scope: everything)
    assert done == [{"a"}, {"b"}]

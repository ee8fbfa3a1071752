"""Work a write transaction owes, done once for the whole transaction instead of once per write.

Every write of a transaction Bundle's entries asks for the access facts of its clients to be
recomputed (:func:`hub.access.facts.recompute`); done per write, that is half the statements of a
Bundle. The writes instead *owe* the work here, keyed by client; it is done once, for every client
owed, before anything reads what it produces (:func:`settle`, called by the access checks and by
every read through an access filter) and before the transaction commits (:meth:`hub.store.db.Database.write`).
A commit with work still owed is refused (:func:`refuse_unsettled`), so no path can commit stale facts.

What is owed lives in the connection's ``info`` for the length of one transaction; so do the
transaction's memos (:func:`memo`: lookups a Bundle's writes would otherwise repeat).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

_KEY = "hub.deferred"
_WRITING = "hub.deferred.writing"
_MEMO = "hub.deferred.memo"
_SCOPE = "hub.deferred.scope"

#: Does the owed work for these items (e.g. client ids), in the caller's transaction.
Settle = Callable[[AsyncConnection, set[str]], Awaitable[None]]


def owe(conn: AsyncConnection, settle_fn: Settle, items: Iterable[str]) -> None:
    """Note that ``settle_fn`` is owed for ``items`` before the transaction reads or commits."""
    items = set(items)
    if not items:
        return
    owed: dict[Settle, set[str]] = conn.info.setdefault(_KEY, {})
    owed.setdefault(settle_fn, set()).update(items)


def owed(conn: AsyncConnection) -> set[str]:
    """The items the transaction on ``conn`` owes work for (empty: none)."""
    pending: dict[Settle, set[str]] | None = conn.info.get(_KEY)
    return set().union(*pending.values()) if pending else set()


@contextmanager
def scoped(conn: AsyncConnection, items: Iterable[str]) -> Iterator[None]:
    """Within this block a settle of everything (``settle(conn)``) is needed only when work for
    ``items`` is owed: then it does all of it (at the cost of one), else nothing.

    For a write's checks on the resource it replaces: whether the caller may see that resource
    depends on the access facts of its own clients only, so a Bundle updating many clients'
    networks need not recompute the clients its earlier entries concern before each entry; what
    they owe is done once, later (at the latest before the commit). The block must read nothing
    through an access filter but what concerns ``items``."""
    previous = conn.info.get(_SCOPE)
    conn.info[_SCOPE] = set(items) if previous is None else previous & set(items)
    try:
        yield
    finally:
        if previous is None:
            conn.info.pop(_SCOPE, None)
        else:
            conn.info[_SCOPE] = previous


async def settle(conn: AsyncConnection, only: Iterable[str] | None = None) -> None:
    """Do the owed work now: all of it, or (``only``) that for these items (work that concerns one
    item only: the access facts of one client depend on that client's rows only). Inside
    :func:`scoped`, "all of it" only when work for the scope's items is owed."""
    owed: dict[Settle, set[str]] | None = conn.info.get(_KEY)
    if not owed:
        return
    scope: set[str] | None = conn.info.get(_SCOPE)
    if only is None and scope is not None and not any(scope & pending for pending in owed.values()):
        return  # nothing the scope's reads depend on is owed
    wanted = None if only is None else set(only)
    for settle_fn in list(owed):
        pending = owed[settle_fn]
        now = pending if wanted is None else pending & wanted
        if not now:
            continue
        if now is pending:
            del owed[settle_fn]
        else:
            pending -= now
            if not pending:
                del owed[settle_fn]
        await settle_fn(conn, now)
    if not owed:
        conn.info.pop(_KEY, None)


def begin(conn: AsyncConnection) -> None:
    """A write transaction (:meth:`hub.store.db.Database.write`) starts on ``conn``: memos may be kept,
    and nothing is owed yet (whatever a broken earlier transaction owed was rolled back with it)."""
    _drop(conn.info)
    conn.info[_WRITING] = _transaction(conn)


def _transaction(conn: AsyncConnection) -> Any:
    sync = conn.sync_connection
    return None if sync is None else sync.get_transaction()


def memo(conn: AsyncConnection, name: str) -> dict[Any, Any] | None:
    """This write transaction's memo called ``name`` (None outside a write transaction: nothing is
    remembered there). The writer of what a memo remembers clears it (:func:`clear_memo`)."""
    info = conn.info
    writing = info.get(_WRITING)
    if writing is None or writing is not _transaction(conn):
        return None  # (a mark left by a transaction that ended without clearing it counts for nothing)
    memos: dict[str, dict[Any, Any]] = info.setdefault(_MEMO, {})
    return memos.setdefault(name, {})


def clear_memo(conn: AsyncConnection, name: str) -> None:
    memos = conn.info.get(_MEMO)
    if memos:
        memos.pop(name, None)


def _drop(info: dict[Any, Any]) -> Any:
    info.pop(_WRITING, None)
    info.pop(_MEMO, None)
    info.pop(_SCOPE, None)
    return info.pop(_KEY, None)


def forget(conn: AsyncConnection) -> None:
    """The transaction ended (rolled back, or settled and committed): nothing is owed any more.
    (A connection that broke cannot be asked; what it owed is recomputed, harmlessly, by the next
    transaction on it.)"""
    if conn.invalidated:  # (asking its info would try to reconnect)
        return
    with suppress(SQLAlchemyError):
        _drop(conn.info)


def refuse_unsettled(sync_conn: Any) -> None:
    """A ``commit`` event listener: committing with work still owed would store stale facts (the
    transaction is then rolled back, and owes nothing)."""
    if _drop(sync_conn.info):
        raise RuntimeError("a write transaction is committing with derived facts not yet recomputed")


def forget_on_rollback(sync_conn: Any) -> None:
    """A ``rollback`` event listener: what a rolled-back transaction owed is owed no more. (A
    connection broken mid-transaction, e.g. a request cancelled when its client went away, cannot
    be asked: :func:`begin` drops what it owed when the next write transaction starts on it.)"""
    if sync_conn.invalidated:  # (asking its info would try to reconnect)
        return
    with suppress(SQLAlchemyError):
        _drop(sync_conn.info)

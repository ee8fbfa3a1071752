"""A SQLAlchemy statement compiled once and run straight on the asyncpg connection.

For the hottest lookups by key (a read by id: one statement per request; the statements of a search
that names its matches by key; the audit trail's named-client lookups). Going through
SQLAlchemy's execution layer for such a statement costs several times what asyncpg itself does
(measured on a checked read-by-id: 150 µs of CPU through ``AsyncConnection.execute`` against 22 µs
for the same prepared statement on the driver connection): the greenlet switch, the execution
context, the expansion of ``IN`` lists on every run, the result object. Here the statement is
compiled by SQLAlchemy's own PostgreSQL compiler (the same SQL text, so the same prepared
statement and plan) once per length of each ``IN`` list, and each run only orders the values and
calls the driver. Errors come out as SQLAlchemy's do (``DBAPIError`` with the driver's error as
``orig``), so callers handle them the same way.

:class:`DirectQuery` is for statements that read, on a connection in no transaction (each statement
commits on its own, as on the lookup pool's autocommit connections). :class:`InTransaction` runs the
fixed statements of a write transaction (a transaction Bundle's access facts, its recompute's lookups)
the same way, on the driver connection under the transaction's ``AsyncConnection``: begun as the
adapter begins it, after the Bundle's waiting creates are written (:mod:`hub.store.pg_batch`), and
through SQLAlchemy whenever someone listens to the statements (statement counts, tracing) or on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

#: One positional value: from the caller's parameter ``name`` (``index`` into it when it is an
#: expanded list) or a value fixed in the statement itself, with its bind processor if any.
_Slot = tuple[str | None, int | None, Any, Callable[[Any], Any] | None]

#: Most compiled forms kept per statement (one per combination of list lengths).
MAX_FORMS = 64


class DirectQuery:
    """``statement`` for ``dialect`` (PostgreSQL + asyncpg), run on the driver connection."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        self.statement = statement
        self.dialect = dialect
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # a statement, not DDL
        self._compiled = compiled
        self._expanding = tuple(name for name, bind in self._compiled.binds.items() if bind.expanding)
        # An array of values the driver takes as they are: SQLAlchemy's processor only copies the
        # list (per element, in Python: 4% of the crud workload's CPU for a write's 40 arrays).
        self._as_they_are = frozenset(
            name
            for name, bind in self._compiled.binds.items()
            if isinstance(bind.type, ARRAY)
            and bind.type.item_type.dialect_impl(dialect).bind_processor(dialect) is None
        )
        self._forms: dict[tuple[int, ...], tuple[str, tuple[_Slot, ...]]] = {}

    def _form(self, params: Mapping[str, Any]) -> tuple[str, tuple[_Slot, ...]]:
        """The SQL text and value order for the lengths of ``params``' lists (built on first use)."""
        key = tuple(len(params[n]) if n in params else -1 for n in self._expanding)
        form = self._forms.get(key)
        if form is not None:
            return form
        expanded = self._compiled.construct_expanded_state(dict(params))
        origin: dict[str, tuple[str, int | None]] = {}
        for name, names in expanded.parameter_expansion.items():
            for i, sub in enumerate(names):
                origin[sub] = (name, i)
        slots: list[_Slot] = []
        for position in expanded.positiontup or ():
            name, index = origin.get(position, (position, None))
            processor = None if name in self._as_they_are else expanded.processors.get(position)
            if name in params:
                slots.append((name, index, None, processor))
            else:  # a value of the statement itself (a literal, a fixed IN list)
                value = expanded.parameters[position]
                slots.append((None, None, processor(value) if processor else value, None))
        form = (expanded.statement, tuple(slots))
        if len(self._forms) < MAX_FORMS:
            self._forms[key] = form
        return form

    def arguments(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL text and its positional values for ``params``."""
        sql, slots = self._form(params)
        args: list[Any] = []
        for name, index, fixed, processor in slots:
            if name is None:
                args.append(fixed)
                continue
            value = params[name] if index is None else params[name][index]
            args.append(processor(value) if processor is not None else value)
        return sql, args

    async def fetch(self, fairy: PoolProxiedConnection, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Every row (tuple-like asyncpg Records), as :meth:`fetchrow`."""
        sql, args = self.arguments(params)
        try:
            return await fairy.driver_connection.fetch(sql, *args)  # type: ignore[union-attr]
        except Exception as exc:
            raise await _translated(fairy, self.dialect, exc, sql, args) from None

    async def fetchrow(self, fairy: PoolProxiedConnection, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row (a tuple-like asyncpg Record), or None, on a pooled connection checked out
        as it is (:meth:`hub.store.db.Database.lookup_driver`)."""
        sql, args = self.arguments(params)
        try:
            return await fairy.driver_connection.fetchrow(sql, *args)  # type: ignore[union-attr]
        except Exception as exc:
            raise await _translated(fairy, self.dialect, exc, sql, args) from None


class InTransaction:
    """``statement`` run in the transaction of an ``AsyncConnection`` on its asyncpg connection (the
    driver's cost, not SQLAlchemy's execution layer's), compiled once per length of its ``IN`` lists;
    through SQLAlchemy where :func:`_driver_in` says the driver may not take it. The rows are
    tuple-like either way (asyncpg Records or SQLAlchemy Rows: by position, not by attribute)."""

    __slots__ = ("_query", "reads", "statement")

    def __init__(self, statement: Executable) -> None:
        from hub.store import pg_batch  # (here: pg_batch takes its pids with one of these)

        self.statement = statement
        #: Which waiting creates it may read (pg_batch.READS; None: any, so all are written first).
        self.reads: frozenset[str] | None = statement.get_execution_options().get(pg_batch.READS)
        self._query: DirectQuery | None = None

    async def fetch(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Every row of the statement."""
        fairy = await _driver_in(conn, self.reads)
        if fairy is None:
            return (await conn.execute(self.statement, params)).all()
        rows: Sequence[Sequence[Any]] = await self._on_driver(fairy, conn.dialect, "fetch", params)
        return rows

    async def execute(self, conn: AsyncConnection, params: Mapping[str, Any]) -> None:
        """The statement, for its effect (a write)."""
        fairy = await _driver_in(conn, self.reads)
        if fairy is None:
            await conn.execute(self.statement, params)
            return
        await self._on_driver(fairy, conn.dialect, "execute", params)

    async def _on_driver(
        self, fairy: PoolProxiedConnection, dialect: Dialect, method: str, params: Mapping[str, Any]
    ) -> Any:
        """asyncpg's ``fetch`` or ``execute`` of the compiled statement; its errors as SQLAlchemy's."""
        sql, args = self._compiled(dialect).arguments(params)
        try:
            return await getattr(fairy.driver_connection, method)(sql, *args)
        except Exception as exc:
            raise await _translated(fairy, dialect, exc, sql, args) from None

    def _compiled(self, dialect: Dialect) -> DirectQuery:
        if self._query is None:
            self._query = DirectQuery(cast(ClauseElement, self.statement), dialect)
        return self._query


async def _driver_in(conn: AsyncConnection, reads: frozenset[str] | None) -> PoolProxiedConnection | None:
    """``conn``'s pooled connection, ready for a statement of its transaction on the driver: asyncpg,
    no one listening to its statements but the Bundle's own buffer (:func:`pg_batch.flush_before`),
    its transaction begun as the driver adapter begins it before a first statement (unless it runs
    autocommit, :func:`hub.store.db.on_its_own`), and the Bundle's waiting creates the statement may
    read written first, as :func:`pg_batch.flush_before` writes them before SQLAlchemy's. Else None."""
    from hub.store import pg_batch  # (here: pg_batch takes its pids with an InTransaction)

    sync = conn.sync_connection
    if conn.dialect.driver != "asyncpg" or sync is None or sync.invalidated or sync.closed:
        return None
    dispatch = sync.dispatch
    if dispatch.after_cursor_execute or any(fn is not pg_batch.flush_before for fn in dispatch.before_cursor_execute):
        return None
    fairy = sync.connection
    adapter: Any = fairy.dbapi_connection
    if adapter is None or (adapter.isolation_level != "autocommit" and not sync.in_transaction()):
        return None  # (a transaction SQLAlchemy has not begun would be one it never ends)
    try:
        if adapter._transaction is None and adapter.isolation_level != "autocommit":
            await adapter._start_transaction()  # (the adapter's own begin: its commit then ends it)
        waiting = pg_batch.waiting(conn, reads)
        if waiting is not None:
            sql, args = waiting
            await fairy.driver_connection.execute(sql, *args)  # type: ignore[union-attr]
    except Exception as exc:
        raise await _translated(fairy, conn.dialect, exc, "BEGIN / waiting creates", []) from None
    return fairy


async def on_its_own_driver(conn: AsyncConnection) -> PoolProxiedConnection | None:
    """``conn``'s pooled connection, when a statement on it commits on its own
    (:func:`hub.store.db.on_its_own`: asyncpg, its transaction not begun, autocommit for now) and no
    one listens to its engine's statements (statement counts, tracing: they see SQLAlchemy's); then
    the statement may run on the driver connection (:meth:`DirectQuery.fetchrow`). Else None."""
    if conn.dialect.driver != "asyncpg" or conn.invalidated:
        return None
    dispatch = conn.sync_engine.dispatch
    if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
        return None
    fairy = await pooled(conn)
    adapter: Any = fairy.dbapi_connection
    if adapter is None or adapter._transaction is not None or adapter.isolation_level != "autocommit":
        return None
    return fairy


async def pooled(conn: AsyncConnection) -> PoolProxiedConnection:
    """``conn``'s pooled connection (``AsyncConnection.get_raw_connection``), taken as it is when
    ``conn`` holds one (no greenlet switch: a write by id asked for it four times, 15-20 µs each)."""
    sync = conn.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        return sync.connection  # (held: returned as it is; only a closed or invalidated one reconnects)
    return await conn.get_raw_connection()


@dataclass(frozen=True, slots=True)
class DriverConnection:
    """A lookup connection checked out as the driver's (:meth:`hub.store.db.Database.lookup_driver`)
    with its dialect: what a search runs its statements on instead of an ``AsyncConnection``
    (:meth:`hub.store.search.engine.SearchEngine.execute`). In no transaction."""

    fairy: PoolProxiedConnection
    dialect: Dialect


async def _translated(
    fairy: PoolProxiedConnection, dialect: Dialect, exc: Exception, sql: str, args: list[Any]
) -> Exception:
    """The exception SQLAlchemy raises for ``exc`` of the driver (its adapter's translation, wrapped in
    ``DBAPIError``); a connection that is gone is invalidated, as SQLAlchemy would."""
    dbapi = dialect.loaded_dbapi
    adapted: Any = fairy.dbapi_connection
    try:
        adapted._handle_exception(exc)  # raises the DB-API form of the driver's error
    except dbapi.Error as translated:
        gone = dialect.is_disconnect(translated, adapted, None)
        wrapped = DBAPIError.instance(
            sql, tuple(args), translated, dbapi.Error, connection_invalidated=gone, dialect=dialect
        )
        if gone:
            await greenlet_spawn(fairy.invalidate, wrapped)
        return wrapped
    except Exception as other:  # not a driver error: as it is
        return other
    return exc


__all__ = ["MAX_FORMS", "DirectQuery", "DriverConnection", "InTransaction", "on_its_own_driver", "pooled"]

"""The database: one async engine, and the two kinds of transaction the hub uses.

``read()`` gives a connection in a plain transaction; ``lookup()`` one for statements that find rows by
key, whose plans PostgreSQL may keep. ``write()`` gives one in a write
transaction: on SQLite that is ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two
writers queue instead of failing half-way) behind an in-process lock; on PostgreSQL it is an
ordinary READ COMMITTED transaction, and writers guard each row with a compare-and-set on its
version.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, PoolProxiedConnection, StaticPool
from sqlalchemy.util import greenlet_spawn

from hub.fhir.errors import BadRequest, FhirError, ServiceUnavailable
from hub.store import deferred, pg_batch
from hub.store.direct import pooled

#: A held connection: the driver's (``PoolProxiedConnection``) or SQLAlchemy's (``AsyncConnection``).
_C = TypeVar("_C")


class Database:
    """Owns the engine; created in the app's lifespan, disposed at shutdown."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        echo: bool = False,
        statement_timeout_ms: int = 0,
        custom_plans: bool = True,
    ) -> None:
        """``custom_plans=False`` for a database used only for statements whose plan does not depend
        on their values (the audit writer's appends): one pool, generic plans allowed."""
        self.url = make_url(url)
        self.statement_timeout_ms = statement_timeout_ms
        self.dialect = self.url.get_backend_name()
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        # On PostgreSQL a small second pool serves lookups by key (see lookup()); the two pools
        # together open at most 2 * pool_size connections. Neither has an overflow: an overflow
        # connection is closed when it comes back, and under a steady load above the pool size
        # that meant a new connection (TLS attempt, startup, statements prepared again) every few
        # requests. A pool opens its connections only as they are first needed.
        two_pools = custom_plans and not self.is_sqlite
        # Half each: the lookup pool also serves the writes of one resource by id (write(keyed=True)).
        lookup_size = max(1, pool_size // 2) if two_pools else 0
        self.engine: AsyncEngine = self._create_engine(
            max(pool_size, 2 * pool_size - 2 * lookup_size),
            echo,
            plan_cache_mode="force_custom_plan" if custom_plans else "auto",
        )
        # PostgreSQL reads need no BEGIN/ROLLBACK: at READ COMMITTED each statement has its own
        # snapshot either way, and autocommit saves two round trips per read.
        self._read_engine = (
            self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        #: The lookup pool's engine (the main engine itself on SQLite or without custom plans).
        self.lookup_engine: AsyncEngine = (
            self._create_engine(2 * lookup_size, echo, plan_cache_mode="force_generic_plan")
            if two_pools
            else self.engine
        )
        self._lookup_autocommit = (
            self.lookup_engine.execution_options(isolation_level="AUTOCOMMIT") if two_pools else self._read_engine
        )
        for engine in self.engines:  # (both pools run write transactions, see write())
            event.listen(engine.sync_engine, "commit", deferred.refuse_unsettled)
            event.listen(engine.sync_engine, "rollback", deferred.forget_on_rollback)
        if not self.is_sqlite:
            # A transaction Bundle's waiting creates (hub.store.pg_batch). Bundles run on the main
            # pool only (write(keyed=True) is one resource), so the lookup pool has no statement
            # listener and its reads by id may take the driver's path (direct_lookups).
            event.listen(self.engine.sync_engine, "before_cursor_execute", pg_batch.flush_before, retval=True)
            event.listen(self.engine.sync_engine, "commit", pg_batch.refuse_unflushed)
            event.listen(self.engine.sync_engine, "rollback", pg_batch.end)
        self._driver_lookups: HeldConnections[PoolProxiedConnection] = HeldConnections(
            self.lookup_engine, keep=max(1, pool_size // 4)
        )
        # (none below a pool size of 4: the lookup pool's SQLAlchemy reads need connections left)
        self._keyed_writes = HeldWriteConnections(self.lookup_engine, keep=pool_size // 4)

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine (pool) this database opens connections from."""
        return (self.engine,) if self.lookup_engine is self.engine else (self.engine, self.lookup_engine)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, pool_size: int, echo: bool, *, plan_cache_mode: str) -> AsyncEngine:
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = self.url.database or ""
            if database in ("", ":memory:"):
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                kwargs.update(poolclass=NullPool if pool_size == 0 else None)
                kwargs = {k: v for k, v in kwargs.items() if v is not None}
            engine = create_async_engine(self.url, **kwargs)
            _configure_sqlite(engine)
            return engine
        # The main pool forces custom plans: the hub's statements are prepared (asyncpg), and after
        # five runs PostgreSQL would switch to a generic plan that cannot use the parameter values
        # (measured: a care plan search 0.7 ms with its own plan, 405 ms with the generic one at 10k
        # clients). The lookup pool keeps generic plans: planning the checked read-by-id took 0.5 ms
        # of its 0.6 ms (and it serves the writes by key, see write()). It forces them, as every
        # statement it runs finds its rows by key: left to choose ("auto"), PostgreSQL planned the
        # plan-stable searches with an include round, a chain or a task inbox (generic estimates
        # above their custom ones) anew on every run, 1-2 ms each (search workload: PostgreSQL CPU
        # per request 0.98 -> 0.87 ms).
        server_settings = {"plan_cache_mode": plan_cache_mode}
        if self.statement_timeout_ms > 0:  # no statement of a request may run longer than this
            server_settings["statement_timeout"] = str(self.statement_timeout_ms)
        kwargs.update(
            pool_size=pool_size,
            max_overflow=0,
            pool_pre_ping=False,
            connect_args={"server_settings": server_settings},
        )
        return create_async_engine(self.url, **kwargs)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading: a deferred transaction on SQLite (one WAL snapshot), autocommit
        statements on PostgreSQL."""
        if not self.is_sqlite:
            async with self._read_engine.connect() as conn:
                yield conn
            return
        async with self.engine.connect() as conn:
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def lookup(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads that find rows by key (a resource by id, the caller's access
        facts): as :meth:`read`, but on PostgreSQL from a pool whose sessions keep generic plans,
        so these statements are planned once per connection instead of on every run. Searches
        stay on :meth:`read` (their best plan depends on the values), except those whose statements
        have one right plan whatever the values (:meth:`hub.store.search.engine.SearchEngine.plan_stable`)."""
        if self.is_sqlite:
            async with self.read() as conn:
                yield conn
            return
        async with self._lookup_autocommit.connect() as conn:
            yield conn

    @property
    def direct_lookups(self) -> bool:
        """Whether :meth:`lookup_driver` may serve a lookup: PostgreSQL through asyncpg, and no one
        listens to the lookup pool's statements (statement counts, tracing: they see SQLAlchemy's)."""
        if self.is_sqlite or self.url.get_driver_name() != "asyncpg":
            return False
        dispatch = self.lookup_engine.sync_engine.dispatch
        return not (dispatch.before_cursor_execute or dispatch.after_cursor_execute)

    def lookup_driver(self) -> AbstractAsyncContextManager[PoolProxiedConnection]:
        """A connection of the lookup pool without SQLAlchemy's ``Connection`` around it, for a
        statement run on the driver connection (:mod:`hub.store.direct`); only when
        :attr:`direct_lookups`. It is in no transaction: each statement commits on its own, as on
        :meth:`lookup`. (The held connections' own context manager, not one more layer around it.)"""
        return self._driver_lookups.connection()

    @asynccontextmanager
    async def write(self, *, keyed: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction: committed when the block ends, rolled back on error.
        The work its writes deferred (:mod:`hub.store.deferred`) is done just before the commit.

        ``keyed``: a write whose statements all find their rows by key (one resource by id, with its
        checks, facts and audit record; no search): on PostgreSQL from the lookup pool, whose
        sessions keep generic plans. Planning the one-statement write and the checks' statements on
        every run cost the database more CPU than running them (crud workload: PostgreSQL
        1.99-2.26 ms CPU per request with custom plans, 0.85-1.32 ms with generic ones)."""
        if self._write_lock is not None:
            async with self._write_lock, self.engine.connect() as conn:
                await conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                async with _settled_transaction(conn):
                    yield conn
        elif keyed:
            async with self._keyed_writes.connection() as conn, _settled_transaction(conn, on_demand=True):
                yield conn
        else:
            async with self.engine.connect() as conn, _settled_transaction(conn):
                yield conn

    @asynccontextmanager
    async def write_one(self) -> AsyncIterator[AsyncConnection]:
        """A connection for ONE write statement that commits on its own: autocommit on PostgreSQL
        (one round trip instead of BEGIN, statement, COMMIT), a write transaction on SQLite. Only
        for a single statement: two statements in this block are two transactions on PostgreSQL."""
        if self.is_sqlite:
            async with self.write() as conn:
                yield conn
            return
        async with self._read_engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """One round trip to the database (readiness): raises when it cannot be reached."""
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._driver_lookups.close()
        await self._keyed_writes.close()
        await self.engine.dispose()
        if self.lookup_engine is not self.engine:
            await self.lookup_engine.dispose()


class HeldConnections(Generic[_C]):
    """Up to ``keep`` connections of ``engine``'s pool kept checked out between uses, handed out as
    the driver's (``PoolProxiedConnection``). Taking one is a list pop instead of a pool checkout and
    return (two greenlet switches, the checkout bookkeeping, a reset on return), which together cost
    more CPU than the read-by-id statement run on it (measured 35 µs of 70). When all held ones are
    in use, a connection is checked out of the pool for the one use, as usual; the pool keeps the
    rest for SQLAlchemy's own lookups. A connection whose use failed is discarded."""

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self.engine = engine
        self.keep = keep
        self._idle: list[_C] = []
        self._held = 0

    async def _open(self) -> _C:
        return await self.engine.raw_connection()  # type: ignore[return-value]  # (_C: a fairy here)

    def _reusable(self, conn: _C) -> bool:
        return bool(conn.is_valid)  # type: ignore[attr-defined]

    async def _give_back(self, conn: _C, failed: bool) -> None:
        """Back to the pool, or discarded after a failure or a cancel (its session may be mid-statement)."""
        fairy: Any = conn
        await greenlet_spawn(fairy.invalidate if failed else fairy.close)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_C]:
        held = True
        if self._idle:
            conn = self._idle.pop()
        else:
            held = self._held < self.keep
            self._held += held  # counted before the checkout awaits: others may come meanwhile
            try:
                conn = await self._open()
            except BaseException:
                self._held -= held
                raise
        failed = True
        try:
            yield conn
            failed = False
        finally:
            if held and not failed and self._reusable(conn):
                self._idle.append(conn)
            else:
                self._held -= held
                # Shielded, as SQLAlchemy's AsyncConnection does, so that a cancelled request still
                # gives it back.
                await asyncio.shield(self._give_back(conn, failed))

    async def close(self) -> None:
        """Give every idle held connection back to the pool (before the engine is disposed)."""
        idle, self._idle = self._idle, []
        self._held -= len(idle)
        for conn in idle:
            await self._give_back(conn, False)


class HeldWriteConnections(HeldConnections[AsyncConnection]):
    """:class:`HeldConnections` as SQLAlchemy's ``AsyncConnection``, for the writes of one resource
    by id (:meth:`Database.write` ``keyed``): a pool checkout and return cost more CPU than a write
    made alone on the driver connection (measured 120 µs against 50). One is kept only when its use
    ended in no transaction (committed, or never begun) and without an error; any other goes back
    to the pool as ``async with engine.connect()`` gives it back (its reset rolls back what is open)."""

    async def _open(self) -> AsyncConnection:
        return await self.engine.connect()

    def _reusable(self, conn: AsyncConnection) -> bool:
        return not conn.closed and not conn.invalidated and not conn.in_transaction()

    async def _give_back(self, conn: AsyncConnection, failed: bool) -> None:
        await conn.close()


@asynccontextmanager
async def on_its_own(conn: AsyncConnection) -> AsyncIterator[bool]:
    """Statements in this block commit on their own (autocommit), when ``conn`` is a PostgreSQL
    (asyncpg) connection whose transaction has sent nothing yet; yields whether they do (else they
    run in the transaction as usual).

    The driver adapter begins its transaction only before the first statement (and ends it only if
    it began), so a write transaction whose first statements read by key and whose one write
    statement is all it writes (:class:`hub.store.pg_writes.Appendix`) costs no BEGIN and COMMIT round
    trips this way: at READ COMMITTED each statement has its own snapshot either way, and one
    statement is atomic. A statement after the block begins the transaction as before."""
    adapter = None
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg" and not conn.invalidated:
        adapter = (await pooled(conn)).dbapi_connection
    # (the adapter's own attributes: its transaction, begun lazily, and its isolation setting)
    if adapter is None or adapter._transaction is not None or adapter.isolation_level == "autocommit":
        yield False
        return
    adapter.isolation_level = "autocommit"
    try:
        yield True
    finally:
        adapter.isolation_level = adapter._isolation_setting


@asynccontextmanager
async def _settled_transaction(conn: AsyncConnection, *, on_demand: bool = False) -> AsyncIterator[None]:
    """One write transaction on ``conn``: what its writes deferred is settled before the commit, and
    forgotten however it ends. ``on_demand``: SQLAlchemy's transaction begins with the first statement
    run through it (its autobegin) instead of up front, and is committed if it began: a write by id
    made alone on the driver connection (:func:`on_its_own`) then begins and commits none (two
    greenlet switches fewer; the driver's transaction began only before a statement either way)."""
    try:
        if not on_demand:
            await conn.begin()
        deferred.begin(conn)
        try:
            yield
            await pg_batch.flush(conn)
            await deferred.settle(conn)
        except BaseException:
            if conn.in_transaction():
                await conn.rollback()
            raise
        if conn.in_transaction():
            await conn.commit()
    finally:
        deferred.forget(conn)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, and explicit BEGINs (pysqlite's implicit transactions are off)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


#: PostgreSQL's SQLSTATE for a statement cancelled by ``statement_timeout`` or a cancel request.
QUERY_CANCELED = "57014"
#: SQLite's answers to statements too large to compile (very long OR lists, deep nesting).
_SQLITE_TOO_COMPLEX = (
    "expression tree is too large",
    "too many sql variables",
    "parser stack overflow",
    "too many terms in compound select",
    "string or blob too big",
    "interrupted",
)


#: PostgreSQL SQLSTATEs of a moment's contention, not of a fault: serialization failure, deadlock,
#: lock not available, too many connections, the server starting or stopping.
_PG_BUSY = frozenset({"40001", "40P01", "55P03", "53300", "57P03"})
#: SQLite's answers when another connection holds the write lock past the busy timeout.
_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")


def busy_error(exc: BaseException) -> FhirError | None:
    """A 503 (with Retry-After) when a database error is a moment's contention the client can retry,
    else None: those are neither the client's mistake nor a fault to answer with a 500."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    message = str(orig).lower()
    if state in _PG_BUSY or any(m in message for m in _SQLITE_BUSY):
        return ServiceUnavailable(
            "The database is busy for a moment; retry the request shortly", headers={"Retry-After": "1"}
        )
    return None


def cost_error(exc: BaseException, timeout_ms: int = 0) -> FhirError | None:
    """The 4xx a database error stands for when it is about cost (a statement timeout, a statement
    too complex to compile), else None: those come from what a client asked for, not from a fault."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state == QUERY_CANCELED:
        limit = f" of {timeout_ms} ms" if timeout_ms else ""
        return BadRequest(
            f"The request took longer than the time limit{limit} and was stopped; ask for less (fewer "
            "parameters, values or chained references)",
            code="too-costly",
        )
    message = str(orig).lower()
    if any(m in message for m in _SQLITE_TOO_COMPLEX):
        return BadRequest(f"The request is too complex for the database ({orig}); ask for less", code="too-costly")
    return None

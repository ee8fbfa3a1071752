# ruff: noqa: S608  (statements are built from the schema's own table and column names; values are bound)
"""A transaction Bundle's new resources written together on PostgreSQL: one statement for many.

Each create in a transaction Bundle is otherwise its own statement (:mod:`hub.store.pg_writes`):
a client's network of 15-20 resources was 15-20 round trips, each planned by the server and each
with the hub's own cost of running a statement (binding some fifty array parameters). Here the
Bundle's creates wait in a buffer kept with the transaction (:func:`start`), each with a ``pid``
taken ahead from the ``resource`` sequence (so the caller gets its :class:`Stored` at once), and
are written as ONE statement of ``unnest``-ed arrays: every table gets one multi-row insert.

The buffer is written before any other statement runs on the connection (:func:`flush_before`, an
engine ``before_cursor_execute`` listener), so nothing the transaction reads (access checks, the
derived facts, the audit append, a later entry) can miss a row that waits; and before the commit
(:func:`flush`, with :func:`refuse_unflushed` as the guard). A statement may say which waiting rows
it can read (:data:`READS`: those of some resource types, or none, e.g. a lookup in the organisation
registry); it then runs first when none of those wait, and the creates stay together (a client's
network was written in two or three statements, one before each such lookup of the care team's
organisations). Only creates whose id the server made
(a ``urn:uuid`` entry's new id) wait: a client-chosen id may collide, and that answer belongs to
its own entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Integer, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.direct import InTransaction
from hub.store.tables import INDEX_TABLES, idx_compartment
from hub.store.versions import NewVersion

_KEY = "hub.pg_batch"

#: Execution option of a statement that reads waiting rows only of these resource types (a frozenset;
#: empty: none, as a statement about other tables). Without it, everything waiting is written first.
READS = "hub_pg_batch_reads"

#: Batched writes run so far in this process, for bench.write_cost (the listener's statement runs
#: on the driver's cursor, where SQLAlchemy's events do not see it; as hub.store.sqlite_writes counts).
statements = 0

#: Index tables (extraction's names) and the compartment table, in the statement's order.
_INDEX = dict(INDEX_TABLES, compartment=idx_compartment)
_FIXED = ("pid", "res_type", "client_key")


def _array_type(col: Any) -> str:
    for py_type, sql in ((BigInteger, "bigint[]"), (Integer, "int[]"), (Float, "float8[]"), (Boolean, "bool[]")):
        if isinstance(col.type, py_type):
            return sql
    return "text[]"


#: Per index table: its value columns as (name, array type, value when a row leaves it out).
_COLUMNS: dict[str, list[tuple[str, str, Any]]] = {
    name: [(c.name, _array_type(c), 0 if c.name == "grp" else None) for c in table.c if c.name not in _FIXED]
    for name, table in _INDEX.items()
}


class Buffer:
    """The creates of one write transaction that wait to be written, and the pids taken for them."""

    def __init__(self, transaction: Any, expected: int) -> None:
        self.transaction = transaction
        self.expected = max(1, expected)
        #: (pid, version 1) of each waiting create
        self.pending: list[tuple[int, NewVersion]] = []
        self.pids: list[int] = []

    async def insert_new(self, conn: AsyncConnection, new: NewVersion) -> int:
        """Queue version 1 of a resource (as :func:`hub.store.pg_writes.insert_new` writes it); its pid."""
        if not self.pids:  # (a statement: whatever waits is written first, harmlessly)
            wanted = max(self.expected - len(self.pending), 1)
            self.pids = [row[0] for row in await _TAKE_PIDS.fetch(conn, {"n": wanted})]
        pid = self.pids.pop(0)
        self.pending.append((pid, new))
        return pid

    def take(self) -> list[tuple[int, NewVersion]]:
        pending, self.pending = self.pending, []
        return pending


#: (On the driver connection: hub.store.direct.)
_TAKE_PIDS = InTransaction(
    text("SELECT nextval(pg_get_serial_sequence('resource', 'pid')) FROM generate_series(1, :n)").bindparams(
        bindparam("n", type_=Integer())
    )
)


def start(conn: AsyncConnection, expected: int) -> None:
    """Creates with server-made ids in the write transaction on ``conn`` wait and are written
    together (``expected``: about how many there will be, for the pids taken at once)."""
    if conn.dialect.name != "postgresql":
        return
    sync = conn.sync_connection
    conn.info[_KEY] = Buffer(None if sync is None else sync.get_transaction(), expected)


def buffer_of(conn: AsyncConnection) -> Buffer | None:
    """The buffer of the write transaction on ``conn``, if it keeps one."""
    buffer: Buffer | None = conn.info.get(_KEY)
    if buffer is None:
        return None
    sync = conn.sync_connection
    if sync is None or buffer.transaction is not sync.get_transaction():
        conn.info.pop(_KEY, None)  # (left by a transaction that ended without closing it)
        return None
    return buffer


def waiting_with_author(conn: AsyncConnection, res_type: str, res_id: str, ura: str) -> bool:
    """Whether a create waiting in the transaction's buffer writes ``res_type/res_id`` with ``ura`` as
    its author organisation: what its ``resource_author`` row says once written (before any read)."""
    buffer = buffer_of(conn)
    return buffer is not None and any(
        n.res_type == res_type and n.res_id == res_id and n.author_ura == ura for _pid, n in buffer.pending
    )


async def flush(conn: AsyncConnection) -> None:
    """Write what waits now (before the commit)."""
    buffer = buffer_of(conn)
    if buffer is None or not buffer.pending:
        return
    await conn.exec_driver_sql(statement(), parameters(buffer.take()))


def waiting(conn: AsyncConnection, reads: frozenset[str] | None) -> tuple[str, tuple[Any, ...]] | None:
    """The statement and arguments that write what waits in the transaction on ``conn``, taken out of
    its buffer, when a statement that may read ``reads`` (:data:`READS`; None: any type) is about to
    run there on the driver connection (:class:`hub.store.direct.InTransaction`); None: nothing to write."""
    buffer = buffer_of(conn)
    if buffer is None or not buffer.pending:
        return None
    if reads is not None and not any(n.res_type in reads for _pid, n in buffer.pending):
        return None
    global statements
    statements += 1
    return statement(), parameters(buffer.take())


def flush_before(
    sync_conn: Any, _cursor: Any, statement_text: str, params: Any, context: Any, _many: bool
) -> tuple[str, Any]:
    """A ``before_cursor_execute`` listener (``retval=True``): whatever waits is written before
    the statement about to run, on the same connection and transaction (unless the statement says
    it reads none of what waits: :data:`READS`)."""
    buffer: Buffer | None = sync_conn.info.get(_KEY)
    if buffer is not None and buffer.pending:
        if buffer.transaction is not sync_conn.get_transaction():
            sync_conn.info.pop(_KEY, None)  # left by a transaction that ended unseen: not this one's rows
            return statement_text, params
        reads = getattr(context, "execution_options", {}).get(READS)
        if reads is not None and not any(n.res_type in reads for _pid, n in buffer.pending):
            return statement_text, params
        global statements
        statements += 1
        cursor = sync_conn.connection.cursor()
        try:
            cursor.execute(statement(), parameters(buffer.take()))
        finally:
            cursor.close()
    return statement_text, params


def end(sync_conn: Any) -> None:
    """A ``rollback`` listener: what waited is dropped with the transaction. (A connection broken
    mid-transaction, e.g. a request cancelled when its client went away, cannot be asked: the
    buffer names its transaction, so the next statement or :func:`buffer_of` drops it unwritten.)"""
    if sync_conn.invalidated:  # (asking its info would try to reconnect)
        return
    with suppress(SQLAlchemyError):
        sync_conn.info.pop(_KEY, None)


def refuse_unflushed(sync_conn: Any) -> None:
    """A ``commit`` listener: committing while creates still wait would lose them."""
    buffer: Buffer | None = sync_conn.info.pop(_KEY, None)
    if buffer is not None and buffer.pending:
        raise RuntimeError("a write transaction is committing with new resources not yet written")


def statement() -> str:
    """The one statement (positional ``$n`` parameters, in the order of :func:`parameters`)."""
    return _compiled()[0]


@cache
def _compiled() -> tuple[str, tuple[str, ...]]:
    """The statement, and its parameters' names in their ``$n`` order."""
    names: list[str] = []

    def arr(name: str, sql_type: str) -> str:
        names.append(name)
        return f"CAST(${len(names)} AS {sql_type})"

    new = (
        "v AS (SELECT * FROM unnest("
        + ", ".join(
            (
                arr("pid", "bigint[]"),
                arr("res_type", "text[]"),
                arr("res_id", "text[]"),
                arr("last_updated", "bigint[]"),
                arr("method", "text[]"),
                arr("content", "text[]"),
                arr("category", "text[]"),
                arr("client_key", "text[]"),
            )
        )
        + ") WITH ORDINALITY AS v(pid, res_type, res_id, last_updated, method, content, category, client_key, ord))"
    )
    parts = [
        new,
        "r AS (INSERT INTO resource (pid, res_type, res_id, version, last_updated, deleted, category, content, "
        "client_key) SELECT pid, res_type, res_id, 1, last_updated, false, category, CAST(content AS jsonb), "
        "client_key FROM v ORDER BY ord RETURNING pid, content)",
        "h AS (INSERT INTO resource_history (pid, res_type, res_id, version, last_updated, method, content, "
        "category, client_key) SELECT v.pid, v.res_type, v.res_id, 1, v.last_updated, v.method, r.content, "
        "v.category, v.client_key FROM v JOIN r ON r.pid = v.pid ORDER BY v.ord RETURNING hid, pid)",
        "hc AS (INSERT INTO history_compartment (hid, comp_type, comp_id) SELECT h.hid, u.comp_type, u.comp_id "
        f"FROM unnest({arr('hc_pid', 'bigint[]')}, {arr('hc_type', 'text[]')}, {arr('hc_id', 'text[]')}) "
        "AS u(pid, comp_type, comp_id) JOIN h ON h.pid = u.pid)",
        "o AS (INSERT INTO outbox_event (recorded, pid, res_type, res_id, version, change, category, patients, "
        "orgs, old_status, new_status) SELECT v.last_updated, v.pid, v.res_type, v.res_id, 1, u.change, "
        "v.category, u.patients, u.orgs, u.old_status, u.new_status FROM unnest("
        + ", ".join(
            arr(f"ev_{c}", "text[]") if c != "pid" else arr("ev_pid", "bigint[]")
            for c in ("pid", "change", "patients", "orgs", "old_status", "new_status")
        )
        + ") AS u(pid, change, patients, orgs, old_status, new_status) JOIN v ON v.pid = u.pid)",
        "a AS (INSERT INTO resource_author (pid, ura, client_key) SELECT * FROM unnest("
        f"{arr('au_pid', 'bigint[]')}, {arr('au_ura', 'text[]')}, {arr('au_key', 'text[]')}) ON CONFLICT DO NOTHING)",
        "w AS (INSERT INTO resource_owner (pid, party, client_key) SELECT * FROM unnest("
        f"{arr('ow_pid', 'bigint[]')}, {arr('ow_party', 'text[]')}, {arr('ow_key', 'text[]')}))",
    ]
    for name, table in _INDEX.items():
        cols = _COLUMNS[name]
        arrays = [
            arr(f"{name}__pid", "bigint[]"),
            arr(f"{name}__res_type", "text[]"),
            arr(f"{name}__client_key", "text[]"),
        ] + [arr(f"{name}__{c}", sql_type) for c, sql_type, _default in cols]
        targets = ", ".join([*_FIXED, *(c for c, _t, _d in cols)])
        parts.append(f"x_{name} AS (INSERT INTO {table.name} ({targets}) SELECT * FROM unnest({', '.join(arrays)}))")
    return "WITH " + ", ".join(parts) + " SELECT count(*) FROM r", tuple(names)


def parameters(news: Sequence[tuple[int, NewVersion]]) -> tuple[Any, ...]:
    """The statement's arrays for these creates, in ``$n`` order."""
    order = _compiled()[1]
    values: dict[str, list[Any]] = {name: [] for name in order}
    for pid, n in news:
        values["pid"].append(pid)
        values["res_type"].append(n.res_type)
        values["res_id"].append(n.res_id)
        values["last_updated"].append(n.last_updated)
        values["method"].append(n.method)
        values["content"].append(n.content)
        values["category"].append(n.category)
        values["client_key"].append(n.client_key)
        for comp_type, comp_id in n.compartments:
            values["hc_pid"].append(pid)
            values["hc_type"].append(comp_type)
            values["hc_id"].append(comp_id)
        if n.event is not None:
            values["ev_pid"].append(pid)
            for c in ("change", "patients", "orgs", "old_status", "new_status"):
                values[f"ev_{c}"].append(n.event[c])
        if n.author_ura:
            values["au_pid"].append(pid)
            values["au_ura"].append(n.author_ura)
            values["au_key"].append(n.client_key)
        for party in n.owners:
            values["ow_pid"].append(pid)
            values["ow_party"].append(party)
            values["ow_key"].append(n.client_key)
        for name, cols in _COLUMNS.items():
            if name == "compartment":
                table_rows: Sequence[Mapping[str, Any]] = [{"comp_type": t, "comp_id": i} for t, i in n.compartments]
            else:
                table_rows = n.rows.get(name, ())
            if not table_rows:
                continue
            values[f"{name}__pid"].extend([pid] * len(table_rows))
            values[f"{name}__res_type"].extend([n.res_type] * len(table_rows))
            values[f"{name}__client_key"].extend([n.client_key] * len(table_rows))
            for c, _sql_type, default in cols:
                values[f"{name}__{c}"].extend([r.get(c, default) for r in table_rows])
    return tuple(values[name] for name in order)


__all__ = [
    "READS",
    "Buffer",
    "buffer_of",
    "end",
    "flush",
    "flush_before",
    "parameters",
    "refuse_unflushed",
    "start",
    "statement",
    "waiting",
    "waiting_with_author",
]

# ruff: noqa: S608  (statements are built from the schema's own table and column names; values are bound)
"""Writing a resource version on PostgreSQL in one statement.

A write touches ``resource``, ``resource_history`` and up to eight index tables; sent one by one
that is about ten round trips, which is what limits ingest. PostgreSQL runs data-modifying CTEs in
one statement, and ``unnest`` of array parameters turns any number of index rows into one fixed
statement shape (so it is prepared once and reused):

    WITH r AS (INSERT INTO resource ... RETURNING pid),
         h AS (INSERT INTO resource_history ... SELECT ... FROM r),
         x_token AS (INSERT INTO idx_token SELECT r.pid, ... FROM r, unnest(:token_param, ...)),
         ...
    SELECT pid FROM r

With the transactional outbox on, the write's event row is one more CTE (``o``); so are the rows
naming who wrote it (``a``: ``resource_author``, the author organisation; ``w``: ``resource_owner``,
the creator parties of a creating write): two round trips fewer per write than their own inserts.

An update is the same with ``UPDATE resource ... WHERE pid = :pid AND version = :version`` (the
compare-and-set), plus ``DELETE`` of the old index rows; every part hangs off ``r``, so when the
compare-and-set finds another version nothing at all is written. All sub-statements see one
snapshot, so deleting a resource's old index rows and inserting its new ones in the same statement
is safe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, TextClause

from hub.store.direct import DirectQuery, on_its_own_driver
from hub.store.tables import INDEX_TABLES, idx_compartment
from hub.store.versions import NewVersion

_ARRAY_TYPES = {BigInteger: "bigint[]", Integer: "int[]", Float: "float8[]", Boolean: "bool[]"}


def _pg_array(col: Any) -> tuple[str, Any]:
    for py_type, sql in _ARRAY_TYPES.items():
        if isinstance(col.type, py_type):
            return sql, ARRAY(col.type.__class__())  # type: ignore[arg-type]  # an instance of the column's type
    return "text[]", ARRAY(Text())


def _value_columns(table: Any) -> list[Any]:
    return [c for c in table.c if c.name not in ("pid", "res_type", "client_key")]


_INDEX = dict(INDEX_TABLES, compartment=idx_compartment)


@dataclass(frozen=True, slots=True)
class AppendixShape:
    """More CTEs a write statement carries after its own (the write's audit record: its writer's
    :meth:`hub.audit.writer.AuditWriter.appendix`). They must write nothing unless ``r`` has a row
    (the write wrote), and ``returns`` is the comma-separated columns the statement returns after
    ``pid``; each should fail the statement rather than leave out what it had to write."""

    ctes: str
    binds: tuple[BindParameter[Any], ...]
    returns: str


@dataclass(slots=True)
class Appendix:
    """A write made *alone*: its one statement is all the transaction writes, so it runs on its own
    (autocommit: no BEGIN and COMMIT round trips), carrying ``shape`` (None: nothing more) with its
    ``params``. After the call, ``used`` says whether the statement carried it (a write that needs
    statements of its own, such as moving a resource to another client, runs in the transaction as
    before), and ``returned`` holds the appendix's columns when it wrote."""

    shape: AppendixShape | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    used: bool = False
    returned: tuple[Any, ...] | None = None


@functools.cache
def _direct(statement: TextClause, dialect: Any) -> DirectQuery:
    """A write statement (each built once) compiled once for the driver connection."""
    return DirectQuery(statement, dialect)


def _appended(sql: str, binds: list[Any], shape: AppendixShape | None) -> TextClause:
    """``sql`` (``WITH ... SELECT pid FROM r``) with ``shape``'s CTEs and returned columns."""
    if shape is not None:
        head, tail = sql.rsplit(" SELECT pid FROM r", 1)
        sql = f"{head}, {shape.ctes} SELECT pid, {shape.returns} FROM r{tail}"
        binds = [*binds, *shape.binds]
    return text(sql).bindparams(*binds)


async def _run_alone(
    conn: AsyncConnection,
    statement: Callable[[AppendixShape | None], TextClause],
    params: dict[str, Any],
    alone: Appendix | None,
) -> Sequence[Any] | None:
    """The write statement's row (None: it wrote nothing); with ``alone``, on its own and with the
    appendix's values (:func:`hub.store.db.on_its_own`), unless the transaction began already (a
    check read in it): then in it, without the appendix (``alone.used`` stays False)."""
    if alone is None:
        return (await conn.execute(statement(None), params)).first()
    from hub.store.db import on_its_own  # (db imports pg_batch, which imports this module)

    async with on_its_own(conn) as ok:
        if not ok:
            return (await conn.execute(statement(None), params)).first()
        carried = statement(alone.shape)
        fairy = await on_its_own_driver(conn)
        if fairy is not None:  # the driver's way: SQLAlchemy's execution cost more CPU than the driver's
            row = await _direct(carried, conn.dialect).fetchrow(fairy, {**params, **alone.params})
        else:
            row = (await conn.execute(carried, {**params, **alone.params})).first()
    alone.used = True
    if row is not None and alone.shape is not None:
        alone.returned = tuple(row[1:])
    return row


def _index_ctes(source: str) -> tuple[list[str], list[Any]]:
    """One ``INSERT ... SELECT FROM source, unnest(...)`` CTE per index table, and their binds."""
    ctes: list[str] = []
    binds: list[Any] = []
    for name, table in _INDEX.items():
        cols = _value_columns(table)
        arrays = []
        for col in cols:
            sql_type, sa_type = _pg_array(col)
            param = f"{name}__{col.name}"
            arrays.append(f"CAST(:{param} AS {sql_type})")
            binds.append(bindparam(param, type_=sa_type))
        names = ", ".join(c.name for c in cols)
        # Every index row carries the resource's client key.
        keyed = "client_key" in table.c
        ctes.append(
            f"x_{name} AS (INSERT INTO {table.name} (pid, res_type, {'client_key, ' if keyed else ''}{names}) "
            f"SELECT {source}.pid, :res_type, {':client_key, ' if keyed else ''}u.* "
            f"FROM {source}, unnest({', '.join(arrays)}) AS u)"
        )
    return ctes, binds


#: The version's Patient compartments, keyed by its history row.
_HISTORY_COMPARTMENTS = (
    "hc AS (INSERT INTO history_compartment (hid, comp_type, comp_id) "
    "SELECT h.hid, u.* FROM h, unnest(CAST(:hc_type AS text[]), CAST(:hc_id AS text[])) AS u)"
)

_COMMON_BINDS: list[Any] = [
    bindparam("res_type", type_=String()),
    bindparam("res_id", type_=String()),
    bindparam("version", type_=Integer()),
    bindparam("last_updated", type_=BigInteger()),
    bindparam("method", type_=String()),
    bindparam("content", type_=Text()),
    bindparam("category", type_=String()),
    bindparam("client_key", type_=String()),
    bindparam("hc_type", type_=ARRAY(Text())),
    bindparam("hc_id", type_=ARRAY(Text())),
]


#: The outbox event of the write (hub.events.outbox), one more CTE hanging off ``r``.
_EVENT_CTE = (
    "o AS (INSERT INTO outbox_event (recorded, pid, res_type, res_id, version, change, category, patients, orgs, "
    "old_status, new_status) SELECT :last_updated, pid, :res_type, :res_id, :version, :ev_change, :category, "
    ":ev_patients, :ev_orgs, :ev_old_status, :ev_new_status FROM r), "
)
_EVENT_BINDS: list[Any] = [
    bindparam("ev_change", type_=String()),
    bindparam("ev_patients", type_=Text()),
    bindparam("ev_orgs", type_=Text()),
    bindparam("ev_old_status", type_=String()),
    bindparam("ev_new_status", type_=String()),
]


def _event_params(event: Mapping[str, Any]) -> dict[str, Any]:
    return {f"ev_{k}": event[k] for k in ("change", "patients", "orgs", "old_status", "new_status")}


#: Who wrote the version (:class:`hub.store.resources.Authorship`), hanging off ``r``: the author
#: organisation (none or one; kept once per resource) and the creator parties of a creating write.
_CREATORS_CTE = (
    "a AS (INSERT INTO resource_author (pid, ura, client_key) SELECT r.pid, u.ura, :client_key "
    "FROM r, unnest(CAST(:authors AS text[])) AS u(ura) ON CONFLICT DO NOTHING), "
    "w AS (INSERT INTO resource_owner (pid, party, client_key) SELECT r.pid, u.party, :client_key "
    "FROM r, unnest(CAST(:owners AS text[])) AS u(party)), "
)
_CREATORS_BINDS: list[Any] = [bindparam("authors", type_=ARRAY(Text())), bindparam("owners", type_=ARRAY(Text()))]


def _creator_params(author_ura: str | None, owners: Sequence[str]) -> dict[str, Any]:
    return {"authors": [author_ura] if author_ura else [], "owners": list(dict.fromkeys(owners))}


_HISTORY_CTE = (
    "h AS (INSERT INTO resource_history (pid, res_type, res_id, version, last_updated, method, content, "
    "category, client_key) SELECT pid, :res_type, :res_id, :version, :last_updated, :method, "
    "CAST(:content AS jsonb), :category, :client_key FROM r RETURNING hid), " + _HISTORY_COMPARTMENTS + ", "
)


@cache
def insert_statement(
    with_event: bool = False,
    with_creators: bool = False,
    guard: str | None = None,
    appendix: AppendixShape | None = None,
) -> TextClause:
    """``guard``: a condition the access check left to the write (its values bound as ``care_*``):
    when it does not hold, nothing is inserted and the statement returns no row. ``appendix``: more
    CTEs hanging off ``r`` (:class:`AppendixShape`)."""
    index_ctes, binds = _index_ctes("r")
    values = ":res_type, :res_id, :version, :last_updated, false, :category, CAST(:content AS jsonb), :client_key"
    source = f"VALUES ({values})" if guard is None else f"SELECT {values} WHERE {guard}"
    sql = (
        "WITH r AS (INSERT INTO resource (res_type, res_id, version, last_updated, deleted, category, content, "
        f"client_key) {source} RETURNING pid), "
        + _HISTORY_CTE
        + (_EVENT_CTE if with_event else "")
        + (_CREATORS_CTE if with_creators else "")
        + ", ".join(index_ctes)
        + " SELECT pid FROM r"
    )
    return _appended(
        sql,
        [
            *_COMMON_BINDS,
            *binds,
            *(_EVENT_BINDS if with_event else ()),
            *(_CREATORS_BINDS if with_creators else ()),
            *(_GUARD_BINDS if guard is not None else ()),
        ],
        appendix,
    )


_GUARD_BINDS = (
    bindparam("care_patients", type_=ARRAY(Text())),
    bindparam("care_ura", type_=Text()),
    bindparam("care_now", type_=BigInteger()),
)


@cache
def update_statement(
    with_event: bool = False, with_creators: bool = False, appendix: AppendixShape | None = None
) -> TextClause:
    index_ctes, binds = _index_ctes("r")
    deletes = ", ".join(
        f"d_{name} AS (DELETE FROM {table.name} WHERE pid IN (SELECT pid FROM r))" for name, table in _INDEX.items()
    )
    sql = (
        "WITH r AS (UPDATE resource SET version = :version, last_updated = :last_updated, deleted = false, "
        "category = :category, content = CAST(:content AS jsonb), client_key = :client_key "
        "WHERE pid = :pid AND version = :expected RETURNING pid), "
        + _HISTORY_CTE
        + (_EVENT_CTE if with_event else "")
        + (_CREATORS_CTE if with_creators else "")
        + deletes
        + ", "
        + ", ".join(index_ctes)
        + " SELECT pid FROM r"
    )
    return _appended(
        sql,
        [
            *_COMMON_BINDS,
            bindparam("pid", type_=BigInteger()),
            bindparam("expected", type_=Integer()),
            *binds,
            *(_EVENT_BINDS if with_event else ()),
            *(_CREATORS_BINDS if with_creators else ()),
        ],
        appendix,
    )


#: Per index table, its value columns as (bind parameter, column, value when a row leaves it out):
#: worked out once (per write this was the hub's own costliest step of a WMO301 group).
_PARAMS: list[tuple[str, list[tuple[str, str, Any]]]] = [
    (name, [(f"{name}__{c.name}", c.name, 0 if c.name == "grp" else None) for c in _value_columns(table)])
    for name, table in _INDEX.items()
]


def _index_params(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], compartments: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, columns in _PARAMS:
        if name == "compartment":
            table_rows: Sequence[Mapping[str, Any]] = [{"comp_type": t, "comp_id": i} for t, i in compartments]
        else:
            table_rows = rows.get(name, ())
        if not table_rows:
            for param, _column, _default in columns:
                params[param] = []
            continue
        for param, column, default in columns:
            params[param] = [r.get(column, default) for r in table_rows]
    params["hc_type"] = [t for t, _i in compartments]
    params["hc_id"] = [i for _t, i in compartments]
    return params


async def insert_new(
    conn: AsyncConnection,
    new: NewVersion,
    guard: tuple[str, Mapping[str, Any]] | None = None,
    alone: Appendix | None = None,
) -> int | None:
    """The new pid of version 1 (``new``); None when ``guard`` (condition, its values) did not hold
    (nothing written). ``alone``: the write is all its transaction writes (:class:`Appendix`)."""
    params = {
        "res_type": new.res_type,
        "res_id": new.res_id,
        "version": 1,
        "last_updated": new.last_updated,
        "method": new.method,
        "content": new.content,
        "category": new.category,
        "client_key": new.client_key,
        **_index_params(new.rows, new.compartments),
    }
    if new.event is not None:
        params.update(_event_params(new.event))
    creators = bool(new.author_ura or new.owners)
    if creators:
        params.update(_creator_params(new.author_ura, new.owners))
    if guard is not None:
        params.update(guard[1])
    guarded = guard[0] if guard is not None else None
    with_event = new.event is not None
    row = await _run_alone(conn, lambda shape: insert_statement(with_event, creators, guarded, shape), params, alone)
    return None if row is None else int(row[0])


async def write_version(
    conn: AsyncConnection,
    pid: int,
    res_type: str,
    res_id: str,
    expected: int,
    content: str,
    last_updated: int,
    method: str,
    category: str,
    rows: Any,
    client_key: str,
    event: Mapping[str, Any] | None = None,
    author_ura: str | None = None,
    alone: Appendix | None = None,
) -> bool:
    """The compare-and-set update with its history row, index rows, outbox event and author row;
    False if the version moved (then nothing at all is written). (The creators of a re-creation
    replace those of its earlier life: :func:`hub.store.resources.write_version` writes them.)
    ``alone``: the write is all its transaction writes (:class:`Appendix`)."""
    params = {
        "pid": pid,
        "expected": expected,
        "res_type": res_type,
        "res_id": res_id,
        "version": expected + 1,
        "last_updated": last_updated,
        "method": method,
        "content": content,
        "category": category,
        "client_key": client_key,
        **_index_params(rows.rows, rows.compartments),
    }
    if event is not None:
        params.update(_event_params(event))
    creators = bool(author_ura)
    if creators:
        params.update(_creator_params(author_ura, ()))
    statement = functools.partial(update_statement, event is not None, creators)
    return await _run_alone(conn, statement, params, alone) is not None


@cache
def delete_statement(with_event: bool = False, appendix: AppendixShape | None = None) -> TextClause:
    """A deletion: the compare-and-set, the history row (no content) with the compartments the
    deleted version was in (its ``idx_compartment`` rows, which a deletion keeps), the other index
    rows removed, and the outbox event; all hanging off ``r``."""
    deletes = ", ".join(
        f"d_{name} AS (DELETE FROM {table.name} WHERE pid IN (SELECT pid FROM r))"
        for name, table in INDEX_TABLES.items()
    )
    sql = (
        "WITH r AS (UPDATE resource SET version = :version, last_updated = :last_updated, deleted = true, "
        "content = NULL, client_key = :client_key WHERE pid = :pid AND version = :expected RETURNING pid), "
        "h AS (INSERT INTO resource_history (pid, res_type, res_id, version, last_updated, method, content, "
        "category, client_key) SELECT pid, :res_type, :res_id, :version, :last_updated, :method, NULL, :category, "
        ":client_key FROM r RETURNING hid), "
        "hc AS (INSERT INTO history_compartment (hid, comp_type, comp_id) SELECT h.hid, c.comp_type, c.comp_id "
        "FROM h, idx_compartment c WHERE c.pid = :pid), "
        + (_EVENT_CTE if with_event else "")
        + deletes
        + " SELECT pid FROM r"
    )
    return _appended(
        sql,
        [
            bindparam("pid", type_=BigInteger()),
            bindparam("expected", type_=Integer()),
            bindparam("version", type_=Integer()),
            bindparam("last_updated", type_=BigInteger()),
            bindparam("res_type", type_=String()),
            bindparam("res_id", type_=String()),
            bindparam("method", type_=String()),
            bindparam("category", type_=String()),
            bindparam("client_key", type_=String()),
            *(_EVENT_BINDS if with_event else ()),
        ],
        appendix,
    )


async def delete_version(
    conn: AsyncConnection,
    pid: int,
    res_type: str,
    res_id: str,
    expected: int,
    last_updated: int,
    method: str,
    category: str,
    client_key: str,
    event: Mapping[str, Any] | None = None,
    alone: Appendix | None = None,
) -> bool:
    """The compare-and-set deletion in one statement; False if the version moved (then nothing at
    all is written). ``alone``: the write is all its transaction writes (:class:`Appendix`)."""
    params = {
        "pid": pid,
        "expected": expected,
        "version": expected + 1,
        "last_updated": last_updated,
        "res_type": res_type,
        "res_id": res_id,
        "method": method,
        "category": category,
        "client_key": client_key,
    }
    if event is not None:
        params.update(_event_params(event))
    statement = functools.partial(delete_statement, event is not None)
    return await _run_alone(conn, statement, params, alone) is not None

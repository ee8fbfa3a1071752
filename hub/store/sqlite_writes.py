"""Writing a resource version on SQLite in one trip to the database's thread.

aiosqlite runs every call on the connection's own thread; through SQLAlchemy one statement is three
or four such calls (cursor, execute, fetch, close), each a hand-over between two threads that costs a
loaded machine a good fraction of a millisecond (measured on a WMO301 group: some 145 hand-overs per
message, most of the wall time on SQLite). A version's rows (``resource``, its history row and
compartments, up to eight index tables, the outbox event, who wrote it) are some ten statements:
here they are one function run on that thread, one hand-over.

The statements are the INSERTs/UPDATE/DELETEs of the generic path (:mod:`hub.store.resources`), on
the caller's connection in its transaction (the sqlite3 connection aiosqlite holds; its calls are
queued, so nothing else runs on it meanwhile). An error rolls back with that transaction as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.tables import INDEX_TABLES, history_compartment, idx_compartment, outbox_event, resource_history
from hub.store.versions import NewVersion

T = TypeVar("T")

#: Statements run by this module (they bypass SQLAlchemy's events; benchmarks add them to its count).
statements = 0


def _insert_sql(table: Table, columns: Sequence[str]) -> str:
    quoted = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608


def _defaults(table: Table) -> dict[str, Any]:
    return {
        c.name: c.default.arg  # type: ignore[attr-defined]  # a scalar default
        for c in table.c
        if c.default is not None and c.default.is_scalar
    }


#: Per index table (compartments included): its insert, its value columns and their defaults.
_INDEX: list[tuple[str, str, list[str], dict[str, Any]]] = []
for _name, _table in {**INDEX_TABLES, "compartment": idx_compartment}.items():
    _values = [c.name for c in _table.c if c.name not in ("pid", "res_type", "client_key")]
    _INDEX.append((_name, _insert_sql(_table, ["pid", "res_type", "client_key", *_values]), _values, _defaults(_table)))
_DELETE_INDEX = [
    f"DELETE FROM {t.name} WHERE pid = ?"  # noqa: S608
    for t in (*INDEX_TABLES.values(), idx_compartment)
]

_INSERT_RESOURCE = (
    "INSERT INTO resource (res_type, res_id, version, last_updated, deleted, category, content, client_key) "
    "VALUES (?, ?, 1, ?, 0, ?, ?, ?) RETURNING pid"
)
_UPDATE_RESOURCE = (
    "UPDATE resource SET version = ?, last_updated = ?, deleted = 0, content = ?, client_key = ?, "
    "category = coalesce(?, category) WHERE pid = ? AND version = ?"
)
_HISTORY_COLUMNS = [
    "pid",
    "res_type",
    "res_id",
    "version",
    "last_updated",
    "method",
    "content",
    "category",
    "client_key",
]
_INSERT_HISTORY = _insert_sql(resource_history, _HISTORY_COLUMNS) + " RETURNING hid"
_INSERT_HC = _insert_sql(history_compartment, ["hid", "comp_type", "comp_id"])
_EVENT_COLUMNS = [
    "recorded",
    "pid",
    "res_type",
    "res_id",
    "version",
    "category",
    "change",
    "patients",
    "orgs",
    "old_status",
    "new_status",
]
_INSERT_EVENT = _insert_sql(outbox_event, _EVENT_COLUMNS)
_AUTHOR = "INSERT INTO resource_author (pid, ura, client_key) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
_OWNER = "INSERT INTO resource_owner (pid, party, client_key) VALUES (?, ?, ?)"
_FORGET_OWNERS = "DELETE FROM resource_owner WHERE pid = ?"


async def _on_thread(conn: AsyncConnection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` with the sqlite3 connection under ``conn``, on aiosqlite's thread (one call)."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # an aiosqlite.Connection
    try:
        result: T = await driver._execute(fn, driver._conn)  # noqa: SLF001  (its one way to run a function there)
    except (
        sqlite3.Error
    ) as exc:  # as SQLAlchemy raises it (IntegrityError, OperationalError, ...): the callers' handling
        raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc
    return result


class Version:
    """The rows of one version to write (built on the event loop, written on the database's thread)."""

    def __init__(self, new: NewVersion) -> None:
        self.res_type, self.res_id, self.version = new.res_type, new.res_id, new.version
        self.last_updated, self.method, self.content = new.last_updated, new.method, new.content
        self.category, self.key = new.category, new.client_key
        self.compartments = list(new.compartments)
        compartment_rows = [{"comp_type": t, "comp_id": i} for t, i in new.compartments]
        self.index = []
        for name, sql, columns, defaults in _INDEX:
            table_rows = compartment_rows if name == "compartment" else new.rows.get(name)
            if table_rows:
                self.index.append((sql, [tuple(r.get(c, defaults.get(c)) for c in columns) for r in table_rows]))
        self.event = new.event
        self.author_ura = new.author_ura
        self.owners = list(new.owners)

    def write(self, db: sqlite3.Connection, pid: int, *, replace: bool) -> int:
        """Everything but the ``resource`` row; returns how many statements it ran."""
        n = 1
        hid = db.execute(
            _INSERT_HISTORY,
            (
                pid,
                self.res_type,
                self.res_id,
                self.version,
                self.last_updated,
                self.method,
                self.content,
                self.category,
                self.key,
            ),
        ).fetchone()[0]
        if self.compartments:
            db.executemany(_INSERT_HC, [(hid, t, i) for t, i in self.compartments])
            n += 1
        if replace:
            for sql in _DELETE_INDEX:
                db.execute(sql, (pid,))
            n += len(_DELETE_INDEX)
        for sql, values in self.index:
            db.executemany(sql, [(pid, self.res_type, self.key, *v) for v in values])
        n += len(self.index)
        if self.event is not None:
            e = self.event
            db.execute(
                _INSERT_EVENT,
                (
                    self.last_updated,
                    pid,
                    self.res_type,
                    self.res_id,
                    self.version,
                    self.category,
                    e["change"],
                    e["patients"],
                    e["orgs"],
                    e["old_status"],
                    e["new_status"],
                ),
            )
            n += 1
        if self.author_ura:
            db.execute(_AUTHOR, (pid, self.author_ura, self.key))
            n += 1
        if self.owners:
            if replace:
                db.execute(_FORGET_OWNERS, (pid,))
                n += 1
            db.executemany(_OWNER, [(pid, p, self.key) for p in self.owners])
            n += 1
        return n


async def insert_new(conn: AsyncConnection, v: Version) -> int:
    """Version 1 of a new resource, with all its rows; returns its pid."""

    def run(db: sqlite3.Connection) -> tuple[int, int]:
        pid = int(
            db.execute(
                _INSERT_RESOURCE, (v.res_type, v.res_id, v.last_updated, v.category, v.content, v.key)
            ).fetchone()[0]
        )
        return pid, 1 + v.write(db, pid, replace=False)

    global statements
    pid, n = await _on_thread(conn, run)
    statements += n
    return pid


async def write_version(
    conn: AsyncConnection, v: Version, pid: int, expected: int, resource_category: str | None
) -> bool:
    """The compare-and-set update to ``v`` with all its rows; False (nothing written) when the
    version moved. ``resource_category`` None keeps the resource row's category."""

    def run(db: sqlite3.Connection) -> tuple[bool, int]:
        moved = db.execute(
            _UPDATE_RESOURCE, (v.version, v.last_updated, v.content, v.key, resource_category, pid, expected)
        )
        if moved.rowcount != 1:
            return False, 1
        return True, 1 + v.write(db, pid, replace=True)

    global statements
    ok, n = await _on_thread(conn, run)
    statements += n
    return ok


_DELETE_RESOURCE = (
    "UPDATE resource SET version = ?, last_updated = ?, deleted = 1, content = NULL, client_key = ? "
    "WHERE pid = ? AND version = ?"
)
#: A deletion's history row is in the compartments of what it deleted (its index rows, kept).
_HC_FROM_INDEX = (
    "INSERT INTO history_compartment (hid, comp_type, comp_id) "
    "SELECT ?, comp_type, comp_id FROM idx_compartment WHERE pid = ?"
)
_DELETE_SEARCH_ROWS = [f"DELETE FROM {t.name} WHERE pid = ?" for t in INDEX_TABLES.values()]  # noqa: S608


async def delete_version(
    conn: AsyncConnection,
    pid: int,
    res_type: str,
    res_id: str,
    expected: int,
    last_updated: int,
    method: str,
    category: str,
    key: str,
    event: Mapping[str, Any] | None,
) -> bool:
    """The compare-and-set deletion with its history row (in the compartments it deleted from: a
    deletion keeps its compartment rows), the search rows removed and its outbox event, in one
    trip; False (nothing written) when the version moved."""
    version = expected + 1

    def run(db: sqlite3.Connection) -> tuple[bool, int]:
        if db.execute(_DELETE_RESOURCE, (version, last_updated, key, pid, expected)).rowcount != 1:
            return False, 1
        hid = db.execute(
            _INSERT_HISTORY, (pid, res_type, res_id, version, last_updated, method, None, category, key)
        ).fetchone()[0]
        db.execute(_HC_FROM_INDEX, (hid, pid))
        for sql in _DELETE_SEARCH_ROWS:
            db.execute(sql, (pid,))
        if event is not None:
            db.execute(
                _INSERT_EVENT,
                (
                    last_updated,
                    pid,
                    res_type,
                    res_id,
                    version,
                    category,
                    event["change"],
                    event["patients"],
                    event["orgs"],
                    event["old_status"],
                    event["new_status"],
                ),
            )
        return True, 4 + len(_DELETE_SEARCH_ROWS)

    global statements
    ok, n = await _on_thread(conn, run)
    statements += n
    return ok

"""Resource storage (the "DAO"): rows in ``resource``, ``resource_history`` and the index tables.

Every function takes the connection of the caller's transaction, so a whole Bundle can share one.
No business rules live here (versions are checked by the caller through compare-and-set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import (
    String,
    and_,
    bindparam,
    case,
    column,
    delete,
    false,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import table as table_clause
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.functions import FunctionElement

from hub.store import deferred
from hub.store.clientkey import client_key, move
from hub.store.direct import DirectQuery, DriverConnection, InTransaction, on_its_own_driver
from hub.store.policy import ShapeCache, StorePolicy, Visible
from hub.store.tables import (
    INDEX_TABLES,
    history_compartment,
    idx_compartment,
    idx_token,
    outbox_event,
    resource,
    resource_history,
)
from hub.store.versions import NewVersion

if TYPE_CHECKING:
    from hub.store.pg_writes import Appendix


@dataclass(frozen=True, slots=True)
class Stored:
    """One version of a resource as stored; ``content`` is the JSON text (None when deleted)."""

    pid: int
    res_type: str
    res_id: str
    version: int
    last_updated: int
    deleted: bool
    content: str | None
    method: str | None = None
    category: str | None = None
    #: The client the resource belongs to (hub.store.clientkey); set on current versions.
    client_key: str | None = None
    #: Its recorded creator parties (``resource_owner``), when read with it for a write that
    #: replaces it (:func:`get_current_for_write`); None: not read.
    owners: tuple[str, ...] | None = None

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass(frozen=True, slots=True)
class Authorship:
    """Who wrote a version, recorded with it in the write's own statement(s): the author
    organisation (``resource_author``: what it wrote it keeps seeing; every version but a deletion)
    and, for a write that creates the resource, its creator parties (``resource_owner``: the
    ownership rules of :mod:`hub.workflows`). The store knows only the tables' names and columns."""

    author_ura: str | None = None
    owners: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.author_ura or self.owners)


NO_AUTHORSHIP = Authorship()

_AUTHOR_ROW = text(
    "INSERT INTO resource_author (pid, ura, client_key) VALUES (:pid, :ura, :key) ON CONFLICT DO NOTHING"
)
_OWNER_ROW = text("INSERT INTO resource_owner (pid, party, client_key) VALUES (:pid, :party, :key)")
_FORGET_OWNERS = text("DELETE FROM resource_owner WHERE pid = :pid")


async def _record_authorship(
    conn: AsyncConnection, pid: int, key: str, authorship: Authorship, *, author: bool = True, replace: bool = False
) -> None:
    """The authorship rows of a version, one statement per table (``replace``: the owners of an
    earlier life of the resource, before its deletion, are forgotten)."""
    if author and authorship.author_ura:
        await conn.execute(_AUTHOR_ROW, {"pid": pid, "ura": authorship.author_ura, "key": key})
    if authorship.owners:
        if replace:
            await conn.execute(_FORGET_OWNERS, {"pid": pid})
        await conn.execute(_OWNER_ROW, [{"pid": pid, "party": p, "key": key} for p in dict.fromkeys(authorship.owners)])


class IndexRows(Protocol):
    """What extraction produces for one resource: rows per index table, and compartments."""

    @property
    def rows(self) -> Mapping[str, Sequence[Mapping[str, Any]]]: ...

    @property
    def compartments(self) -> Sequence[tuple[str, str]]: ...


_CURRENT = select(
    resource.c.pid,
    resource.c.res_type,
    resource.c.res_id,
    resource.c.version,
    resource.c.last_updated,
    resource.c.deleted,
    resource.c.content,
    literal(None).label("method"),
    resource.c.category,
    resource.c.client_key,
)


async def get_current(conn: AsyncConnection, res_type: str, res_id: str) -> Stored | None:
    """The current version (also when deleted), or None if the id was never used."""
    row = (await conn.execute(_CURRENT.where(resource.c.res_type == res_type, resource.c.res_id == res_id))).first()
    return Stored(*row) if row else None


_CHECKED_READS: ShapeCache[Any] = ShapeCache()


def _checked_read_statement(policy: StorePolicy) -> Any:
    """The read-by-id statement for this policy's shape, built once and reused (building SQL
    expression trees costs more than running the query)."""
    return _CHECKED_READS.get(policy.shape(), lambda: _build_checked_read(policy))


def _build_checked_read(policy: StorePolicy) -> Any:
    comp = idx_compartment.alias("read_comp")

    def patient(agg: Any) -> Any:
        return (
            select(agg(comp.c.comp_id))
            .where(comp.c.pid == resource.c.pid, comp.c.comp_type == "Patient")
            .scalar_subquery()
        )

    count = select(func.count()).where(comp.c.pid == resource.c.pid, comp.c.comp_type == "Patient").scalar_subquery()
    visible = literal(True) if policy.internal else case((policy.sql_filter(resource), True), else_=False)
    stmt = select(
        *_CURRENT.selected_columns,
        visible.label("visible"),
        patient(func.min),
        patient(func.max),
        count,
    ).where(resource.c.res_type == bindparam("read_type"), resource.c.res_id == bindparam("read_id"))
    return stmt


async def get_current_checked(
    conn: AsyncConnection, res_type: str, res_id: str, policy: StorePolicy
) -> tuple[Stored | None, bool, tuple[str, ...] | None]:
    """The current version, whether the caller's ``policy`` lets it see it, and the Patient(s) it
    belongs to (None when there are more than two: ask for them separately) — in one statement,
    for the read-by-id hot path."""
    params: dict[str, Any] = {"read_type": res_type, "read_id": res_id}
    if not policy.internal:
        await deferred.settle(conn)  # the access facts this transaction's writes owe
    params.update(policy.params())
    return _checked((await conn.execute(_checked_read_statement(policy), params)).first())


_DIRECT_READS: ShapeCache[DirectQuery] = ShapeCache()


async def get_current_checked_direct(
    fairy: PoolProxiedConnection, dialect: Any, res_type: str, res_id: str, policy: StorePolicy
) -> tuple[Stored | None, bool, tuple[str, ...] | None]:
    """:func:`get_current_checked` on a lookup connection of the caller's own, outside any
    transaction (so nothing is owed to settle), with the statement run on the asyncpg connection
    (:mod:`hub.store.direct`): the same statement, the same answer, a fraction of the CPU."""
    query = _DIRECT_READS.get(policy.shape(), lambda: DirectQuery(_checked_read_statement(policy), dialect))
    params: dict[str, Any] = {"read_type": res_type, "read_id": res_id}
    params.update(policy.params())
    return _checked(await query.fetchrow(fairy, params))


def _checked(row: Sequence[Any] | None) -> tuple[Stored | None, bool, tuple[str, ...] | None]:
    if row is None:
        return None, False, ()
    stored = Stored(*row[:10])
    low, high, n = row[11], row[12], row[13]
    patients: tuple[str, ...] | None = tuple(dict.fromkeys(p for p in (low, high) if p)) if n <= 2 else None
    return stored, bool(row[10]), patients


class JoinedIds(FunctionElement[str]):
    """The values of a scalar subquery's rows as one space-separated string (for ids and parties,
    which have no spaces): ``string_agg`` on PostgreSQL, ``group_concat`` on SQLite."""

    type = String()
    inherit_cache = True


@compiles(JoinedIds)
def _joined_pg(element: JoinedIds, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, ' ')"


@compiles(JoinedIds, "sqlite")
def _joined_sqlite(element: JoinedIds, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ' ')"


_OWNER = table_clause("resource_owner", column("pid"), column("party"))
_WRITE_TARGETS: ShapeCache[Any] = ShapeCache()
_DIRECT_TARGETS: ShapeCache[DirectQuery] = ShapeCache()


def _write_target_statement(policy: StorePolicy) -> Any:
    """The current version a caller's write replaces, whether the caller may see it, its recorded
    creators (for the workflow rules) and the policy's facts about it (:meth:`StorePolicy.target_facts`),
    built once per policy shape."""
    return _WRITE_TARGETS.get(policy.shape(), lambda: _build_write_target(policy))


def _build_write_target(policy: StorePolicy) -> Any:
    owners = select(JoinedIds(_OWNER.c.party)).where(_OWNER.c.pid == resource.c.pid).scalar_subquery()
    stmt = select(
        *_CURRENT.selected_columns,
        case((policy.sql_filter(resource), True), else_=False).label("visible"),
        owners.label("owners"),
        *policy.target_facts(resource),
    ).where(resource.c.res_type == bindparam("read_type"), resource.c.res_id == bindparam("read_id"))
    return stmt


async def get_current_for_write(
    conn: AsyncConnection, res_type: str, res_id: str, policy: StorePolicy
) -> tuple[Stored | None, bool]:
    """For a caller's write: the current version (with its creators, :attr:`Stored.owners`) and
    whether the caller may see it, in one statement that also hands the policy what its write check
    will ask about the row (:meth:`StorePolicy.take_target_facts`)."""
    await deferred.settle(conn)  # the access facts this transaction's writes owe
    params: dict[str, Any] = {"read_type": res_type, "read_id": res_id, **policy.params()}
    fairy = await on_its_own_driver(conn)
    if fairy is not None:  # (outside a transaction: the driver's way, as a read by id)
        query = _DIRECT_TARGETS.get(policy.shape(), lambda: DirectQuery(_write_target_statement(policy), conn.dialect))
        row = await query.fetchrow(fairy, params)
    else:
        row = (await conn.execute(_write_target_statement(policy), params)).first()
    if row is None:
        return None, False
    owners = tuple(row[11].split(" ")) if row[11] else ()
    stored = Stored(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], owners)
    policy.take_target_facts(stored, tuple(row[12:]))
    return stored, bool(row[10])


async def get_version(conn: AsyncConnection, res_type: str, res_id: str, version: int) -> Stored | None:
    h = resource_history
    row = (
        await conn.execute(
            select(
                h.c.pid,
                h.c.res_type,
                h.c.res_id,
                h.c.version,
                h.c.last_updated,
                h.c.content.is_(None),
                h.c.content,
                h.c.method,
            ).where(h.c.res_type == res_type, h.c.res_id == res_id, h.c.version == version)
        )
    ).first()
    if row is None:
        return None
    return Stored(row[0], row[1], row[2], row[3], row[4], row[7] == "DELETE", row[6], row[7])


async def get_version_checked(
    conn: AsyncConnection, res_type: str, res_id: str, version: int, policy: StorePolicy
) -> tuple[Stored | None, bool, tuple[str, ...]]:
    """One stored version, whether the caller may see *that version* (its own category and
    clients), and the clients it was about."""
    h = resource_history
    if not policy.internal:
        await deferred.settle(conn)
    visible = literal(True) if policy.internal else case((policy.history_filter(h), True), else_=False)
    row = (
        await conn.execute(
            select(
                h.c.hid,
                h.c.pid,
                h.c.res_type,
                h.c.res_id,
                h.c.version,
                h.c.last_updated,
                h.c.content,
                h.c.method,
                h.c.category,
                visible.label("visible"),
            ).where(h.c.res_type == res_type, h.c.res_id == res_id, h.c.version == version)
        )
    ).first()
    if row is None:
        return None, False, ()
    stored = Stored(row[1], row[2], row[3], row[4], row[5], row[7] == "DELETE", row[6], row[7], row[8])
    return stored, bool(row[9]), tuple(sorted((await version_patients(conn, [row[0]])).get(row[0], ())))


async def version_patients(conn: AsyncConnection, hids: Sequence[int]) -> dict[int, set[str]]:
    """The clients each version (history row) was about."""
    if not hids:
        return {}
    c = history_compartment
    rows = (
        await conn.execute(select(c.c.hid, c.c.comp_id).where(c.c.hid.in_(list(hids)), c.c.comp_type == "Patient"))
    ).all()
    out: dict[int, set[str]] = {}
    for hid, comp_id in rows:
        out.setdefault(hid, set()).add(comp_id)
    return out


async def patients_by_pid(conn: AsyncConnection, pids: Sequence[int]) -> dict[int, set[str]]:
    """The Patients whose compartments each resource is in (one statement)."""
    if not pids:
        return {}
    c = idx_compartment
    rows = (
        await conn.execute(
            select(c.c.pid, c.c.comp_id).where(c.c.pid.in_(list(pids)), c.c.comp_type == "Patient").distinct()
        )
    ).all()
    out: dict[int, set[str]] = {}
    for pid, comp_id in rows:
        out.setdefault(pid, set()).add(comp_id)
    return out


async def patients_of(conn: AsyncConnection, pids: Sequence[int]) -> set[str]:
    """Ids of the Patients whose compartments these resources are in (one statement)."""
    if not pids:
        return set()
    c = idx_compartment
    rows = (
        await conn.execute(select(c.c.comp_id).where(c.c.pid.in_(list(pids)), c.c.comp_type == "Patient").distinct())
    ).all()
    return {r[0] for r in rows}


#: Current Patients carrying one of ``values`` in ``system`` (built once: every request of a client
#: or mantelzorger asks it, and building the select cost more than running it).
_PATIENTS_BY_IDENTIFIER = (
    select(idx_token.c.code, resource.c.res_id)
    .select_from(idx_token.join(resource, resource.c.pid == idx_token.c.pid))
    .where(
        idx_token.c.res_type == "Patient",
        idx_token.c.param == "identifier",
        idx_token.c.system == bindparam("system"),
        idx_token.c.code.in_(bindparam("values", expanding=True)),
        resource.c.deleted == false(),
    )
)


#: The key lookups of the hub's own bookkeeping compiled for the driver's path, by name.
_DIRECT_LOOKUPS: ShapeCache[DirectQuery] = ShapeCache()


async def _lookup_rows(
    conn: AsyncConnection | DriverConnection, name: str, stmt: Any, params: dict[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of the constant statement ``stmt`` (called ``name``), on SQLAlchemy's connection or,
    compiled once, on a lookup connection's driver (:mod:`hub.store.direct`)."""
    if isinstance(conn, DriverConnection):
        query = _DIRECT_LOOKUPS.get(name, lambda: DirectQuery(stmt, conn.dialect))
        return await query.fetch(conn.fairy, params)
    return (await conn.execute(stmt, params)).all()


async def patients_by_identifier(
    conn: AsyncConnection | DriverConnection, system: str, values: Iterable[str]
) -> dict[str, list[str]]:
    """The ids of the current Patients carrying each of these identifier values (a BSN: normally one)."""
    wanted = sorted(set(values))
    if not wanted:
        return {}
    rows = await _lookup_rows(
        conn, "patients_by_identifier", _PATIENTS_BY_IDENTIFIER, {"system": system, "values": wanted}
    )
    out: dict[str, list[str]] = {}
    for value, res_id in rows:
        out.setdefault(value, []).append(res_id)
    return out


#: Whether a current resource of a type carries an identifier (no access decision), on the driver
#: connection in a write transaction (hub.store.direct).
_IDENTIFIER_IN_USE = InTransaction(
    select(idx_token.c.pid)
    .select_from(idx_token.join(resource, resource.c.pid == idx_token.c.pid))
    .where(
        idx_token.c.res_type == bindparam("res_type"),
        idx_token.c.param == "identifier",
        idx_token.c.system == bindparam("system"),
        idx_token.c.code == bindparam("code"),
        resource.c.deleted == false(),
    )
    .limit(1)
)


async def identifier_in_use(conn: AsyncConnection, res_type: str, system: str, code: str) -> bool:
    """Whether any current ``res_type`` carries identifier ``system|code``, whoever may see it (for
    :meth:`hub.store.repository.Repository.match`: where none does, nothing visible does either)."""
    return bool(await _IDENTIFIER_IN_USE.fetch(conn, {"res_type": res_type, "system": system, "code": code}))


_EXISTING_IDS = select(resource.c.res_id).where(
    resource.c.res_type == bindparam("res_type"),
    resource.c.res_id.in_(bindparam("ids", expanding=True)),
    resource.c.deleted == false(),
)


async def existing_ids(conn: AsyncConnection | DriverConnection, res_type: str, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` name a current, undeleted ``res_type`` (no access decision: for the hub's
    own bookkeeping, such as whose audit view an attempt belongs in)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    rows = await _lookup_rows(conn, "existing_ids", _EXISTING_IDS, {"res_type": res_type, "ids": wanted})
    return {r[0] for r in rows}


async def references_of(conn: AsyncConnection, pids: Iterable[int]) -> dict[int, str]:
    """``Type/id`` of each resource (by pid)."""
    wanted = sorted(set(pids))
    if not wanted:
        return {}
    rows = (
        await conn.execute(
            select(resource.c.pid, resource.c.res_type, resource.c.res_id).where(resource.c.pid.in_(wanted))
        )
    ).all()
    return {pid: f"{t}/{i}" for pid, t, i in rows}


async def any_version_visible(conn: AsyncConnection, pid: int, policy: StorePolicy) -> bool:
    await deferred.settle(conn)
    h = resource_history
    row = (await conn.execute(select(h.c.hid).where(h.c.pid == pid, policy.history_filter(h)).limit(1))).first()
    return row is not None


def _version_of(
    res_type: str,
    res_id: str,
    version: int,
    last_updated: int,
    method: str,
    content: str,
    category: str,
    key: str,
    rows: IndexRows,
    event: Mapping[str, Any] | None,
    authorship: Authorship,
) -> NewVersion:
    """The record the database's writer stores (:mod:`hub.store.versions`)."""
    return NewVersion(
        res_type,
        res_id,
        version,
        last_updated,
        method,
        content,
        category,
        key,
        rows.rows,
        rows.compartments,
        event,
        authorship.author_ura,
        tuple(dict.fromkeys(authorship.owners)),
    )


async def insert_new(
    conn: AsyncConnection,
    res_type: str,
    res_id: str,
    content: str,
    last_updated: int,
    method: str,
    rows: IndexRows | None,
    category: str = "medisch",
    event: Mapping[str, Any] | None = None,
    authorship: Authorship = NO_AUTHORSHIP,
    *,
    server_id: bool = False,
    guard: tuple[str, Mapping[str, Any]] | None = None,
    alone: Appendix | None = None,
) -> Stored | None:
    """A resource that did not exist: version 1 in ``resource`` and in the history (and its outbox
    ``event``, when given: see :mod:`hub.events.outbox`; and its ``authorship``), every row with the
    resource's client key. ``server_id``: the server made the id (it cannot collide), so in a
    transaction Bundle the write may wait to be written with the others (:mod:`hub.store.pg_batch`).
    ``guard``: a condition of the access check (PostgreSQL only) the write statement meets, or it
    writes nothing and this returns None (a guarded write is never left waiting). ``alone``: the
    write is all its transaction writes (PostgreSQL, :class:`hub.store.pg_writes.Appendix`)."""
    key = client_key(res_type, res_id, _patients(rows))
    if conn.dialect.name in ("postgresql", "sqlite") and rows is not None:
        new = _version_of(res_type, res_id, 1, last_updated, method, content, category, key, rows, event, authorship)
        if conn.dialect.name == "postgresql":
            from hub.store import pg_batch, pg_writes

            batch = pg_batch.buffer_of(conn) if server_id and guard is None else None
            if batch is not None:
                new_pid = await batch.insert_new(conn, new)
            else:
                written = await pg_writes.insert_new(conn, new, guard, alone)
                if written is None:
                    return None
                new_pid = written
        else:
            from hub.store import sqlite_writes

            new_pid = await sqlite_writes.insert_new(conn, sqlite_writes.Version(new))
        return Stored(new_pid, res_type, res_id, 1, last_updated, False, content, method, category, key)
    pid = (
        await conn.execute(
            insert(resource)
            .values(
                res_type=res_type,
                res_id=res_id,
                version=1,
                last_updated=last_updated,
                deleted=False,
                content=content,
                category=category,
                client_key=key,
            )
            .returning(resource.c.pid)
        )
    ).scalar_one()
    hid = (
        await conn.execute(
            insert(resource_history)
            .values(
                pid=pid,
                res_type=res_type,
                res_id=res_id,
                version=1,
                last_updated=last_updated,
                method=method,
                content=content,
                category=category,
                client_key=key,
            )
            .returning(resource_history.c.hid)
        )
    ).scalar_one()
    await _history_compartments(conn, hid, rows.compartments if rows is not None else ())
    if rows is not None:
        await write_index_rows(conn, pid, res_type, rows, replace=False, key=key)
    if event is not None:
        await insert_event(conn, pid, res_type, res_id, 1, last_updated, category, event)
    if authorship:
        await _record_authorship(conn, pid, key, authorship)
    return Stored(pid, res_type, res_id, 1, last_updated, False, content, method, category, key)


async def write_version(
    conn: AsyncConnection,
    current: Stored,
    content: str | None,
    last_updated: int,
    method: str,
    rows: IndexRows | None,
    category: str | None = None,
    event: Mapping[str, Any] | None = None,
    authorship: Authorship = NO_AUTHORSHIP,
    alone: Appendix | None = None,
) -> Stored | None:
    """The next version of ``current`` (``content=None`` deletes); None if someone else got there first.
    ``alone``: the write is all its transaction writes (PostgreSQL, :class:`hub.store.pg_writes.Appendix`),
    made so when it is one statement (not when it moves the resource to another client or replaces
    its creators).
    ``authorship`` is recorded with it (a deletion records no author; creator parties are those of
    a re-creation, and replace the earlier life's).

    Compare-and-set on ``version``: on PostgreSQL a concurrent writer of the same row waits for the
    first one's commit and then finds the version changed, so no update is ever lost.
    """
    new_version = current.version + 1
    deleted = content is None
    # A deletion keeps the key (its compartment rows stay); a new version may move the resource to
    # another client (its subject changed).
    key = (
        client_key(current.res_type, current.res_id, _patients(rows))
        if rows is not None and content is not None
        else current.client_key or await _key_of(conn, current.pid)
    )
    category_of = category if category is not None else current.category
    written = Stored(
        current.pid,
        current.res_type,
        current.res_id,
        new_version,
        last_updated,
        deleted,
        content,
        method,
        category_of,
        key,
    )
    if deleted and conn.dialect.name in ("postgresql", "sqlite"):
        from hub.store import pg_writes, sqlite_writes

        kept_category = category_of or "medisch"
        deletion = (current.pid, current.res_type, current.res_id, current.version, last_updated, method)
        if conn.dialect.name == "postgresql":
            done = await pg_writes.delete_version(
                conn, *deletion, kept_category, key, event, None if authorship else alone
            )
        else:
            done = await sqlite_writes.delete_version(conn, *deletion, kept_category, key, event)
        if not done:
            return None
        if authorship:
            await _record_authorship(conn, current.pid, key, authorship, author=False, replace=True)
        return written
    if conn.dialect.name == "postgresql" and rows is not None and content is not None:
        from hub.store import pg_writes

        ok = await pg_writes.write_version(
            conn,
            current.pid,
            current.res_type,
            current.res_id,
            current.version,
            content,
            last_updated,
            method,
            category_of or "medisch",
            rows,
            key,
            event,
            authorship.author_ura,
            alone if key == current.client_key and not authorship.owners else None,
        )
        if not ok:
            return None
        if key != current.client_key:
            await move(conn, current.pid, key)
        if authorship.owners:  # (a re-creation: rare, so in statements of their own)
            await _record_authorship(conn, current.pid, key, authorship, author=False, replace=True)
        return written
    if conn.dialect.name == "sqlite" and rows is not None and content is not None:
        from hub.store import sqlite_writes

        new = _version_of(
            current.res_type,
            current.res_id,
            new_version,
            last_updated,
            method,
            content,
            category_of or "medisch",
            key,
            rows,
            event,
            authorship,
        )
        version = sqlite_writes.Version(new)
        if not await sqlite_writes.write_version(conn, version, current.pid, current.version, category):
            return None
        if key != current.client_key:
            await move(conn, current.pid, key)
        return written
    values: dict[str, Any] = {
        "version": new_version,
        "last_updated": last_updated,
        "deleted": deleted,
        "content": content,
        "client_key": key,
    }
    if category is not None:
        values["category"] = category
    result = await conn.execute(
        update(resource).where(resource.c.pid == current.pid, resource.c.version == current.version).values(**values)
    )
    if result.rowcount != 1:
        return None
    if deleted:
        # A deletion is seen by whoever saw what it deleted: the deleted version's clients.
        kept = (
            await conn.execute(
                select(idx_compartment.c.comp_type, idx_compartment.c.comp_id).where(
                    idx_compartment.c.pid == current.pid
                )
            )
        ).all()
        compartments: Sequence[tuple[str, str]] = [(t, i) for t, i in kept]
    else:
        compartments = rows.compartments if rows is not None else ()
    hid = (
        await conn.execute(
            insert(resource_history)
            .values(
                pid=current.pid,
                res_type=current.res_type,
                res_id=current.res_id,
                version=new_version,
                last_updated=last_updated,
                method=method,
                content=content,
                category=category_of or "medisch",
                client_key=key,
            )
            .returning(resource_history.c.hid)
        )
    ).scalar_one()
    await _history_compartments(conn, hid, compartments)
    if key != current.client_key:
        await move(conn, current.pid, key)
    if deleted:
        await delete_index_rows(conn, [current.pid], compartments=False)
    elif rows is not None:
        await write_index_rows(conn, current.pid, current.res_type, rows, replace=True, key=key)
    if event is not None:
        await insert_event(
            conn,
            current.pid,
            current.res_type,
            current.res_id,
            new_version,
            last_updated,
            category_of or "medisch",
            event,
        )
    if authorship:
        await _record_authorship(conn, current.pid, key, authorship, author=not deleted, replace=True)
    return written


def _patients(rows: IndexRows | None) -> list[str]:
    return [] if rows is None else [i for t, i in rows.compartments if t == "Patient"]


async def _key_of(conn: AsyncConnection, pid: int) -> str:
    return str((await conn.execute(select(resource.c.client_key).where(resource.c.pid == pid))).scalar_one())


async def insert_event(
    conn: AsyncConnection,
    pid: int,
    res_type: str,
    res_id: str,
    version: int,
    recorded: int,
    category: str,
    event: Mapping[str, Any],
) -> None:
    """The write's outbox row (the PostgreSQL fast path writes it inside its one statement)."""
    await conn.execute(
        insert(outbox_event).values(
            recorded=recorded,
            pid=pid,
            res_type=res_type,
            res_id=res_id,
            version=version,
            category=category,
            change=event["change"],
            patients=event["patients"],
            orgs=event["orgs"],
            old_status=event["old_status"],
            new_status=event["new_status"],
        )
    )


async def _history_compartments(conn: AsyncConnection, hid: int, compartments: Sequence[tuple[str, str]]) -> None:
    if compartments:
        await conn.execute(
            insert(history_compartment), [{"hid": hid, "comp_type": t, "comp_id": i} for t, i in compartments]
        )


async def delete_index_rows(conn: AsyncConnection, pids: Sequence[int], *, compartments: bool = True) -> None:
    """Remove search index rows. A deletion keeps the compartment rows: who a deleted resource
    belonged to still decides who may learn that it was deleted (410 rather than 404)."""
    tables = (*INDEX_TABLES.values(), idx_compartment) if compartments else tuple(INDEX_TABLES.values())
    for table in tables:
        await conn.execute(delete(table).where(table.c.pid.in_(list(pids))))


async def write_index_rows(
    conn: AsyncConnection, pid: int, res_type: str, rows: IndexRows, *, replace: bool, key: str
) -> None:
    """(Re)write the index rows of one resource (each with the resource's client ``key``); one
    executemany per non-empty table."""
    if replace:
        await delete_index_rows(conn, [pid])
    for name, table_rows in rows.rows.items():
        if table_rows:
            await conn.execute(
                insert(INDEX_TABLES[name]),
                [{**r, "pid": pid, "res_type": res_type, "client_key": key} for r in table_rows],
            )
    if rows.compartments:
        await conn.execute(
            insert(idx_compartment),
            [
                {"pid": pid, "res_type": res_type, "comp_type": t, "comp_id": i, "client_key": key}
                for t, i in rows.compartments
            ],
        )


def history_query(
    *,
    res_type: str | None = None,
    res_id: str | None = None,
    since: int | None = None,
    at: int | None = None,
    before_hid: int | None = None,
    visible: Visible,
) -> Any:
    """SELECT of history rows, newest first (ordered by the global ``hid``); ``visible`` is the
    access filter on each history row (a caller sees the versions it may see, each decided on its
    own category and clients)."""
    h = resource_history
    cond: list[Any] = [visible(h)]
    if res_type:
        cond.append(h.c.res_type == res_type)
    if res_id:
        cond.append(h.c.res_id == res_id)
    if since is not None:
        cond.append(h.c.last_updated >= since)
    if at is not None:
        # Versions that were current at ``at``: written by then, and not yet replaced by then.
        newer = resource_history.alias("newer")
        cond.append(h.c.last_updated <= at)
        cond.append(
            ~select(newer.c.hid)
            .where(newer.c.pid == h.c.pid, newer.c.version > h.c.version, newer.c.last_updated <= at)
            .exists()
        )
    if before_hid is not None:
        cond.append(h.c.hid <= before_hid)
    return (
        select(h.c.hid, h.c.pid, h.c.res_type, h.c.res_id, h.c.version, h.c.last_updated, h.c.method, h.c.content)
        .where(and_(True, *cond))
        .order_by(h.c.hid.desc())
    )


def stored_from_history(row: Iterable[Any]) -> Stored:
    _hid, pid, res_type, res_id, version, last_updated, method, content = row
    return Stored(pid, res_type, res_id, version, last_updated, method == "DELETE", content, method)

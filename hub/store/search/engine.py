"""Running a search: a bounded number of SQL statements, whatever the result size.

Statements per search: the page (1, with the snapshot id folded in on the first page, and the total
counted by the same statement unless a cursor continues the page), the count (0 or 1: only a page of
a cursor that needs a total), and one per ``_include``/``_revinclude`` round (``:iterate`` adds
rounds, at most :data:`MAX_INCLUDE_DEPTH`). No statement per result row, ever.

Paging is keyset-based within a *snapshot*: the first page records the highest resource ``pid``
then committed, and every later page only considers resources up to it, so resources created while a
client pages never show up in it; and each link carries the sort-key values and ``pid`` of the row
it continues from (:class:`~hub.fhir.query.Cursor`), so a row deleted or changed before that point
cannot shift what comes after it (with offsets it could make a row skipped or seen twice).
``_offset`` is still honoured when a client sends it.

``_total=estimate`` on PostgreSQL is the planner's row estimate for the count (no counting scan).

Each statement is built once per *shape* (:mod:`hub.store.search.predicates`: which parameters,
modifiers, chains, sort, paging position, includes) and access policy shape, kept in a bounded LRU
(:class:`hub.store.policy.ShapeCache`), and run with the search's and the caller's values as bind
parameters: the way reads by id run (:func:`hub.store.resources.get_current_checked`). On a
:class:`~hub.store.direct.DriverConnection` (searches that :meth:`SearchEngine.plan_stable`, outside a
transaction) the same statements are compiled once and run by asyncpg itself.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    Select,
    Text,
    and_,
    any_,
    cast,
    false,
    func,
    literal_column,
    not_,
    null,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.types import NullType

from hub.fhir.errors import BadRequest, Issue
from hub.fhir.query import DEFAULT_SEARCH_LIMITS, Cursor, Include, SearchLimits, SearchQuery, parse_query
from hub.store import deferred
from hub.store.direct import DirectQuery, DriverConnection
from hub.store.policy import ShapeCache, Visible
from hub.store.repository import Matcher
from hub.store.resources import JoinedIds, Stored
from hub.store.search.predicates import (
    Binds,
    Planner,
    Shape,
    Slots,
    TemplateBuilder,
    build_local_target,
    checkable_per_row,
    keyset_condition,
    pins,
    plan_local_target,
    sort_column,
)
from hub.store.tables import idx_compartment, idx_reference, idx_token, resource

MAX_INCLUDE_DEPTH = 4
#: Most resources one include round may add (protects against runaway :iterate).
MAX_INCLUDED = 5000
#: Statements kept built (per query shape and access policy shape), the least recently used dropped.
STATEMENT_CACHE_SIZE = 256


@dataclass(slots=True)
class SearchPage:
    query: SearchQuery
    matches: list[Stored]
    included: list[Stored] = field(default_factory=list)
    total: int | None = None
    has_next: bool = False
    snapshot: int | None = None
    warnings: list[Issue] = field(default_factory=list)
    #: Keyset positions for the paging links (None: no such page).
    next_cursor: Cursor | None = None
    previous_cursor: Cursor | None = None
    #: The clients (Patient ids) each returned resource belongs to, by pid, when asked for
    #: (``with_patients``): the audit trail's, fetched by the page and include statements themselves.
    patients: dict[int, set[str]] | None = None
    #: The ids of the current Patients carrying each identifier value the search was asked to look up
    #: alongside (``execute``'s ``named``: the clients a request names by BSN, the audit trail's), when
    #: its page statement did; None when it did not (the caller looks them up itself).
    named: dict[str, list[str]] | None = None


_COLUMNS = (
    resource.c.pid,
    resource.c.res_type,
    resource.c.res_id,
    resource.c.version,
    resource.c.last_updated,
    resource.c.deleted,
    resource.c.content,
)


def _patients_column(r: FromClause, wanted: bool) -> Any:
    """Column 7 of page and include rows: the row's clients when ``wanted``, else NULL."""
    if not wanted:
        return null().label("patients")
    c = idx_compartment.alias("row_comp")
    ids = select(JoinedIds(c.c.comp_id)).where(c.c.pid == r.c.pid, c.c.comp_type == "Patient")
    return ids.scalar_subquery().label("patients")


def _patients_of(value: str | None) -> set[str]:
    return set(value.split(" ")) if value else set()


def _take_rows(page: SearchPage, rows: Sequence[Any], with_patients: bool) -> None:
    """Page rows (one more than the page size, to tell whether there is a next page) into ``page``:
    its matches, their clients, the snapshot and the keyset positions of the paging links."""
    query = page.query
    more = len(rows) > query.count
    rows = list(rows[: query.count])
    cursor = query.cursor
    if cursor is not None and cursor.direction == "previous":
        rows.reverse()
        page.has_next = True
        has_previous = more
    else:
        page.has_next = more
        has_previous = cursor is not None or query.offset > 0
    page.matches = [Stored(*row[:7]) for row in rows]
    if with_patients:
        page.patients = {row[0]: _patients_of(row[7]) for row in rows}
    page.snapshot = query.snapshot if query.snapshot is not None else (rows[0][8] if rows else None)
    if rows:
        n = len(query.sort)
        first, last = rows[0], rows[-1]
        if page.has_next:
            page.next_cursor = Cursor(tuple(last[9 : 9 + n]), last[0], "next")
        if has_previous:
            page.previous_cursor = Cursor(tuple(first[9 : 9 + n]), first[0], "previous")


def _total_seen(page: SearchPage) -> bool:
    """Whether the page saw every match (no next page, not paged by cursor, and not past the end), so
    the total is what came before it plus its own."""
    query = page.query
    return not page.has_next and query.cursor is None and bool(page.matches or query.offset == 0)


#: Which pinning criterion a stable plan starts from, best first: an ``_id``, an identifier, a
#: reference to a client (a client's share of the data is bounded), a chain, another reference (an
#: organisation or practitioner may be referenced by a great many resources).
_PIN_RANK = {"_id": 0, "identifier": 1, "client": 2, "chain": 3, "reference": 4}


def _pin_rank(shape: Shape, criterion: Any) -> int:
    if shape[0] in ("_id", "chain"):
        return _PIN_RANK[shape[0]]
    if shape[1] == "token":
        return _PIN_RANK["identifier"]
    targets = {getattr(v, "target_type", None) for v in criterion.values}
    return _PIN_RANK["client" if targets == {"Patient"} else "reference"]


def _driver(in_compartment: bool, criteria: tuple[Shape, ...], query: SearchQuery) -> int | None:
    """Where a stable plan starts: -1 for the compartment, else the index of the best pinning
    criterion; None when there is none, or another criterion cannot be checked per row (or a sort)."""
    if query.sort:
        return None
    if in_compartment:
        driver = -1
    else:
        ranked = [(_pin_rank(c, query.criteria[i]), i) for i, c in enumerate(criteria) if pins(c)]
        if not ranked:
            return None
        driver = min(ranked)[1]
    return driver if all(i == driver or checkable_per_row(c) for i, c in enumerate(criteria)) else None


def in_compartment(r: FromClause, comp_type: str, comp_id: Any, res_type: str | None) -> ColumnElement[bool]:
    """Rows of ``r`` in the compartment, matched to its ``idx_compartment`` rows on (client key, pid):
    a compartment row carries its resource's key, so the key adds no condition on one database, and
    says which client's rows (which shard) a distributed database joins (deploy/CITUS.md)."""
    c = idx_compartment
    rows = select(c.c.client_key, c.c.pid).where(c.c.comp_type == comp_type, c.c.comp_id == comp_id)
    if res_type:
        rows = rows.where(c.c.res_type == res_type)
    return tuple_(r.c.client_key, r.c.pid).in_(rows)


def _may_name(conn: SearchConnection, query: SearchQuery) -> bool:
    """Whether the page statement may also look up named clients (:meth:`SearchEngine._build_named`):
    on the driver's path (PostgreSQL), for a page in pid order (no sort, not a page backwards)."""
    cursor = query.cursor
    return isinstance(conn, DriverConnection) and not query.sort and (cursor is None or cursor.direction != "previous")


def _counted(query: SearchQuery) -> bool:
    """Whether the page statement also counts the total (:meth:`SearchEngine._build_page`): an accurate
    one, on a page without a cursor (whose keyset condition would narrow the count)."""
    return query.total == "accurate" and query.cursor is None


@dataclass(frozen=True, slots=True)
class _Access:
    """The access filter a search applies, what its statements are cached by (the policy's shape;
    None: a filter that is not a policy's, built for each search) and its bind values."""

    visible: Visible
    shape: Hashable | None
    params: dict[str, Any]


def _access(visible: Visible) -> _Access:
    """``visible`` is a policy's :meth:`~hub.store.policy.StorePolicy.sql_filter`: its SQL depends on the
    policy's shape only, its values are the policy's params (as for reads by id)."""
    policy = getattr(visible, "__self__", None)
    if policy is not None and getattr(policy, "sql_filter", None) == visible and hasattr(policy, "shape"):
        # (the class too: two kinds of policy may give the same shape with different filters)
        return _Access(visible, (type(policy), policy.shape()), policy.params())
    return _Access(visible, None, {})


def _include_statement(
    shape: Shape, visible: Visible, *, slots: Slots | None = None, kept: Select[Any] | None = None
) -> Select[Any]:
    """One ``_include``/``_revinclude`` round: what the references of ``pids`` point at, or (reverse)
    what points at them, seen through the access filter, leaving out ``pids`` themselves (the caller
    has them: ``$everything``'s references mostly point inside the page). On PostgreSQL ``pids`` is
    one array parameter (``= ANY``): one statement text whatever the page size, prepared once.
    ``kept``: the pids are that SELECT's instead (a page in the same statement); ``slots``: where
    the statement's parameters continue (after the page's)."""
    _tag, reverse, specs, has_base, array, with_patients = shape
    s = slots if slots is not None else Slots()
    pids: Any = kept if kept is not None else s.next(type_=ARRAY(BigInteger())) if array else s.next(expanding=True)

    def among(col: Any) -> ColumnElement[bool]:
        return col == any_(pids) if array and kept is None else col.in_(pids)

    ref = idx_reference.alias("inc_ref")
    r = resource.alias("inc")
    choices = []
    for source_type, param, target_type in specs:
        parts: list[ColumnElement[bool]] = []
        if source_type != "*":
            parts.append(ref.c.res_type == source_type)
        if param != "*":
            parts.append(ref.c.param == param)
        if target_type:
            parts.append(ref.c.target_type == target_type)
        choices.append(and_(*parts) if parts else ref.c.pid.isnot(None))
    access = visible(r)
    if reverse:
        # Resources whose reference points at one of ``pids``.
        m = resource.alias("inc_match")
        join = ref.join(r, r.c.pid == ref.c.pid).join(
            m, and_(m.c.res_type == ref.c.target_type, m.c.res_id == ref.c.target_id)
        )
        where: list[ColumnElement[bool]] = [among(m.c.pid)]
    else:
        join = ref.join(r, and_(r.c.res_type == ref.c.target_type, r.c.res_id == ref.c.target_id))
        where = [among(ref.c.pid)]
    where += [
        not_(among(r.c.pid)),
        or_(*choices),
        build_local_target(ref, has_base, s),
        r.c.deleted == false(),
        access,
    ]
    cols = [r.c[c.name] for c in _COLUMNS] + [_patients_column(r, with_patients)]
    return select(*cols).select_from(join).where(*where).distinct()


#: PostgreSQL collations that order text by code point (LIKE 'x%' and ranges can seek a B-tree).
_BYTEWISE_COLLATIONS = frozenset({"c", "posix", "c.utf-8", "c.utf8", "ucs_basic"})


_COLLATION = "SELECT datcollate FROM pg_database WHERE datname = current_database()"


async def text_is_bytewise(conn: AsyncConnection | DriverConnection) -> bool:
    """True when ``<``/``>=`` on the index tables' text columns compare code points (one query, once)."""
    if conn.dialect.name == "sqlite":
        return True  # BINARY collation
    if conn.dialect.name != "postgresql":
        return False
    if isinstance(conn, DriverConnection):
        collation = await conn.fairy.driver_connection.fetchval(_COLLATION)  # type: ignore[union-attr]
    else:
        collation = (await conn.execute(text(_COLLATION))).scalar_one()
    return str(collation).lower() in _BYTEWISE_COLLATIONS


#: A connection a search runs on: SQLAlchemy's, or (PostgreSQL, asyncpg) the driver's (:mod:`hub.store.direct`).
SearchConnection = AsyncConnection | DriverConnection


class SearchEngine(Matcher):
    """Turns :class:`SearchQuery` objects into SQL and runs them."""

    def __init__(
        self,
        registry: Any,
        resource_types: frozenset[str],
        *,
        default_count: int = 20,
        max_count: int = 1000,
        limits: SearchLimits = DEFAULT_SEARCH_LIMITS,
    ) -> None:
        self.registry = registry
        self.resource_types = resource_types
        self.default_count = default_count
        self.max_count = max_count
        self.limits = limits
        #: Whether the database compares text in code point order (see :func:`string_cond`); learnt
        #: from the first connection, because the engine is built before the database is reached.
        self.bytewise: bool | None = None
        #: The statements of the searches run so far, one per query shape and access policy shape.
        self.statements: ShapeCache[Select[Any]] = ShapeCache(STATEMENT_CACHE_SIZE)
        #: The same, compiled for the driver's path (:class:`DriverConnection`, :meth:`everything_on_driver`).
        self.direct: ShapeCache[DirectQuery] = ShapeCache(STATEMENT_CACHE_SIZE)

    # -- parsing ------------------------------------------------------------------------------------

    def parse(self, res_type: str | None, params: list[tuple[str, str]], *, strict: bool = False) -> SearchQuery:
        return parse_query(
            res_type,
            params,
            self.registry,
            default_count=self.default_count,
            max_count=self.max_count,
            strict=strict,
            resource_types=self.resource_types,
            limits=self.limits,
        )

    # -- SQL ----------------------------------------------------------------------------------------

    def plan_stable(self, query: SearchQuery, local_base: str | None = None) -> bool:
        """Whether ``query``'s statements may keep a generic plan (:meth:`hub.store.db.Database.lookup`):
        it names its matches by key (a compartment, or a criterion that :func:`pins` them), every other
        criterion is checked per row of those, and no sort can make a plan start elsewhere. A generic
        plan cannot see the values, so on PostgreSQL such a statement is written so that there is one
        sensible plan: start from the pinning criterion (see :meth:`_build_where`)."""
        return _driver(query.compartment is not None, self._criteria(query, local_base, Binds()), query) is not None

    def _criteria(self, query: SearchQuery, local_base: str | None, b: Binds) -> tuple[Shape, ...]:
        planner = Planner(b, local_base, bytewise=bool(self.bytewise))
        return tuple(planner.criterion(c) for c in query.criteria)

    def _plan_where(self, query: SearchQuery, local_base: str | None, b: Binds, stable: bool = False) -> Shape:
        """The shape of :meth:`_build_where`'s conditions; their values go in ``b``. ``stable``: on
        PostgreSQL, for a :meth:`plan_stable` query, the form whose plan cannot start elsewhere."""
        compartment = None
        if query.compartment is not None:
            compartment, comp_id = query.compartment
            b.add(comp_id)
        criteria = self._criteria(query, local_base, b)
        if query.snapshot is not None:
            b.add(query.snapshot)
        types = () if query.res_type else tuple(query.types)
        driver = _driver(compartment is not None, criteria, query) if stable else None
        return (query.res_type, types, compartment, criteria, query.snapshot is not None, driver)

    def _build_where(self, shape: Shape, r: FromClause, visible: Visible, s: Slots) -> list[ColumnElement[bool]]:
        """All conditions a matching row of ``r`` meets (type, not deleted, criteria, access, snapshot).
        In the stable form (:meth:`plan_stable`; ``driver`` not None) only the compartment, or else the
        best pinning criterion (``driver``, see :data:`_PIN_RANK`), may start the plan; the other
        criteria are checked per row."""
        res_type, types, compartment, criteria, has_snapshot, driver = shape
        conds: list[ColumnElement[bool]] = [r.c.deleted == false()]
        if res_type:
            conds.append(r.c.res_type == res_type)
        elif types:
            conds.append(r.c.res_type.in_(types))
        if compartment is not None:
            conds.append(in_compartment(r, compartment, s.next(), res_type))
        builder = TemplateBuilder(visible, s)
        per_row = TemplateBuilder(visible, s, per_row=True)
        conds.extend(
            (builder if driver is None or i == driver else per_row).condition(r, c) for i, c in enumerate(criteria)
        )
        conds.append(visible(r))
        if has_snapshot:
            conds.append(r.c.pid <= s.next())
        return conds

    def _plan_page(self, query: SearchQuery, local_base: str | None, b: Binds, stable: bool = False) -> Shape:
        """The shape of one page's SELECT (:meth:`_build_page`); its values go in ``b``."""
        where = self._plan_where(query, local_base, b, stable)
        sort = tuple((k.name, k.type, k.descending) for k in query.sort)
        cursor = query.cursor
        cursor_shape = None
        if cursor is not None:
            if len(cursor.values) != len(sort):
                raise BadRequest("_cursor does not belong to this search's _sort", expression="_cursor")
            b.add(*(v for v in cursor.values if v is not None), cursor.pid)
            cursor_shape = (cursor.direction == "previous", tuple(v is None for v in cursor.values))
        if query.snapshot is not None:
            b.add(query.snapshot)
        b.add(query.count + 1)
        if cursor is None:
            b.add(query.offset)
        return ("page", where, sort, cursor_shape)

    def _build_page(
        self, shape: Shape, visible: Visible, with_patients: bool = False, counted: bool = False
    ) -> Select[Any]:
        """One row more than the page size tells whether there is a next page; on the first page a
        scalar ``max(pid)`` column records the snapshot that later pages are limited to. Columns: the
        stored version (0-6), its clients or NULL (7), the snapshot (8), the sort keys (9-), and when
        ``counted`` the number of all matches (the total) after them.

        ``counted``: the matches are found once for both the page and the total, ``count(*) OVER ()``
        over the matching keys (pid and sort keys, narrow rows) with the page's rows then fetched by
        pid, instead of a second statement that finds every match again (and decides access for each
        again): a total is asked for whenever a page is full, and a page that is not full has seen
        every match anyway."""
        _tag, where, sort, cursor_shape = shape
        r = resource
        s = Slots()
        conds = self._build_where(where, r, visible, s)
        keys = [(sort_column(r, name, ptype, descending), descending) for name, ptype, descending in sort]
        reverse = cursor_shape is not None and cursor_shape[0]
        if cursor_shape is not None:
            values = tuple(None if none else s.next() for none in cursor_shape[1])
            conds.append(keyset_condition(keys, values, r.c.pid, s.next(), reverse=reverse))

        def ordered(exprs: list[Any], pid: Any) -> list[Any]:
            order = []
            for expr, (_key, descending) in zip(exprs, keys, strict=True):
                desc = descending != reverse
                term = expr.desc() if desc else expr.asc()
                order.append(term.nulls_first() if reverse else term.nulls_last())
            order.append(pid.desc() if reverse else pid.asc())
            return order

        has_snapshot = where[4]
        snapshot = (
            s.next(type_=BigInteger()).label("snapshot")
            if has_snapshot
            else select(func.max(resource.c.pid)).scalar_subquery().label("snapshot")
        )
        sort_keys = [expr.label(f"sort_key_{i}") for i, (expr, _d) in enumerate(keys)]
        if not counted:
            columns: list[Any] = [*_COLUMNS, _patients_column(r, with_patients), snapshot, *sort_keys]
            stmt = select(*columns).where(*conds).order_by(*ordered([e for e, _d in keys], r.c.pid))
        else:
            total = func.count().over().label("total")
            matched = select(r.c.pid, *sort_keys, total).where(*conds)
            stmt = matched.order_by(*ordered([e for e, _d in keys], r.c.pid))
        stmt = stmt.limit(s.next(type_=Integer()))
        if cursor_shape is None:
            stmt = stmt.offset(s.next(type_=BigInteger()))
        if not counted:
            return stmt
        m = stmt.subquery("page_keys")
        row = resource.alias("page_row")
        page_keys = [m.c[f"sort_key_{i}"] for i in range(len(keys))]
        columns = [row.c[c.name] for c in _COLUMNS] + [_patients_column(row, with_patients), snapshot]
        return (
            select(*columns, *page_keys, m.c.total)
            .select_from(m.join(row, row.c.pid == m.c.pid))
            .order_by(*ordered(page_keys, m.c.pid))
        )

    def _build_named(self, shape: Shape, visible: Visible, with_patients: bool, counted: bool, start: int) -> Any:
        """The page (:meth:`_build_page`) and the current Patients carrying the named identifier values
        (a system and an array of values, the parameters from ``start``; no access filter: the audit
        trail's bookkeeping, as :func:`hub.store.resources.patients_by_identifier`) in one statement:
        the page's rows in its order, then one row per such Patient, with its id (2) and the value
        (6); the last column is 0 for a page row, 1 for a named one. One round trip instead of two
        for a search by BSN."""
        page = self._build_page(shape, visible, with_patients, counted).cte("named_page")
        s = Slots()
        s.used = start
        system, values = s.next(), s.next(type_=ARRAY(Text()))
        t, r = idx_token.alias("named_token"), resource.alias("named_patient")
        nothing = [null() if isinstance(c.type, NullType) else cast(null(), c.type) for c in page.c][7:]
        patients = (
            select(
                r.c.pid,
                r.c.res_type,
                r.c.res_id,
                cast(null(), Integer()),
                cast(null(), BigInteger()),
                cast(null(), Boolean()),
                cast(t.c.code, Text()),
                *nothing,
                literal_column("1", Integer()).label("kind"),
            )
            .select_from(t.join(r, r.c.pid == t.c.pid))
            .where(
                t.c.res_type == "Patient",
                t.c.param == "identifier",
                t.c.system == system,
                t.c.code == any_(values),
                r.c.deleted == false(),
            )
        )
        matches = select(*page.c, literal_column("0", Integer()).label("kind"))
        return union_all(matches, patients).order_by(literal_column("kind"), literal_column("pid"))

    def page_statement(
        self, query: SearchQuery, *, visible: Visible, local_base: str | None = None, stable: bool = False
    ) -> Select[Any]:
        """The SELECT of one page as :meth:`execute` runs it, its values bound (tools and tests EXPLAIN it);
        ``stable`` as on PostgreSQL."""
        b = Binds()
        shape = self._plan_page(query, local_base, b, stable)
        access = _access(visible)
        counted = _counted(query)
        return self._build_page(shape, visible, counted=counted).params({**b.values, **access.params})

    async def _run(
        self, conn: SearchConnection, key: Shape, build: Any, b: Binds, access: _Access
    ) -> Sequence[Sequence[Any]]:
        """The rows of the statement of shape ``key`` (built by ``build`` unless cached) with ``b``'s
        values and the caller's access values. On a :class:`DriverConnection` the same statement is
        compiled once per shape and run by the driver: no expression building, compiling or
        execution context per search."""
        params = {**b.values, **access.params}
        if isinstance(conn, DriverConnection):
            if access.shape is None:
                return await DirectQuery(build(), conn.dialect).fetch(conn.fairy, params)
            cache_key = (key, access.shape, self.bytewise)
            query = self.direct.get(cache_key, lambda: DirectQuery(self.statements.get(cache_key, build), conn.dialect))
            return await query.fetch(conn.fairy, params)
        stmt = build() if access.shape is None else self.statements.get((key, access.shape, self.bytewise), build)
        return (await conn.execute(stmt, params)).all()

    async def execute(
        self,
        conn: SearchConnection,
        query: SearchQuery,
        *,
        visible: Visible,
        local_base: str | None = None,
        with_patients: bool = False,
        named: tuple[str, Sequence[str]] | None = None,
    ) -> SearchPage:
        """A page of ``query`` through ``visible``; ``with_patients`` also gives every returned
        resource's clients (:attr:`SearchPage.patients`), from the same statements. On a
        :class:`DriverConnection` (in no transaction: nothing is owed) not ``_total=estimate``.
        ``named``: (system, values) of identifiers whose current Patients (whatever the access filter)
        the page statement also looks up, on the driver's path (:attr:`SearchPage.named`)."""
        if self.bytewise is None:
            self.bytewise = await text_is_bytewise(conn)
        if not isinstance(conn, DriverConnection):
            await deferred.settle(conn)  # the access facts this transaction's writes owe
        access = _access(visible)
        stable = conn.dialect.name == "postgresql"
        page = SearchPage(query, [], warnings=list(query.ignored))
        if query.summary == "count" or query.count == 0:
            b = Binds()
            where = self._plan_where(query, local_base, b, stable)
            page.total = await self._count(conn, where, b, access)
            return page
        b = Binds()
        shape = self._plan_page(query, local_base, b, stable)
        counted = _counted(query)
        if named is not None and named[1] and _may_name(conn, query):
            start = len(b.values)
            b.add(named[0], sorted(set(named[1])))
            build = lambda: self._build_named(shape, access.visible, with_patients, counted, start)  # noqa: E731
            rows = await self._run(conn, ("named", shape, with_patients, counted, start), build, b, access)
            page.named = {}
            for row in rows:
                if row[-1] == 1:
                    page.named.setdefault(row[6], []).append(row[2])
            rows = [row for row in rows if row[-1] == 0]
        else:
            build = lambda: self._build_page(shape, access.visible, with_patients, counted)  # noqa: E731
            rows = await self._run(conn, (shape, with_patients, counted), build, b, access)
        counted_total = int(rows[0][9 + len(query.sort)]) if counted and rows else None
        _take_rows(page, rows, with_patients)
        if query.total != "none":
            if counted_total is not None:
                page.total = counted_total
            elif _total_seen(page):
                page.total = query.offset + len(page.matches)
            else:
                b = Binds()
                where = self._plan_where(query, local_base, b, stable)
                if query.total == "estimate" and not conn.dialect.name == "sqlite":
                    assert not isinstance(conn, DriverConnection)  # (the repository's choice, see direct_search)
                    page.total = await self._estimate(conn, where, b, access)
                else:
                    page.total = await self._count(conn, where, b, access)
        if query.includes or query.revincludes:
            page.included = await self._includes(conn, query, page, access, local_base)
        return page

    async def _estimate(self, conn: AsyncConnection, where: Shape, b: Binds, access: _Access) -> int:
        """The planner's estimate of the matching rows (PostgreSQL ``EXPLAIN``): no counting scan."""
        stmt = select(resource.c.pid).where(*self._build_where(where, resource, access.visible, Slots()))
        state = stmt.compile(dialect=conn.dialect).construct_expanded_state({**b.values, **access.params})
        sql, params = state.statement, state.positional_parameters
        plan = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params)).scalar_one()
        if isinstance(plan, str):
            import json

            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    def _build_count(self, where: Shape, visible: Visible) -> Select[Any]:
        conds = self._build_where(where, resource, visible, Slots())
        return select(func.count()).select_from(resource).where(*conds)

    async def _count(self, conn: SearchConnection, where: Shape, b: Binds, access: _Access) -> int:
        build = lambda: self._build_count(where, access.visible)  # noqa: E731
        return int((await self._run(conn, ("count", where), build, b, access))[0][0])

    # -- $everything on the driver ------------------------------------------------------------------

    async def everything_on_driver(
        self,
        conn: DriverConnection,
        query: SearchQuery,
        *,
        visible: Visible,
        local_base: str | None,
    ) -> SearchPage | None:
        """A page of ``$everything``'s compartment search (or of another plan-stable search, such as
        ``CarePlan?subject=...&_include=CarePlan:goal``) with its one include round, in ONE statement
        (:meth:`_build_everything`: the page's statement and the include round's, the latter taking
        the page's pids from the former), compiled once per shape and run on a lookup connection's
        driver (:mod:`hub.store.direct`, PostgreSQL): the same conditions, access filter and answer as
        :meth:`execute`, at a fraction of the CPU. Every row carries its clients (the audit trail's).
        None when the query is not one this path answers (then :meth:`execute` does)."""
        access = _access(visible)
        cursor = query.cursor
        if (
            self.bytewise is None
            or access.shape is None
            or conn.dialect.name != "postgresql"
            or query.sort
            or query.revincludes
            or not query.includes
            or any(i.iterate for i in query.includes)
            or query.summary == "count"
            or query.count == 0
            or query.total == "estimate"
            or (cursor is not None and cursor.direction == "previous")
        ):
            return None
        b = Binds()
        shape = self._plan_page(query, local_base, b, stable=True)
        start = len(b.values)
        b.add(query.count)
        has_base = plan_local_target(local_base, b)
        specs = tuple((i.source_type, i.param, i.target_type) for i in query.includes)
        include = ("include", False, specs, has_base, True, True)
        key = ("everything", shape, include, start, access.shape, self.bytewise)
        build = lambda: DirectQuery(self._build_everything(shape, start, include, access.visible), conn.dialect)  # noqa: E731
        rows = await self.direct.get(key, build).fetch(conn.fairy, {**b.values, **access.params})
        page = SearchPage(query, [], warnings=list(query.ignored))
        _take_rows(page, [row for row in rows if row[9] == 0], True)
        assert page.patients is not None
        included = [row for row in rows if row[9] == 1]
        if len(included) > MAX_INCLUDED:
            raise BadRequest(
                f"The includes add more than {MAX_INCLUDED} resources; narrow the search", code="too-costly"
            )
        page.included = [Stored(*row[:7]) for row in included]
        page.patients.update((row[0], _patients_of(row[7])) for row in included)
        if query.total != "none":
            if _total_seen(page):
                page.total = query.offset + len(page.matches)
            else:
                b = Binds()
                where = self._plan_where(query, local_base, b, stable=True)
                count = self.direct.get(
                    (("count", where), access.shape, self.bytewise),
                    lambda: DirectQuery(self._build_count(where, access.visible), conn.dialect),
                )
                page.total = int((await count.fetch(conn.fairy, {**b.values, **access.params}))[0][0])
        return page

    def _build_everything(self, shape: Shape, start: int, include: Shape, visible: Visible) -> Any:
        """The page (:meth:`_build_page`, its rows' clients included) and its include round
        (:func:`_include_statement` on the page's first ``count`` pids, the ones a page shows) in one
        statement, ordered page first, then includes, each by pid. Columns as the page's, and
        (9) 0 for a match, 1 for an include. ``start``: how many parameters the page takes."""
        page = self._build_page(shape, visible, with_patients=True).cte("ev_page")
        s = Slots()
        s.used = start
        kept = select(page.c.pid).order_by(page.c.pid).limit(s.next(type_=Integer()))
        inc = _include_statement(include, visible, slots=s, kept=kept).subquery("ev_inc")
        matches = select(*page.c, literal_column("0", Integer()).label("kind"))
        no_snapshot = cast(null(), BigInteger()).label("snapshot")
        included = select(*inc.c, no_snapshot, literal_column("1", Integer()).label("kind"))
        return union_all(matches, included).order_by(literal_column("kind"), literal_column("pid"))

    async def _includes(
        self,
        conn: SearchConnection,
        query: SearchQuery,
        page: SearchPage,
        access: _Access,
        local_base: str | None = None,
    ) -> list[Stored]:
        """_include/_revinclude: one statement per kind per round; :iterate repeats on what was added
        (their clients go in ``page.patients`` when it is kept)."""
        matches = page.matches
        seen = {s.pid for s in matches}
        included: list[Stored] = []
        frontier = [s.pid for s in matches]
        includes, revincludes = query.includes, query.revincludes
        for depth in range(MAX_INCLUDE_DEPTH):
            if not frontier:
                break
            added: list[Stored] = []
            if includes:
                added += await self._include_round(conn, frontier, includes, access, local_base, page, reverse=False)
            if revincludes:
                added += await self._include_round(conn, frontier, revincludes, access, local_base, page, reverse=True)
            new = []
            for s in added:
                if s.pid not in seen:
                    seen.add(s.pid)
                    new.append(s)
            included.extend(new)
            if len(included) > MAX_INCLUDED:
                raise BadRequest(
                    f"The includes add more than {MAX_INCLUDED} resources; narrow the search",
                    code="too-costly",
                )
            includes = [i for i in includes if i.iterate]
            revincludes = [i for i in revincludes if i.iterate]
            frontier = [s.pid for s in new]
            if depth == 0 and not (includes or revincludes):
                break
        return included

    async def _include_round(
        self,
        conn: SearchConnection,
        pids: list[int],
        specs: list[Include],
        access: _Access,
        local_base: str | None,
        page: SearchPage,
        *,
        reverse: bool,
    ) -> list[Stored]:
        b = Binds()
        b.add(pids)
        has_base = plan_local_target(local_base, b)
        specs_shape = tuple((i.source_type, i.param, i.target_type) for i in specs)
        patients = page.patients
        shape = ("include", reverse, specs_shape, has_base, conn.dialect.name == "postgresql", patients is not None)
        build = lambda: _include_statement(shape, access.visible)  # noqa: E731
        rows = await self._run(conn, shape, build, b, access)
        if patients is not None:
            for row in rows:
                patients[row[0]] = _patients_of(row[7])
        return [Stored(*row[:7]) for row in rows]

    # -- conditional interactions ---------------------------------------------------------------------

    async def match(
        self,
        conn: AsyncConnection,
        res_type: str,
        criteria: str,
        limit: int = 2,
        *,
        visible: Visible,
    ) -> list[Stored]:
        """Resources matching a conditional interaction's criteria (strict: unknown parameters are a 400);
        ``visible`` is the caller's access filter: what it may not see never matches."""
        from urllib.parse import parse_qsl

        params = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
        query = self.parse(res_type, params, strict=True)
        if not query.criteria:
            raise BadRequest(f"The criteria '{criteria}' select nothing specific", code="invalid")
        query.count, query.total, query.includes, query.revincludes, query.sort = limit, "none", [], [], []
        page = await self.execute(conn, query, visible=visible)
        return page.matches

    # -- CapabilityStatement --------------------------------------------------------------------------

    def describe_type(self, res_type: str) -> dict[str, Any]:
        params = self.registry.for_type(res_type)
        search_params = [
            {"name": code, "definition": sp.url, "type": sp.type}
            for code, sp in sorted(params.items())
            if sp.type != "special" or code in ("_id", "_lastUpdated")
        ]
        refs = sorted(code for code, sp in params.items() if sp.type == "reference")
        revs = sorted(
            f"{other}:{code}"
            for other in sorted(self.resource_types)
            for code, sp in self.registry.for_type(other).items()
            if sp.type == "reference"
            and (res_type in sp.target or "Resource" in sp.target)
            and not code.startswith("_")
        )
        out: dict[str, Any] = {"searchParam": search_params}
        if refs:
            out["searchInclude"] = ["*", *(f"{res_type}:{c}" for c in refs)]
        if revs:
            out["searchRevInclude"] = revs
        return out

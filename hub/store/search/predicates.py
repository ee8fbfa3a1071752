"""From a parsed criterion to a SQL condition on one ``resource`` row (alias ``r``), in two steps.

:class:`Planner` reads a criterion and gives its *shape* (a hashable tuple: which SQL form, with the
names, types and modifiers in it) and puts its *values* in a :class:`Binds`; :class:`TemplateBuilder`
builds the SQL of a shape with a named bind parameter (:class:`Slots`) where each value goes. The
builder never sees a value, so the SQL depends on the shape alone: a statement is built once per
shape, cached by the engine, and run with the values as bind parameters (building and compiling
SQLAlchemy expressions cost more than running the query).

One builder per parameter type, each reading its own index table (HAPI's ``predicate/`` package,
Medplum's lookup tables). Aliases are anonymous, so nested chains and ``_has`` never shadow an
outer alias they correlate with. Every criterion becomes ``r.pid IN (SELECT pid FROM idx_x WHERE ...)``,
which both databases run as an index-only semi-join. ``visible`` is the access filter: chains and
``_has`` only look *through* resources the caller may see, so nothing hidden can be inferred.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, exists, false, not_, or_, select, true
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.types import TypeEngine

from hub.fhir.errors import BadRequest
from hub.fhir.query import (
    CompositeValue,
    Criterion,
    DateValue,
    HasCriterion,
    MissingValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)
from hub.store.policy import Visible
from hub.store.search.terminology import TerminologySource, ancestors, descendants
from hub.store.tables import (
    INDEX_TABLES,
    idx_date,
    idx_number,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    idx_uri,
    resource,
)

Shape = tuple[Any, ...]


class Binds:
    """The values of a statement's bind parameters, named ``q0``, ``q1``, ... in the order the
    statement's template (:class:`Slots`) takes them."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, *values: Any) -> None:
        for value in values:
            self.values[f"q{len(self.values)}"] = value


class Slots:
    """The template's side of :class:`Binds`: hands out the parameters ``q0``, ``q1``, ... in order."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0

    def next(self, *, expanding: bool = False, type_: TypeEngine[Any] | None = None) -> BindParameter[Any]:
        name = f"q{self.used}"
        self.used += 1
        return bindparam(name, expanding=expanding, type_=type_)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _local_pattern(local_base: str) -> str:
    return _like_escape(local_base.rstrip("/")) + "/%"


def _local_target(ref: FromClause, pattern: Any | None) -> ColumnElement[bool]:
    cond: ColumnElement[bool] = ref.c.target_url.is_(None)
    if pattern is not None:
        cond = or_(cond, ref.c.target_url.like(pattern, escape="\\"))
    return cond


def local_target(ref: FromClause, local_base: str | None) -> ColumnElement[bool]:
    """Reference rows that point at a resource on this hub: relative, or absolute on our own base.

    Chains, ``_has`` and includes join reference rows to ``resource`` by type and id; without this a
    reference to ``http://other/fhir/Patient/1`` would resolve to our own ``Patient/1``.
    """
    return _local_target(ref, _local_pattern(local_base) if local_base else None)


def plan_local_target(local_base: str | None, b: Binds) -> bool:
    """:func:`local_target`'s shape (whether there is a base) and value."""
    if local_base:
        b.add(_local_pattern(local_base))
    return bool(local_base)


def build_local_target(ref: FromClause, has_base: bool, s: Slots) -> ColumnElement[bool]:
    return _local_target(ref, s.next() if has_base else None)


def _in_index(
    r: FromClause, table: Any, res_type: str | None, param: str, cond: ColumnElement[bool], per_row: bool = False
) -> ColumnElement[bool]:
    """Rows of ``r`` with an index row of ``param`` meeting ``cond``. ``per_row``: checked for each
    row the rest of the statement found (an ``EXISTS`` the planner may not turn into a join: its
    ``OFFSET``), so the criterion can never be where a plan starts (see :func:`pins`)."""
    sub = select(table.c.pid).where(table.c.param == param, cond)
    sub = sub.where(table.c.res_type == (res_type if res_type else r.c.res_type))
    if per_row:
        return exists(sub.where(table.c.pid == r.c.pid).offset(0))
    return r.c.pid.in_(sub)


def pins(shape: Shape) -> bool:
    """Whether a criterion's shape names its matches by key, so that starting from it is the right
    plan whatever its values: ``_id``, a literal reference (``subject=Patient/x``), an identifier
    (``identifier=system|value``), or a chain ending in one of those. A search with one may keep a
    generic plan (:meth:`hub.store.search.engine.SearchEngine.plan_stable`)."""
    tag = shape[0]
    if tag == "_id":
        return not shape[1]
    if tag == "chain":
        _tag, _crit_type, _name, _chain_types, _has_base, inners = shape
        return all(pins(c) for c in inners)
    if tag != "index":
        return False
    _tag, ptype, name, _res_type, negated, values, of_type = shape
    if negated or of_type is not None or not values:
        return False
    if ptype == "reference":  # by id (a url or an identifier on the reference may match many)
        return all(v[0] == "r:local" for v in values)
    if ptype == "token" and name == "identifier":  # system and value
        return all(v == ("t", True, "eq") for v in values)
    return False


def checkable_per_row(shape: Shape) -> bool:
    """Whether a criterion can be checked per row (:func:`_in_index` ``per_row``): a plain index
    criterion, or a condition on the row's own columns."""
    tag = shape[0]
    return tag in ("_id", "_lastUpdated", "true-or-false") or (tag == "index" and not shape[4])


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (in code point order)."""
    while prefix and ord(prefix[-1]) >= 0x10FFFF:
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


#: Characters after which a word starts in a normalised text (spaces are folded to one).
_WORD_SEPARATORS = (" ", "(", "-", "/", "[", '"', "'")


def _eq(col: Any, is_none: bool, s: Slots) -> ColumnElement[bool]:
    """``col = value``, or ``col IS NULL`` when the value is None (that is in the shape)."""
    return col.is_(None) if is_none else col == s.next()


# -- value conditions: the plan (shape and values) of one value, and the SQL of a shape --------------


def plan_string(v: StringValue, modifier: str | None, bytewise: bool, b: Binds) -> Shape:
    """Default: starts-with on the normalised value. ``bytewise`` says the database compares text in
    code point order (SQLite; PostgreSQL with a C collation): then the prefix is also given as a
    range, which a B-tree index can seek (LIKE alone cannot use it outside the C collation, and on
    SQLite LIKE is case-insensitive so it never does)."""
    if modifier == "exact":  # equal texts have equal normalised forms, and value_norm is indexed
        b.add(v.norm, v.exact)
        return ("s=",)
    if modifier == "contains":
        b.add(f"%{_like_escape(v.norm)}%")
        return ("s~",)
    like = f"{_like_escape(v.norm)}%"
    upper = prefix_upper_bound(v.norm) if bytewise else None
    if upper is None:
        b.add(like)
        return ("s^",)
    b.add(v.norm, upper, like)
    return ("s^<",)


def _build_string(shape: Shape, t: Any, s: Slots) -> ColumnElement[bool]:
    tag = shape[0]
    if tag == "s=":  # name-part rows (grp < 0, see hub.fhir.extract) are not the element's whole value
        return and_(t.c.value_norm == s.next(), t.c.value_exact == s.next(), t.c.grp >= 0)
    if tag in ("s~", "s^"):
        return t.c.value_norm.like(s.next(), escape="\\")
    return and_(t.c.value_norm >= s.next(), t.c.value_norm < s.next(), t.c.value_norm.like(s.next(), escape="\\"))


def plan_text_words(text: str, b: Binds) -> Shape:
    """``:text`` is a string search on the text: each word of the search text starts a word of the
    (normalised: case- and accent-folded) text, in order, as the default string search does."""
    escaped = _like_escape(text)
    b.add(f"{escaped}%", *(f"%{sep}{escaped}%" for sep in _WORD_SEPARATORS))
    return ("t:text",)


def plan_token(
    v: TokenValue, modifier: str | None, terminology: TerminologySource | None, name: str, b: Binds
) -> Shape:
    if modifier == "text":
        return plan_text_words(v.text or "", b)
    if modifier == "of-type":
        present = [x for x in (v.type_system, v.type_code, v.code) if x is not None]
        b.add(*present)
        return ("t:of-type", v.type_system is None, v.type_code is None, v.code is None)
    if modifier in ("in", "not-in"):
        return _plan_in_valueset(v, _terminology(terminology), name, b)
    if modifier in ("above", "below"):
        return _plan_subsumption(v, modifier, _terminology(terminology), name, b)
    if v.code is not None:
        b.add(v.code)
    system = "any" if v.system is None else "none" if v.system == "" else "eq"
    if system == "eq":
        b.add(v.system)
    return ("t", v.code is not None, system)


def _build_token(shape: Shape, t: Any, s: Slots) -> ColumnElement[bool]:
    tag = shape[0]
    if tag == "t:text":
        col = t.c.text_norm
        return or_(*(col.like(s.next(), escape="\\") for _ in range(1 + len(_WORD_SEPARATORS))))
    if tag == "t:of-type":
        _tag, no_system, no_type, no_code = shape
        return and_(_eq(t.c.type_system, no_system, s), _eq(t.c.type_code, no_type, s), _eq(t.c.code, no_code, s))
    if tag == "t:in":
        choices: list[ColumnElement[bool]] = []
        for whole_system, has_system in shape[1]:
            if whole_system:  # every code of the system
                choices.append(t.c.system == s.next())
            else:  # a ``code`` element is indexed without its (implied) system
                in_system = or_(t.c.system == s.next(), t.c.system.is_(None)) if has_system else t.c.system.is_(None)
                choices.append(and_(in_system, t.c.code.in_(s.next(expanding=True))))
        return or_(false(), *choices)
    if tag == "t:sub":
        return and_(t.c.system == s.next(), t.c.code.in_(s.next(expanding=True)))
    _tag, has_code, system = shape
    parts: list[ColumnElement[bool]] = []
    if has_code:
        parts.append(t.c.code == s.next())
    if system == "none":
        parts.append(t.c.system.is_(None))
    elif system == "eq":
        parts.append(t.c.system == s.next())
    return and_(true(), *parts)


def _terminology(terminology: TerminologySource | None) -> TerminologySource:
    if terminology is not None:
        return terminology
    from hub.store.search.terminology import hub_terminology

    return hub_terminology()


def _plan_in_valueset(v: TokenValue, terminology: TerminologySource, name: str, b: Binds) -> Shape:
    """A coding in the ValueSet: its system and (unless the whole system is included) its code."""
    assert v.valueset is not None
    choices: list[tuple[bool, bool]] = []
    for system, codes in sorted(terminology.valueset(v.valueset, name).items()):
        if codes is None:  # every code of the system
            b.add(system)
            choices.append((True, True))
        elif codes:
            if system:
                b.add(system)
            b.add(sorted(codes))
            choices.append((False, bool(system)))
    return ("t:in", tuple(choices))


def _plan_subsumption(v: TokenValue, modifier: str, terminology: TerminologySource, name: str, b: Binds) -> Shape:
    """``:below`` (the code or one it subsumes) / ``:above`` (the code or one that subsumes it)."""
    if not v.system or v.code is None:
        raise BadRequest(f"{name}:{modifier} needs a system|code value", expression=f"{name}:{modifier}")
    tree = terminology.hierarchy(v.system, f"{name}:{modifier}")
    codes = descendants(tree, v.code) if modifier == "below" else ancestors(tree, v.code)
    b.add(v.system, sorted(codes))
    return ("t:sub",)


def plan_date(v: DateValue, b: Binds) -> Shape:
    """The spec's range semantics: the target's [low, high] against the search value's [lo, hi]."""
    lo, hi = v.low, v.high
    match v.prefix:
        case "eq" | "ne" | "ge" | "le":
            b.add(lo, hi)
        case "gt" | "sa":
            b.add(hi)
        case "lt" | "eb":
            b.add(lo)
        case "ap":
            from hub.fhir.instants import now_us

            slack = max(abs(now_us() - lo) // 10, hi - lo + 1)
            b.add(hi + slack, lo - slack)
        case _:
            raise AssertionError(v.prefix)
    return ("d", v.prefix)


def build_date(shape: Shape, low: Any, high: Any, s: Slots) -> ColumnElement[bool]:
    prefix = shape[1]
    if prefix in ("eq", "ne", "ge", "le"):
        lo, hi = s.next(), s.next()
        inside = and_(low >= lo, high <= hi)
        if prefix == "eq":  # low <= hi is implied (low <= high), but bounds ``low`` on both sides for the index
            return and_(low >= lo, low <= hi, high <= hi)
        if prefix == "ne":
            return not_(inside)
        if prefix == "ge":
            return or_(high > hi, inside)
        return or_(low < lo, inside)
    if prefix == "gt":
        return high > s.next()
    if prefix == "lt":
        return low < s.next()
    if prefix == "sa":
        return low > s.next()
    if prefix == "eb":
        return high < s.next()
    return and_(low <= s.next(), high >= s.next())  # ap


def plan_number(v: NumberValue, b: Binds) -> Shape:
    match v.prefix:
        case "eq" | "ne":
            b.add(v.low, v.high)
        case "gt" | "sa" | "lt" | "eb" | "ge" | "le":
            b.add(v.value)
        case "ap":
            slack = abs(v.value) * 0.1 or (v.high - v.low)
            b.add(v.value - slack, v.value + slack)
        case _:
            raise AssertionError(v.prefix)
    return ("n", v.prefix)


def build_number(shape: Shape, col: Any, s: Slots) -> ColumnElement[bool]:
    match shape[1]:
        case "eq":
            return and_(col >= s.next(), col < s.next())
        case "ne":
            return or_(col < s.next(), col >= s.next())
        case "gt" | "sa":
            return col > s.next()
        case "lt" | "eb":
            return col < s.next()
        case "ge":
            return col >= s.next()
        case "le":
            return col <= s.next()
    return and_(col >= s.next(), col <= s.next())  # ap


def plan_quantity(v: QuantityValue, b: Binds) -> Shape:
    number = plan_number(v.number, b)
    if v.system is not None:
        b.add(v.system)
    if v.code is not None:
        b.add(v.code)
    code = None if v.code is None else "code" if v.system is not None else "code-or-unit"
    return ("q", number, v.system is not None, code)


def _build_quantity(shape: Shape, t: Any, s: Slots) -> ColumnElement[bool]:
    _tag, number, has_system, code = shape
    parts = [build_number(number, t.c.value, s)]
    if has_system:
        parts.append(t.c.system == s.next())
    if code == "code":
        parts.append(t.c.code == s.next())
    elif code == "code-or-unit":
        value = s.next()
        parts.append(or_(t.c.code == value, t.c.unit == value))
    return and_(*parts)


def plan_reference(v: ReferenceValue, local_base: str | None, b: Binds) -> Shape:
    """Relative values match references to this hub only (relative, or absolute on ``local_base``):
    ``Patient/1`` must not match another server's ``http://other/fhir/Patient/1``. An absolute value
    on this hub's own base is treated as relative."""
    if v.ident_value is not None or v.ident_system is not None:
        b.add(*(x for x in (v.ident_system, v.ident_value) if x is not None))
        return ("r:ident", v.ident_system is not None, v.ident_value is not None)
    if v.target_id is None or (
        v.url is not None and not (local_base and v.url.startswith(local_base.rstrip("/") + "/"))
    ):
        if v.url is not None:
            b.add(v.url)
        return ("r:url", v.url is None)
    b.add(v.target_id)
    has_base = plan_local_target(local_base, b)
    if v.target_type:
        b.add(v.target_type)
    return ("r:local", has_base, bool(v.target_type))


def _build_reference(shape: Shape, t: Any, s: Slots) -> ColumnElement[bool]:
    tag = shape[0]
    if tag == "r:ident":
        parts = []
        if shape[1]:
            parts.append(t.c.ident_system == s.next())
        if shape[2]:
            parts.append(t.c.ident_value == s.next())
        return and_(*parts)
    if tag == "r:url":
        return _eq(t.c.target_url, shape[1], s)
    _tag, has_base, has_type = shape
    local = and_(t.c.target_id == s.next(), build_local_target(t, has_base, s))
    if has_type:
        local = and_(local, t.c.target_type == s.next())
    return local


def plan_uri(v: UriValue, modifier: str | None, b: Binds) -> Shape:
    """``:below``/``:above`` compare by path segment: ``http://a/b`` is below ``http://a`` but
    ``http://a/bc`` is not below ``http://a/b``."""
    if modifier == "below":
        b.add(v.value, f"{_like_escape(v.value.rstrip('/'))}/%")
        return ("u:below",)
    if modifier == "above":
        b.add(uri_ancestors(v.value))
        return ("u:above",)
    b.add(v.value)
    return ("u",)


def _build_uri(shape: Shape, t: Any, s: Slots) -> ColumnElement[bool]:
    if shape[0] == "u:below":
        return or_(t.c.value == s.next(), t.c.value.like(s.next(), escape="\\"))
    if shape[0] == "u:above":
        return t.c.value.in_(s.next(expanding=True))
    return t.c.value == s.next()


def uri_ancestors(uri: str) -> list[str]:
    """``uri`` and each of its path-segment prefixes (the authority is never cut): what it is below."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, sep, rest = "", "", uri
    segments = rest.split("/")
    out = [uri]
    for end in range(len(segments) - 1, 0, -1):
        prefix = scheme + sep + "/".join(segments[:end])
        out.extend((prefix, prefix + "/"))
    return sorted(set(out))


def plan_value(
    table_type: str,
    value: Any,
    modifier: str | None,
    b: Binds,
    local_base: str | None = None,
    bytewise: bool = False,
    terminology: TerminologySource | None = None,
    name: str = "",
) -> Shape:
    """The shape of the condition one value puts on one row of its type's index table (its values go in ``b``)."""
    if table_type == "string":
        return plan_string(value, modifier, bytewise, b)
    if table_type == "token":
        return plan_token(value, modifier, terminology, name, b)
    if table_type == "date":
        return plan_date(value, b)
    if table_type == "number":
        return plan_number(value, b)
    if table_type == "quantity":
        return plan_quantity(value, b)
    if table_type == "reference":
        return plan_reference(value, local_base, b)
    if table_type == "uri":
        return plan_uri(value, modifier, b)
    raise AssertionError(table_type)


def build_value(table_type: str, shape: Shape, t: Any, s: Slots) -> ColumnElement[bool]:
    """The SQL of a value's shape on a row ``t`` of its type's index table."""
    if table_type == "string":
        return _build_string(shape, t, s)
    if table_type == "token":
        return _build_token(shape, t, s)
    if table_type == "date":
        return build_date(shape, t.c.low, t.c.high, s)
    if table_type == "number":
        return build_number(shape, t.c.value, s)
    if table_type == "quantity":
        return _build_quantity(shape, t, s)
    if table_type == "reference":
        return _build_reference(shape, t, s)
    if table_type == "uri":
        return _build_uri(shape, t, s)
    raise AssertionError(table_type)


# -- criteria -------------------------------------------------------------------------------------


class Planner:
    """Plans criteria: their shapes, with their values put in :attr:`binds` (see the module's docstring)."""

    def __init__(
        self,
        binds: Binds,
        local_base: str | None = None,
        *,
        bytewise: bool = False,
        terminology: TerminologySource | None = None,
    ) -> None:
        self.binds = binds
        self.local_base = local_base
        self.bytewise = bytewise
        self.terminology = terminology

    def criterion(self, crit: Criterion | HasCriterion) -> Shape:
        b = self.binds
        if isinstance(crit, HasCriterion):
            inner = self.criterion(crit.inner)  # the inner condition is built before the link
            has_base = plan_local_target(self.local_base, b)
            return ("has", crit.res_type, crit.source_type, crit.reference_param, has_base, inner)
        if crit.chain is not None:
            has_base = plan_local_target(self.local_base, b)
            inners = tuple(self.criterion(c) for c in (crit.chains or (crit.chain,)))
            return ("chain", crit.res_type, crit.name, crit.chain_types, has_base, inners)
        if crit.name in ("_id", "_lastUpdated") and crit.modifier == "missing":
            return ("true-or-false", not crit.values[0].missing)
        if crit.name == "_id":
            b.add([v.code for v in crit.values if isinstance(v, TokenValue) and v.code])
            return ("_id", crit.modifier == "not")
        if crit.name == "_lastUpdated":
            return ("_lastUpdated", tuple(plan_date(v, b) for v in crit.values))
        res_type = None if crit.res_type == "Resource" else crit.res_type
        if crit.modifier == "missing":
            missing = crit.values[0]
            assert isinstance(missing, MissingValue)
            return ("missing", crit.type, crit.name, res_type, missing.missing)
        if crit.type == "composite":
            return ("composite", res_type, tuple(self._composite(v) for v in crit.values))
        negated = crit.modifier in ("not", "not-in")
        modifier = ("in" if crit.modifier == "not-in" else None) if negated else crit.modifier
        values = tuple(
            plan_value(crit.type, v, modifier, b, self.local_base, self.bytewise, self.terminology, crit.name)
            for v in crit.values
        )
        of_type = crit.modifier if crit.type == "reference" and crit.modifier and crit.modifier[:1].isupper() else None
        return ("index", crit.type, crit.name, res_type, negated, values, of_type)

    def _composite(self, value: CompositeValue) -> Shape:
        return tuple(
            (param, ptype, plan_value(ptype, v, None, self.binds, bytewise=self.bytewise))
            for param, ptype, v in value.parts
        )


class TemplateBuilder:
    """Builds the SQL of criteria shapes (:class:`Planner`), taking their bind parameters from
    :attr:`slots`; ``visible`` is the access filter."""

    def __init__(self, visible: Visible, slots: Slots, *, per_row: bool = False) -> None:
        self.visible = visible
        self.slots = slots
        #: Index criteria checked per row (:func:`_in_index`), for all but the criterion a plan starts from.
        self.per_row = per_row

    def condition(self, r: FromClause, shape: Shape) -> ColumnElement[bool]:
        tag = shape[0]
        if tag == "has":
            return self._has(r, shape)
        if tag == "chain":
            return self._chain(r, shape)
        if tag == "true-or-false":
            return true() if shape[1] else false()
        if tag == "_id":
            ids = r.c.res_id.in_(self.slots.next(expanding=True))
            return not_(ids) if shape[1] else ids
        if tag == "_lastUpdated":
            return or_(*(build_date(d, r.c.last_updated, r.c.last_updated, self.slots) for d in shape[1]))
        if tag == "missing":
            _tag, ptype, name, res_type, missing = shape
            table = INDEX_TABLES["token" if ptype == "composite" else ptype]
            present = _in_index(r, table, res_type, f"{name}$0" if ptype == "composite" else name, true())
            return not_(present) if missing else present
        if tag == "composite":
            _tag, res_type, values = shape
            return or_(*(self._composite(r, res_type, v) for v in values))
        _tag, ptype, name, res_type, negated, values, of_type = shape
        table = INDEX_TABLES[ptype]
        cond: ColumnElement[bool] = or_(*(build_value(ptype, v, table, self.slots) for v in values))
        if negated:
            return not_(_in_index(r, table, res_type, name, cond))
        if of_type is not None:
            cond = and_(cond, table.c.target_type == of_type)
        return _in_index(r, table, res_type, name, cond, self.per_row)

    def _composite(self, r: FromClause, res_type: str | None, parts: Shape) -> ColumnElement[bool]:
        aliases = [INDEX_TABLES[ptype].alias() for _param, ptype, _v in parts]
        first = aliases[0]
        conds: list[ColumnElement[bool]] = []
        for i, ((param, ptype, v), t) in enumerate(zip(parts, aliases, strict=True)):
            conds.append(t.c.param == param)
            conds.append(build_value(ptype, v, t, self.slots))
            if i:
                conds.extend((t.c.pid == first.c.pid, t.c.grp == first.c.grp))
        conds.append(first.c.res_type == (res_type if res_type else r.c.res_type))
        sub = select(first.c.pid).select_from(first)
        for t in aliases[1:]:
            sub = sub.join(t, and_(t.c.pid == first.c.pid, t.c.grp == first.c.grp))
        return r.c.pid.in_(sub.where(*conds))

    def _chain(self, r: FromClause, shape: Shape) -> ColumnElement[bool]:
        """``subject:Patient.name=x``: a reference whose target (visible to the caller) matches."""
        _tag, crit_type, name, chain_types, has_base, inners = shape
        ref = idx_reference.alias()
        target = resource.alias()
        local = build_local_target(ref, has_base, self.slots)
        inner = or_(*(self.condition(target, c) for c in inners))
        res_type = None if crit_type == "Resource" else crit_type
        sub = (
            select(ref.c.pid)
            .select_from(
                ref.join(target, and_(target.c.res_type == ref.c.target_type, target.c.res_id == ref.c.target_id))
            )
            .where(
                ref.c.param == name,
                ref.c.res_type == (res_type if res_type else r.c.res_type),
                ref.c.target_type.in_(chain_types),
                local,
                target.c.deleted == false(),
                inner,
                self.visible(target),
            )
        )
        return r.c.pid.in_(sub)

    def _has(self, r: FromClause, shape: Shape) -> ColumnElement[bool]:
        """``_has:Observation:patient:code=x``: referenced by a (visible) Observation matching code=x."""
        _tag, crit_type, source_type, reference_param, has_base, inner_shape = shape
        ref = idx_reference.alias()
        source = resource.alias()
        inner = self.condition(source, inner_shape)
        # With a known type the subquery is uncorrelated (run once, hashed), not run per row.
        target_type = r.c.res_type if crit_type == "Resource" else crit_type
        sub = (
            select(ref.c.target_id)
            .select_from(ref.join(source, source.c.pid == ref.c.pid))
            .where(
                ref.c.res_type == source_type,
                ref.c.param == reference_param,
                ref.c.target_type == target_type,
                build_local_target(ref, has_base, self.slots),
                source.c.deleted == false(),
                inner,
                self.visible(source),
            )
        )
        return r.c.res_id.in_(sub)


# -- sorting --------------------------------------------------------------------------------------

_SORT_COLUMNS = {
    "string": (idx_string, "value_norm", "value_norm"),
    "token": (idx_token, "code", "code"),
    "date": (idx_date, "low", "high"),
    "number": (idx_number, "value", "value"),
    "quantity": (idx_quantity, "value", "value"),
    "reference": (idx_reference, "target_id", "target_id"),
    "uri": (idx_uri, "value", "value"),
}


def sort_column(r: FromClause, name: str, ptype: str, descending: bool) -> Any:
    """The value one sort key orders by: the lowest value ascending, the highest descending
    (a correlated scalar for a search parameter; the column itself for ``_id``/``_lastUpdated``)."""
    if name == "_id":
        return r.c.res_id
    if name == "_lastUpdated":
        return r.c.last_updated
    from sqlalchemy import func

    table, asc_col, desc_col = _SORT_COLUMNS[ptype]
    t = table.alias()
    agg = func.max(t.c[desc_col]) if descending else func.min(t.c[asc_col])
    return select(agg).where(t.c.pid == r.c.pid, t.c.param == name, t.c.grp >= 0).scalar_subquery()


def sort_expression(r: FromClause, name: str, ptype: str, descending: bool) -> Any:
    """One ORDER BY term: :func:`sort_column` in its direction, missing values last."""
    col = sort_column(r, name, ptype, descending)
    return (col.desc() if descending else col.asc()).nulls_last()


def keyset_condition(
    keys: list[tuple[Any, bool]], values: tuple[Any, ...], pid_col: Any, pid: Any, *, reverse: bool = False
) -> ColumnElement[bool]:
    """Rows strictly after (``reverse``: before) the row with sort-key ``values`` and ``pid`` (bind
    parameters; a None value is a missing key, which the shape says), in the
    order ``ORDER BY key1 [DESC] NULLS LAST, ..., pid``: keyset paging. Rows written or deleted
    before the cursor cannot shift what comes after it (offsets can)."""
    choices: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for (expr, descending), value in zip(keys, values, strict=True):
        desc = descending != reverse
        nulls_first = reverse  # reversed NULLS LAST is NULLS FIRST
        if value is None:
            beyond: ColumnElement[bool] = expr.is_not(None) if nulls_first else false()
            same: ColumnElement[bool] = expr.is_(None)
        else:
            cmp = expr < value if desc else expr > value
            beyond = cmp if nulls_first else or_(cmp, expr.is_(None))
            same = expr == value
        choices.append(and_(*equal, beyond))
        equal.append(same)
    choices.append(and_(*equal, pid_col < pid if reverse else pid_col > pid))
    return or_(*choices)

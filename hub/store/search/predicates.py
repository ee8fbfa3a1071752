"""From a parsed criterion to a SQL condition on one ``resource`` row (alias ``r``).

One builder per parameter type, each reading its own index table (HAPI's ``predicate/`` package,
Medplum's lookup tables). Aliases are anonymous, so nested chains and ``_has`` never shadow an
outer alias they correlate with. Every criterion becomes ``r.pid IN (SELECT pid FROM idx_x WHERE ...)``,
which both databases run as an index-only semi-join. ``visible`` is the access filter: chains and
``_has`` only look *through* resources the caller may see, so nothing hidden can be inferred.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, false, not_, or_, select, true
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import FromClause

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


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def local_target(ref: FromClause, local_base: str | None) -> ColumnElement[bool]:
    """Reference rows that point at a resource on this hub: relative, or absolute on our own base.

    Chains, ``_has`` and includes join reference rows to ``resource`` by type and id; without this a
    reference to ``http://other/fhir/Patient/1`` would resolve to our own ``Patient/1``.
    """
    cond: ColumnElement[bool] = ref.c.target_url.is_(None)
    if local_base:
        cond = or_(cond, ref.c.target_url.like(_like_escape(local_base.rstrip("/")) + "/%", escape="\\"))
    return cond


def _in_index(
    r: FromClause, table: Any, res_type: str | None, param: str, cond: ColumnElement[bool]
) -> ColumnElement[bool]:
    sub = select(table.c.pid).where(table.c.param == param, cond)
    sub = sub.where(table.c.res_type == (res_type if res_type else r.c.res_type))
    return r.c.pid.in_(sub)


# -- value conditions, one function per type ------------------------------------------------------


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (in code point order)."""
    while prefix and ord(prefix[-1]) >= 0x10FFFF:
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


def string_cond(t: Any, v: StringValue, modifier: str | None, bytewise: bool = False) -> ColumnElement[bool]:
    """Default: starts-with on the normalised value. ``bytewise`` says the database compares text in
    code point order (SQLite; PostgreSQL with a C collation): then the prefix is also given as a
    range, which a B-tree index can seek (LIKE alone cannot use it outside the C collation, and on
    SQLite LIKE is case-insensitive so it never does)."""
    if modifier == "exact":  # equal texts have equal normalised forms, and value_norm is indexed
        # name-part rows (grp < 0, see hub.fhir.extract) are not the element's whole value
        return and_(t.c.value_norm == v.norm, t.c.value_exact == v.exact, t.c.grp >= 0)
    if modifier == "contains":
        return t.c.value_norm.like(f"%{_like_escape(v.norm)}%", escape="\\")
    like = t.c.value_norm.like(f"{_like_escape(v.norm)}%", escape="\\")
    upper = prefix_upper_bound(v.norm) if bytewise else None
    if upper is None:
        return like
    return and_(t.c.value_norm >= v.norm, t.c.value_norm < upper, like)


def text_words_cond(col: Any, text: str) -> ColumnElement[bool]:
    """``:text`` is a string search on the text: each word of the search text starts a word of the
    (normalised: case- and accent-folded) text, in order, as the default string search does."""
    escaped = _like_escape(text)
    starts = [col.like(f"{escaped}%", escape="\\")]
    starts += [col.like(f"%{sep}{escaped}%", escape="\\") for sep in _WORD_SEPARATORS]
    return or_(*starts)


#: Characters after which a word starts in a normalised text (spaces are folded to one).
_WORD_SEPARATORS = (" ", "(", "-", "/", "[", '"', "'")


def token_cond(
    t: Any, v: TokenValue, modifier: str | None, terminology: TerminologySource | None = None, name: str = ""
) -> ColumnElement[bool]:
    if modifier == "text":
        return text_words_cond(t.c.text_norm, v.text or "")
    if modifier == "of-type":
        return and_(t.c.type_system == v.type_system, t.c.type_code == v.type_code, t.c.code == v.code)
    if modifier in ("in", "not-in"):
        return _in_valueset(t, v, _terminology(terminology), name)
    if modifier in ("above", "below"):
        return _subsumption(t, v, modifier, _terminology(terminology), name)
    parts: list[ColumnElement[bool]] = []
    if v.code is not None:
        parts.append(t.c.code == v.code)
    if v.system == "":
        parts.append(t.c.system.is_(None))
    elif v.system is not None:
        parts.append(t.c.system == v.system)
    return and_(true(), *parts)


def _terminology(terminology: TerminologySource | None) -> TerminologySource:
    if terminology is not None:
        return terminology
    from hub.store.search.terminology import hub_terminology

    return hub_terminology()


def _in_valueset(t: Any, v: TokenValue, terminology: TerminologySource, name: str) -> ColumnElement[bool]:
    """A coding in the ValueSet: its system and (unless the whole system is included) its code."""
    assert v.valueset is not None
    choices: list[ColumnElement[bool]] = []
    for system, codes in sorted(terminology.valueset(v.valueset, name).items()):
        if codes is None:  # every code of the system
            choices.append(t.c.system == system)
        elif codes:  # a ``code`` element is indexed without its (implied) system
            in_system = or_(t.c.system == system, t.c.system.is_(None)) if system else t.c.system.is_(None)
            choices.append(and_(in_system, t.c.code.in_(sorted(codes))))
    return or_(false(), *choices)


def _subsumption(
    t: Any, v: TokenValue, modifier: str, terminology: TerminologySource, name: str
) -> ColumnElement[bool]:
    """``:below`` (the code or one it subsumes) / ``:above`` (the code or one that subsumes it)."""
    if not v.system or v.code is None:
        raise BadRequest(f"{name}:{modifier} needs a system|code value", expression=f"{name}:{modifier}")
    tree = terminology.hierarchy(v.system, f"{name}:{modifier}")
    codes = descendants(tree, v.code) if modifier == "below" else ancestors(tree, v.code)
    return and_(t.c.system == v.system, t.c.code.in_(sorted(codes)))


def date_cond(low: Any, high: Any, v: DateValue) -> ColumnElement[bool]:
    """The spec's range semantics: the target's [low, high] against the search value's [lo, hi]."""
    lo, hi = v.low, v.high
    inside = and_(low >= lo, high <= hi)
    match v.prefix:
        case "eq":  # low <= hi is implied (low <= high), but bounds ``low`` on both sides for the index
            return and_(low >= lo, low <= hi, high <= hi)
        case "ne":
            return not_(inside)
        case "gt":
            return high > hi
        case "lt":
            return low < lo
        case "ge":
            return or_(high > hi, inside)
        case "le":
            return or_(low < lo, inside)
        case "sa":
            return low > hi
        case "eb":
            return high < lo
        case "ap":
            from hub.fhir.instants import now_us

            slack = max(abs(now_us() - lo) // 10, hi - lo + 1)
            return and_(low <= hi + slack, high >= lo - slack)
    raise AssertionError(v.prefix)


def number_cond(col: Any, v: NumberValue) -> ColumnElement[bool]:
    match v.prefix:
        case "eq":
            return and_(col >= v.low, col < v.high)
        case "ne":
            return or_(col < v.low, col >= v.high)
        case "gt" | "sa":
            return col > v.value
        case "lt" | "eb":
            return col < v.value
        case "ge":
            return col >= v.value
        case "le":
            return col <= v.value
        case "ap":
            slack = abs(v.value) * 0.1 or (v.high - v.low)
            return and_(col >= v.value - slack, col <= v.value + slack)
    raise AssertionError(v.prefix)


def quantity_cond(t: Any, v: QuantityValue) -> ColumnElement[bool]:
    parts = [number_cond(t.c.value, v.number)]
    if v.system is not None:
        parts.append(t.c.system == v.system)
    if v.code is not None:
        parts.append(t.c.code == v.code if v.system is not None else or_(t.c.code == v.code, t.c.unit == v.code))
    return and_(*parts)


def reference_cond(
    t: Any, v: ReferenceValue, targets: tuple[str, ...], local_base: str | None = None
) -> ColumnElement[bool]:
    """Relative values match references to this hub only (relative, or absolute on ``local_base``):
    ``Patient/1`` must not match another server's ``http://other/fhir/Patient/1``. An absolute value
    on this hub's own base is treated as relative."""
    if v.ident_value is not None or v.ident_system is not None:
        parts = []
        if v.ident_system is not None:
            parts.append(t.c.ident_system == v.ident_system)
        if v.ident_value is not None:
            parts.append(t.c.ident_value == v.ident_value)
        return and_(*parts)
    if v.target_id is None:
        return t.c.target_url == v.url
    local = and_(t.c.target_id == v.target_id, local_target(t, local_base))
    if v.target_type:
        local = and_(local, t.c.target_type == v.target_type)
    if v.url is None:
        return local
    if local_base and v.url.startswith(local_base.rstrip("/") + "/"):
        return local
    return t.c.target_url == v.url


def uri_cond(t: Any, v: UriValue, modifier: str | None) -> ColumnElement[bool]:
    """``:below``/``:above`` compare by path segment: ``http://a/b`` is below ``http://a`` but
    ``http://a/bc`` is not below ``http://a/b``."""
    if modifier == "below":
        stem = v.value.rstrip("/")
        return or_(t.c.value == v.value, t.c.value.like(f"{_like_escape(stem)}/%", escape="\\"))
    if modifier == "above":
        return t.c.value.in_(uri_ancestors(v.value))
    return t.c.value == v.value


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


def value_cond(
    table_type: str,
    t: Any,
    value: Any,
    modifier: str | None,
    targets: tuple[str, ...] = (),
    local_base: str | None = None,
    bytewise: bool = False,
    terminology: TerminologySource | None = None,
    name: str = "",
) -> ColumnElement[bool]:
    """The condition one value puts on one row of its type's index table."""
    if table_type == "string":
        return string_cond(t, value, modifier, bytewise)
    if table_type == "token":
        return token_cond(t, value, modifier, terminology, name)
    if table_type == "date":
        return date_cond(t.c.low, t.c.high, value)
    if table_type == "number":
        return number_cond(t.c.value, value)
    if table_type == "quantity":
        return quantity_cond(t, value)
    if table_type == "reference":
        return reference_cond(t, value, targets, local_base)
    if table_type == "uri":
        return uri_cond(t, value, modifier)
    raise AssertionError(table_type)


# -- criteria -------------------------------------------------------------------------------------


class PredicateBuilder:
    """Builds conditions for criteria; ``registry`` gives parameter targets, ``visible`` the access filter."""

    def __init__(
        self,
        registry: Any,
        visible: Visible,
        local_base: str | None = None,
        *,
        bytewise: bool = False,
        terminology: TerminologySource | None = None,
    ) -> None:
        self.registry = registry
        self.visible = visible
        self.local_base = local_base
        self.bytewise = bytewise
        self.terminology = terminology

    def _visible(self, alias: FromClause) -> list[ColumnElement[bool]]:
        return [self.visible(alias)]

    def condition(self, r: FromClause, crit: Criterion | HasCriterion) -> ColumnElement[bool]:
        if isinstance(crit, HasCriterion):
            return self._has(r, crit)
        if crit.chain is not None:
            return self._chain(r, crit)
        if crit.name == "_id":
            return self._id(r, crit)
        if crit.name == "_lastUpdated":
            return self._last_updated(r, crit)
        res_type = None if crit.res_type == "Resource" else crit.res_type
        if crit.modifier == "missing":
            missing = crit.values[0]
            assert isinstance(missing, MissingValue)
            return self._missing(r, crit, res_type, missing.missing)
        if crit.type == "composite":
            return or_(*(self._composite(r, res_type, crit.name, v) for v in crit.values))
        table = INDEX_TABLES[crit.type]
        targets = self._targets(crit)
        if crit.modifier in ("not", "not-in"):
            positive_modifier = "in" if crit.modifier == "not-in" else None
            positive = or_(
                *(
                    value_cond(
                        crit.type,
                        table,
                        v,
                        positive_modifier,
                        targets,
                        self.local_base,
                        self.bytewise,
                        self.terminology,
                        crit.name,
                    )
                    for v in crit.values
                )
            )
            return not_(_in_index(r, table, res_type, crit.name, positive))
        cond = or_(
            *(
                value_cond(
                    crit.type,
                    table,
                    v,
                    crit.modifier,
                    targets,
                    self.local_base,
                    self.bytewise,
                    self.terminology,
                    crit.name,
                )
                for v in crit.values
            )
        )
        if crit.type == "reference" and crit.modifier and crit.modifier[:1].isupper():
            cond = and_(cond, table.c.target_type == crit.modifier)
        return _in_index(r, table, res_type, crit.name, cond)

    def _targets(self, crit: Criterion) -> tuple[str, ...]:
        sp = self.registry.get(crit.res_type, crit.name)
        return tuple(getattr(sp, "target", ()) or ())

    def _id(self, r: FromClause, crit: Criterion) -> ColumnElement[bool]:
        if crit.modifier == "missing":
            return false() if crit.values[0].missing else true()
        ids = [v.code for v in crit.values if isinstance(v, TokenValue) and v.code]
        cond = r.c.res_id.in_(ids)
        return not_(cond) if crit.modifier == "not" else cond

    def _last_updated(self, r: FromClause, crit: Criterion) -> ColumnElement[bool]:
        if crit.modifier == "missing":
            return false() if crit.values[0].missing else true()
        return or_(*(date_cond(r.c.last_updated, r.c.last_updated, v) for v in crit.values))

    def _missing(self, r: FromClause, crit: Criterion, res_type: str | None, missing: bool) -> ColumnElement[bool]:
        table = INDEX_TABLES["token" if crit.type == "composite" else crit.type]
        name = f"{crit.name}$0" if crit.type == "composite" else crit.name
        present = _in_index(r, table, res_type, name, true())
        return not_(present) if missing else present

    def _composite(self, r: FromClause, res_type: str | None, name: str, value: CompositeValue) -> ColumnElement[bool]:
        aliases = [INDEX_TABLES[ptype].alias() for i, (_n, ptype, _v) in enumerate(value.parts)]
        first = aliases[0]
        conds: list[ColumnElement[bool]] = []
        for i, ((param, ptype, v), t) in enumerate(zip(value.parts, aliases, strict=True)):
            conds.append(t.c.param == param)
            conds.append(value_cond(ptype, t, v, None, bytewise=self.bytewise))
            if i:
                conds.extend((t.c.pid == first.c.pid, t.c.grp == first.c.grp))
        conds.append(first.c.res_type == (res_type if res_type else r.c.res_type))
        sub = select(first.c.pid).select_from(first)
        for t in aliases[1:]:
            sub = sub.join(t, and_(t.c.pid == first.c.pid, t.c.grp == first.c.grp))
        return r.c.pid.in_(sub.where(*conds))

    def _chain(self, r: FromClause, crit: Criterion) -> ColumnElement[bool]:
        """``subject:Patient.name=x``: a reference whose target (visible to the caller) matches."""
        assert crit.chain is not None
        ref = idx_reference.alias()
        target = resource.alias()
        inners = crit.chains or (crit.chain,)
        inner = or_(*(self.condition(target, c) for c in inners))
        res_type = None if crit.res_type == "Resource" else crit.res_type
        sub = (
            select(ref.c.pid)
            .select_from(
                ref.join(target, and_(target.c.res_type == ref.c.target_type, target.c.res_id == ref.c.target_id))
            )
            .where(
                ref.c.param == crit.name,
                ref.c.res_type == (res_type if res_type else r.c.res_type),
                ref.c.target_type.in_(crit.chain_types),
                local_target(ref, self.local_base),
                target.c.deleted == false(),
                inner,
                *self._visible(target),
            )
        )
        return r.c.pid.in_(sub)

    def _has(self, r: FromClause, crit: HasCriterion) -> ColumnElement[bool]:
        """``_has:Observation:patient:code=x``: referenced by a (visible) Observation matching code=x."""
        ref = idx_reference.alias()
        source = resource.alias()
        inner = self.condition(source, crit.inner)
        # With a known type the subquery is uncorrelated (run once, hashed), not run per row.
        target_type = r.c.res_type if crit.res_type == "Resource" else crit.res_type
        sub = (
            select(ref.c.target_id)
            .select_from(ref.join(source, source.c.pid == ref.c.pid))
            .where(
                ref.c.res_type == crit.source_type,
                ref.c.param == crit.reference_param,
                ref.c.target_type == target_type,
                local_target(ref, self.local_base),
                source.c.deleted == false(),
                inner,
                *self._visible(source),
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
    keys: list[tuple[Any, bool]], values: tuple[Any, ...], pid_col: Any, pid: int, *, reverse: bool = False
) -> ColumnElement[bool]:
    """Rows strictly after (``reverse``: before) the row with sort-key ``values`` and ``pid``, in the
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

"""Search requests parsed into data: what to match (criteria) and how to shape the result.

No SQL here: :mod:`hub.store.search` turns a :class:`SearchQuery` into statements. Parsing checks
everything a client can get wrong (unknown parameters, bad modifiers, malformed values) so that the
SQL layer only sees well-formed criteria.

Grammar handled (FHIR R4 search):
- ``name[:modifier]=v1,v2`` (OR within one parameter, AND across repetitions);
- prefixes ``eq ne gt lt ge le sa eb ap`` on number, date and quantity;
- chains ``subject:Patient.name=x`` / ``subject.identifier=x`` (any depth);
- reverse chains ``_has:Observation:patient:code=x`` (nested);
- result parameters ``_sort _count _include _revinclude _total _summary _elements _offset _snapshot``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from hub.fhir.errors import BadRequest, Issue
from hub.fhir.integers import parse_int
from hub.fhir.normalize import date_range, normalize_string
from hub.fhir.search_values import parse_count

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")

#: Modifiers each parameter type accepts (besides ``missing``, which all accept).
MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains"}),
    "token": frozenset({"not", "text", "of-type", "in", "not-in", "above", "below"}),
    "reference": frozenset({"identifier"}),  # plus any resource type name
    "date": frozenset(),
    "number": frozenset(),
    "quantity": frozenset(),
    "uri": frozenset({"below", "above"}),
    "composite": frozenset(),
    "special": frozenset(),
}

#: Result-shaping parameters (not criteria).
RESULT_PARAMS = frozenset(
    {
        "_sort",
        "_count",
        "_include",
        "_revinclude",
        "_total",
        "_summary",
        "_elements",
        "_offset",
        "_snapshot",
        "_cursor",
        "_format",
        "_pretty",
        "_contained",
        "_containedType",
    }
)
#: Parameters the hub knows but does not support (reported, or 400 under strict handling).
UNSUPPORTED = frozenset({"_text", "_content", "_list", "_query", "_filter", "_containedType", "_contained"})

#: The largest ``_offset`` (paging deeper than this is not paging; SQL engines choke on huge offsets).
MAX_OFFSET = 2**31 - 1

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$", re.ASCII)


class ParamDef(Protocol):
    """The search-parameter definition the parser needs (see :mod:`hub.fhir.searchparams`)."""

    code: str
    type: str
    target: tuple[str, ...]
    components: tuple[tuple[str, str], ...]


class RegistryLike(Protocol):
    def get(self, resource_type: str, code: str) -> Any: ...

    def by_url(self, url: str) -> Any: ...


# -- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StringValue:
    norm: str
    exact: str


@dataclass(frozen=True, slots=True)
class TokenValue:
    system: str | None  # None: any system; "" : no system (``|code``)
    code: str | None  # None: any code (``system|``)
    text: str | None = None  # for :text
    valueset: str | None = None  # for :in / :not-in (a ValueSet's canonical url)
    type_system: str | None = None  # for :of-type
    type_code: str | None = None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    target_type: str | None
    target_id: str | None
    url: str | None = None
    ident_system: str | None = None
    ident_value: str | None = None


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class NumberValue:
    prefix: str
    value: float
    low: float  # the range implied by the value's precision
    high: float


@dataclass(frozen=True, slots=True)
class QuantityValue:
    prefix: str
    number: NumberValue
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class UriValue:
    value: str


@dataclass(frozen=True, slots=True)
class CompositeValue:
    parts: tuple[tuple[str, str, Any], ...]  # (component param name, type, parsed value)


@dataclass(frozen=True, slots=True)
class MissingValue:
    missing: bool


# -- criteria -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Criterion:
    """One ``name[:modifier]=v1,v2`` for one resource type: any of ``values`` matches (OR)."""

    res_type: str
    name: str
    type: str
    modifier: str | None
    values: tuple[Any, ...]
    #: For a chain: the criterion on the referenced resources (``subject:Patient.name=x``).
    chain: Criterion | None = None
    chain_types: tuple[str, ...] = ()
    #: For a chain: that criterion once per target type that has the chained parameter (``subject``
    #: may be a Patient or a Group: ``subject.identifier`` searches both).
    chains: tuple[Criterion, ...] = ()


@dataclass(frozen=True, slots=True)
class HasCriterion:
    """``_has:Type:param:...``: resources referenced by a ``Type`` (via ``param``) matching ``inner``."""

    res_type: str
    source_type: str
    reference_param: str
    inner: Criterion | HasCriterion


@dataclass(frozen=True, slots=True)
class Include:
    source_type: str  # the type that holds the reference ('*' for any)
    param: str  # the reference parameter ('*' for all)
    target_type: str | None
    iterate: bool


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    type: str
    descending: bool


@dataclass(frozen=True, slots=True)
class Cursor:
    """Keyset paging: the sort-key values and ``pid`` of the row a page continues from, and whether
    the page holds the rows after it (``next``) or before it (``previous``)."""

    values: tuple[Any, ...]
    pid: int
    direction: str = "next"

    def encode(self) -> str:
        import base64
        import json

        raw = json.dumps([list(self.values), self.pid, self.direction], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_cursor(value: str) -> Cursor:
    """A ``_cursor`` from a paging link (400 when it is not one)."""
    import base64
    import binascii
    import json

    try:
        raw = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        values, pid, direction = raw
        if not isinstance(values, list) or not isinstance(pid, int) or direction not in ("next", "previous"):
            raise ValueError(value)
        if not all(v is None or isinstance(v, (str, int, float)) for v in values):
            raise ValueError(value)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("_cursor must come from a paging link", expression="_cursor") from None
    return Cursor(tuple(values), pid, direction)


@dataclass(slots=True)
class SearchQuery:
    res_type: str | None  # None for a system-level search
    criteria: list[Criterion | HasCriterion] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    snapshot: int | None = None
    #: Keyset paging position (links carry it; ``_offset`` still works when a client asks for it).
    cursor: Cursor | None = None
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    total: str = "accurate"
    summary: str | None = None
    elements: tuple[str, ...] = ()
    types: tuple[str, ...] = ()  # _type for system search
    compartment: tuple[str, str] | None = None
    #: Unknown or unsupported parameters that were ignored (reported in the result Bundle).
    ignored: list[Issue] = field(default_factory=list)
    #: The query string the self link repeats (criteria + shaping, no paging).
    canonical: list[tuple[str, str]] = field(default_factory=list)


# -- limits ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """How much one search may ask for (from :class:`hub.settings.Settings`); each is a 400 too-costly.

    They are checked on the raw parameters, before any definition is looked up, so that a
    pathological URL costs no more than reading it."""

    max_params: int = 40
    max_chain_depth: int = 4
    max_has_depth: int = 3
    max_values: int = 100
    #: Values summed over all parameters, each weighted by 1 + its chain and ``_has`` depth: what
    #: building and compiling the SQL costs (on the event loop) grows with this product.
    max_terms: int = 200

    @classmethod
    def from_settings(cls, settings: Any) -> SearchLimits:
        return cls(
            max_params=settings.max_search_params,
            max_chain_depth=settings.max_chain_depth,
            max_has_depth=settings.max_has_depth,
            max_values=settings.max_values_per_param,
            max_terms=settings.max_search_terms,
        )


DEFAULT_SEARCH_LIMITS = SearchLimits()


def check_search_limits(params: list[tuple[str, str]], limits: SearchLimits = DEFAULT_SEARCH_LIMITS) -> None:
    """400 (too-costly) when the parameters exceed a limit: count, chain depth, ``_has`` depth, values,
    weighted terms;
    400 for a NUL character (wherever the parameters came from: URL, form, If-None-Exist, a Bundle)."""
    counted = [(n, v) for n, v in params if n not in ("_format", "_pretty")]
    if len(counted) > limits.max_params:
        raise BadRequest(
            f"The search has {len(counted)} parameters; the limit is {limits.max_params}", code="too-costly"
        )
    terms = 0
    for name, value in counted:
        if "\x00" in name or "\x00" in value:  # PostgreSQL cannot even compare text holding one
            raise BadRequest(
                f"A NUL character (%00) is not allowed in the search parameter '{_short(name.replace(chr(0), ''))}'",
                code="value",
                expression=_short(name.replace("\x00", "")),
            )
        has = name.count("_has:")
        if has > limits.max_has_depth:
            raise BadRequest(
                f"'{_short(name)}' nests _has {has} levels deep; the limit is {limits.max_has_depth}",
                code="too-costly",
                expression=_short(name),
            )
        chain = name.count(".")
        if chain > limits.max_chain_depth:
            raise BadRequest(
                f"'{_short(name)}' chains {chain} references; the limit is {limits.max_chain_depth}",
                code="too-costly",
                expression=_short(name),
            )
        values = value.count(",") + 1
        if values > limits.max_values:
            values = len(split_or(value))
            if values > limits.max_values:
                raise BadRequest(
                    f"'{_short(name)}' has {values} values; the limit is {limits.max_values} per parameter",
                    code="too-costly",
                    expression=_short(name),
                )
        if name.partition(":")[0] not in RESULT_PARAMS and not name.startswith(("_include", "_revinclude")):
            terms += values * (1 + has + chain)
    if terms > limits.max_terms:
        raise BadRequest(
            f"The search asks for {terms} terms (values, weighted by chain and _has depth); the limit is "
            f"{limits.max_terms}",
            code="too-costly",
        )


def _short(name: str) -> str:
    return name if len(name) <= 80 else name[:77] + "..."


# -- parsing --------------------------------------------------------------------------------------


def parse_query(
    res_type: str | None,
    params: list[tuple[str, str]],
    registry: RegistryLike,
    *,
    default_count: int = 20,
    max_count: int = 1000,
    strict: bool = False,
    resource_types: frozenset[str] = frozenset(),
    limits: SearchLimits = DEFAULT_SEARCH_LIMITS,
) -> SearchQuery:
    """Parse search parameters for ``res_type`` (None: all types, narrowed by ``_type``)."""
    check_search_limits(params, limits)
    query = SearchQuery(res_type, count=default_count)
    for name, value in params:
        if name in ("_format", "_pretty"):
            continue
        try:
            if name == "_type" and res_type is None:
                query.types = tuple(t.strip() for t in value.split(",") if t.strip())
                for t in query.types:
                    if t not in resource_types:
                        raise BadRequest(f"_type: unknown resource type '{t}'", expression="_type")
                query.canonical.append((name, value))
            elif name in RESULT_PARAMS or name.partition(":")[0] in ("_include", "_revinclude"):
                _result_param(query, name, value, registry, max_count, resource_types)
            else:
                query.criteria.append(parse_criterion(res_type or "Resource", name, value, registry, resource_types))
                query.canonical.append((name, value))
        except _Unknown as unknown:
            if strict:
                raise BadRequest(str(unknown), code="not-supported", expression=name) from None
            query.ignored.append(Issue(str(unknown), "not-supported", "warning", (name,)))
    return query


class _Unknown(Exception):
    """A parameter the hub does not know or does not support (ignored unless handling is strict)."""


def _definition(registry: RegistryLike, res_type: str, code: str) -> Any:
    sp = registry.get(res_type, code)
    if sp is None:
        raise _Unknown(f"Unknown search parameter '{code}' for {res_type}")
    return sp


def parse_criterion(
    res_type: str, name: str, value: str, registry: RegistryLike, resource_types: frozenset[str] = frozenset()
) -> Criterion | HasCriterion:
    if name.startswith("_has:"):
        return _parse_has(res_type, name, value, registry, resource_types)
    head, dot, rest = name.partition(".")
    code, _, modifier_text = head.partition(":")
    modifier = modifier_text or None
    if code in UNSUPPORTED:
        raise _Unknown(f"The search parameter '{code}' is not supported by this server")
    sp = _definition(registry, res_type, code)
    if dot:  # a chain
        if sp.type != "reference":
            raise BadRequest(f"'{code}' is not a reference parameter, so it cannot be chained", expression=name)
        targets = _chain_targets(sp, modifier, name, resource_types)
        inners: list[Criterion] = []
        last_error: Exception | None = None
        for t in targets:  # the chained name must exist on at least one target type; each one counts
            try:
                inners.append(parse_criterion(t, rest, value, registry, resource_types))  # type: ignore[arg-type]
            except _Unknown as exc:
                last_error = exc
        if not inners:
            raise _Unknown(f"Chain '{name}': {last_error}")
        inner = inners[0]
        usable = tuple(c.res_type for c in inners)
        return Criterion(res_type, code, "reference", None, (), chain=inner, chain_types=usable, chains=tuple(inners))
    if modifier == "missing":
        flag = value.lower()
        if flag not in ("true", "false"):
            raise BadRequest(f"{name} must be true or false", expression=name)
        return Criterion(res_type, code, sp.type, "missing", (MissingValue(flag == "true"),))
    _check_modifier(sp, modifier, name, resource_types)
    if sp.type == "composite":
        values = tuple(_composite_value(sp, v, registry, name) for v in split_or(value))
    else:
        values = tuple(parse_value(sp.type, v, modifier, name) for v in split_or(value))
    if not values:
        raise BadRequest(f"The parameter '{name}' has no value", code="required", expression=name)
    return Criterion(res_type, code, sp.type, modifier, values)


def _chain_targets(sp: Any, modifier: str | None, name: str, resource_types: frozenset[str]) -> tuple[str, ...]:
    if modifier:
        if resource_types and modifier not in resource_types:
            raise BadRequest(f"Chain '{name}': '{modifier}' is not a resource type", expression=name)
        return (modifier,)
    targets = tuple(t for t in sp.target if t != "Resource")
    if not targets:
        raise BadRequest(
            f"Chain '{name}': the reference can point at any type; name one, e.g. '{sp.code}:Patient.'",
            expression=name,
        )
    return targets


def _parse_has(
    res_type: str, name: str, value: str, registry: RegistryLike, resource_types: frozenset[str]
) -> HasCriterion:
    parts = name.split(":", 3)
    if len(parts) < 4 or not parts[1] or not parts[2] or not parts[3]:
        raise BadRequest(f"'{name}' must look like _has:Type:reference-param:search-param", expression=name)
    _, source, ref_param, rest = parts
    if resource_types and source not in resource_types:
        raise BadRequest(f"_has: '{source}' is not a resource type", expression=name)
    sp = _definition(registry, source, ref_param)
    if sp.type != "reference":
        raise BadRequest(f"_has: '{source}.{ref_param}' is not a reference parameter", expression=name)
    inner = parse_criterion(source, rest, value, registry, resource_types)
    return HasCriterion(res_type, source, ref_param, inner)


def _check_modifier(sp: Any, modifier: str | None, name: str, resource_types: frozenset[str]) -> None:
    if modifier is None:
        return
    if sp.type == "reference" and (modifier in resource_types or (not resource_types and modifier[:1].isupper())):
        return
    if modifier not in MODIFIERS.get(sp.type, frozenset()):
        # The spec: a server SHALL reject a modifier it does not support (never ignore it).
        if modifier in ("in", "not-in", "above", "below", "iterate", "type", "code-text", "text-advanced"):
            raise BadRequest(
                f"The modifier ':{modifier}' on the {sp.type} parameter '{sp.code}' is not supported",
                code="not-supported",
                expression=name,
            )
        raise BadRequest(f"Unknown modifier ':{modifier}' for the {sp.type} parameter '{sp.code}'", expression=name)
    if modifier == "of-type" and getattr(sp, "code", "") != "identifier":
        raise BadRequest(f"':of-type' applies to identifier parameters only, not '{sp.code}'", expression=name)


def split_or(value: str) -> list[str]:
    """Split on unescaped commas; ``\\,`` is a literal comma (also ``\\$`` and ``\\|`` unescape later)."""
    out, cur, esc = [], [], False
    for ch in value:
        if esc:
            cur.append("\\" + ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if esc:
        cur.append("\\")
    out.append("".join(cur))
    return [v for v in out if v != ""]


def _split_unescaped(value: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            cur.append(value[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\,$|])", r"\1", value)


def parse_value(ptype: str, raw: str, modifier: str | None, name: str) -> Any:
    """One search value of a parameter type (after OR-splitting)."""
    if ptype == "string":
        text = _unescape(raw)
        return StringValue(normalize_string(text), text)
    if ptype == "token":
        return _token(raw, modifier, name)
    if ptype == "reference":
        return _reference(raw, modifier, name)
    if ptype == "date":
        prefix, rest = _prefix(raw)
        try:
            low, high = date_range(rest)
        except BadRequest:
            raise BadRequest(f"'{raw}' is not a valid date for '{name}'", code="value", expression=name) from None
        return DateValue(prefix, low, high)
    if ptype == "number":
        prefix, rest = _prefix(raw)
        return _number(prefix, rest, name)
    if ptype == "quantity":
        prefix, rest = _prefix(raw)
        parts = _split_unescaped(rest, "|")
        if len(parts) not in (1, 3):
            raise BadRequest(f"'{raw}' is not a quantity like 5.4|http://unitsofmeasure.org|mg", expression=name)
        number = _number(prefix, parts[0], name)
        system = _unescape(parts[1]) or None if len(parts) == 3 else None
        code = _unescape(parts[2]) or None if len(parts) == 3 else None
        return QuantityValue(prefix, number, system, code)
    if ptype == "uri":
        return UriValue(_unescape(raw))
    if ptype == "special":
        raise _Unknown(f"The special parameter '{name}' is not supported")
    raise BadRequest(f"Search on parameters of type '{ptype}' is not supported", expression=name)


def _prefix(raw: str) -> tuple[str, str]:
    if len(raw) > 2 and raw[:2] in PREFIXES and not raw[:2].isdigit():
        return raw[:2], raw[2:]
    return "eq", raw


def _number(prefix: str, text: str, name: str) -> NumberValue:
    if not _NUMBER.match(text):
        raise BadRequest(f"'{text}' is not a number (parameter '{name}')", code="value", expression=name)
    try:
        dec = Decimal(text)
    except InvalidOperation:
        raise BadRequest(f"'{text}' is not a number (parameter '{name}')", code="value", expression=name) from None
    # The value's precision gives its range: 100 -> [99.5, 100.5), 1.50 -> [1.495, 1.505).
    exponent = dec.as_tuple().exponent
    half = Decimal(5) * Decimal(10) ** (int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    return NumberValue(prefix, float(dec), float(dec - half), float(dec + half))


def _token(raw: str, modifier: str | None, name: str) -> TokenValue:
    if modifier == "text":
        return TokenValue(None, None, text=normalize_string(_unescape(raw)))
    if modifier in ("in", "not-in"):
        url = _unescape(raw).strip()
        if not url:
            raise BadRequest(f"{name} needs a ValueSet url", expression=name)
        return TokenValue(None, None, valueset=url)
    parts = _split_unescaped(raw, "|")
    if modifier == "of-type":
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise BadRequest(f"{name} needs type-system|type-code|value", expression=name)
        return TokenValue(
            None, _unescape(parts[2]), type_system=_unescape(parts[0]) or None, type_code=_unescape(parts[1])
        )
    if len(parts) == 1:
        return TokenValue(None, _unescape(parts[0]))
    if len(parts) == 2:
        system, code = _unescape(parts[0]), _unescape(parts[1])
        return TokenValue(system, code or None)
    raise BadRequest(f"'{raw}' is not a token (system|code) for '{name}'", expression=name)


def _reference(raw: str, modifier: str | None, name: str) -> ReferenceValue:
    value = _unescape(raw)
    if modifier == "identifier":
        parts = _split_unescaped(raw, "|")
        if len(parts) == 1:
            return ReferenceValue(None, None, ident_value=_unescape(parts[0]))
        if len(parts) == 2:
            return ReferenceValue(
                None, None, ident_system=_unescape(parts[0]) or None, ident_value=_unescape(parts[1]) or None
            )
        raise BadRequest(f"'{raw}' is not an identifier (system|value) for '{name}'", expression=name)
    typed = modifier if modifier and modifier[:1].isupper() else None
    if "://" in value or value.startswith("urn:"):
        tail = value.split("/_history/")[0].rstrip("/").split("/")
        if len(tail) >= 2 and tail[-2][:1].isupper() and tail[-2].isalnum():
            return ReferenceValue(typed or tail[-2], tail[-1], url=value)
        return ReferenceValue(None, None, url=value)
    segments = value.split("/_history/")[0].split("/")
    if len(segments) == 1:
        return ReferenceValue(typed, segments[0])
    if len(segments) == 2:
        if typed and typed != segments[0]:
            raise BadRequest(f"'{raw}' is not a {typed} reference", expression=name)
        return ReferenceValue(segments[0], segments[1])
    raise BadRequest(f"'{raw}' is not a reference like Type/id for '{name}'", expression=name)


def _composite_value(sp: Any, raw: str, registry: RegistryLike, name: str) -> CompositeValue:
    pieces = _split_unescaped(raw, "$")
    if len(pieces) != len(sp.components):
        raise BadRequest(
            f"'{raw}' must have {len(sp.components)} parts separated by '$' for '{sp.code}'", expression=name
        )
    parts = []
    for i, ((definition, _expr), piece) in enumerate(zip(sp.components, pieces, strict=True)):
        comp = registry.by_url(definition)
        if comp is None:
            raise _Unknown(f"The composite '{sp.code}' uses an unknown component '{definition}'")
        parts.append((f"{sp.code}${i}", comp.type, parse_value(comp.type, piece, None, name)))
    return CompositeValue(tuple(parts))


# -- result parameters ----------------------------------------------------------------------------


def _result_param(
    query: SearchQuery,
    name: str,
    value: str,
    registry: RegistryLike,
    max_count: int,
    resource_types: frozenset[str],
) -> None:
    if name == "_count":
        query.count = parse_count(value, query.count, max_count)
        query.canonical.append((name, str(query.count)))
    elif name == "_offset":
        query.offset = parse_int(value, "_offset", maximum=MAX_OFFSET)
    elif name == "_snapshot":
        query.snapshot = parse_int(value, "_snapshot", hint="a number from a next link")
    elif name == "_cursor":
        query.cursor = parse_cursor(value)
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise BadRequest("_total must be none, estimate or accurate", expression="_total")
        query.total = value
        query.canonical.append((name, value))
    elif name == "_summary":
        if value not in ("true", "false", "text", "data", "count"):
            raise BadRequest("_summary must be true, false, text, data or count", expression="_summary")
        query.summary = None if value == "false" else value
        query.canonical.append((name, value))
    elif name == "_elements":
        query.elements = tuple(e.strip() for e in value.split(",") if e.strip())
        query.canonical.append((name, value))
    elif name == "_sort":
        for key in value.split(","):
            key = key.strip()
            if not key:
                continue
            desc = key.startswith("-")
            code = key.lstrip("-")
            if code in ("_id", "_lastUpdated"):
                query.sort.append(SortKey(code, "special", desc))
                continue
            sp = registry.get(query.res_type or "Resource", code)
            if sp is None or sp.type in ("composite", "special"):
                raise BadRequest(
                    f"Cannot sort on '{code}': not a sortable parameter of {query.res_type}",
                    expression="_sort",
                )
            query.sort.append(SortKey(code, sp.type, desc))
        query.canonical.append((name, value))
    elif name.partition(":")[0] in ("_include", "_revinclude"):
        _include(query, name, value, registry, resource_types)
        query.canonical.append((name, value))
    elif name in UNSUPPORTED:
        raise _Unknown(f"The parameter '{name}' is not supported by this server")


def _include(query: SearchQuery, name: str, value: str, registry: RegistryLike, resource_types: frozenset[str]) -> None:
    iterate = False
    base_name = name
    # `_include:iterate=...` arrives with the modifier in the name.
    if ":" in name:
        base_name, _, mod = name.partition(":")
        if mod not in ("iterate", "recurse"):
            raise BadRequest(f"Unknown modifier ':{mod}' on {base_name}", expression=name)
        iterate = True
    if value == "*":
        target = Include("*", "*", None, iterate)
    else:
        parts = value.split(":")
        if len(parts) not in (2, 3):
            raise BadRequest(f"{base_name} must look like Type:param[:TargetType] or *", expression=base_name)
        source, param = parts[0], parts[1]
        if resource_types and source not in resource_types:
            raise BadRequest(f"{base_name}: '{source}' is not a resource type", expression=base_name)
        if param != "*":
            sp = registry.get(source, param)
            if sp is None or sp.type != "reference":
                raise BadRequest(f"{base_name}: '{source}:{param}' is not a reference parameter", expression=base_name)
        tgt = parts[2] if len(parts) == 3 else None
        if tgt and resource_types and tgt not in resource_types:
            raise BadRequest(f"{base_name}: '{tgt}' is not a resource type", expression=base_name)
        target = Include(source, param, tgt, iterate)
    (query.includes if base_name == "_include" else query.revincludes).append(target)

"""The search parameters the hub knows, as data (after HAPI's ISearchParamRegistry).

Loaded from the R4 definitions bundle plus the SearchParameter JSON files under ``profiles/``;
a later definition with the same code and base replaces an earlier one for that base.

Each multi-base expression (``Patient.name | Person.name | Practitioner.name``) is split per
resource type, so a type only evaluates its own part (:meth:`SearchParam.expression_for`).

Not every parameter becomes index rows (:attr:`SearchParam.indexed`):

- ``_id`` and ``_lastUpdated`` are answered from the ``resource`` table's ``res_id`` and
  ``last_updated`` columns (:attr:`SearchParam.column`), never from ``idx_*`` rows;
- ``_text``, ``_content``, ``_query``, ``_list``, ``_has``, ``_filter`` and ``_type`` are
  ``special``: the search layer handles them (or refuses them) itself;
- parameters of type ``special`` (e.g. Location ``near``) or without an expression.

``_tag``, ``_profile``, ``_security`` and ``_source`` are ordinary token/uri parameters on
``Resource.meta`` and are indexed for every type.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from hub.paths import definitions_dir, profiles_dir

log = logging.getLogger(__name__)

#: Types that are not DomainResources, so DomainResource-level parameters (``_text``) skip them.
NON_DOMAIN_TYPES = frozenset({"Binary", "Bundle", "Parameters"})

#: Parameters answered from resource columns (code -> column of ``hub.store.tables.resource``).
COLUMN_PARAMS: Mapping[str, str] = {"_id": "res_id", "_lastUpdated": "last_updated"}

#: Parameters that never produce index rows (the search layer treats them specially).
NOT_INDEXED = frozenset({"_id", "_lastUpdated", "_text", "_content", "_query", "_list", "_has", "_filter", "_type"})

_DEFAULT_MODIFIERS: Mapping[str, tuple[str, ...]] = {
    "string": ("missing", "exact", "contains"),
    "token": ("missing", "text", "not", "above", "below", "in", "not-in", "of-type"),
    "reference": ("missing", "type", "identifier", "above", "below"),
    "uri": ("missing", "above", "below"),
    "date": ("missing",),
    "number": ("missing",),
    "quantity": ("missing",),
    "composite": ("missing",),
    "special": (),
}
_ORDERED_TYPES = frozenset({"date", "number", "quantity"})
_ALL_COMPARATORS = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap")

# The Resource-level specials R4 does not define as SearchParameters but the search layer knows.
_SYNTHETIC_SPECIALS = ("_list", "_has", "_filter", "_type")

_HEAD = re.compile(r"[\s(]*([A-Za-z_%$][A-Za-z0-9_]*)")


class Component(NamedTuple):
    """One part of a composite parameter: the component parameter's URL and its relative path."""

    definition: str
    expression: str


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter. ``expression`` is the full (multi-base) FHIRPath expression."""

    code: str
    type: str
    base: tuple[str, ...]
    expression: str | None
    url: str
    target: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    multiple_or: bool = True
    multiple_and: bool = True
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()
    name: str = ""
    #: (resource type, that type's part of the expression); "*" stands for every base type.
    expressions: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def expression_for(self, resource_type: str) -> str | None:
        """The part of ``expression`` that applies to ``resource_type`` (None if no part does)."""
        for rt, expr in self.expressions:
            if rt == resource_type or rt == "*":
                return expr
        return None

    @property
    def column(self) -> str | None:
        """The ``resource`` column that answers this parameter (``_id``, ``_lastUpdated``), else None."""
        return COLUMN_PARAMS.get(self.code)

    @property
    def indexed(self) -> bool:
        """True if extraction writes index rows for this parameter."""
        return self.code not in NOT_INDEXED and self.type != "special" and self.expression is not None


def split_top_level(expression: str, sep: str = "|") -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts: list[str] = []
    depth, quote, start = 0, False, 0
    i = 0
    while i < len(expression):
        c = expression[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == "'":
                quote = False
        elif c == "'":
            quote = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
        i += 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


def split_expression(expression: str, base: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Per-type expressions: each ``|`` part goes to the base type it starts with.

    Parts starting with ``Resource``/``DomainResource`` or with a relative path (``name | alias``)
    apply to every base; parts naming a type outside ``base`` apply to none.
    """
    bases = tuple(base)
    per_type: dict[str, list[str]] = {}
    common: list[str] = []
    for part in split_top_level(expression):
        m = _HEAD.match(part)
        head = m.group(1) if m else ""
        if head in ("Resource", "DomainResource") or not head[:1].isupper():
            common.append(part)
        elif head in bases:
            per_type.setdefault(head, []).append(part)
    if not per_type:
        return (("*", " | ".join(common)),) if common else ()
    out = []
    for rt in bases:
        parts = per_type.get(rt, []) + common
        if parts:
            out.append((rt, " | ".join(parts)))
    return tuple(out)


def from_resource(res: Mapping[str, Any]) -> SearchParam:
    """A SearchParam from a SearchParameter resource (JSON)."""
    ptype = res["type"]
    base = tuple(res.get("base") or ())
    expression = res.get("expression") or None
    comps = tuple(Component(c.get("definition", ""), c.get("expression", "")) for c in res.get("component") or ())
    return SearchParam(
        code=res["code"],
        type=ptype,
        base=base,
        expression=expression,
        url=res.get("url", ""),
        target=tuple(res.get("target") or ()),
        components=comps,
        multiple_or=bool(res.get("multipleOr", True)),
        multiple_and=bool(res.get("multipleAnd", True)),
        modifiers=tuple(res.get("modifier") or _DEFAULT_MODIFIERS.get(ptype, ("missing",))),
        comparators=tuple(res.get("comparator") or (_ALL_COMPARATORS if ptype in _ORDERED_TYPES else ())),
        chain=tuple(res.get("chain") or ()),
        name=res.get("name", ""),
        expressions=split_expression(expression, base) if expression else (),
    )


class Registry:
    """All search parameters, by (resource type, code) and by URL."""

    def __init__(self, params: Iterable[SearchParam]) -> None:
        self._by_base: dict[str, dict[str, SearchParam]] = {}
        self._by_url: dict[str, SearchParam] = {}
        self._all: list[SearchParam] = []
        for sp in params:
            self._all.append(sp)
            if sp.url:
                self._by_url[sp.url] = sp
            for b in sp.base:
                self._by_base.setdefault(b, {})[sp.code] = sp
        common = self._by_base.get("Resource", {})
        domain = {**common, **self._by_base.get("DomainResource", {})}
        self._by_type: dict[str, dict[str, SearchParam]] = {
            rt: {**(common if rt in NON_DOMAIN_TYPES else domain), **own}
            for rt, own in self._by_base.items()
            if rt not in ("Resource", "DomainResource")
        }
        self._common, self._domain = common, domain

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        """The parameter ``code`` of ``resource_type`` (including Resource-level ones), or None."""
        return self.for_type(resource_type).get(code)

    def for_type(self, resource_type: str) -> Mapping[str, SearchParam]:
        """Every parameter of ``resource_type``, by code (do not mutate)."""
        own = self._by_type.get(resource_type)
        if own is not None:
            return own
        return self._common if resource_type in NON_DOMAIN_TYPES else self._domain

    def by_url(self, url: str) -> SearchParam | None:
        """The parameter with canonical ``url`` (component definitions of composites point here)."""
        return self._by_url.get(url.split("|", 1)[0]) or self._by_url.get(url)

    def resource_types(self) -> frozenset[str]:
        """Every concrete resource type that has parameters of its own."""
        return frozenset(self._by_type)

    def __iter__(self) -> Iterator[SearchParam]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)


def _read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _search_parameters_in(data: Any) -> list[dict[str, Any]]:
    """SearchParameter resources in a resource or Bundle (JSON)."""
    if not isinstance(data, dict):
        return []
    if data.get("resourceType") == "SearchParameter":
        return [data]
    if data.get("resourceType") == "Bundle":
        return [
            e["resource"]
            for e in data.get("entry") or ()
            if isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "SearchParameter"
        ]
    return []


@functools.cache
def _core_resources() -> tuple[dict[str, Any], ...]:
    import gzip

    data = orjson.loads(gzip.decompress((definitions_dir() / "r4" / "search-parameters.json.gz").read_bytes()))
    return tuple(r for r in data if isinstance(r, dict) and r.get("resourceType") == "SearchParameter")


def _profile_resources() -> list[dict[str, Any]]:
    root = profiles_dir()
    if not root.is_dir():
        return []
    out: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*.json")):
        try:
            out.extend(_search_parameters_in(_read_json(path)))
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("Skipping unreadable profile file %s: %s", path, exc)
    return out


def _synthetic() -> list[SearchParam]:
    return [
        SearchParam(
            code=c,
            type="special",
            base=("Resource",),
            expression=None,
            url=f"urn:zorgnet-hub:searchparam:{c}",
            name=c,
        )
        for c in _SYNTHETIC_SPECIALS
    ]


@functools.cache
def _seed() -> tuple[SearchParam, ...]:
    """The package's parameters: R4's, the synthetic specials and those under ``profiles/``."""
    params: list[SearchParam] = _synthetic()
    for res in (*_core_resources(), *_profile_resources()):
        try:
            params.append(from_resource(res))
        except (KeyError, TypeError) as exc:
            log.warning("Skipping malformed SearchParameter %s: %s", res.get("url") or res.get("id"), exc)
    return tuple(params)


def _build(extra: Iterable[Mapping[str, Any]] | None) -> Registry:
    params = list(_seed())
    for res in extra or ():
        try:
            params.append(from_resource(res))
        except (KeyError, TypeError) as exc:
            log.warning("Skipping malformed SearchParameter %s: %s", res.get("url") or res.get("id"), exc)
    return Registry(params)


@functools.cache
def _default_registry() -> Registry:
    return _build(None)


def load_registry(extra: list[dict[str, Any]] | None = None) -> Registry:
    """The registry of R4 + ``profiles/`` parameters (cached), plus ``extra`` SearchParameters if given."""
    if not extra:
        return _default_registry()
    return _build(extra)


def registry_with(stored: Iterable[Mapping[str, Any]]) -> Registry:
    """The package's parameters (the seed) with the SearchParameter resources stored in the hub, as
    HAPI does it: an ``active`` one takes effect (and replaces a package parameter of the same url,
    or of the same code on the same base); one of another status takes a package parameter of its
    url out of effect."""
    stored = list(stored)
    replaced = {str(r.get("url")) for r in stored if r.get("url")}
    params = [sp for sp in _seed() if not sp.url or sp.url not in replaced]
    for res in stored:
        if res.get("status") != "active":
            continue
        try:
            params.append(from_resource(res))
        except (KeyError, TypeError) as exc:
            log.warning("Skipping malformed SearchParameter %s: %s", res.get("url") or res.get("id"), exc)
    return Registry(params)


__all__ = [
    "COLUMN_PARAMS",
    "Component",
    "NON_DOMAIN_TYPES",
    "NOT_INDEXED",
    "Registry",
    "SearchParam",
    "from_resource",
    "load_registry",
    "registry_with",
    "split_expression",
    "split_top_level",
]

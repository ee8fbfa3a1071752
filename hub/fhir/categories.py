"""Data categories: which category each stored resource belongs to, for consent and access decisions.

The categories are the codes of the hub's CodeSystem (profiles/CodeSystem-data-category.json); the
rules mapping a resource to one are data (profiles/categories.json), tried in order per resource type:
a rule may ask for a claimed profile (``metaProfile``) and for codings at element paths (``when``). The
same rules name the hub profile a resource is validated against by default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from hub.paths import profiles_dir

CODE_SYSTEM = "https://zorgnet-hub.nl/fhir/CodeSystem/data-category"


@dataclass(frozen=True)
class Rule:
    """One line of the mapping: conditions on a resource of ``type`` and what follows from them."""

    type: str
    category: str
    meta_profile: str | None = None
    when: tuple[tuple[tuple[str, ...], str | None, str], ...] = ()
    profile: str | None = None

    def matches(self, resource: dict[str, Any]) -> bool:
        if self.meta_profile is not None:
            claimed = resource.get("meta", {}).get("profile", []) if isinstance(resource.get("meta"), dict) else []
            if self.meta_profile not in claimed:
                return False
        return all(_has_coding(resource, path, system, code) for path, system, code in self.when)


@dataclass(frozen=True)
class CategoryMap:
    """The parsed mapping file: rules by resource type, the fallback category and the known codes."""

    rules: dict[str, tuple[Rule, ...]]
    default: str
    codes: frozenset[str]


@cache
def category_map() -> CategoryMap:
    """The mapping from profiles/categories.json and the codes of the category CodeSystem (read once)."""
    base = profiles_dir()
    data = json.loads((base / "categories.json").read_bytes())
    cs = json.loads((base / "CodeSystem-data-category.json").read_bytes())
    codes = frozenset(c["code"] for c in cs["concept"])
    by_type: dict[str, list[Rule]] = {}
    for r in data["rules"]:
        if r["category"] not in codes:
            raise ValueError(f"categories.json: unknown category {r['category']!r}")
        when = tuple((tuple(w["path"].split(".")), w.get("system"), w["code"]) for w in r.get("when", []))
        by_type.setdefault(r["type"], []).append(
            Rule(r["type"], r["category"], r.get("metaProfile"), when, r.get("profile"))
        )
    return CategoryMap({t: tuple(rs) for t, rs in by_type.items()}, data["default"], codes)


def categories() -> frozenset[str]:
    """All data category codes."""
    return category_map().codes


def _rule_for(resource: dict[str, Any]) -> Rule | None:
    for rule in category_map().rules.get(resource.get("resourceType", ""), ()):
        if rule.matches(resource):
            return rule
    return None


def category_for(resource: dict[str, Any]) -> str:
    """The data category of a resource (e.g. 'acp' for a treatment directive Consent)."""
    rule = _rule_for(resource)
    return rule.category if rule is not None else category_map().default


def default_profile(resource: dict[str, Any]) -> str | None:
    """The hub profile a resource of this kind is validated against even when it claims none."""
    rule = _rule_for(resource)
    return rule.profile if rule is not None else None


def _has_coding(resource: dict[str, Any], path: tuple[str, ...], system: str | None, code: str) -> bool:
    values: list[Any] = [resource]
    for step in path:
        nxt: list[Any] = []
        for v in values:
            if isinstance(v, dict) and step in v:
                x = v[step]
                nxt.extend(x if isinstance(x, list) else [x])
        values = nxt
    for v in values:
        if isinstance(v, str):
            if system is None and v == code:
                return True
            continue
        if not isinstance(v, dict):
            continue
        codings = v.get("coding") if "coding" in v else [v]
        for c in codings or ():
            if isinstance(c, dict) and c.get("code") == code and (system is None or c.get("system") == system):
                return True
    return False

"""Profile checks for the TestScript runner's ``validateProfileId``: the STU3 structure (fhir.resources
models) and, for the eOverdracht 4.0 profiles the adapter ships, their differential: required elements
(``min`` 1), fixed values, and slices told apart by their fixed children (``min``/``max`` of each).

This is less than the HL7 validator (no terminology bindings, no invariants, no profiles of referenced
types); what it does not check is not reported as checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

Json = dict[str, Any]


@dataclass
class _Slice:
    path: str
    name: str
    min: int
    max: str | None
    fixed: dict[str, Any] = field(default_factory=dict)  # relative path -> value


def _values(node: Any, parts: list[str]) -> list[Any]:
    """The values at a dotted path (lists flattened; ``value[x]`` matches any ``value*``)."""
    nodes = node if isinstance(node, list) else [node]
    if not parts:
        return [n for n in nodes if n is not None]
    out: list[Any] = []
    head = parts[0]
    for n in nodes:
        if not isinstance(n, dict):
            continue
        keys = [k for k in n if k.startswith(head[:-3])] if head.endswith("[x]") else [head]
        for k in keys:
            if k in n:
                out += _values(n[k], parts[1:])
    return out


def _fixed(element: Json) -> Any:
    for key, value in element.items():
        if key.startswith(("fixed", "pattern")):
            return value
    return None


class ProfileCheck:
    """Checks against the STU3 models and the shipped eOverdracht 4.0 differentials."""

    def __init__(self) -> None:
        data = resources.files("adapters.wijkverpleging").joinpath("data/eoverdracht-profiles.json").read_text("utf-8")
        self.profiles: dict[str, Json] = {p["url"]: p for p in json.loads(data)}

    def check(self, resource: Json, url: str) -> list[str]:
        from fhir.resources.STU3 import get_fhir_model_class

        problems: list[str] = []
        try:
            get_fhir_model_class(str(resource.get("resourceType"))).model_validate(resource)
        except Exception as exc:  # noqa: BLE001 - any model error is a validation problem
            problems.append(f"not valid STU3: {str(exc).splitlines()[0]}")
        profile = self.profiles.get(url)
        if profile is None:
            return problems
        if resource.get("resourceType") != profile["type"]:
            return [*problems, f"a {resource.get('resourceType')}, the profile is for {profile['type']}"]
        problems += self._differential(resource, profile["differential"])
        return problems

    def _differential(self, resource: Json, elements: list[Json]) -> list[str]:
        problems: list[str] = []
        slices: list[_Slice] = []
        current: _Slice | None = None
        for el in elements:
            path = str(el["path"])
            nested = current is not None and path.startswith(current.path + ".")
            if el.get("sliceName") and not nested and "value" not in path.split(".")[-1]:
                current = _Slice(path, el["sliceName"], int(el.get("min", 0)), el.get("max"))
                slices.append(current)
                continue
            if current is not None and path.startswith(current.path + "."):
                value = _fixed(el)
                if value is not None:
                    current.fixed[path[len(current.path) + 1 :]] = value
                continue
            current = None
            parts = path.split(".")[1:]
            if int(el.get("min", 0)) >= 1 and parts:
                for parent in _values(resource, parts[:-1]):
                    if not _values(parent, parts[-1:]):
                        problems.append(f"{path}: required (min 1)")
                        break
            value = _fixed(el)
            if value is not None:
                wrong = [v for v in _values(resource, parts) if v != value and not _contains(v, value)]
                if wrong:
                    problems.append(f"{path}: {json.dumps(wrong[0])[:80]} is not the fixed {json.dumps(value)[:80]}")
        for sl in slices:
            parts = sl.path.split(".")[1:]
            matching = [
                item
                for item in _values(resource, parts)
                if sl.fixed
                and all(
                    any(v == want or _contains(v, want) for v in _values(item, rel.split(".")))
                    for rel, want in sl.fixed.items()
                )
            ]
            if len(matching) < sl.min:
                problems.append(f"{sl.path}:{sl.name}: required (min {sl.min})")
            if sl.max not in (None, "*") and len(matching) > int(str(sl.max)):
                problems.append(f"{sl.path}:{sl.name}: more than {sl.max}")
        return problems


def _contains(value: Any, pattern: Any) -> bool:
    """FHIR pattern matching: every element of the pattern is in the value."""
    if isinstance(pattern, dict) and isinstance(value, dict):
        return all(_contains(value.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list) and isinstance(value, list):
        return all(any(_contains(v, p) for v in value) for p in pattern)
    return bool(value == pattern)

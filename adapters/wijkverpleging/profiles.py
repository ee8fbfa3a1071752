"""The STU3 profiles the adapter knows, and which of them a resource it serves may honestly claim.

:class:`ProfileCheck` checks a resource against an STU3 profile the adapter ships (package data): the
eOverdracht 4.0 profiles (``data/eoverdracht-profiles.json``) and the nl-core (zib2017) profiles the
eOverdracht ones point at for the client, organisations and professionals
(``data/nl-core-stu3-profiles.json``). The check is the STU3 structure (fhir.resources models) and the
profile's differential: required elements (``min`` 1), maximum cardinalities, fixed and pattern values,
and slices told apart by their fixed children (their ``min``/``max``, and their own required children).
It is less than the HL7 validator: no terminology bindings, no invariants, no profiles of the element
types (nl-core-humanname, nl-core-address, ...) and none of referenced resources. The conformance runner
(``scripts/conformance``) uses the same check for ``validateProfileId``.

:func:`claim_profiles` is what the STU3 facade does with a resource that claims no STU3 profile (the
hub's own records: the client's Patient, registered Organizations, a Task started in the hub): it claims
the profiles of :data:`CLAIMABLE` for its type that it passes, and nothing when it passes none. A
resource that came from an STU3 system keeps the claims it came with (see
:mod:`adapters.wijkverpleging.convert`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

Json = dict[str, Any]
NL_CORE = "http://fhir.nl/fhir/StructureDefinition/"
EOVERDRACHT = "http://nictiz.nl/fhir/StructureDefinition/"
PROFILE_FILES = ("data/eoverdracht-profiles.json", "data/nl-core-stu3-profiles.json")

#: The STU3 profiles a resource of the hub's own is checked against, by type, and claimed when it passes.
#: Compositions are not among them: the eOverdracht handoff profiles for adults and for children are told
#: apart by the client's age, not by structure, and the advance notice by its STU3 type code; a
#: Composition claims what its STU3 sender claimed, or nothing.
CLAIMABLE: dict[str, tuple[str, ...]] = {
    "Patient": (NL_CORE + "nl-core-patient",),
    "Organization": (NL_CORE + "nl-core-organization",),
    "Practitioner": (NL_CORE + "nl-core-practitioner",),
    "PractitionerRole": (NL_CORE + "nl-core-practitionerrole",),
    "Task": (EOVERDRACHT + "eOverdracht-Task",),
}


@dataclass
class _Slice:
    path: str
    name: str
    min: int
    max: str | None
    fixed: dict[str, Any] = field(default_factory=dict)  # relative path -> value
    required: list[str] = field(default_factory=list)  # relative paths with min 1 (outside sub-slices)
    sub_slices: list[str] = field(default_factory=list)  # paths sliced again inside this slice

    def in_sub_slice(self, path: str) -> bool:
        return any(path == sub or path.startswith(sub + ".") for sub in self.sub_slices)


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


def _contains(value: Any, pattern: Any) -> bool:
    """FHIR pattern matching: every element of the pattern is in the value."""
    if isinstance(pattern, dict) and isinstance(value, dict):
        return all(_contains(value.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list) and isinstance(value, list):
        return all(any(_contains(v, p) for v in value) for p in pattern)
    return bool(value == pattern)


def _too_many(count: int, maximum: Any) -> bool:
    return maximum not in (None, "*") and count > int(str(maximum))


class ProfileCheck:
    """Checks against the STU3 models and the shipped profiles' differentials."""

    def __init__(self) -> None:
        self.profiles: dict[str, Json] = {}
        for name in PROFILE_FILES:
            data = resources.files("adapters.wijkverpleging").joinpath(name).read_text("utf-8")
            self.profiles.update({p["url"]: p for p in json.loads(data)})

    def check(self, resource: Json, url: str) -> list[str]:
        """What keeps ``resource`` from conforming to the profile ``url`` (empty: it conforms, as far as
        this check goes; a profile the adapter does not ship is checked for the STU3 structure only)."""
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
                relative = path[len(current.path) + 1 :]
                value = _fixed(el)
                if value is not None:
                    current.fixed[relative] = value
                if el.get("sliceName"):
                    current.sub_slices.append(path)  # what a sub-slice requires is not asked of every item
                elif int(el.get("min", 0)) >= 1 and not current.in_sub_slice(path):
                    current.required.append(relative)
                continue
            current = None
            parts = path.split(".")[1:]
            if not parts:
                continue
            for parent in _values(resource, parts[:-1]):
                found = _values(parent, parts[-1:])
                if int(el.get("min", 0)) >= 1 and not found:
                    problems.append(f"{path}: required (min 1)")
                    break
                if _too_many(len(found), el.get("max")):
                    problems.append(f"{path}: more than {el['max']}")
                    break
            value = _fixed(el)
            if value is not None:
                wrong = [v for v in _values(resource, parts) if v != value and not _contains(v, value)]
                if wrong:
                    problems.append(f"{path}: {json.dumps(wrong[0])[:80]} is not the fixed {json.dumps(value)[:80]}")
        for sl in slices:
            problems += self._slice(resource, sl)
        return problems

    @staticmethod
    def _slice(resource: Json, sl: _Slice) -> list[str]:
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
        problems: list[str] = []
        if len(matching) < sl.min:
            problems.append(f"{sl.path}:{sl.name}: required (min {sl.min})")
        if _too_many(len(matching), sl.max):
            problems.append(f"{sl.path}:{sl.name}: more than {sl.max}")
        for item in matching:
            for rel in sl.required:
                rel_parts = rel.split(".")
                if any(not _values(parent, rel_parts[-1:]) for parent in _values(item, rel_parts[:-1])):
                    problems.append(f"{sl.path}:{sl.name}.{rel}: required (min 1)")
        return problems


@cache
def profile_check() -> ProfileCheck:
    """One :class:`ProfileCheck` per process (the profiles are read once)."""
    return ProfileCheck()


def claim_profiles(stu3: Json) -> Json:
    """``stu3`` with ``meta.profile`` naming the :data:`CLAIMABLE` profiles it passes, when it claims
    none yet (in place; returned for convenience). A resource that passes none claims none."""
    meta = stu3.get("meta") or {}
    if meta.get("profile"):
        return stu3
    checks = profile_check()
    passed = [url for url in CLAIMABLE.get(str(stu3.get("resourceType")), ()) if not checks.check(stu3, url)]
    if passed:
        stu3["meta"] = {**meta, "profile": passed}
    return stu3

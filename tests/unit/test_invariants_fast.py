"""Differential test of invariant evaluation: the compiled fast path and fhirpathpy give the same verdict.

Every invariant of every loaded profile (the hub's, Nictiz's and the R4 core definitions they rest on)
is evaluated both ways on every value of the example corpus it can apply to (values at its element's
path, or of its type), and on every site the validator itself evaluates while validating the corpus.
Where the fast path gives an answer, it must be fhirpathpy's: the same values, so the same verdict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fhirpathpy.engine.nodes import ResourceNode

from hub.fhir import fhirpath_fast
from hub.fhir.fhirpath_fast import child_spec, compile_invariant
from hub.fhir.validation import Validator, default_validator, hub_registry
from hub.fhir.validation.invariants import Invariant, fhirpathpy_always_fails, invariant
from tests.corpus import example_corpus as corpus

# A value as the validator hands it to an invariant: value, path type (None: a resource), resource, root.
Site = tuple[Any, str | None, dict[str, Any], dict[str, Any]]


def _child_type(parent: str, key: str) -> tuple[str, str | None]:
    """The element name (``value[x]`` for a choice) and FHIR type of JSON key ``key`` of a ``parent``."""
    spec = child_spec(parent, key)
    if spec[0][1] is not None:
        return key, spec[0][1]
    for i in range(len(key) - 1, 0, -1):
        if key[i].isupper():
            for k, typ in child_spec(parent, key[:i]):
                if k == key:
                    return key[:i] + "[x]", typ
            break
    return key, None


def typed_values(res: dict[str, Any], root: dict[str, Any]) -> Iterator[tuple[str, Site]]:
    """Every object value in a resource with the keys of the invariants that apply to it: its element
    path (``Observation.component``, ``Timing.repeat``) and its type (``Quantity``, ``Patient``)."""
    rtype = res["resourceType"]
    yield rtype, (res, None, res, root)

    def walk(value: dict[str, Any], typ: str, path: str, resource: dict[str, Any]) -> Iterator[tuple[str, Site]]:
        for key, child in value.items():
            if key.startswith("_") or key == "resourceType":
                continue
            name, ctyp = _child_type(typ, key)
            if ctyp is None:
                continue
            for v in child if isinstance(child, list) else [child]:
                if not isinstance(v, dict):
                    continue
                if "resourceType" in v:
                    yield from typed_values(v, root)
                    continue
                cpath = f"{path}.{name}"
                yield cpath, (v, ctyp, resource, root)
                if "." in ctyp:  # a backbone element: its children continue the path
                    yield from walk(v, ctyp, cpath, resource)
                else:
                    yield ctyp, (v, ctyp, resource, root)
                    yield from walk(v, ctyp, ctyp, resource)

    yield from walk(res, rtype, rtype, res)


def _canon(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float | Decimal):
        return Decimal(str(v)).normalize()
    if isinstance(v, dict):
        return {k: _canon(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_canon(x) for x in v]
    return str(v)


def _verdict(values: list[Any] | None) -> bool:
    return values is not None and len(values) == 1 and values[0] is False


def disagreement(inv: Invariant, site: Site) -> str | None:
    """Why fast and full evaluation of ``inv`` differ on ``site``; None when they agree (or fast passed)."""
    value, path_type, resource, root = site
    fast = inv.evaluate_fast(value, path_type, resource)
    if fast is None:
        return None
    full = inv.evaluate_full(value, path_type, resource, root)
    if _verdict(fast) != _verdict(full) or (full is not None and _canon(fast) != _canon(full)):
        return f"{inv.key} {inv.expression!r} on {path_type}: fast {fast!r}, fhirpathpy {full!r}"
    return None


def loaded_invariants() -> dict[str, list[Invariant]]:
    """Every invariant of every loaded StructureDefinition, by the element path (or type) it applies to."""
    reg = hub_registry()
    out: dict[str, dict[str, Invariant]] = defaultdict(dict)
    for url in set(reg.urls()) | set(reg._core_index):
        sd = reg.get(url)
        if sd is None or sd.get("resourceType") != "StructureDefinition":
            continue
        for part in ("snapshot", "differential"):
            for el in sd.get(part, {}).get("element", []):
                for c in el.get("constraint", []):
                    if c.get("expression") and c.get("key") != "ele-1":
                        out[el.get("path", el.get("id", ""))][c["expression"]] = invariant(c)
    return {k: list(v.values()) for k, v in out.items()}


@pytest.fixture(scope="module")
def sites() -> dict[str, list[Site]]:
    out: dict[str, list[Site]] = defaultdict(list)
    for res in corpus():
        for key, site in typed_values(res, res):
            out[key].append(site)
    return out


def test_the_corpus_reaches_many_invariants(sites: dict[str, list[Site]]) -> None:
    invs = loaded_invariants()
    fast = {i.expression for v in invs.values() for i in v if i.fast is not None}
    reached = {i.expression for k, v in invs.items() if k in sites for i in v if i.fast is not None}
    assert len(fast) > 150
    assert len(reached) > 80  # 85 of 212 fast ones: the others are on types the examples do not use


def test_fast_and_full_agree_on_every_loaded_invariant_over_the_corpus(sites: dict[str, list[Site]]) -> None:
    bad: list[str] = []
    checked = 0
    for path, invs in loaded_invariants().items():
        for inv in invs:
            for site in sites.get(path, ()):
                checked += 1
                why = disagreement(inv, site)
                if why is not None:
                    bad.append(why)
    assert bad == []
    assert checked > 3000  # 3,822 (invariant, value) pairs


def test_fast_and_full_agree_where_the_validator_evaluates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sites of a real validation run (profiles' slices, type invariants, Bundle entries)."""
    seen: list[tuple[Invariant, Site]] = []
    failed = Invariant.failed

    def recording(self: Invariant, value: Any, path_type: str | None, resource: Any, root: Any) -> bool:
        seen.append((self, (value, path_type, resource, root)))
        return failed(self, value, path_type, resource, root)

    monkeypatch.setattr(Invariant, "failed", recording)
    validator = Validator(hub_registry(), default_validator()._default_profile)
    for res in corpus():
        validator.validate(res)
    assert [why for inv, site in seen if (why := disagreement(inv, site))] == []
    assert len(seen) > 700  # 795 sites
    assert sum(inv.fast is not None for inv, _ in seen) > 0.9 * len(seen)


def test_a_wrong_fast_path_is_caught(sites: dict[str, list[Site]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The differential test can fail: `implies` compiled as `and` disagrees with fhirpathpy on the corpus."""

    def wrong_implies(left: Any, right: Any) -> Any:
        return fhirpath_fast._and(left, right, strict=True)

    monkeypatch.setattr(fhirpath_fast, "_implies", wrong_implies)
    compile_invariant.cache_clear()
    try:
        bad = [
            why
            for path, invs in loaded_invariants().items()
            for inv in invs
            if " implies " in inv.expression
            for site in sites.get(path, ())
            if (why := disagreement(_fresh(inv), site))
        ]
    finally:
        compile_invariant.cache_clear()
    assert bad, "a wrong fast path went unnoticed"


def _fresh(inv: Invariant) -> Invariant:
    return Invariant({"key": inv.key, "expression": inv.expression, "severity": inv.severity, "human": inv.human})


def test_what_fhirpathpy_cannot_evaluate_is_known_in_advance(sites: dict[str, list[Site]]) -> None:
    """Invariants calling a function fhirpathpy lacks (per-1's hasValue(); ctm-1's resolve(), outside any
    function's arguments) are not handed to it: it would raise on every value, and the invariant hold.
    Asked anyway, it raises on every corpus value."""
    never = [(path, inv) for path, invs in loaded_invariants().items() for inv in invs if inv.fhirpathpy_fails]
    assert {inv.key for _, inv in never} >= {"per-1", "bdl-10", "ctm-1"}
    tried = 0
    for path, inv in never:
        fn = inv._fhirpathpy()
        assert fn is not None
        for value, path_type, resource, root in sites.get(path, ()):
            subject = value if path_type is None else ResourceNode.create_node(value, path_type)
            with pytest.raises(Exception):  # noqa: B017, PT011 - "Not implemented", or an operand's error first
                fn(subject, {"resource": resource, "rootResource": root, "context": value})
            tried += 1
    assert tried > 10


def test_a_missing_function_inside_an_argument_may_be_skipped() -> None:
    """Only a function's arguments may go unevaluated (``where``, ``iif``): a missing function there
    does not make the whole expression fail."""
    assert fhirpathpy_always_fails("onBehalfOf.exists() implies (member.resolve().iif(empty(), true, false))")
    assert not fhirpathpy_always_fails("a.where(b.resolve().exists())")
    assert not fhirpathpy_always_fails("iif(x.exists(), y.resolve(), z)")

"""FHIRPath invariants of profiles, compiled once: the fast closures first, fhirpathpy where they cannot say.

``fhirpath_fast.compile_invariant`` covers the common shapes (``exists``/``empty``, ``where``,
``implies``/``and``/``or``, equality on codes and strings, ``count()`` arithmetic, ...). Its strict mode
raises ``Unsupported`` wherever fhirpathpy's verdict could differ; the invariant then asks fhirpathpy,
compiled once per expression. ``evaluate_fast`` and ``evaluate_full`` are public for the differential test
(tests/unit/test_invariants_fast.py), which holds both to the same verdict over the example corpus.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, cast

from hub.fhir.fhirpath_fast import Unsupported, compile_invariant

_TRACE = re.compile(r"\.trace\((?:'[^']*'|\"[^\"]*\")(?:,\s*[\w.]+)?\)")
_NOT_EVALUATED = object()
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'")
_CALL = re.compile(r"([A-Za-z_]\w*)\(")
_OPERATORS = frozenset({"and", "or", "xor", "implies", "in", "contains", "is", "as", "div", "mod"})
Values = list[Any]  # the values of a result (fast: the items' values; full: fhirpathpy's output)


class Invariant:
    """One constraint: key, severity and message, and its expression compiled both ways (lazily)."""

    __slots__ = ("expression", "fast", "fhirpathpy_fails", "human", "key", "severity", "_full")

    def __init__(self, constraint: dict[str, Any]) -> None:
        self.key: str = constraint.get("key", "")
        self.expression: str = _TRACE.sub("", constraint["expression"])  # trace() would print on every call
        self.severity: str = constraint.get("severity", "error")
        self.human: str = constraint.get("human", constraint["expression"])
        self.fast = compile_invariant(self.expression)
        self.fhirpathpy_fails = fhirpathpy_always_fails(self.expression)
        self._full: Any = _NOT_EVALUATED

    def failed(self, value: Any, path_type: str | None, resource: dict[str, Any], root: Any) -> bool:
        """Whether the invariant evaluates to false on ``value`` (empty, true or an error: it holds).

        ``path_type`` is the value's FHIR type or element path (``Observation.component``); None: the
        value is a resource, typed by its resourceType."""
        result = self.evaluate_fast(value, path_type, resource)
        if result is None:
            result = self.evaluate_full(value, path_type, resource, root)
        return result is not None and len(result) == 1 and result[0] is False

    def evaluate_fast(self, value: Any, path_type: str | None, resource: dict[str, Any]) -> Values | None:
        """The values the fast closures give, or None when they hand the case to fhirpathpy."""
        if self.fast is None:
            return None
        if path_type is None:
            path_type = value.get("resourceType") if isinstance(value, dict) else None
        try:
            return [v for v, _ in self.fast([(value, path_type)], resource)]
        except Unsupported:
            return None

    def evaluate_full(self, value: Any, path_type: str | None, resource: dict[str, Any], root: Any) -> Values | None:
        """fhirpathpy's values (as the validator always evaluated them); None if it cannot evaluate."""
        if self.fhirpathpy_fails:
            return None  # it would raise, whatever the value: the invariant holds (per-1's hasValue())
        fn = self._fhirpathpy()
        if fn is None:
            return None
        from fhirpathpy.engine.nodes import ResourceNode

        if path_type is None:
            subject: Any = value
        else:
            create_node = cast(Callable[[Any, str], Any], ResourceNode.create_node)  # fhirpathpy is untyped
            subject = create_node(value, path_type)
        try:
            out = fn(subject, {"resource": resource, "rootResource": root, "context": value})
        except Exception:  # noqa: BLE001 - what fhirpathpy cannot evaluate is not the client's fault
            return None
        return [getattr(v, "data", v) for v in out]

    def _fhirpathpy(self) -> Callable[..., list[Any]] | None:
        if self._full is _NOT_EVALUATED:
            import fhirpathpy
            from fhirpathpy.models import models

            try:
                self._full = fhirpathpy.compile(self.expression, models["r4"])
            except Exception:  # noqa: BLE001 - an expression fhirpathpy cannot parse is skipped, not fatal
                self._full = None
        return cast(Callable[..., list[Any]] | None, self._full)


@functools.cache
def _fhirpathpy_registry() -> tuple[frozenset[str], frozenset[str]]:
    """The functions fhirpathpy implements, and those of them that evaluate an argument lazily (macros)."""
    from fhirpathpy.engine.invocations import invocation_registry

    registry = cast(dict[str, dict[str, Any]], invocation_registry)  # fhirpathpy is untyped
    lazy = {
        name
        for name, spec in registry.items()
        if spec.get("variadic") == "Expr" or any("Expr" in a for a in spec.get("arity", {}).values())
    }
    return frozenset(registry), frozenset(lazy)


def fhirpathpy_always_fails(expression: str) -> bool:
    """Whether fhirpathpy raises on every evaluation of ``expression``: it calls a function fhirpathpy
    does not implement (``hasValue``, ``htmlChecks``) and nothing lazy that could skip the call
    (fhirpathpy evaluates both operands of every operator; only macros such as ``where`` may not)."""
    known, lazy = _fhirpathpy_registry()
    text = _STRINGS.sub("''", expression).replace("exists()", "exists")
    names = set(_CALL.findall(text)) - _OPERATORS  # `in(` is an operator before a parenthesis
    if not names - known:
        return False
    return not names & lazy or _unknown_call_outside_arguments(_STRINGS.sub("''", expression), known)


_PAREN = re.compile(r"(\.?)([A-Za-z_]\w*)?\s*\(|\)")


def _unknown_call_outside_arguments(text: str, known: frozenset[str]) -> bool:
    """Whether ``text`` calls a function fhirpathpy lacks outside the arguments of every function
    call (ctm-1's ``member.resolve().iif(...)``): such a call is evaluated whenever the expression is,
    whatever the values (only a function's arguments may be skipped), so fhirpathpy always raises."""
    enclosing: list[bool] = []  # per open parenthesis: does it hold a function's arguments?
    for match in _PAREN.finditer(text):
        if match.group(0) == ")":
            if enclosing:
                enclosing.pop()
            continue
        dot, name = match.group(1), match.group(2)
        call = name is not None and (name not in _OPERATORS or dot == ".")  # `.contains(` is a function
        if call and name not in known and not any(enclosing):
            return True
        enclosing.append(call)
    return False


_CACHE: dict[tuple[str, str, str, str], Invariant] = {}


def invariant(constraint: dict[str, Any]) -> Invariant:
    """The compiled form of a constraint, shared by every profile that carries the same one."""
    k = (
        constraint.get("key", ""),
        constraint["expression"],
        constraint.get("severity", ""),
        constraint.get("human", ""),
    )
    inv = _CACHE.get(k)
    if inv is None:
        inv = _CACHE[k] = Invariant(constraint)
    return inv

"""What the token modifiers ``:in``, ``:not-in``, ``:above`` and ``:below`` need from terminology.

The hub answers them from the conformance resources it holds (its own ``profiles/``, the nl-core
definitions the validator resolves, the R4 core terminology): a ValueSet is expanded to
``system -> codes`` and a CodeSystem's hierarchy gives ancestors and descendants. What it cannot
enumerate (an unknown ValueSet, a filter on a code system it does not hold, a code system without a
hierarchy it holds) is refused with a 400, never answered with a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

from hub.fhir.errors import BadRequest


class TerminologySource(Protocol):
    """What a search needs: ValueSet expansions and CodeSystem hierarchies (code -> parent)."""

    def valueset(self, url: str, expression: str) -> Mapping[str, frozenset[str] | None]: ...

    def hierarchy(self, system: str, expression: str) -> Mapping[str, str | None]: ...


class HubTerminology:
    """Terminology from the validator's registry (one instance per process; expansions cached)."""

    def __init__(self, registry: Any = None) -> None:
        from hub.fhir.validation.loader import hub_registry
        from hub.fhir.validation.terminology import Terminology

        self._registry = registry if registry is not None else hub_registry()
        self._tx = Terminology(self._registry)

    def valueset(self, url: str, expression: str) -> Mapping[str, frozenset[str] | None]:
        """system -> codes of the ValueSet (None: every code of that system)."""
        url = _canonical(url)
        vs = self._registry.get(url)
        if vs is None or vs.get("resourceType") != "ValueSet":
            raise BadRequest(
                f"The ValueSet '{url}' is not known to this server", code="not-supported", expression=expression
            )
        if not self._enumerable(vs, set()):
            raise BadRequest(
                f"The ValueSet '{url}' uses filters on a code system this server does not hold; "
                "it cannot be used with :in/:not-in",
                code="not-supported",
                expression=expression,
            )
        return self._tx.expansion(url) or {}

    def hierarchy(self, system: str, expression: str) -> Mapping[str, str | None]:
        """code -> parent code of a CodeSystem the hub holds completely."""
        codes = self._tx._codesystem(system.split("|", 1)[0])
        if codes is None:
            raise BadRequest(
                f"The code system '{system}' is not held by this server, so :above/:below cannot be answered",
                code="not-supported",
                expression=expression,
            )
        return codes

    def _enumerable(self, vs: dict[str, Any], seen: set[str]) -> bool:
        """Whether every include can be expanded exactly (filters only on held code systems)."""
        compose = vs.get("compose")
        if compose is None:
            return "expansion" in vs
        for inc in compose.get("include", []):
            for nested in inc.get("valueSet", []):
                url = nested.split("|", 1)[0]
                if url in seen:
                    continue
                seen.add(url)
                sub = self._registry.get(url)
                if sub is None or not self._enumerable(sub, seen):
                    return False
            system = inc.get("system")
            if system and "filter" in inc and "concept" not in inc:
                held = self._tx._codesystem(system)
                if held is None or self._tx._filter(held, inc["filter"]) is None:
                    return False
        return True


def _canonical(url: str) -> str:
    """A canonical url from ``url``, ``url|version`` (version ignored) or ``ValueSet/...``."""
    return url.split("|", 1)[0].strip()


def descendants(tree: Mapping[str, str | None], code: str) -> frozenset[str]:
    """``code`` and every code below it (subsumed by it)."""
    children: dict[str, list[str]] = {}
    for c, parent in tree.items():
        if parent is not None:
            children.setdefault(parent, []).append(c)
    out, todo = {code}, [code]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return frozenset(out)


def ancestors(tree: Mapping[str, str | None], code: str) -> frozenset[str]:
    """``code`` and every code above it (that subsumes it)."""
    out = {code}
    parent = tree.get(code)
    while parent is not None and parent not in out:
        out.add(parent)
        parent = tree.get(parent)
    return frozenset(out)


@cache
def hub_terminology() -> HubTerminology:
    """The process's terminology for search (built on first use, not at import)."""
    return HubTerminology()

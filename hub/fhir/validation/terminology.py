"""ValueSet membership for binding checks, expanded from the CodeSystems the hub has.

An expansion maps each code system to the set of its codes in the ValueSet, or to ``None`` when the
hub cannot enumerate them (SNOMED CT, LOINC, a filter it does not evaluate, a code system it does not
hold): codes of such a system are accepted, so a binding is never failed for lack of terminology.
"""

from __future__ import annotations

from typing import Any

from hub.fhir.validation.registry import Registry

Expansion = dict[str, frozenset[str] | None]


class Terminology:
    """Expands ValueSets (compose include/exclude, nested value sets, is-a filters) and caches them."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._cache: dict[str, Expansion | None] = {}

    def expansion(self, url: str) -> Expansion | None:
        """system -> codes (None: any code of that system) of the ValueSet; None if it is unknown."""
        url = url.split("|", 1)[0]
        if url not in self._cache:
            self._cache[url] = None  # guards against cycles
            vs = self._registry.get(url)
            self._cache[url] = self._expand(vs) if vs is not None and vs.get("resourceType") == "ValueSet" else None
        return self._cache[url]

    def contains(self, url: str, system: str | None, code: str | None) -> bool | None:
        """Whether system|code is in the ValueSet; None when the ValueSet is unknown."""
        exp = self.expansion(url)
        if exp is None:
            return None
        if code is None:
            return False
        if system is None:  # a bare code (type code): any system of the value set
            return any(codes is None or code in codes for codes in exp.values())
        if system not in exp:
            return False
        codes = exp[system]
        return codes is None or code in codes

    # -- internals --------------------------------------------------------------------------------
    def _codesystem(self, url: str) -> dict[str, str | None] | None:
        """code -> parent code of a complete CodeSystem, or None."""
        cs = self._registry.get(url)
        if cs is None or cs.get("resourceType") != "CodeSystem":
            return None
        if "codes" in cs:  # compact core form
            return cs["codes"] if cs.get("content") in (None, "complete") else None
        if cs.get("content", "complete") != "complete":
            return None
        out: dict[str, str | None] = {}

        def walk(concepts: list[dict[str, Any]], parent: str | None) -> None:
            for c in concepts:
                out[c["code"]] = parent
                for p in c.get("property", []):
                    if p.get("code") in ("parent", "subsumedBy") and "valueCode" in p and parent is None:
                        out[c["code"]] = p["valueCode"]
                walk(c.get("concept", []), c["code"])

        walk(cs.get("concept", []), None)
        return out

    def _include(self, inc: dict[str, Any]) -> Expansion:
        parts: list[Expansion] = []
        for vs_url in inc.get("valueSet", []):
            sub = self.expansion(vs_url)
            parts.append(sub if sub is not None else {})
        system = inc.get("system")
        if system:
            codes: frozenset[str] | None
            if "concept" in inc:
                codes = frozenset(c["code"] for c in inc["concept"])
            else:
                cs = self._codesystem(system)
                if cs is None:
                    codes = None
                elif "filter" in inc:
                    codes = self._filter(cs, inc["filter"])
                else:
                    codes = frozenset(cs)
            parts.append({system: codes})
        if not parts:
            return {}
        result = parts[0]
        for p in parts[1:]:  # within one include, value sets and the system part intersect
            result = {
                s: (result[s] if p[s] is None else p[s] if result[s] is None else result[s] & p[s])  # type: ignore[operator]
                for s in result.keys() & p.keys()
            }
        return result

    @staticmethod
    def _filter(cs: dict[str, str | None], filters: list[dict[str, Any]]) -> frozenset[str] | None:
        codes = set(cs)
        for f in filters:
            op, value = f.get("op"), f.get("value")
            if op in ("is-a", "descendent-of") and f.get("property") == "concept":
                keep = {value} if op == "is-a" and value in cs else set()
                changed = True
                while changed:
                    changed = False
                    for c, parent in cs.items():
                        if parent in keep or (parent == value and c not in keep):
                            if c not in keep:
                                keep.add(c)
                                changed = True
                codes &= keep
            elif op == "=" and f.get("property") == "concept":
                codes &= {value}
            else:
                return None
        return frozenset(codes)

    def _expand(self, vs: dict[str, Any]) -> Expansion:
        compose = vs.get("compose")
        if compose is None:
            out: dict[str, set[str]] = {}
            for c in _flatten_contains(vs.get("expansion", {}).get("contains", [])):
                out.setdefault(c.get("system", ""), set()).add(c.get("code", ""))
            return {s: frozenset(v) for s, v in out.items()}
        result: Expansion = {}
        for inc in compose.get("include", []):
            for system, codes in self._include(inc).items():
                if system in result:
                    prev = result[system]
                    result[system] = None if prev is None or codes is None else prev | codes
                else:
                    result[system] = codes
        for exc in compose.get("exclude", []):
            system = exc.get("system")
            if system in result and result[system] is not None and "concept" in exc:
                result[system] = result[system] - {c["code"] for c in exc["concept"]}  # type: ignore[operator]
        return result


def _flatten_contains(contains: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in contains:
        if "code" in c:
            out.append(c)
        out.extend(_flatten_contains(c.get("contains", [])))
    return out

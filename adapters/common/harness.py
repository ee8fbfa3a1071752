"""A mapping-test harness: compare a FHIR resource with expected values field by field.

Paths are dotted element names with optional selectors: ``name[0].family``,
``identifier[system=http://fhir.nl/fhir/NamingSystem/bsn].value``, ``extension[url=...].valueString``.
A selector ``[key=value]`` picks the first list item whose ``key`` equals ``value``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_STEP = re.compile(r"([A-Za-z_][\w]*)((?:\[[^\]]*\])*)(?:\.|$)")
_SELECTOR = re.compile(r"\[([^\]]*)\]")
MISSING = object()


def _steps(path: str) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise ValueError(f"bad path {path!r} at {pos}")
        steps.append((m.group(1), _SELECTOR.findall(m.group(2))))
        pos = m.end()
    return steps


def get_path(resource: Any, path: str) -> Any:
    """The value at ``path`` in ``resource``, or :data:`MISSING`."""
    node = resource
    for name, selectors in _steps(path):
        if not isinstance(node, Mapping) or name not in node:
            return MISSING
        node = node[name]
        for sel in selectors:
            if not isinstance(node, list):
                return MISSING
            if "=" in sel:
                key, _, want = sel.partition("=")
                node = next((i for i in node if isinstance(i, Mapping) and str(i.get(key)) == want), MISSING)
            else:
                index = int(sel)
                node = node[index] if -len(node) <= index < len(node) else MISSING
            if node is MISSING:
                return MISSING
    return node


def assert_fields(resource: Any, expected: Mapping[str, Any], what: str = "resource") -> None:
    """Every ``path: value`` in ``expected`` holds (``MISSING`` asserts absence); all mismatches reported."""
    problems = []
    for path, want in expected.items():
        got = get_path(resource, path)
        if got != want and not (got is MISSING and want is MISSING):
            shown = "<missing>" if got is MISSING else repr(got)
            problems.append(f"  {path}: expected {want!r}, got {shown}")
    if problems:
        raise AssertionError(f"{what} differs from the mapping:\n" + "\n".join(problems))

"""Limits on the shape of what a client sends, checked right after parsing and before any other work.

A body within the size limit can still be costly: 150 nested extensions make every recursive
consumer (model validation, FHIRPath, indexing) hit Python's recursion limit, and 500,000
identifiers in one array keep the CPU busy for seconds. :func:`check_shape` walks the parsed value
once, iteratively, and refuses it with a 400 naming the place; it also refuses NUL characters, which
no FHIR string may hold and PostgreSQL cannot store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.fhir.errors import BadRequest


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What one parsed body may look like (from :class:`hub.settings.Settings`)."""

    max_depth: int = 100
    max_array: int = 10_000
    max_containers: int = 100_000

    @classmethod
    def from_settings(cls, settings: Any) -> ParseLimits:
        return cls(
            max_depth=settings.max_json_depth,
            max_array=settings.max_array_length,
            max_containers=settings.max_json_containers,
        )


def check_raw(raw: bytes, limits: ParseLimits, *, xml: bool = False) -> None:
    """Before parsing: at most ``max_containers`` objects and arrays (XML: elements, four per object).

    Counting brackets is a C-speed scan (brackets inside strings count too, so this errs on the
    safe side); parsing and freeing half a million objects holds the interpreter for seconds."""
    if xml:
        found, limit, what = raw.count(b"<") // 2, limits.max_containers * 4, "elements"
    else:
        found, limit, what = raw.count(b"{") + raw.count(b"["), limits.max_containers, "objects and arrays"
    if found > limit:
        raise BadRequest(
            f"The body holds about {found} {what}, over the limit of {limit}; send it in parts", code="too-costly"
        )


DEFAULT_LIMITS = ParseLimits()


def check_shape(data: Any, limits: ParseLimits = DEFAULT_LIMITS, *, root: str = "") -> None:
    """400 if ``data`` nests deeper than allowed, has an over-long array, or holds a NUL character."""
    if _find(data, limits, with_path=False) is None:
        return
    problem = _find(data, limits, with_path=True)
    assert problem is not None
    message, path = problem
    where = _expression(root, path)
    raise BadRequest(
        f"{message} at {where or 'the top level'}",
        code="too-costly" if "limit" in message else "value",
        expression=where or None,
    )


def _find(data: Any, limits: ParseLimits, *, with_path: bool) -> tuple[str, tuple[Any, ...]] | None:
    """The first violation (message, path); paths are only built on the second, error-reporting pass."""
    max_depth, max_array = limits.max_depth, limits.max_array
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(data, 1, ())]
    empty: tuple[Any, ...] = ()
    while stack:
        value, depth, path = stack.pop()
        if depth > max_depth:
            return f"Nesting deeper than the limit of {max_depth} levels", path
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return "A NUL character (\\u0000) in an element name", path
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, (*path, key) if with_path else empty))
                elif isinstance(item, str) and "\x00" in item:
                    return "A NUL character (\\u0000) is not allowed in a string", (*path, key)
        elif isinstance(value, list):
            if len(value) > max_array:
                return f"An array of {len(value)} items is over the limit of {max_array}", path
            for i, item in enumerate(value):
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, (*path, i) if with_path else empty))
                elif isinstance(item, str) and "\x00" in item:
                    return "A NUL character (\\u0000) is not allowed in a string", (*path, i)
        elif isinstance(value, str) and "\x00" in value:
            return "A NUL character (\\u0000) is not allowed in a string", path
    return None


def _expression(root: str, path: tuple[Any, ...]) -> str:
    """('entry', 3, 'resource') -> 'Bundle.entry[3].resource' (``root`` is the resource type if known)."""
    out = root
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out

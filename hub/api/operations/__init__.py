"""The hub's ``$operations``, one module each; the registry is plain data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.result import FhirResult


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    levels: frozenset[str]
    run: Callable[[Call, FhirRequest, Route], Awaitable[FhirResult]]
    #: Resource types it applies to (empty: all).
    types: frozenset[str] = frozenset()
    definition: str = ""


def _registry() -> dict[str, Operation]:
    """All operations by name; each module exposes one ``OPERATION``."""
    from hub.api.operations import access, breakglass, delegation, everything, export, reindex, validate

    ops = (
        everything.OPERATION,
        validate.OPERATION,
        access.OPERATION,
        delegation.GRANT,
        delegation.WITHDRAW,
        export.OPERATION,
        breakglass.OPERATION,
        reindex.OPERATION,
    )
    return {op.name: op for op in ops}


OPERATIONS: dict[str, Operation] = _registry()

__all__ = ["OPERATIONS", "Operation"]

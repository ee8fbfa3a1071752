"""The one record of a version to write, shared by every database's writer.

:mod:`hub.store.resources` builds it once per write; :mod:`hub.store.pg_writes` (one statement),
:mod:`hub.store.pg_batch` (a transaction Bundle's creates together) and :mod:`hub.store.sqlite_writes`
(one trip to the database's thread) each store it their own way. One record instead of a dozen
positional parameters repeated in each of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A version of a resource with everything written beside it: its history row, index rows and
    compartments, outbox event and creators (``owners`` without repeats, in their order)."""

    res_type: str
    res_id: str
    version: int
    last_updated: int
    method: str
    content: str
    category: str
    client_key: str
    rows: Mapping[str, Sequence[Mapping[str, Any]]]
    compartments: Sequence[tuple[str, str]]
    event: Mapping[str, Any] | None = None
    author_ura: str | None = None
    owners: tuple[str, ...] = ()


__all__ = ["NewVersion"]

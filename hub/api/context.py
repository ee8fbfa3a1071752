"""What a handler works with: the app's services and the call's own facts (base URL, transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.settings import Settings
from hub.store.repository import Repository

if TYPE_CHECKING:
    from hub.store.search import SearchEngine


@dataclass(slots=True)
class Services:
    """Built once per app in the lifespan."""

    settings: Settings
    repo: Repository
    search: SearchEngine
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Call:
    """One interaction being handled: ``conn`` is set when it runs inside a transaction Bundle."""

    svc: Services
    base: str
    conn: AsyncConnection | None = None

    def in_transaction(self, conn: AsyncConnection) -> Call:
        return replace(self, conn=conn)

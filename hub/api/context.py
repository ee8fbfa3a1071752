"""What a handler works with: the app's services and the call's own facts (base URL, transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.trail import AuditTrail
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
    #: Verifies bearer tokens (hub.access.tokens.TokenVerifier).
    verifier: Any = None
    #: The audit log writer (hub.audit.writer.AuditWriter).
    audit: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Call:
    """One interaction being handled: ``conn`` is set when it runs inside a transaction Bundle.

    ``policy`` is the access decision for the caller (built once per request in :mod:`hub.access`);
    None only for the hub's own internal calls (demo loading, reindexing), never for HTTP requests.
    """

    svc: Services
    base: str
    conn: AsyncConnection | None = None
    policy: Any = None
    #: The request's audit trail (the one way into the audit log); None for internal calls.
    trail: AuditTrail | None = None

    @property
    def repo(self) -> Repository:
        """The repository bound to this caller's policy: every read and write goes through it."""
        if self.policy is None and self.trail is None:
            return self.svc.repo
        return self.svc.repo.with_policy(self.policy, self.trail)

    def in_transaction(self, conn: AsyncConnection) -> Call:
        return replace(self, conn=conn)

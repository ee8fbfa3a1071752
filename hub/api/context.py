"""What a handler works with: the app's services and the call's own facts (base URL, transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.decision import Policy
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

    ``policy`` is the access decision: the caller's (built once per request in :mod:`hub.access`), or
    :data:`hub.access.decision.SYSTEM` for the hub's own internal calls (demo loading), never for HTTP
    requests.
    """

    svc: Services
    base: str
    conn: AsyncConnection | None = None
    policy: Policy = field(kw_only=True)
    #: The request's audit trail (the one way into the audit log); None for internal calls.
    trail: AuditTrail | None = None

    @property
    def repo(self) -> Repository:
        """The repository bound to this caller's policy: every read and write goes through it."""
        if self.policy is self.svc.repo.policy and self.trail is None:
            return self.svc.repo
        return self.svc.repo.with_policy(self.policy, self.trail)

    def in_transaction(self, conn: AsyncConnection) -> Call:
        return replace(self, conn=conn)

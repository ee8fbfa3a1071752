"""The questions every access decision answers (:class:`Policy`), and the hub's own (:class:`SystemPolicy`).

A request is decided by one :class:`hub.access.policy.AccessPolicy`, built once for its caller; the hub's
own work (demo load, reindex, migrations, background workers acting as the hub) by :data:`SYSTEM`, a named
policy that sees and may write everything, instead of "no policy". Code above the store takes a
:class:`Policy` and asks it, never the caller's role:

- read one (:meth:`~hub.store.policy.StorePolicy.check_read`), filter a search
  (:meth:`~hub.store.policy.StorePolicy.sql_filter`), may write
  (:meth:`~hub.store.policy.StorePolicy.check_write`) — what the store asks;
- may operate (:meth:`Policy.check_operation`): may the caller run an ``$operation`` at all;
- which audit records the caller sees (:meth:`Policy.audit_scope`);
- explain: :func:`hub.access.grants.explain` is the rule; ``Patient/$access`` shows it per organisation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import false, true
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import FromClause

from hub.fhir.errors import Forbidden, NotFound
from hub.store.policy import StorePolicy, Verdict
from hub.store.resources import Stored

if TYPE_CHECKING:
    from hub.access.facts import Grantor
    from hub.access.principal import Principal

#: The operations whose use a policy decides (:meth:`Policy.check_operation`).
OPERATIONS = frozenset({"access", "break-glass", "export", "reindex"})


@dataclass(frozen=True, slots=True)
class AuditScope:
    """Which audit records a caller may see: ``patient_ids`` None = any client (an empty set = none);
    ``agent_ura`` set = only records where that organisation was an agent; ``successful_only``: only
    successful interactions (a professional must not learn, from its own denied attempts, which client a
    hidden resource belongs to)."""

    patient_ids: frozenset[str] | None = None
    agent_ura: str | None = None
    successful_only: bool = False


class Policy(StorePolicy, Protocol):
    """The one access decision of a request (or of the hub's own work)."""

    @property
    def principal(self) -> Principal | None:
        """Who is calling (None: the hub itself)."""
        ...

    @property
    def emergency(self) -> bool:
        """Whether the caller broke the glass for this request."""
        ...

    def check_operation(self, operation: str) -> None:
        """Forbidden unless the caller may run ``$operation`` (one of :data:`OPERATIONS`) at all; the
        operation's own rules (visibility of its target, its parameters) follow."""
        ...

    def audit_scope(self) -> AuditScope:
        """Which audit records (``AuditEvent``) the caller sees."""
        ...

    async def fact_grantor(self, conn: AsyncConnection, patient_id: str, res: dict[str, Any]) -> Grantor | None:
        """On whose right the care relations this caller's write makes rest (None: it makes none)."""
        ...

    async def visible(self, conn: AsyncConnection, pids: list[int]) -> set[int]:
        """Which of these resources the caller may see (one statement)."""
        ...


class SystemPolicy:
    """The hub's own work: sees everything, may write everything, records no author, and is bound by
    no workflow rule. Never built for a request; a request without a caller is refused before a
    policy exists. Operations that are a caller's (``$export``, ``$break-glass``) are refused."""

    internal = True
    author_ura: str | None = None
    principal: Principal | None = None
    emergency = False

    def shape(self) -> Hashable:
        return ("system",)

    def params(self) -> dict[str, Any]:
        return {}

    def sql_filter(self, r: FromClause) -> ColumnElement[bool]:
        return true()

    def history_filter(self, h: FromClause) -> ColumnElement[bool]:
        return true()

    def target_facts(self, r: FromClause) -> Sequence[ColumnElement[Any]]:
        return ()

    def take_target_facts(self, current: Stored, values: Sequence[Any]) -> None:
        return None

    async def check_read(self, conn: AsyncConnection, stored: Stored) -> None:
        return None

    async def check_write(
        self,
        conn: AsyncConnection,
        res_type: str,
        category: str,
        compartments: list[str],
        current: Stored | None,
        interaction: str,
        resource: dict[str, Any] | None = None,
        validate: Callable[[], None] | None = None,
        *,
        seen: bool | None = None,
        guard: bool = False,
    ) -> Verdict | None:
        if validate is not None:
            validate()
        return None

    def write_guard(self) -> tuple[str, Mapping[str, Any]] | None:
        return None

    def guard_held(self) -> None:
        return None

    async def confirm_guard(self, conn: AsyncConnection) -> None:
        return None

    def check_operation(self, operation: str) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        if operation == "export":
            raise Forbidden("$export needs an authenticated caller")
        if operation == "break-glass":
            raise Forbidden("Only professionals of registered care providers can break the glass")

    def audit_scope(self) -> AuditScope:
        return AuditScope()

    async def fact_grantor(self, conn: AsyncConnection, patient_id: str, res: dict[str, Any]) -> Grantor | None:
        from hub.access.facts import HUB

        return HUB

    async def visible(self, conn: AsyncConnection, pids: list[int]) -> set[int]:
        return set(pids)


#: The one system policy (it holds no state).
SYSTEM = SystemPolicy()


class AnonymousPolicy:
    """A request without a caller: only ``GET /fhir/metadata`` is answered without a token, and it reads
    no stored data; should anything else be asked, this policy sees nothing and may do nothing."""

    internal = False
    author_ura: str | None = None
    principal: Principal | None = None
    emergency = False

    def shape(self) -> Hashable:
        return ("anonymous",)

    def params(self) -> dict[str, Any]:
        return {}

    def sql_filter(self, r: FromClause) -> ColumnElement[bool]:
        return false()

    def history_filter(self, h: FromClause) -> ColumnElement[bool]:
        return false()

    def target_facts(self, r: FromClause) -> Sequence[ColumnElement[Any]]:
        return ()

    def take_target_facts(self, current: Stored, values: Sequence[Any]) -> None:
        return None

    async def check_read(self, conn: AsyncConnection, stored: Stored) -> None:
        raise NotFound(f"{stored.res_type}/{stored.res_id} is not known", expression=stored.res_type)

    async def check_write(
        self,
        conn: AsyncConnection,
        res_type: str,
        category: str,
        compartments: list[str],
        current: Stored | None,
        interaction: str,
        resource: dict[str, Any] | None = None,
        validate: Callable[[], None] | None = None,
        *,
        seen: bool | None = None,
        guard: bool = False,
    ) -> Verdict | None:
        raise Forbidden("This caller may not write")

    def write_guard(self) -> tuple[str, Mapping[str, Any]] | None:
        return None

    def guard_held(self) -> None:
        return None

    async def confirm_guard(self, conn: AsyncConnection) -> None:
        return None

    def check_operation(self, operation: str) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        raise Forbidden(f"${operation} needs an authenticated caller")

    def audit_scope(self) -> AuditScope:
        return AuditScope(patient_ids=frozenset())

    async def fact_grantor(self, conn: AsyncConnection, patient_id: str, res: dict[str, Any]) -> Grantor | None:
        return None

    async def visible(self, conn: AsyncConnection, pids: list[int]) -> set[int]:
        return set()


#: The policy of a request without a token (it holds no state).
ANONYMOUS = AnonymousPolicy()

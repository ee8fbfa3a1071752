"""What the store asks of an access decision, as a :class:`StorePolicy` protocol.

The repository and the search engine obey one access decision per caller but do not know how it is
made: :class:`hub.access.policy.AccessPolicy` decides for callers, :class:`hub.access.system.SystemPolicy`
for the hub's own work (demo load, reindex, workers), which sees everything. There is no "no policy":
every repository is bound to one (:meth:`hub.store.repository.Repository.with_policy`), and every search
statement takes a :data:`Visible` filter.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import FromClause

if TYPE_CHECKING:
    from hub.store.resources import Stored

#: The access filter a statement applies to a ``resource`` (or ``resource_history``) row alias.
Visible = Callable[[FromClause], ColumnElement[bool]]
#: The outbox's hook: (conn, state change) -> None (hub.workflows.check.StateChange).
OnStateChange = Callable[[AsyncConnection, Any], Awaitable[None]]


class Verdict(Protocol):
    """What a write's decision keeps with the write (hub.workflows.check.WriteVerdict)."""

    @property
    def owners(self) -> tuple[str, ...]:
        """The creator parties of a write that creates the resource (the store records them in the
        write's own statement: :class:`hub.store.resources.Authorship`)."""
        ...

    @property
    def change(self) -> object | None:
        """The state change :meth:`keep` hands on (None: it writes nothing)."""
        ...

    async def keep(self, conn: AsyncConnection, stored: Stored, on_state_change: OnStateChange | None) -> None: ...


class StorePolicy(Protocol):
    """The questions the store asks of the access decision bound to a repository."""

    @property
    def internal(self) -> bool:
        """True only for the hub's own work: the store then leaves out what only callers need
        (the visibility columns of a read, the parsing of a deleted version)."""
        ...

    @property
    def author_ura(self) -> str | None:
        """The organisation recorded as the author of what this caller writes, if any."""
        ...

    def shape(self) -> Hashable:
        """What decides the form of :meth:`sql_filter` (statements are cached per shape)."""
        ...

    def params(self) -> dict[str, Any]:
        """The values of the filter's bind parameters."""
        ...

    def sql_filter(self, r: FromClause) -> ColumnElement[bool]:
        """The condition on a ``resource`` row for the caller to see it."""
        ...

    def history_filter(self, h: FromClause) -> ColumnElement[bool]:
        """The same decision on a ``resource_history`` row (that version's own category and clients)."""
        ...

    def target_facts(self, r: FromClause) -> Sequence[ColumnElement[Any]]:
        """Columns on the ``resource`` row ``r`` a write replaces that the write check will ask about,
        read in the statement that reads the row and decides its visibility (may be none)."""
        ...

    def take_target_facts(self, current: Stored, values: Sequence[Any]) -> None:
        """What those columns said for ``current``, in the write's transaction."""
        ...

    async def check_read(self, conn: AsyncConnection, stored: Stored) -> None:
        """NotFound unless the caller may see ``stored``."""
        ...

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
        """May the caller write this (Forbidden if not); ``validate`` runs once the right is established.
        ``seen``: whether the caller may see ``current``, when the store already decided it with this
        policy's filter in the write's transaction (None: the policy decides it). ``guard``: the store
        can make a create's statement conditional on what :meth:`write_guard` then returns."""
        ...

    def write_guard(self) -> tuple[str, Mapping[str, Any]] | None:
        """A condition the last check left to the create's write statement (PostgreSQL SQL on named
        bind values, and their values), or None."""
        ...

    def guard_held(self) -> None:
        """The write statement met :meth:`write_guard`'s condition."""
        ...

    async def confirm_guard(self, conn: AsyncConnection) -> None:
        """Ask :meth:`write_guard`'s condition now (Forbidden when it does not hold)."""
        ...


#: The workflow rules of a write, asked after the access decision allowed it (hub.workflows.check):
#: (conn, policy, res_type, resource or None, current, interaction, compartments, category) -> verdict.
WriteRules = Callable[
    [AsyncConnection, StorePolicy, str, "dict[str, Any] | None", "Stored | None", str, list[str], str],
    Awaitable[Verdict | None],
]


T = TypeVar("T")


class ShapeCache(Generic[T]):
    """Statements built once per shape and reused, the least recently used dropped beyond ``size``.

    The key must hold everything that changes the statement's SQL, the caller's
    :meth:`StorePolicy.shape` included; everything else (the policy's :meth:`StorePolicy.params`,
    the search's values) travels as bind values when it runs, so one cached statement serves
    every caller of the same shape with their own values."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, T] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
            return item
        item = build()
        self._items[key] = item
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return item

    def __len__(self) -> int:
        return len(self._items)

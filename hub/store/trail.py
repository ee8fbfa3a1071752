"""What the repository tells the audit trail: the store's side of the audit (a ``Protocol``, so
the store does not depend on :mod:`hub.audit`; :class:`hub.audit.trail.AuditTrail` implements it).

Reads note what they returned (and to which clients it belonged); a successful write is logged
inside its own transaction (:meth:`Trail.log_write`, then :meth:`Trail.flush` as the transaction's
last statement, or :meth:`Trail.discard` when it rolls back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.pg_writes import Appendix
from hub.store.resources import Stored


class Trail(Protocol):
    """The audit trail of one request, as the repository uses it."""

    @property
    def enabled(self) -> bool:
        """False when the hub keeps no audit log (nothing needs noting, nor looking up for it)."""

    async def note(
        self,
        conn: AsyncConnection,
        stored: Sequence[Stored],
        patients: Iterable[str] | None = None,
        *,
        by_pid: Mapping[int, set[str]] | None = None,
    ) -> None:
        """Resources returned (or refused) to the caller, and the clients they belong to (known
        already: ``patients`` of one resource, ``by_pid`` of several)."""

    def note_known(self, stored: Stored, patients: Iterable[str]) -> None:
        """One resource returned (or refused) whose clients are known already."""

    def note_found(self, stored: Sequence[Stored], by_pid: Mapping[int, set[str]]) -> None:
        """Resources returned whose clients are all known already (one ``by_pid`` leaves out
        belongs to no client)."""

    async def note_versions(self, conn: AsyncConnection, stored: Sequence[Stored], hids: Sequence[int]) -> None:
        """History entries, each credited to the clients its version was about."""

    @property
    def unresolved_identifiers(self) -> tuple[str, tuple[str, ...]] | None:
        """(system, values) of identifiers the request named a client by (a BSN) whose clients are
        still to be looked up, which a search may look up in its own statement; None when there are none."""

    def note_named_found(self, found: Mapping[str, Sequence[str]]) -> None:
        """The clients carrying the :attr:`unresolved_identifiers`, by value (looked up by a search)."""

    def note_patient(self, patient_id: str) -> None:
        """A client the interaction concerned (a refused write is in their view)."""

    async def note_mentions(self, conn: AsyncConnection, content: Any) -> None:
        """Clients that written content names without being about them."""

    async def log_write(self, conn: AsyncConnection, stored: Stored, status: int, patients: Iterable[str]) -> None:
        """A successful write: its record joins the write's transaction."""

    def write_appendix(self, stored: Stored, status: int, patients: Iterable[str]) -> Appendix | None:
        """The record :meth:`log_write` would log, as part of the write's own statement (a write
        made alone, PostgreSQL); None when nothing is logged."""

    def appended(self, appendix: Appendix, stored: Stored, patients: Iterable[str]) -> None:
        """The write was made with the appendix :meth:`write_appendix` gave: it is logged."""

    @property
    def pending(self) -> list[Any]:
        """Write records waiting for :meth:`flush`."""

    async def flush(self, conn: AsyncConnection) -> None:
        """Append the transaction's write records, just before it commits."""

    def discard(self) -> None:
        """The transaction rolled back: its write records go with it."""

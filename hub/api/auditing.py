"""The audit trail of one request: what it touched, collected while it is handled, logged before
the answer leaves the hub.

- A successful write is logged *inside its own transaction* (:meth:`AuditTrail.log_write`, called by
  the repository), so the change and its audit record commit together or not at all.
- Everything else (reads, searches, operations, denials, failures, and the summary of a Bundle) is
  logged by :meth:`AuditTrail.finish` through the group-commit writer, which returns only once the
  record is durable; the endpoint sends the response after that.
- "Which client" is taken from the Patient compartments of the resources returned or touched
  (``idx_compartment``), queried on the connection that read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.api.accesslog import current_request_id
from hub.audit.records import AuditRecord
from hub.store.resources import Stored
from hub.store.tables import idx_compartment

_WRITE_INTERACTION = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
#: Route kinds that are one write (logged in their transaction, not again at the end).
SINGLE_WRITES = frozenset({
    "create", "update", "patch", "delete", "conditional-update", "conditional-patch", "conditional-delete",
})


@dataclass(slots=True)
class AuditTrail:
    writer: Any  # hub.audit.writer.AuditWriter, or None when audit is off
    method: str
    path: str
    query: str
    remote_addr: str | None = None
    interaction: str = "read"
    principal: Any = None
    emergency_reason: str | None = None
    operation: str | None = None
    resources: dict[tuple[str, str], str | None] = field(default_factory=dict)
    patient_ids: set[str] = field(default_factory=set)
    writes_logged: int = 0
    #: Write records of the open transaction, appended by :meth:`flush` just before it commits.
    pending: list[AuditRecord] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.writer is not None and getattr(self.writer, "enabled", False)

    def _record(self, interaction: str, status: int, **facts: Any) -> AuditRecord:
        facts.setdefault("method", self.method)
        facts.setdefault("path", self.path)
        facts.setdefault("query", self.query)
        facts.setdefault("remote_addr", self.remote_addr)
        facts.setdefault("operation", self.operation)
        facts.setdefault("request_id", current_request_id())
        if self.emergency_reason:
            facts.setdefault("emergency_reason", self.emergency_reason)
            facts.setdefault("purpose_of_use", ("ETREAT",))
        return AuditRecord.from_principal(self.principal, interaction, status, **facts)

    # -- collecting -----------------------------------------------------------------------------

    async def note(
        self, conn: AsyncConnection, stored: Sequence[Stored], patients: Iterable[str] | None = None
    ) -> None:
        """Resources returned (or refused) to the caller: remember them and the clients they belong
        to (``patients`` when the caller already knows them, else looked up)."""
        if not self.enabled or not stored:
            return
        if len(stored) <= 20:
            for s in stored:
                self.resources[(s.res_type, s.res_id)] = str(s.version)
        if patients is None:
            patients = await patients_of(conn, [s.pid for s in stored])
        self.patient_ids |= set(patients)

    def note_patient(self, patient_id: str) -> None:
        self.patient_ids.add(patient_id)

    # -- logging --------------------------------------------------------------------------------

    async def log_write(self, conn: AsyncConnection, stored: Stored, status: int, patients: Iterable[str]) -> None:
        """A successful write: its record joins the write's transaction (see :meth:`flush`)."""
        if not self.enabled:
            return
        method = stored.method or "PUT"
        self.pending.append(self._record(
            _WRITE_INTERACTION.get(method, "update"), status,
            resources=((stored.res_type, stored.res_id, str(stored.version)),),
            patient_ids=tuple(sorted(set(patients))),
        ))
        self.patient_ids |= set(patients)

    async def flush(self, conn: AsyncConnection) -> None:
        """Append the transaction's write records, as its last statement before commit: the chain
        head (one row, locked until commit) is held for moments, not for the whole transaction."""
        if not self.pending:
            return
        records, self.pending = self.pending, []
        await self.writer.record_all_in(conn, records)
        self.writes_logged += len(records)

    def discard(self) -> None:
        """The transaction rolled back: its write records go with it."""
        self.pending.clear()

    async def finish(self, status: int, denial_reason: str | None = None) -> None:
        """Log the interaction (unless it was one write, already logged with its transaction)."""
        if not self.enabled:
            return
        if self.interaction in SINGLE_WRITES and self.writes_logged and status < 400:
            return
        record = self._record(
            self.interaction, status,
            resources=tuple((t, i, v) for (t, i), v in self.resources.items()),
            patient_ids=tuple(sorted(self.patient_ids)),
            denial_reason=denial_reason,
        )
        await self.writer.record(record)


async def patients_of(conn: AsyncConnection, pids: list[int]) -> set[str]:
    """Ids of the Patients whose compartments these resources are in (one statement)."""
    if not pids:
        return set()
    c = idx_compartment
    rows = (await conn.execute(
        select(c.c.comp_id).where(c.c.pid.in_(pids), c.c.comp_type == "Patient").distinct()
    )).all()
    return {r[0] for r in rows}

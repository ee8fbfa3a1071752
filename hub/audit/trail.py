"""The audit trail of one request: what it touched, collected while it is handled, logged before
the answer leaves the hub.

- A successful write is logged *inside its own transaction* (:meth:`AuditTrail.log_write`, called by
  the repository), so the change and its audit record commit together or not at all.
- Everything else (reads, searches, operations, denials, failures, and the summary of a Bundle) is
  logged by :meth:`AuditTrail.finish` through the group-commit writer, which returns only once the
  record is durable; the endpoint sends the response after that.
- "Which client" is taken from the Patient compartments of the resources returned or touched
  (``idx_compartment``; for history entries, the version's own clients), queried on the
  connection that read them, and from the clients a request *named* (a Patient id, a BSN in the
  search), also when it was refused or found nothing.
- An interaction that concerned several clients is logged once per client, each record holding
  only that client's own entities and the query text without other clients' identifiers: what a
  client reads in their own view is about them alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.records import AuditRecord
from hub.audit.writer import AuditWriter
from hub.fhir.instants import now_us
from hub.fhir.validation.bsn import BSN_SYSTEM
from hub.store.direct import DriverConnection
from hub.store.pg_writes import Appendix
from hub.store.resources import (
    Stored,
    existing_ids,
    patients_by_identifier,
    patients_by_pid,
    version_patients,
)

#: Search parameters whose values name a client by id.
_PATIENT_PARAMS = frozenset({"patient", "subject", "for", "beneficiary"})
#: What a BSN (or any long number) in a query looks like: redacted in other clients' records.
_NUMBER = re.compile(r"\d{8,}")
#: Most entities one record lists.
MAX_ENTITIES = 20

_WRITE_INTERACTION = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
#: Route kinds that are one write (logged in their transaction, not again at the end).
SINGLE_WRITES = frozenset(
    {
        "create",
        "update",
        "patch",
        "delete",
        "conditional-update",
        "conditional-patch",
        "conditional-delete",
    }
)


@dataclass(slots=True)
class AuditTrail:
    """The one way into the audit log for an interaction: the endpoint builds it, the repository
    (through :class:`hub.store.trail.Trail`) and the handlers note what the interaction touched,
    and :meth:`finish` logs it."""

    writer: AuditWriter | None  # None when audit is off
    method: str
    path: str
    query: str
    remote_addr: str | None = None
    interaction: str = "read"
    principal: Any = None
    #: The request's id (the access log's), carried into every record.
    request_id: str | None = None
    emergency_reason: str | None = None
    operation: str | None = None
    resources: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: The clients each noted resource (version) is about.
    resource_patients: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    patient_ids: set[str] = field(default_factory=set)
    #: Clients the request named (by id or BSN), whether or not it returned their data.
    named_ids: set[str] = field(default_factory=set)
    #: Clients a written resource mentions in a reference that is not about them here (another
    #: server's URL ending in their id): the write is in their view too.
    mentioned: set[str] = field(default_factory=set)
    #: BSNs the request named whose clients are still to be found, by the search's own statement where
    #: it can (:meth:`defer_named`); the clients of those found are in :attr:`named_ids`.
    deferred_bsns: tuple[str, ...] = ()
    resolved_bsns: set[str] = field(default_factory=set)
    writes_logged: int = 0
    #: Write records of the open transaction, appended by :meth:`flush` just before it commits.
    pending: list[AuditRecord] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.writer is not None and self.writer.enabled

    def _record(self, interaction: str, status: int, **facts: Any) -> AuditRecord:
        facts.setdefault("method", self.method)
        facts.setdefault("path", self.path)
        facts.setdefault("query", self.query)
        facts.setdefault("remote_addr", self.remote_addr)
        facts.setdefault("operation", self.operation)
        facts.setdefault("request_id", self.request_id)
        if self.emergency_reason:
            facts.setdefault("emergency_reason", self.emergency_reason)
            facts.setdefault("purpose_of_use", ("ETREAT",))
        return AuditRecord.from_principal(self.principal, interaction, status, **facts)

    # -- collecting -----------------------------------------------------------------------------

    async def note(
        self,
        conn: AsyncConnection,
        stored: Sequence[Stored],
        patients: Iterable[str] | None = None,
        *,
        by_pid: Mapping[int, set[str]] | None = None,
    ) -> None:
        """Resources returned (or refused) to the caller: remember them and the clients they belong
        to (``patients`` of the one resource, or ``by_pid`` of each, when the caller already knows
        them; else looked up)."""
        if not self.enabled or not stored:
            return
        if patients is not None and len(stored) == 1:
            self.note_known(stored[0], patients)
            return
        elif by_pid is None or any(s.pid not in by_pid for s in stored):
            by_pid = await patients_by_pid(conn, [s.pid for s in stored])
        self.note_found(stored, by_pid)

    def note_known(self, stored: Stored, patients: Iterable[str]) -> None:
        """One resource returned (or refused), its clients known already (no lookup)."""
        if self.enabled:
            self._remember([(stored, set(patients))])

    def note_found(self, stored: Sequence[Stored], by_pid: Mapping[int, set[str]]) -> None:
        """Resources returned, the clients of each in ``by_pid`` (no lookup; one it leaves out
        belongs to no client)."""
        if self.enabled:
            self._remember([(s, by_pid.get(s.pid, set())) for s in stored])

    async def note_versions(self, conn: AsyncConnection, stored: Sequence[Stored], hids: Sequence[int]) -> None:
        """History entries: each version is credited to the clients *it* was about."""
        if not self.enabled or not stored:
            return
        by_hid = await version_patients(conn, hids)
        self._remember([(s, by_hid.get(h, set())) for s, h in zip(stored, hids, strict=True)])

    def _remember(self, found: list[tuple[Stored, set[str]]]) -> None:
        for s, patients in found:
            key = (s.res_type, s.res_id)
            self.resources.setdefault(key, str(s.version))
            self.resource_patients.setdefault(key, set()).update(patients)
            self.patient_ids |= patients

    def note_patient(self, patient_id: str) -> None:
        self.patient_ids.add(patient_id)

    async def note_mentions(self, conn: AsyncConnection, content: Any) -> None:
        """Local clients whose id ends a reference of written content that does not name them
        canonically (``http://elsewhere/fhir/Patient/<id>``, ``x/Patient/<id>``)."""
        if not self.enabled:
            return
        ids: set[str] = set()
        stack = [content]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("reference")
                if isinstance(ref, str) and "/Patient/" in ref and not ref.startswith("Patient/"):
                    tail = ref.split("/_history/")[0].rsplit("/Patient/", 1)[1]
                    if tail and "/" not in tail:
                        ids.add(tail)
                stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
            elif isinstance(node, list):
                stack.extend(v for v in node if isinstance(v, (dict, list)))
        if ids:
            self.mentioned |= await existing_ids(conn, "Patient", ids)

    async def note_named(
        self,
        conn: AsyncConnection | DriverConnection,
        res_type: str | None,
        res_id: str | None,
        query: Sequence[tuple[str, str]],
    ) -> None:
        """The clients a request names (``Patient/x``, ``patient=x``, a BSN in an identifier
        search), whether or not it then finds or may see anything: their view shows the attempt."""
        if not self.enabled:
            return
        ids, bsns = named_in(res_type, res_id, query)
        bsns -= self.resolved_bsns  # (found by the search's own statement already)
        if not ids and not bsns:
            return
        found = await existing_ids(conn, "Patient", ids)
        if bsns:
            for named in (await patients_by_identifier(conn, BSN_SYSTEM, bsns)).values():
                found.update(named)
        self.named_ids |= found

    def defer_named(self, bsns: Iterable[str]) -> None:
        """The clients of these BSNs are to be found by the search (one statement for the page and
        them: :attr:`unresolved_identifiers`), else by :meth:`note_named` after it."""
        self.deferred_bsns = tuple(sorted(set(bsns) - self.resolved_bsns))

    @property
    def unresolved_identifiers(self) -> tuple[str, tuple[str, ...]] | None:
        """(system, values) of the deferred BSNs, for a search to look up; None when there are none."""
        if not self.enabled or not self.deferred_bsns:
            return None
        return BSN_SYSTEM, self.deferred_bsns

    def note_named_found(self, found: Mapping[str, Sequence[str]]) -> None:
        """The current clients carrying each deferred BSN (as :func:`patients_by_identifier` finds them)."""
        for ids in found.values():
            self.named_ids.update(ids)
        self.resolved_bsns.update(self.deferred_bsns)
        self.deferred_bsns = ()

    # -- logging --------------------------------------------------------------------------------

    async def log_write(self, conn: AsyncConnection, stored: Stored, status: int, patients: Iterable[str]) -> None:
        """A successful write: its record joins the write's transaction (see :meth:`flush`)."""
        if not self.enabled:
            return
        self.pending.append(self._write_record(stored, status, patients))
        self._written(stored, patients)

    def write_appendix(self, stored: Stored, status: int, patients: Iterable[str]) -> Appendix | None:
        """The record :meth:`log_write` would log for ``stored`` (the version about to be written), as
        part of the write's own statement (:meth:`AuditWriter.appendix`); None when audit is off."""
        if not self.enabled:
            return None
        assert self.writer is not None
        return self.writer.appendix(self._write_record(stored, status, patients))

    def appended(self, appendix: Appendix, stored: Stored, patients: Iterable[str]) -> None:
        """The write of ``stored`` was made with ``appendix`` (:meth:`write_appendix`): logged."""
        assert self.writer is not None
        self.writer.appended(appendix)
        self.writes_logged += 1
        self._written(stored, patients)

    def _write_record(self, stored: Stored, status: int, patients: Iterable[str]) -> AuditRecord:
        return self._record(
            _WRITE_INTERACTION.get(stored.method or "PUT", "update"),
            status,
            resources=((stored.res_type, stored.res_id, str(stored.version)),),
            patient_ids=tuple(sorted(set(patients))),
        )

    def _written(self, stored: Stored, patients: Iterable[str]) -> None:
        self.patient_ids |= set(patients)
        self.resources.setdefault((stored.res_type, stored.res_id), str(stored.version))

    async def flush(self, conn: AsyncConnection) -> None:
        """Append the transaction's write records, as its last statement before commit: the chain
        head (one row, locked until commit) is held for moments, not for the whole transaction."""
        if not self.pending:
            return
        records, self.pending = self.pending, []
        assert self.writer is not None  # records are only collected when audit is on
        await self.writer.record_all_in(conn, records)
        self.writes_logged += len(records)

    def discard(self) -> None:
        """The transaction rolled back: its write records go with it."""
        self.pending.clear()

    async def disclose(
        self, status: int, clients: Sequence[tuple[str, ...]], resources: Sequence[tuple[str, str, str]] = ()
    ) -> None:
        """A disclosure outside a request (an export's files, a notification): one record for each
        entry of ``clients`` (the clients whose data it held), naming ``resources`` (up to
        :data:`MAX_ENTITIES`)."""
        writer = self.writer
        if writer is None or not writer.enabled or not clients:
            return
        named = tuple(resources[:MAX_ENTITIES])
        await writer.record_many(
            [
                self._record(self.interaction, status, patient_ids=tuple(patients), resources=named)
                for patients in clients
            ]
        )

    async def finish(self, status: int, denial_reason: str | None = None) -> None:
        """Log the interaction (unless it was one write, already logged with its transaction)."""
        writer = self.writer
        if writer is None or not writer.enabled:
            return
        named_only = self.named_ids - self.patient_ids
        if self.interaction in SINGLE_WRITES and self.writes_logged and status < 400:
            if self.mentioned:  # content that names a client without being about them (locally)
                await writer.record_many(
                    [
                        self._record(
                            self.interaction,
                            status,
                            patient_ids=(p,),
                            resources=tuple((t, i, v) for (t, i), v in list(self.resources.items())[:MAX_ENTITIES]),
                        )
                        for p in sorted(self.mentioned - self.patient_ids)
                    ]
                )
            return
        if status >= 400:
            patients = sorted(self.patient_ids | named_only | self.mentioned)
        else:
            patients = sorted(self.patient_ids)
        if status < 400 and named_only:
            # Named, but nothing of theirs returned: the client sees the attempt; it is not a
            # success of the caller's (whose own view must not learn who the BSN belongs to).
            queries = redact_each(self.query, self.patient_ids | named_only)
            await writer.record_many(
                [
                    self._record(
                        self.interaction,
                        404,
                        patient_ids=(p,),
                        query=queries[p],
                        denial_reason="Nothing of this client was found that the caller may see",
                    )
                    for p in sorted(named_only)
                ]
            )
        if len(patients) <= 1:
            await writer.record(
                self._record(
                    self.interaction,
                    status,
                    resources=tuple((t, i, v) for (t, i), v in list(self.resources.items())[:MAX_ENTITIES]),
                    patient_ids=tuple(patients),
                    denial_reason=denial_reason,
                )
            )
            return
        # One record per client, each with that client's own entities only (at one instant: one interaction).
        by_patient: dict[str, list[tuple[str, str, str | None]]] = {p: [] for p in patients}
        for (t, i), v in self.resources.items():
            for patient in self.resource_patients.get((t, i), ()):
                own = by_patient.get(patient)
                if own is not None and len(own) < MAX_ENTITIES:
                    own.append((t, i, v))
        queries = redact_each(self.query, patients)
        when = now_us()
        records = [
            self._record(
                self.interaction,
                status,
                resources=tuple(by_patient[patient]),
                patient_ids=(patient,),
                query=queries[patient],
                denial_reason=denial_reason,
                recorded_us=when,
            )
            for patient in patients
        ]
        await writer.record_many(records)


def named_in(res_type: str | None, res_id: str | None, query: Sequence[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """The client ids and BSNs a request names in its path and parameters (not yet looked up):
    :meth:`AuditTrail.note_named` needs a connection only when there are any."""
    ids: set[str] = set()
    bsns: set[str] = set()
    if res_type == "Patient" and res_id:
        ids.add(res_id)
    for name, value in query:
        base = name.split(":")[0].split(".")[0]
        for part in value.split(","):
            part = part.strip()
            if f"{BSN_SYSTEM}|" in part:
                bsns.add(part.rsplit("|", 1)[1])
            elif base in _PATIENT_PARAMS or (base == "_id" and res_type == "Patient"):
                tail = part.removeprefix("Patient/")
                if tail and "/" not in tail:
                    ids.add(tail)
    return ids, bsns


def redact(query: str, other_patients: Iterable[str]) -> str:
    """The query text without other clients' identifiers: values naming another client's id, and
    every long number (a BSN), are replaced."""
    others = [p for p in other_patients if p]
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _NUMBER.search(value) or any(p in value for p in others):
            value = "[redacted]"
        pairs.append((name, value))
    return urlencode(pairs)


def redact_each(query: str, patients: Iterable[str]) -> dict[str, str]:
    """``redact(query, the others)`` for each of ``patients``, with the query parsed once: a search
    over many clients writes one record per client, and most queries name none of them (one text
    then serves them all)."""
    everyone = list(dict.fromkeys(patients))
    pairs = parse_qsl(query, keep_blank_values=True)
    # per value: redacted for everyone (a long number), or the clients it names (redacted for the others)
    named: list[set[str]] = []
    for _name, value in pairs:
        named.append(set() if _NUMBER.search(value) else {p for p in everyone if p and p in value})
    always = [_NUMBER.search(value) is not None for _name, value in pairs]
    if not any(named):
        text = urlencode([(n, "[redacted]" if a else v) for (n, v), a in zip(pairs, always, strict=True)])
        return dict.fromkeys(everyone, text)
    out: dict[str, str] = {}
    for patient in everyone:
        out[patient] = urlencode(
            [
                (n, "[redacted]" if a or (names - {patient}) else v)
                for (n, v), a, names in zip(pairs, always, named, strict=True)
            ]
        )
    return out

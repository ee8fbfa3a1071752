"""``hub audit verify``: check the whole log and name the first place where it was tampered with.

What is checked, in one pass in ``seq`` order (chunks of ``chunk`` rows, so memory stays flat):

1. positions: seqs run 1, 2, 3 ... without gaps (a deleted record shows as a gap);
2. the chain: each ``prev_hash`` is the previous record's hash and each ``hash`` recomputes from
   the stored JSON (a changed field or a reordering breaks it exactly at that record);
3. the search columns and the ``audit_patient``/``audit_entity`` rows agree with the JSON (so no
   access can be hidden from a client's own "who saw my data" view by editing an index row);
4. every checkpoint: its signature verifies with the keyring's public key, its seq exists, and
   its hash is the chain hash there; none lies beyond the end of the log (tail cut off);
5. the head row agrees with the last record, and every checkpoint in the witness file is in the
   database unchanged (a tail cut together with its checkpoints).

The verifier takes the head first and checks up to it, so a live hub may keep appending meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.chain import GENESIS, link_hash
from hub.audit.checkpoints import AuditKeyring, Checkpoint, read_witness
from hub.audit.records import index_facts
from hub.audit.tables import audit_checkpoint, audit_entity, audit_head, audit_log, audit_patient
from hub.fhir.instants import to_iso

_COLUMNS = ("type_code", "interaction", "action", "outcome", "agent_client", "agent_ura", "agent_user")


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: the seq it concerns and what is wrong there."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.reason}"


@dataclass(slots=True)
class VerifyResult:
    records: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    last_checkpoint: int = 0
    seconds: float = 0.0
    signatures_checked: bool = True
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.seq) if self.problems else None

    @property
    def unsealed(self) -> int:
        """Records after the last checkpoint (not yet covered by a signature)."""
        return self.last_seq - self.last_checkpoint

    def summary(self) -> str:
        if self.ok:
            sig = "" if self.signatures_checked else " (signatures NOT checked: no keyring)"
            return (
                f"OK: {self.records} records, {self.checkpoints} checkpoints{sig}, "
                f"{self.unsealed} records after the last checkpoint, in {self.seconds:.2f} s"
            )
        first = self.first
        assert first is not None
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"FAILED at seq {first.seq}: {first.reason}{more}"


async def verify_log(
    conn: AsyncConnection,
    *,
    keyring: AuditKeyring | None,
    witness_dir: Path | str | None = None,
    chunk: int = 10_000,
    max_problems: int = 20,
    deep: bool = True,
) -> VerifyResult:
    """Verify the log visible on ``conn`` (see the module docstring); never raises on tampering."""
    started = time.perf_counter()
    res = VerifyResult(signatures_checked=keyring is not None)
    problems = res.problems
    # The witness file first: a checkpoint is witnessed only after it committed, so each one read
    # here is in what the database reads below see. (Read last, a checkpoint sealed while the log
    # was walked looked "missing from the database".)
    witnessed = read_witness(witness_dir) if witness_dir is not None else None

    def report(seq: int, reason: str) -> bool:
        problems.append(Problem(seq, reason))
        return len(problems) >= max_problems

    head = (
        await conn.execute(select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == 1))
    ).one_or_none()
    if head is None:
        res.problems.append(Problem(0, "the audit_head row is missing"))
        return res
    upto, head_hash = int(head[0]), str(head[1])
    checkpoints = [
        Checkpoint(int(r.seq), r.hash, int(r.created), r.key_id, r.signature)
        for r in (await conn.execute(select(audit_checkpoint).order_by(audit_checkpoint.c.seq))).all()
    ]
    res.checkpoints = len(checkpoints)
    by_seq = {cp.seq: cp for cp in checkpoints}
    if keyring is not None:
        for cp in checkpoints:
            why = keyring.check(cp)
            if why and report(cp.seq, f"checkpoint {why}"):
                return _done(res, started)

    expected = 1
    prev = GENESIS
    stop = False
    while expected <= upto and not stop:
        rows = (
            await conn.execute(
                select(audit_log)
                .where(audit_log.c.seq >= expected, audit_log.c.seq <= upto)
                .order_by(audit_log.c.seq)
                .limit(chunk)
            )
        ).all()
        if not rows:
            stop = report(expected, f"records {expected}..{upto} are missing (the head says the log ends at {upto})")
            break
        lo, hi = int(rows[0].seq), int(rows[-1].seq)
        patients = await _children(conn, audit_patient, audit_patient.c.patient_id, lo, hi) if deep else {}
        entities = await _children(conn, audit_entity, audit_entity.c.ref, lo, hi) if deep else {}
        for row in rows:
            seq = int(row.seq)
            if seq != expected:
                gap = (
                    f"record {expected} is missing"
                    if seq == expected + 1
                    else f"records {expected}..{seq - 1} are missing"
                )
                if report(expected, gap):
                    stop = True
                    break
            if row.prev_hash != prev and report(
                seq, "prev_hash does not match the previous record's hash (a record was removed, inserted or moved)"
            ):
                stop = True
                break
            event_bytes = row.event.encode("utf-8")
            if link_hash(row.prev_hash, seq, event_bytes) != row.hash and report(
                seq, "hash does not match the record's content (the record was changed)"
            ):
                stop = True
                break
            if deep:
                why = _index_problem(row, event_bytes, patients.pop(seq, set()), entities.pop(seq, set()))
                if why and report(seq, why):
                    stop = True
                    break
            sealed_here = by_seq.get(seq)
            if (
                sealed_here is not None
                and sealed_here.hash != row.hash
                and report(seq, "checkpoint hash differs from the chain hash at this record")
            ):
                stop = True
                break
            prev = row.hash
            expected = seq + 1
            res.records += 1
        if deep and not stop:
            for seq in sorted(set(patients) | set(entities)):
                if report(seq, "index rows exist for a record that is not in the log"):
                    stop = True
                    break
    res.last_seq = expected - 1
    if not stop:
        if res.last_seq == upto and prev != head_hash and upto > 0:
            report(upto, "the head's hash differs from the last record's hash")
        for cp in checkpoints:
            if cp.seq > res.last_seq:
                report(
                    cp.seq,
                    f"a checkpoint seals seq {cp.seq} but the log ends at {res.last_seq} (records cut off the tail)",
                )
        if witnessed is not None:
            for w in witnessed:
                db_cp = by_seq.get(w.seq)
                if w.seq > res.last_seq:
                    report(
                        w.seq,
                        f"the witness file has a checkpoint at seq {w.seq} but the log ends at "
                        f"{res.last_seq} (records and checkpoints cut off the tail)",
                    )
                elif db_cp is None:
                    report(w.seq, "a witnessed checkpoint is missing from the database")
                elif (db_cp.hash, db_cp.signature) != (w.hash, w.signature):
                    report(w.seq, "the checkpoint differs from the witnessed one")
    sealed = [cp.seq for cp in checkpoints if cp.seq <= res.last_seq]
    res.last_checkpoint = max(sealed, default=0)
    return _done(res, started)


def _done(res: VerifyResult, started: float) -> VerifyResult:
    res.seconds = time.perf_counter() - started
    return res


async def _children(conn: AsyncConnection, table: Any, value: Any, lo: int, hi: int) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    stmt = select(value, table.c.seq).where(table.c.seq >= lo, table.c.seq <= hi)
    for v, seq in (await conn.execute(stmt)).all():
        out.setdefault(int(seq), set()).add(v)
    return out


def _index_problem(row: Any, event_bytes: bytes, patients: set[str], entities: set[str]) -> str | None:
    try:
        event = orjson.loads(event_bytes)
        facts = index_facts(event, int(row.recorded))
        recorded_iso = event["recorded"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return f"the stored AuditEvent cannot be read ({type(exc).__name__})"
    if to_iso(int(row.recorded)) != recorded_iso:
        return "column 'recorded' differs from AuditEvent.recorded"
    for name in _COLUMNS:
        if getattr(row, name) != getattr(facts, name):
            return f"column '{name}' differs from the AuditEvent"
    if patients != set(facts.patient_ids):
        return "the audit_patient rows differ from the AuditEvent's patients"
    if entities != set(facts.entities):
        return "the audit_entity rows differ from the AuditEvent's entities"
    return None


async def count_records(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(audit_log))).scalar_one())


__all__ = ["Problem", "VerifyResult", "count_records", "verify_log"]

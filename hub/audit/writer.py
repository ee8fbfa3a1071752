"""The group-commit writer: every access is in the log, durably, before its answer leaves the hub.

One :class:`AuditWriter` per app. ``await writer.record(rec)`` returns only when the record is
committed. Records from concurrent requests are gathered by one background task into one
transaction (group commit): under the chain-head lock it reads the last (seq, hash), chains the
batch, inserts it, moves the head and commits, then wakes every waiter. One commit (one fsync)
serves a whole batch, which is how reads keep their throughput with audit on.

Writes use :meth:`AuditWriter.record_in` instead: the audit row is appended inside the caller's
own write transaction (same head lock, same order), so a write and its audit commit together or
not at all. Call it as the *last* statement before the commit: on PostgreSQL it holds the head
row lock until the transaction ends, and every other audit append waits for it.

The total order holds across processes: every append takes the head row with ``SELECT ... FOR
UPDATE`` on PostgreSQL (READ COMMITTED then returns the latest committed head), and on SQLite
runs in a ``BEGIN IMMEDIATE`` write transaction, which excludes every other writer.

Checkpoints: whenever a batch brings the chain ``checkpoint_every`` records past the last
checkpoint, the batch transaction signs and stores a new one; and the background task seals any
unsealed tail once ``checkpoint_seconds`` have passed since the last checkpoint (also at stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.chain import chain
from hub.audit.checkpoints import AuditKeyring, Checkpoint, append_witness
from hub.audit.records import AuditRecord, PreparedRecord, prepare
from hub.audit.tables import audit_checkpoint, audit_entity, audit_head, audit_log, audit_patient

log = logging.getLogger(__name__)

_HEAD = select(
    audit_head.c.last_seq, audit_head.c.last_hash, audit_head.c.checkpoint_seq, audit_head.c.checkpoint_at
).where(audit_head.c.id == 1)


@dataclass(slots=True)
class _Head:
    last_seq: int
    last_hash: str
    checkpoint_seq: int
    checkpoint_at: int


class AuditWriter:
    """Appends audit records in one total order, with group commit and signed checkpoints.

    - ``db``: the app's :class:`hub.store.db.Database` (uses ``.write()``, ``.is_sqlite``).
    - ``key_dir``: where the Ed25519 keyring and witness file live (``settings.var_dir /
      'audit-keys'``); loaded or created in :meth:`start`. ``keyring`` instead gives the keys
      directly (tests, benchmarks; no witness file then unless ``key_dir`` is given too).
    - ``checkpoint_every`` records / ``checkpoint_seconds``: when to seal the chain.
    - ``max_batch``: most records per group-commit transaction.
    - ``enabled``: False makes :meth:`record` and :meth:`record_in` return at once (audit off).
    - ``source``: the hub's name in ``AuditEvent.source.observer``.
    """

    def __init__(
        self,
        db: Any,
        *,
        key_dir: Path | str | None = None,
        keyring: AuditKeyring | None = None,
        checkpoint_every: int = 10_000,
        checkpoint_seconds: float = 60.0,
        max_batch: int = 1000,
        enabled: bool = True,
        source: str = "zorgnet-hub",
    ) -> None:
        self.db = db
        self.key_dir = Path(key_dir) if key_dir is not None else None
        self.keyring = keyring
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.max_batch = max_batch
        self.enabled = enabled
        self.source = source
        self._pending: list[tuple[PreparedRecord, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_timed = time.monotonic()
        #: Counters for metrics and benchmarks.
        self.batches = 0
        self.records = 0

    @classmethod
    def from_settings(cls, db: Any, settings: Any, **overrides: Any) -> AuditWriter:
        """The writer the app uses: keys under ``settings.var_dir/'audit-keys'``, on when
        ``settings.audit_enabled``; optional ``settings.extra_settings`` ``audit_checkpoint_every``
        / ``audit_checkpoint_seconds`` / ``audit_max_batch``."""
        extra = getattr(settings, "extra_settings", {}) or {}
        kwargs: dict[str, Any] = {
            "key_dir": Path(settings.var_dir) / "audit-keys",
            "enabled": bool(getattr(settings, "audit_enabled", True)),
            "checkpoint_every": int(extra.get("audit_checkpoint_every", 10_000)),
            "checkpoint_seconds": float(extra.get("audit_checkpoint_seconds", 60.0)),
            "max_batch": int(extra.get("audit_max_batch", 1000)),
        }
        kwargs.update(overrides)
        return cls(db, **kwargs)

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load (or create) the keys and start the group-commit task. Call in the app's lifespan."""
        if self._task is not None:
            return
        if self.keyring is None and self.key_dir is not None:
            self.keyring = await asyncio.to_thread(AuditKeyring.load_or_create, self.key_dir)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Flush every pending record, seal the tail with a checkpoint, stop the task."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await self._task
        finally:
            self._task = None
        if self.enabled:
            await self.checkpoint(force=True)

    # -- appending -----------------------------------------------------------------------------------------
    async def record(self, record: AuditRecord) -> int:
        """Append ``record``; returns its seq once it is committed (0 when audit is off)."""
        if not self.enabled:
            return 0
        return await self._enqueue(prepare(record, source=self.source))

    async def record_many(self, records: Iterable[AuditRecord]) -> list[int]:
        """Append several records (bulk tools, tests); returns their seqs once all are committed."""
        if not self.enabled:
            return [0 for _ in records]
        futures = [self._submit(prepare(r, source=self.source)) for r in records]
        return list(await asyncio.gather(*futures))

    async def record_in(self, conn: AsyncConnection, record: AuditRecord) -> int:
        """Append ``record`` inside the caller's write transaction ``conn`` (from ``db.write()``);
        it commits (or rolls back) with that transaction. Returns its seq (0 when audit is off)."""
        if not self.enabled:
            return 0
        prepared = prepare(record, source=self.source)
        head = await _lock_head(conn, self.db.is_sqlite)
        await _insert(conn, head, [prepared])
        return head.last_seq

    def _submit(self, prepared: PreparedRecord) -> asyncio.Future[int]:
        if self._task is None or self._stopping:
            raise RuntimeError("the audit writer is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((prepared, future))
        self._wake.set()
        return future

    async def _enqueue(self, prepared: PreparedRecord) -> int:
        return await self._submit(prepared)

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._wake.clear()
                timeout = max(0.0, self.checkpoint_seconds - (time.monotonic() - self._last_timed))
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    await self._timed_checkpoint()
                    continue
                continue
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                first, checkpoint = await self._write_batch([p for p, _ in batch])
            except Exception as exc:  # the requests fail: an unlogged access must not be answered
                log.exception("audit batch of %d records failed", len(batch))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for i, (_, fut) in enumerate(batch):
                if not fut.done():
                    fut.set_result(first + i)
            self.batches += 1
            self.records += len(batch)
            if checkpoint is not None:
                await self._witness(checkpoint)
            if time.monotonic() - self._last_timed >= self.checkpoint_seconds:
                await self._timed_checkpoint()

    async def _write_batch(self, items: list[PreparedRecord]) -> tuple[int, Checkpoint | None]:
        async with self.db.write() as conn:
            head = await _lock_head(conn, self.db.is_sqlite)
            first = head.last_seq + 1
            await _insert(conn, head, items)
            checkpoint = None
            if self.keyring is not None and head.last_seq - head.checkpoint_seq >= self.checkpoint_every:
                checkpoint = await self._seal(conn, head)
        return first, checkpoint

    # -- checkpoints ---------------------------------------------------------------------------------------
    async def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Seal the chain head now if anything is unsealed (and, unless ``force``, the interval passed)."""
        if self.keyring is None:
            return None
        async with self.db.write() as conn:
            head = await _lock_head(conn, self.db.is_sqlite)
            due = head.checkpoint_at + int(self.checkpoint_seconds * 1_000_000) <= time.time_ns() // 1000
            if head.last_seq <= head.checkpoint_seq or not (force or due):
                return None
            cp = await self._seal(conn, head)
        await self._witness(cp)
        return cp

    async def _timed_checkpoint(self) -> None:
        self._last_timed = time.monotonic()
        try:
            await self.checkpoint()
        except Exception:
            log.exception("audit checkpoint failed; will retry")

    async def _seal(self, conn: AsyncConnection, head: _Head) -> Checkpoint:
        assert self.keyring is not None
        self.keyring.refresh()
        cp = self.keyring.sign(head.last_seq, head.last_hash)
        await conn.execute(insert(audit_checkpoint).values(
            seq=cp.seq, hash=cp.hash, created=cp.created_us, key_id=cp.key_id, signature=cp.signature))
        await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(
            checkpoint_seq=cp.seq, checkpoint_at=cp.created_us))
        return cp

    async def _witness(self, cp: Checkpoint) -> None:
        if self.key_dir is None:
            return
        with contextlib.suppress(OSError):
            await asyncio.to_thread(append_witness, self.key_dir, cp)


async def _lock_head(conn: AsyncConnection, is_sqlite: bool) -> _Head:
    """The chain head, locked until ``conn``'s transaction ends."""
    stmt = _HEAD if is_sqlite else _HEAD.with_for_update()
    row = (await conn.execute(stmt)).one()
    return _Head(int(row[0]), str(row[1]), int(row[2]), int(row[3]))


async def _insert(conn: AsyncConnection, head: _Head, items: list[PreparedRecord]) -> None:
    """Chain ``items`` after ``head``, insert them and their index rows, move the head (in place)."""
    links = chain(head.last_hash, head.last_seq + 1, [p.event for p in items])
    rows: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    entities: list[dict[str, Any]] = []
    for (seq, prev, h), p in zip(links, items, strict=True):
        f = p.facts
        rows.append({
            "seq": seq, "recorded": f.recorded_us, "prev_hash": prev, "hash": h, "event": p.event.decode(),
            "type_code": f.type_code, "interaction": f.interaction, "action": f.action, "outcome": f.outcome,
            "agent_client": f.agent_client, "agent_ura": f.agent_ura, "agent_user": f.agent_user,
        })
        patients.extend({"patient_id": pid, "seq": seq} for pid in f.patient_ids)
        entities.extend({"ref": ref, "seq": seq} for ref in f.entities)
    await conn.execute(insert(audit_log), rows)
    if patients:
        await conn.execute(insert(audit_patient), patients)
    if entities:
        await conn.execute(insert(audit_entity), entities)
    head.last_seq, head.last_hash = links[-1][0], links[-1][2]
    await conn.execute(
        update(audit_head).where(audit_head.c.id == 1)
        .values(last_seq=head.last_seq, last_hash=head.last_hash)
    )


__all__ = ["AuditWriter"]

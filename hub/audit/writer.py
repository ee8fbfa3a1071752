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
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.chain import chain
from hub.audit.checkpoints import AuditKeyring, Checkpoint, append_witness
from hub.audit.records import AuditRecord, PreparedRecord, prepare, prepare_many
from hub.audit.tables import audit_checkpoint, audit_entity, audit_head, audit_log, audit_patient
from hub.store.direct import DirectQuery, InTransaction
from hub.store.pg_writes import Appendix, AppendixShape

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
        checkpoint_seconds: float = 2.0,
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
        self._head: _Head | None = None
        url = getattr(db, "url", None)
        self._one_statement = (
            url is not None and url.get_backend_name() == "postgresql" and (url.get_driver_name() == "asyncpg")
        )
        #: The connection the group-commit task appends its batches on, held between batches
        #: (checking one out of the pool per batch cost about a third of a batch's CPU).
        self._batch_conn: AsyncConnection | None = None
        #: Counters for metrics and benchmarks.
        self.batches = 0
        self.records = 0
        #: Called with (records, seconds) after every committed group-commit batch (metrics).
        self.on_batch: Callable[[int, float], None] | None = None

    @property
    def queue_depth(self) -> int:
        """Records waiting for the next group commit."""
        return len(self._pending)

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
            "checkpoint_seconds": float(extra.get("audit_checkpoint_seconds", 2.0)),
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
            await self._release_batch_conn()
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
        futures = [self._submit(p) for p in prepare_many(records, source=self.source)]
        return list(await asyncio.gather(*futures))

    async def record_in(self, conn: AsyncConnection, record: AuditRecord) -> int:
        """Append ``record`` inside the caller's write transaction ``conn`` (from ``db.write()``);
        it commits (or rolls back) with that transaction. Returns its seq (0 when audit is off)."""
        return await self.record_all_in(conn, [record])

    async def record_all_in(self, conn: AsyncConnection, records: list[AuditRecord]) -> int:
        """Append several records inside the caller's write transaction in one go (call it as the
        last thing before commit: the chain head stays locked until the transaction ends).

        Chained after the head this writer saw last, moved with a compare-and-set (on PostgreSQL in
        the same statement as the inserts: one round trip instead of five); when the head moved
        meanwhile, or that transaction rolled back, it is read under lock and chained again."""
        if not self.enabled or not records:
            return 0
        items = prepare_many(records, source=self.source)
        head = await _append_in(conn, self.db.is_sqlite, self._head, items)
        self._head = head  # (a hint only: every use of it is a compare-and-set)
        return head.last_seq

    def appendix(self, record: AuditRecord) -> Appendix:
        """``record`` as part of a write's own statement (PostgreSQL, a write made alone:
        :class:`hub.store.pg_writes.Appendix`), chained in SQL as :meth:`record_in` chains one record;
        hand the appendix to :meth:`appended` once the statement wrote."""
        return Appendix(_write_appendix(), _chained_params(prepare(record, source=self.source)))

    def appended(self, appendix: Appendix) -> int:
        """The record of ``appendix`` was appended with its write: its seq (the head seen last, a hint)."""
        assert appendix.returned is not None
        seq, last_hash, checkpoint_seq, checkpoint_at, _one = appendix.returned
        self._head = _Head(int(seq), str(last_hash), int(checkpoint_seq), int(checkpoint_at))
        return self._head.last_seq

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
            started = time.perf_counter()
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
            if self.on_batch is not None:
                self.on_batch(len(batch), time.perf_counter() - started)
            if checkpoint is not None:
                await self._witness(checkpoint)
            if time.monotonic() - self._last_timed >= self.checkpoint_seconds:
                await self._timed_checkpoint()

    async def _write_batch(self, items: list[PreparedRecord]) -> tuple[int, Checkpoint | None]:
        cached, self._head = self._head, None
        seals = self.keyring is not None and (
            cached is None or cached.last_seq + len(items) - cached.checkpoint_seq >= self.checkpoint_every
        )
        if cached is not None and self._one_statement and not seals:
            try:
                if len(items) == 1:  # chained by the database: no compare-and-set to lose to a write
                    head: _Head | None = await self._chained_on_driver(items[0])
                else:
                    head = await _append_one_statement(await self._batch_driver(), cached, items)
            except BaseException:
                await self._release_batch_conn(broken=True)  # its state is unknown: a fresh one next time
                raise
            if head is not None:
                self._head = head
                return head.last_seq - len(items) + 1, None
        async with self.db.write() as conn:
            head = await _append(conn, self.db.is_sqlite, cached, items)
            checkpoint = None
            if self.keyring is not None and head.last_seq - head.checkpoint_seq >= self.checkpoint_every:
                checkpoint = await self._seal(conn, head)
        self._head = head  # committed: the next batch may start from it (checked, see _append)
        return head.last_seq - len(items) + 1, checkpoint

    async def _batch_driver(self) -> Any:
        """The asyncpg connection of the held batch connection (checked out on first use)."""
        if self._batch_conn is None:
            self._batch_conn = await self.db.engine.connect()
        raw = (await self._batch_conn.get_raw_connection()).driver_connection
        assert raw is not None
        return raw

    async def _chained_on_driver(self, item: PreparedRecord) -> _Head:
        """One record appended after the committed head, chained in SQL (:func:`_chained_append`), in
        one autocommitted statement on the held batch connection. A compare-and-set after the head
        this writer saw last fails whenever a write appended meanwhile (writes append in their own
        statements), and then the batch took the locking path: eight round trips instead of one."""
        await self._batch_driver()
        assert self._batch_conn is not None
        fairy = await self._batch_conn.get_raw_connection()
        row = await _chained_query(self._batch_conn.dialect).fetchrow(fairy, _chained_params(item))
        if row is None or row[4] != 1:
            raise RuntimeError("the audit head row is missing")
        return _Head(int(row[0]), str(row[1]), int(row[2]), int(row[3]))

    async def _release_batch_conn(self, *, broken: bool = False) -> None:
        conn, self._batch_conn = self._batch_conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if broken:
                await conn.invalidate()
            await conn.close()

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
        head = self._head
        if head is not None and head.last_seq <= head.checkpoint_seq:
            return  # nothing of ours unsealed: no transaction on an idle hub
        try:
            await self.checkpoint()
        except Exception:
            log.exception("audit checkpoint failed; will retry")

    async def _seal(self, conn: AsyncConnection, head: _Head) -> Checkpoint:
        assert self.keyring is not None
        self.keyring.refresh()
        cp = self.keyring.sign(head.last_seq, head.last_hash)
        head.checkpoint_seq, head.checkpoint_at = cp.seq, cp.created_us
        await conn.execute(
            insert(audit_checkpoint).values(
                seq=cp.seq, hash=cp.hash, created=cp.created_us, key_id=cp.key_id, signature=cp.signature
            )
        )
        await conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(checkpoint_seq=cp.seq, checkpoint_at=cp.created_us)
        )
        return cp

    async def _witness(self, cp: Checkpoint) -> None:
        # Also a log line: shipped logs are a second witness, outside the hub's own disk.
        log.info("audit checkpoint seq=%d hash=%s kid=%s sig=%s", cp.seq, cp.hash, cp.key_id, cp.signature)
        if self.key_dir is None:
            return
        with contextlib.suppress(OSError):
            await asyncio.to_thread(append_witness, self.key_dir, cp)


async def _lock_head(conn: AsyncConnection, is_sqlite: bool) -> _Head:
    """The chain head, locked until ``conn``'s transaction ends."""
    stmt = _HEAD if is_sqlite else _HEAD.with_for_update()
    row = (await conn.execute(stmt)).one()
    return _Head(int(row[0]), str(row[1]), int(row[2]), int(row[3]))


_MOVE_HEAD = update(audit_head).where(audit_head.c.id == 1)


async def _append(conn: AsyncConnection, is_sqlite: bool, cached: _Head | None, items: list[PreparedRecord]) -> _Head:
    """Chain ``items`` after the head, move the head, insert the rows; returns the new head.

    With a ``cached`` head (what this writer committed last) the head is moved with one
    compare-and-set UPDATE, which also takes the row lock; only when another writer moved it
    meanwhile (0 rows) is the head read under lock and the batch chained again. That saves one
    round trip per batch in the common case, and the order rules stay the same.
    """
    events = [p.event for p in items]
    if cached is not None:
        links = chain(cached.last_hash, cached.last_seq + 1, events)
        moved = await conn.execute(
            _MOVE_HEAD.where(audit_head.c.last_seq == cached.last_seq)
            .where(audit_head.c.last_hash == cached.last_hash)
            .values(last_seq=links[-1][0], last_hash=links[-1][2])
        )
        if moved.rowcount == 1:
            await _insert(conn, links, items)
            return _Head(links[-1][0], links[-1][2], cached.checkpoint_seq, cached.checkpoint_at)
    locked = await _lock_head(conn, is_sqlite)
    links = chain(locked.last_hash, locked.last_seq + 1, events)
    await conn.execute(_MOVE_HEAD.values(last_seq=links[-1][0], last_hash=links[-1][2]))
    await _insert(conn, links, items)
    return _Head(links[-1][0], links[-1][2], locked.checkpoint_seq, locked.checkpoint_at)


async def _append_in(
    conn: AsyncConnection, is_sqlite: bool, cached: _Head | None, items: list[PreparedRecord]
) -> _Head:
    """:func:`_append` inside a caller's transaction. On PostgreSQL in one statement: one record
    (a single write's) is chained by the database itself after whatever head is committed when it
    gets the head's lock (:func:`_chained_append`), so concurrent writes queue on that lock without
    a failed compare-and-set and without a trip back to Python while holding it; several records
    are chained after the ``cached`` head (:func:`_in_transaction_append`), or, when it moved, after
    the head read under lock."""
    if is_sqlite or conn.dialect.name != "postgresql":
        return await _append(conn, is_sqlite, cached, items)
    if len(items) == 1:
        return await _chained_one(conn, items[0])
    if cached is not None:
        moved = await _cas_append(conn, cached, items)
        if moved is not None:
            return moved
    locked = await _lock_head(conn, is_sqlite)  # the head moved: read it under lock
    head = await _cas_append(conn, locked, items)
    if head is None:  # cannot happen while we hold the lock
        raise RuntimeError("the audit head moved while locked")
    return head


async def _chained_one(conn: AsyncConnection, item: PreparedRecord) -> _Head:
    """Append one record after the committed head, chained in SQL (:func:`_chained_append`)."""
    params = _chained_params(item)
    seq, last_hash, checkpoint_seq, checkpoint_at, moved = (await _chained_in_transaction().fetch(conn, params))[0]
    if moved != 1:
        raise RuntimeError("the audit head row is missing")
    return _Head(int(seq), str(last_hash), int(checkpoint_seq), int(checkpoint_at))


@functools.cache
def _chained_append() -> Any:
    """One record appended in one statement that takes the head's row lock first (``FOR UPDATE``: it
    waits for a concurrent append's commit and then reads the head that one left) and computes the
    link as :func:`hub.audit.chain.link_hash` does: SHA-256 of the previous hash's bytes, the seq as
    8 bytes big-endian (``int8send``) and the record's canonical JSON (sent as bytes). Every value
    is a parameter; tests/api/test_audit_log.py checks the chain with ``hub audit verify``."""
    from sqlalchemy import text

    sql = (
        f"WITH {_chained_ctes('')} "  # noqa: S608
        "SELECT nxt.seq, nxt.hash, nxt.checkpoint_seq, nxt.checkpoint_at, (SELECT count(*) FROM head) FROM nxt"
    )
    return text(sql).bindparams(*_chained_binds())


@functools.cache
def _chained_in_transaction() -> InTransaction:
    """:func:`_chained_append` in a caller's write transaction, on its driver connection (:mod:`hub.store.direct`)."""
    return InTransaction(_chained_append())


@functools.cache
def _chained_query(dialect: Any) -> DirectQuery:
    """:func:`_chained_append` compiled once for the driver connection (:mod:`hub.store.direct`)."""
    return DirectQuery(_chained_append(), dialect)


def _chained_ctes(condition: str) -> str:
    """The CTEs of :func:`_chained_append` (``cur``, ``nxt``, ``head``, ``log``, ``pat``, ``ent``);
    ``condition``: more of the head row's ``WHERE`` (when it does not hold, nothing is appended)."""
    plain = [c for c in _LOG_COLUMNS if c not in ("seq", "prev_hash", "hash")]
    return (
        "cur AS (SELECT last_seq, last_hash, checkpoint_seq, checkpoint_at FROM audit_head "  # noqa: S608
        f"WHERE id = 1{condition} FOR UPDATE), "
        "nxt AS (SELECT last_seq + 1 AS seq, last_hash AS prev_hash, checkpoint_seq, checkpoint_at, "
        "encode(sha256(decode(last_hash, 'hex') || int8send(last_seq + 1) || :event_bytes), 'hex') AS hash "
        "FROM cur), "
        "head AS (UPDATE audit_head SET last_seq = nxt.seq, last_hash = nxt.hash FROM nxt "
        "WHERE audit_head.id = 1 RETURNING audit_head.id), "
        f"log AS (INSERT INTO audit_log (seq, prev_hash, hash, {', '.join(plain)}) "
        f"SELECT nxt.seq, nxt.prev_hash, nxt.hash, {', '.join(_cast(c) for c in plain)} FROM nxt), "
        "pat AS (INSERT INTO audit_patient (patient_id, seq) "
        "SELECT p, nxt.seq FROM nxt, unnest(CAST(:pat_id AS text[])) AS p), "
        "ent AS (INSERT INTO audit_entity (ref, seq) "
        "SELECT e, nxt.seq FROM nxt, unnest(CAST(:ent_ref AS text[])) AS e)"
    )


@functools.cache
def _chained_binds() -> tuple[Any, ...]:
    from sqlalchemy import LargeBinary, Text, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    return (
        bindparam("event_bytes", type_=LargeBinary()),
        bindparam("pat_id", type_=ARRAY(Text())),
        bindparam("ent_ref", type_=ARRAY(Text())),
    )


@functools.cache
def _write_appendix() -> AppendixShape:
    """:func:`_chained_append` as CTEs of a write's own statement (:class:`hub.store.pg_writes.AppendixShape`):
    the head is taken only when the write wrote (its ``r`` has a row). Returned: the new head, and a
    division that fails the statement, write and all, when the head row was missing (nothing chained)."""
    return AppendixShape(
        _chained_ctes(" AND EXISTS (SELECT 1 FROM r)"),
        _chained_binds(),
        "(SELECT seq FROM nxt), (SELECT hash FROM nxt), (SELECT checkpoint_seq FROM nxt), "
        "(SELECT checkpoint_at FROM nxt), 1 / (SELECT count(*) FROM head)",
    )


def _chained_params(item: PreparedRecord) -> dict[str, Any]:
    """The values of :func:`_chained_append` for ``item``."""
    row = _rows([(0, "", "")], [item])[0][0]
    params: dict[str, Any] = {c: row[c] for c in _LOG_COLUMNS if c not in ("seq", "prev_hash", "hash")}
    params.update(
        event_bytes=item.event,
        pat_id=list(item.facts.patient_ids),
        ent_ref=list(item.facts.entities),
    )
    return params


def _cast(column: str) -> str:
    """A bind parameter for ``audit_log.<column>`` with its type spelled out (in INSERT ... SELECT
    PostgreSQL would take an untyped parameter for text)."""
    return f"CAST(:{column} AS {'bigint' if column == 'recorded' else 'text'})"


async def _cas_append(conn: AsyncConnection, after: _Head, items: list[PreparedRecord]) -> _Head | None:
    """Chain ``items`` after ``after`` and insert them, if the head is still there (one statement);
    the new head, or None when it had moved."""
    links = chain(after.last_hash, after.last_seq + 1, [p.event for p in items])
    rows, patients, entities = _rows(links, items)
    params: dict[str, Any] = {c: [r[c] for r in rows] for c in _LOG_COLUMNS}
    params.update(
        new_seq=links[-1][0],
        new_hash=links[-1][2],
        old_seq=after.last_seq,
        old_hash=after.last_hash,
        pat_id=[p["patient_id"] for p in patients],
        pat_seq=[p["seq"] for p in patients],
        ent_ref=[e["ref"] for e in entities],
        ent_seq=[e["seq"] for e in entities],
    )
    if (await _in_transaction_append().fetch(conn, params))[0][0] != 1:
        return None
    return _Head(links[-1][0], links[-1][2], after.checkpoint_seq, after.checkpoint_at)


@functools.cache
def _in_transaction_append() -> InTransaction:
    """:func:`_one_statement_sql` as a bound statement for a caller's transaction (named parameters,
    so it runs on the caller's connection like its other statements, on its driver connection:
    :mod:`hub.store.direct`)."""
    from sqlalchemy import BigInteger, Text, bindparam, text
    from sqlalchemy.dialects.postgresql import ARRAY

    kinds = {"seq": "bigint", "recorded": "bigint"}
    arrays = ", ".join(f"CAST(:{c} AS {kinds.get(c, 'text')}[])" for c in _LOG_COLUMNS)
    gate = "WHERE EXISTS (SELECT 1 FROM head)"
    sql = (
        "WITH head AS (UPDATE audit_head SET last_seq = :new_seq, last_hash = :new_hash "  # noqa: S608
        "WHERE id = 1 AND last_seq = :old_seq AND last_hash = :old_hash RETURNING id), "
        f"log AS (INSERT INTO audit_log ({', '.join(_LOG_COLUMNS)}) SELECT * FROM unnest({arrays}) {gate}), "
        "pat AS (INSERT INTO audit_patient (patient_id, seq) "
        f"SELECT * FROM unnest(CAST(:pat_id AS text[]), CAST(:pat_seq AS bigint[])) {gate}), "
        "ent AS (INSERT INTO audit_entity (ref, seq) "
        f"SELECT * FROM unnest(CAST(:ent_ref AS text[]), CAST(:ent_seq AS bigint[])) {gate}) "
        "SELECT count(*) FROM head"
    )
    array_of: dict[str, Any] = {"bigint": ARRAY(BigInteger()), "text": ARRAY(Text())}
    binds: list[Any] = [bindparam(c, type_=array_of[kinds.get(c, "text")]) for c in _LOG_COLUMNS] + [
        bindparam("new_seq", type_=BigInteger()),
        bindparam("new_hash", type_=Text()),
        bindparam("old_seq", type_=BigInteger()),
        bindparam("old_hash", type_=Text()),
        bindparam("pat_id", type_=ARRAY(Text())),
        bindparam("pat_seq", type_=ARRAY(BigInteger())),
        bindparam("ent_ref", type_=ARRAY(Text())),
        bindparam("ent_seq", type_=ARRAY(BigInteger())),
    ]
    return InTransaction(text(sql).bindparams(*binds))


async def _insert(conn: AsyncConnection, links: list[tuple[int, str, str]], items: list[PreparedRecord]) -> None:
    """Insert chained ``items`` and their index rows."""
    rows, patients, entities = _rows(links, items)
    if len(rows) >= _COPY_FROM and conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
        await _copy(conn, rows, patients, entities)
    else:
        await conn.execute(insert(audit_log), rows)
        if patients:
            await conn.execute(insert(audit_patient), patients)
        if entities:
            await conn.execute(insert(audit_entity), entities)


def _rows(
    links: list[tuple[int, str, str]], items: list[PreparedRecord]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    entities: list[dict[str, Any]] = []
    for (seq, prev, h), p in zip(links, items, strict=True):
        f = p.facts
        rows.append(
            {
                "seq": seq,
                "recorded": f.recorded_us,
                "prev_hash": prev,
                "hash": h,
                "event": p.event.decode(),
                "type_code": f.type_code,
                "interaction": f.interaction,
                "action": f.action,
                "outcome": f.outcome,
                "agent_client": f.agent_client,
                "agent_ura": f.agent_ura,
                "agent_user": f.agent_user,
            }
        )
        patients.extend({"patient_id": pid, "seq": seq} for pid in f.patient_ids)
        entities.extend({"ref": ref, "seq": seq} for ref in f.entities)
    return rows, patients, entities


_LOG_COLUMNS = [c.name for c in audit_log.columns]


@functools.cache
def _one_statement_sql() -> str:
    """The whole append as one statement (its own transaction: one round trip, no BEGIN/COMMIT).
    The inserts happen only if the head still is where this writer left it (compare-and-set).
    Built from the table's own column names; every value is a parameter."""
    n = len(_LOG_COLUMNS)
    types = ["bigint", "bigint"] + ["text"] * (n - 2)
    arrays = ", ".join(f"${i + 5}::{t}[]" for i, t in enumerate(types))
    gate = "WHERE EXISTS (SELECT 1 FROM head)"
    return (
        "WITH head AS (UPDATE audit_head SET last_seq = $1, last_hash = $2 "  # noqa: S608
        "WHERE id = 1 AND last_seq = $3 AND last_hash = $4 RETURNING id), "
        f"log AS (INSERT INTO audit_log ({', '.join(_LOG_COLUMNS)}) SELECT * FROM unnest({arrays}) {gate}), "
        f"pat AS (INSERT INTO audit_patient (patient_id, seq) "
        f"SELECT * FROM unnest(${n + 5}::text[], ${n + 6}::bigint[]) {gate}), "
        f"ent AS (INSERT INTO audit_entity (ref, seq) "
        f"SELECT * FROM unnest(${n + 7}::text[], ${n + 8}::bigint[]) {gate}) "
        "SELECT count(*) FROM head"
    )


async def _append_one_statement(raw: Any, cached: _Head, items: list[PreparedRecord]) -> _Head | None:
    """PostgreSQL + asyncpg: append a batch in one autocommitted statement on the driver connection
    ``raw`` (in no transaction); None if the head moved.

    Measured: a group-commit batch costs one round trip instead of six (BEGIN, UPDATE, 3 INSERTs,
    COMMIT), which is most of the writer's CPU per record at the small batch sizes reads produce.
    """
    links = chain(cached.last_hash, cached.last_seq + 1, [p.event for p in items])
    rows, patients, entities = _rows(links, items)
    columns: list[list[Any]] = [[r[c] for r in rows] for c in _LOG_COLUMNS]
    moved = await raw.fetchval(
        _one_statement_sql(),
        links[-1][0],
        links[-1][2],
        cached.last_seq,
        cached.last_hash,
        *columns,
        [p["patient_id"] for p in patients],
        [p["seq"] for p in patients],
        [e["ref"] for e in entities],
        [e["seq"] for e in entities],
    )
    if moved != 1:
        return None
    return _Head(links[-1][0], links[-1][2], cached.checkpoint_seq, cached.checkpoint_at)


#: Batches at least this large go in with COPY (it costs a type lookup per call, so not for one row).
_COPY_FROM = 16


async def _copy(
    conn: AsyncConnection,
    rows: list[dict[str, Any]],
    patients: list[dict[str, Any]],
    entities: list[dict[str, Any]],
) -> None:
    """COPY the rows in (asyncpg): 2.5x faster than a multi-row INSERT for 1,000 audit rows (measured)."""
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    await raw.copy_records_to_table(
        "audit_log", records=[tuple(r[c] for c in _LOG_COLUMNS) for r in rows], columns=_LOG_COLUMNS
    )
    if patients:
        await raw.copy_records_to_table(
            "audit_patient", records=[(p["patient_id"], p["seq"]) for p in patients], columns=["patient_id", "seq"]
        )
    if entities:
        await raw.copy_records_to_table(
            "audit_entity", records=[(e["ref"], e["seq"]) for e in entities], columns=["ref", "seq"]
        )


__all__ = ["AuditWriter"]

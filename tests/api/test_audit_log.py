"""The audit log on a real database (SQLite and PostgreSQL): group commit, one total order, the
append-only guard, and `hub audit verify` finding every kind of tampering at the right place.

Each test gets a fresh database (the log is append-only: it cannot be cleaned between tests).
Tampering is done the way an attacker with database access would: plain SQL, and on PostgreSQL
first ``ALTER TABLE ... DISABLE TRIGGER USER`` as the superuser.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text

from hub.audit.checkpoints import AuditKeyring, read_witness, rotate
from hub.audit.records import AuditRecord
from hub.audit.verify import VerifyResult, verify_log
from hub.audit.writer import AuditWriter
from hub.store.db import Database

UZI = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers"


@pytest.fixture
def audit_db(fresh_db: Database) -> Database:
    """A fresh, migrated database of the current backend (tests/conftest.py ``fresh_db``)."""
    return fresh_db


def sample(i: int, *, status: int = 200, patients: tuple[str, ...] | None = None, **kw: Any) -> AuditRecord:
    """A professional read of Observation/i about patient p{i % 7}."""
    facts: dict[str, Any] = dict(
        principal_kind="professional",
        client_id="ecd-1",
        organisation_ura=f"0000{i % 3}",
        practitioner=(UZI, "900001111"),
        method="GET",
        path=f"Observation/{i}",
        resources=(("Observation", str(i), "1"),),
        patient_ids=patients if patients is not None else (f"p{i % 7}",),
        purpose_of_use=("TREAT",),
    )
    facts.update(kw)
    return AuditRecord("read", status, **facts)


async def started_writer(db: Database, key_dir: Path, **kw: Any) -> AuditWriter:
    writer = AuditWriter(db, key_dir=key_dir, **kw)
    await writer.start()
    return writer


async def verify(db: Database, key_dir: Path) -> VerifyResult:
    async with db.read() as conn:
        return await verify_log(conn, keyring=AuditKeyring.load(key_dir), witness_dir=key_dir)


async def tamper(db: Database, *statements: str | tuple[str, dict[str, Any]]) -> None:
    """Run SQL as an attacker would: on PostgreSQL with the append-only triggers switched off."""
    tables = ("audit_log", "audit_patient", "audit_entity", "audit_checkpoint")
    async with db.write() as conn:
        if not db.is_sqlite:
            for t in tables:
                await conn.execute(text(f"ALTER TABLE {t} DISABLE TRIGGER USER"))
        for s in statements:
            sql, params = (s, {}) if isinstance(s, str) else s
            await conn.execute(text(sql), params)
        if not db.is_sqlite:
            for t in tables:
                await conn.execute(text(f"ALTER TABLE {t} ENABLE TRIGGER USER"))


async def filled(db: Database, key_dir: Path, n: int = 60, every: int = 10) -> AuditWriter:
    writer = await started_writer(db, key_dir, checkpoint_every=every)
    for start in range(0, n, every):  # one batch per `every` records: a checkpoint after each
        await writer.record_many(sample(i) for i in range(start, min(n, start + every)))
    await writer.stop()
    return writer


# --- writing ---


async def test_concurrent_records_get_one_gapless_order(audit_db: Database, tmp_path: Path) -> None:
    writer = await started_writer(audit_db, tmp_path / "keys", checkpoint_every=50)
    seqs = await asyncio.gather(*(writer.record(sample(i)) for i in range(300)))
    assert sorted(seqs) == list(range(1, 301))
    assert writer.batches < 300  # grouped: far fewer commits than records
    await writer.stop()
    result = await verify(audit_db, tmp_path / "keys")
    assert result.ok, result.summary()
    # checkpoints are taken per batch (here probably one batch), and the tail is sealed at stop
    assert result.records == 300 and result.checkpoints >= 1 and result.unsealed == 0


async def test_record_returns_only_after_commit(audit_db: Database, tmp_path: Path) -> None:
    writer = await started_writer(audit_db, tmp_path / "keys")
    seq = await writer.record(sample(1, status=403, denial_reason="no consent"))
    async with audit_db.read() as conn:  # another connection sees it at once
        row = (await conn.execute(text("SELECT outcome, event FROM audit_log WHERE seq = :s"), {"s": seq})).one()
    assert row[0] == "4" and "no consent" in row[1]
    await writer.stop()


async def test_record_in_commits_and_rolls_back_with_the_write(audit_db: Database, tmp_path: Path) -> None:
    writer = await started_writer(audit_db, tmp_path / "keys")
    await writer.record(sample(0))
    with pytest.raises(RuntimeError):
        async with audit_db.write() as conn:
            await writer.record_in(conn, AuditRecord("create", 201, resources=(("Patient", "x", "1"),)))
            raise RuntimeError("the write failed after its audit row was appended")
    async with audit_db.write() as conn:
        seq = await writer.record_in(
            conn, AuditRecord("create", 201, resources=(("Patient", "y", "1"),), patient_ids=("y",))
        )
    assert seq == 2  # the rolled-back append left no gap
    assert await writer.record(sample(3)) == 3
    await writer.stop()
    result = await verify(audit_db, tmp_path / "keys")
    assert result.ok and result.records == 3


async def test_concurrent_write_transactions_chain_in_turn(audit_db: Database, tmp_path: Path) -> None:
    """Write transactions append at once: on PostgreSQL each single record in one statement that waits
    for the head's row lock and chains after what the one before it committed (no compare-and-set
    that fails, no second trip under the lock); a transaction that rolls back after its append
    leaves no gap. The chain then verifies (the links computed in SQL are hub.audit.chain's)."""
    writer = await started_writer(audit_db, tmp_path / "keys")
    await writer.record(sample(0))
    head_statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if "audit_head" in statement:
            head_statements.append(statement)

    async def write(i: int, fail: bool = False) -> int:
        async with audit_db.write() as conn:
            seq = await writer.record_in(
                conn,
                AuditRecord("create", 201, resources=(("Patient", f"x{i}", "1"),), patient_ids=(f"x{i}", "Ünïcode-é")),
            )
            await asyncio.sleep(0.005)  # the others append meanwhile
            if fail:
                raise RuntimeError("the write failed after its audit row was appended")
        return seq

    engine = audit_db.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        seqs = await asyncio.gather(*(write(i) for i in range(1, 13)))
        if not audit_db.is_sqlite:  # (SQLite's BEGIN IMMEDIATE lets one writer in at a time)
            assert len(head_statements) == 12
        outcomes = await asyncio.gather(*(write(i, fail=i % 4 == 0) for i in range(13, 25)), return_exceptions=True)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert sorted(seqs) == list(range(2, 14))
    kept = sorted(o for o in outcomes if isinstance(o, int))
    assert kept == list(range(14, 23))
    assert all(isinstance(o, RuntimeError) for o in outcomes if not isinstance(o, int))
    assert await writer.record(sample(99)) == 23
    await writer.stop()
    result = await verify(audit_db, tmp_path / "keys")
    assert result.ok, result.summary()
    assert result.records == 23
    async with audit_db.read() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM audit_patient WHERE patient_id = 'Ünïcode-é'"))).one()
    assert rows[0] == 21


async def test_a_lost_batch_connection_fails_its_batch_only(audit_db: Database, tmp_path: Path, backend: str) -> None:
    """The group-commit task keeps its connection between batches; when that connection is lost
    (the server ended its session), the records of that batch fail (never answered as logged)
    and the next batch is appended on a new connection, in the same unbroken chain."""
    writer = await started_writer(audit_db, tmp_path / "keys")
    assert await writer.record(sample(1)) == 1
    assert await writer.record(sample(2)) == 2  # the second batch: on the held connection
    if backend == "postgresql":
        async with audit_db.read() as conn:
            ended = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            assert any(row[0] for row in ended.all())
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver says about a lost session
            await writer.record(sample(3))
    assert await writer.record(sample(4)) == 3
    await writer.stop()
    result = await verify(audit_db, tmp_path / "keys")
    assert result.ok and result.records == 3, result.summary()


async def test_a_lone_record_after_a_write_is_chained_by_the_database(
    audit_db: Database, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group-commit batch of one record after a write moved the head (so the head this writer
    saw last is stale) is chained in SQL in one statement on PostgreSQL, not by the locking path;
    on SQLite the locking path chains it. The chain verifies either way."""
    from hub.audit import writer as writer_module

    writer = await started_writer(audit_db, tmp_path / "keys")
    await writer.record(sample(0))
    locked: list[int] = []
    lock_head = writer_module._lock_head

    async def counted(conn: Any, is_sqlite: bool) -> Any:
        locked.append(1)
        return await lock_head(conn, is_sqlite)

    monkeypatch.setattr(writer_module, "_lock_head", counted)
    other = AuditWriter(audit_db, key_dir=tmp_path / "keys")  # (another process's writes)
    for i in range(1, 6):
        async with audit_db.write() as conn:
            await other.record_in(conn, AuditRecord("create", 201, resources=(("Patient", f"w{i}", "1"),)))
        assert await writer.record(sample(i)) == 2 * i + 1
    assert bool(locked) == audit_db.is_sqlite, locked
    await writer.stop()
    result = await verify(audit_db, tmp_path / "keys")
    assert result.ok and result.records == 11, result.summary()


async def test_two_writers_share_one_chain(audit_db: Database, tmp_path: Path) -> None:
    """Two writers on separate connection pools (as two worker processes would be) keep one order."""
    other = Database(str(audit_db.url.render_as_string(hide_password=False)), pool_size=3)
    try:
        a = await started_writer(audit_db, tmp_path / "keys", checkpoint_every=25)
        b = await started_writer(other, tmp_path / "keys", checkpoint_every=25)
        seqs = await asyncio.gather(*(w.record(sample(i)) for i in range(200) for w in (a, b)))
        assert sorted(seqs) == list(range(1, 401))
        await a.stop()
        await b.stop()
    finally:
        await other.dispose()
    result = await verify(audit_db, tmp_path / "keys")
    assert result.ok, result.summary()


async def test_timed_checkpoint_seals_an_idle_tail(audit_db: Database, tmp_path: Path) -> None:
    writer = await started_writer(audit_db, tmp_path / "keys", checkpoint_every=10_000, checkpoint_seconds=0.2)
    await writer.record_many(sample(i) for i in range(5))
    for _ in range(50):
        await asyncio.sleep(0.05)
        if read_witness(tmp_path / "keys"):
            break
    witnessed = read_witness(tmp_path / "keys")
    assert witnessed and witnessed[-1].seq == 5
    await writer.stop()


async def test_key_rotation_keeps_old_checkpoints_verifiable(audit_db: Database, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    writer = await started_writer(audit_db, keys, checkpoint_every=10)
    await writer.record_many(sample(i) for i in range(20))
    new_kid = rotate(keys)
    await writer.record_many(sample(i) for i in range(20, 40))
    await writer.stop()
    async with audit_db.read() as conn:
        kids = {r[0] for r in (await conn.execute(text("SELECT key_id FROM audit_checkpoint"))).all()}
    assert new_kid in kids and len(kids) == 2
    result = await verify(audit_db, keys)
    assert result.ok, result.summary()


async def test_disabled_writer_writes_nothing(audit_db: Database, tmp_path: Path) -> None:
    writer = await started_writer(audit_db, tmp_path / "keys", enabled=False)
    assert await writer.record(sample(1)) == 0
    await writer.stop()
    async with audit_db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM audit_log"))).scalar_one() == 0


async def test_postgres_refuses_update_delete_truncate(audit_db: Database, tmp_path: Path, backend: str) -> None:
    if backend != "postgresql":
        # SQLite has no roles to protect with; there the chain and signatures are the guard.
        assert audit_db.is_sqlite
        return
    await filled(audit_db, tmp_path / "keys", n=5)
    from sqlalchemy.exc import DBAPIError

    for stmt in (
        "UPDATE audit_log SET outcome = '0' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 5",
        "TRUNCATE audit_log CASCADE",
        "DELETE FROM audit_patient",
        "UPDATE audit_checkpoint SET seq = 1",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with audit_db.write() as conn:
                await conn.execute(text(stmt))


# --- tampering ---


async def test_untouched_log_verifies(audit_db: Database, tmp_path: Path) -> None:
    await filled(audit_db, tmp_path / "keys")
    result = await verify(audit_db, tmp_path / "keys")
    assert result.ok and result.records == 60 and result.checkpoints == 6
    assert result.summary().startswith("OK: 60 records, 6 checkpoints")


async def test_changed_field_is_found_at_its_record(audit_db: Database, tmp_path: Path) -> None:
    await filled(audit_db, tmp_path / "keys")
    await tamper(
        audit_db,
        'UPDATE audit_log SET event = replace(event, \'"outcome":"0"\', \'"outcome":"4"\') WHERE seq = 23',
    )
    result = await verify(audit_db, tmp_path / "keys")
    assert not result.ok and result.first is not None
    assert result.first.seq == 23 and "changed" in result.first.reason
    assert result.summary().startswith("FAILED at seq 23:")


async def test_changed_search_column_is_found(audit_db: Database, tmp_path: Path) -> None:
    """Hiding an access from a client by editing an index row is tampering too."""
    await filled(audit_db, tmp_path / "keys")
    await tamper(audit_db, "DELETE FROM audit_patient WHERE seq = 31")
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 31 and "audit_patient" in result.first.reason
    await tamper(
        audit_db,
        "INSERT INTO audit_patient (patient_id, seq) VALUES ('p3', 31)",
        "UPDATE audit_log SET agent_ura = '99999' WHERE seq = 12",
    )
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 12 and "agent_ura" in result.first.reason


async def test_deleted_record_is_found(audit_db: Database, tmp_path: Path) -> None:
    await filled(audit_db, tmp_path / "keys")
    await tamper(
        audit_db,
        "DELETE FROM audit_log WHERE seq = 17",
        "DELETE FROM audit_patient WHERE seq = 17",
        "DELETE FROM audit_entity WHERE seq = 17",
    )
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 17 and "missing" in result.first.reason


async def test_reordered_records_are_found(audit_db: Database, tmp_path: Path) -> None:
    await filled(audit_db, tmp_path / "keys")
    # swap the positions of records 41 and 44 (every column moves with its seq)
    await tamper(
        audit_db,
        "UPDATE audit_log SET seq = -1 WHERE seq = 41",
        "UPDATE audit_log SET seq = 41 WHERE seq = 44",
        "UPDATE audit_log SET seq = 44 WHERE seq = -1",
        "UPDATE audit_patient SET seq = -1 WHERE seq = 41",
        "UPDATE audit_patient SET seq = 41 WHERE seq = 44",
        "UPDATE audit_patient SET seq = 44 WHERE seq = -1",
        "UPDATE audit_entity SET seq = -1 WHERE seq = 41",
        "UPDATE audit_entity SET seq = 41 WHERE seq = 44",
        "UPDATE audit_entity SET seq = 44 WHERE seq = -1",
    )
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 41 and "prev_hash" in result.first.reason


async def test_tail_cut_is_found(audit_db: Database, tmp_path: Path) -> None:
    await filled(audit_db, tmp_path / "keys")
    # the attacker cuts records 52.. and moves the head back to make the log look whole
    await tamper(
        audit_db,
        "DELETE FROM audit_log WHERE seq >= 52",
        "DELETE FROM audit_patient WHERE seq >= 52",
        "DELETE FROM audit_entity WHERE seq >= 52",
    )
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 52 and "missing" in result.first.reason
    async with audit_db.read() as conn:
        h51 = (await conn.execute(text("SELECT hash FROM audit_log WHERE seq = 51"))).scalar_one()
    await tamper(audit_db, ("UPDATE audit_head SET last_seq = 51, last_hash = :h", {"h": h51}))
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 60 and "cut off the tail" in result.first.reason
    # ... and also deletes the checkpoint over the cut records: the witness file still knows
    await tamper(audit_db, "DELETE FROM audit_checkpoint WHERE seq > 51")
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 60 and "witness" in result.first.reason


async def test_replaced_checkpoint_signature_is_found(audit_db: Database, tmp_path: Path) -> None:
    await filled(audit_db, tmp_path / "keys")
    async with audit_db.read() as conn:
        sig = (await conn.execute(text("SELECT signature FROM audit_checkpoint WHERE seq = 40"))).scalar_one()
    await tamper(audit_db, ("UPDATE audit_checkpoint SET signature = :s WHERE seq = 30", {"s": sig}))
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 30 and "signature" in result.first.reason
    # a signature by a key the hub never had
    forged = AuditKeyring.in_memory().sign(30, "00" * 32)
    await tamper(
        audit_db,
        (
            "UPDATE audit_checkpoint SET signature = :s, key_id = :k WHERE seq = 30",
            {"s": forged.signature, "k": forged.key_id},
        ),
    )
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 30 and "unknown key" in result.first.reason


async def test_recomputed_chain_is_caught_by_the_signatures(audit_db: Database, tmp_path: Path) -> None:
    """An attacker who rewrites a record and recomputes every later hash still fails on a checkpoint."""
    from hub.audit.chain import link_hash

    await filled(audit_db, tmp_path / "keys", n=30, every=10)
    async with audit_db.read() as conn:
        rows = (
            await conn.execute(text("SELECT seq, prev_hash, event FROM audit_log WHERE seq >= 15 ORDER BY seq"))
        ).all()
    prev = rows[0][1]
    statements: list[str | tuple[str, dict[str, Any]]] = []
    for seq, _, event in rows:
        if seq == 15:
            event = event.replace('"outcome":"0"', '"outcome":"4"')
        h = link_hash(prev, seq, event.encode())
        statements.append(
            (
                "UPDATE audit_log SET event = :e, prev_hash = :p, hash = :h, outcome = :o WHERE seq = :s",
                {"e": event, "p": prev, "h": h, "o": "4" if seq == 15 else "0", "s": seq},
            )
        )
        prev = h
    statements.append(("UPDATE audit_head SET last_hash = :h", {"h": prev}))
    await tamper(audit_db, *statements)
    result = await verify(audit_db, tmp_path / "keys")
    assert result.first is not None and result.first.seq == 20 and "checkpoint" in result.first.reason


# --- CLI ---


async def test_cli_verify_and_export(audit_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hub.audit.cli import audit_app
    from hub.audit.export import verify_lines
    from hub.settings import get_settings

    keys = tmp_path / "var" / "audit-keys"
    await filled(audit_db, keys, n=25)
    monkeypatch.setenv("HUB_DATABASE_URL", audit_db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = await asyncio.to_thread(runner.invoke, audit_app, ["verify"])
        assert ok.exit_code == 0, ok.output
        assert ok.output.startswith("OK: 25 records, 3 checkpoints")
        out = tmp_path / "audit.ndjson"
        exported = await asyncio.to_thread(runner.invoke, audit_app, ["export", "--since", "seq:5", "-o", str(out)])
        assert exported.exit_code == 0, exported.output
        lines = out.read_bytes().splitlines()
        assert len(lines) == 20 and lines[0].startswith(b'{"id":"6",')
        assert verify_lines(lines) == []
        since_date = await asyncio.to_thread(
            runner.invoke, audit_app, ["export", "--since", "2000-01-01", "-o", str(out)]
        )
        assert since_date.exit_code == 0 and len(out.read_bytes().splitlines()) == 25
        assert verify_lines([lines[0].replace(b'"outcome":"0"', b'"outcome":"4"')])[0][0] == 6
        await tamper(audit_db, "DELETE FROM audit_log WHERE seq = 9")
        bad = await asyncio.to_thread(runner.invoke, audit_app, ["verify"])
        assert bad.exit_code == 1
        assert bad.output.startswith("FAILED at seq 9: record 9 is missing")
    finally:
        get_settings.cache_clear()


# --- scale ---


async def test_100k_records_verify_clean(audit_db: Database, tmp_path: Path, backend: str) -> None:
    keys = tmp_path / "keys"
    writer = await started_writer(audit_db, keys, checkpoint_every=10_000, max_batch=2000, checkpoint_seconds=3600)
    t0 = time.perf_counter()
    for start in range(0, 100_000, 10_000):
        await writer.record_many(sample(i) for i in range(start, start + 10_000))
    await writer.stop()
    written = time.perf_counter() - t0
    result = await verify(audit_db, keys)
    assert result.ok, result.summary()
    assert result.records == 100_000 and result.checkpoints == 10
    print(
        f"\n[{backend}] wrote 100,000 audit records in {written:.1f} s ({100_000 / written:,.0f}/s); "
        f"verify: {result.summary()}"
    )
    assert result.seconds < 60

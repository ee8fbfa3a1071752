"""A transaction Bundle's creates written together (hub/store/pg_batch.py) store exactly the rows
that one statement per create stores (hub/store/pg_writes.py); a statement run in between sees
every create before it, and a rolled-back transaction leaves none of them behind."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.exc import DBAPIError

from hub.access.tables import resource_author
from hub.fhir import jsonio
from hub.fhir.extract import extract
from hub.fhir.searchparams import load_registry
from hub.store import pg_batch, resources
from hub.store.db import Database
from hub.store.resources import NO_AUTHORSHIP, Authorship
from hub.store.tables import (
    INDEX_TABLES,
    history_compartment,
    idx_compartment,
    outbox_event,
    resource,
    resource_history,
)
from hub.workflows.tables import resource_owner
from tests.conformance.examples import ALL

_TABLES: tuple[Table, ...] = (
    resource,
    resource_history,
    outbox_event,
    resource_author,
    resource_owner,
    idx_compartment,
    *INDEX_TABLES.values(),
)


async def _write_examples(db: Database, prefix: str, *, batched: bool) -> None:
    """Every conformance example as a create (ids ``prefix-N``), with outbox events and authorship;
    a count of what is written so far after the fourth."""
    registry = load_registry()
    async with db.write() as conn:
        if batched:
            pg_batch.start(conn, len(ALL))
        for i, make in enumerate(ALL.values()):
            res = {**make(), "id": f"{prefix}-{i}"}
            rows = extract(res, registry)
            patients = " ".join(sorted(p for t, p in rows.compartments if t == "Patient"))
            event = {"change": "create", "patients": patients, "orgs": "", "old_status": None, "new_status": None}
            authorship = Authorship("ura-1", ("party-a", "party-a", "party-b")) if i % 2 else NO_AUTHORSHIP
            content = jsonio.dumps(res).decode()
            await resources.insert_new(
                conn,
                res["resourceType"],
                res["id"],
                content,
                1000 + i,
                "POST",
                rows,
                "medisch",
                event,
                authorship,
                server_id=True,
            )
            buffer = pg_batch.buffer_of(conn)
            if batched and conn.dialect.name == "postgresql":
                assert buffer is not None and buffer.pending  # (it waits)
            else:
                assert buffer is None
            if i == 3:  # a statement in between sees every create before it
                written = select(func.count()).select_from(resource).where(resource.c.res_id.like(f"{prefix}-%"))
                assert (await conn.execute(written)).scalar() == 4


async def _rows(db: Database, prefix: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the creates ``prefix-N`` wrote, table by table, with pids, hids and ids named by N."""
    async with db.read() as conn:
        number = {
            pid: res_id.split("-", 1)[1]
            for pid, res_id in (
                await conn.execute(
                    select(resource.c.pid, resource.c.res_id).where(resource.c.res_id.like(f"{prefix}-%"))
                )
            ).all()
        }
        hids = {
            hid: number[pid]
            for hid, pid in (await conn.execute(select(resource_history.c.hid, resource_history.c.pid))).all()
            if pid in number
        }
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in _TABLES:
            rows = [r._asdict() for r in (await conn.execute(select(table).where(table.c.pid.in_(number)))).all()]
            out[table.name] = sorted(_named(r, number, prefix) for r in rows)
        comp = select(history_compartment).where(history_compartment.c.hid.in_(hids))
        out["history_compartment"] = sorted(
            (hids[r.hid], r.comp_type, r.comp_id.replace(f"{prefix}-", "N-")) for r in (await conn.execute(comp)).all()
        )
    return out


def _named(row: dict[str, Any], number: dict[int, str], prefix: str) -> tuple[Any, ...]:
    named = {k: v for k, v in row.items() if k not in ("hid", "seq")}
    named["pid"] = number[row["pid"]]
    for key, value in named.items():
        if isinstance(value, (dict, list)):
            value = jsonio.dumps(value).decode()
        if isinstance(value, str):
            named[key] = value.replace(f"{prefix}-", "N-")
    return tuple(sorted((k, repr(v)) for k, v in named.items()))


async def test_creates_written_together_store_the_rows_one_statement_each_stores(fresh_db: Database) -> None:
    await _write_examples(fresh_db, "one", batched=False)
    await _write_examples(fresh_db, "all", batched=True)
    one, together = await _rows(fresh_db, "one"), await _rows(fresh_db, "all")
    assert len(one["resource"]) == len(ALL) and one["idx_token"] and one["history_compartment"]
    assert together == one


async def test_a_rolled_back_transaction_leaves_no_waiting_create_behind(fresh_db: Database) -> None:
    registry = load_registry()
    res = {**ALL["zorgnet-Patient"](), "id": "gone-1"}
    with pytest.raises(RuntimeError, match="refused"):
        async with fresh_db.write() as conn:
            pg_batch.start(conn, 2)
            await resources.insert_new(
                conn, "Patient", "gone-1", jsonio.dumps(res).decode(), 1, "POST", extract(res, registry), server_id=True
            )
            raise RuntimeError("refused")
    async with fresh_db.write() as conn:  # the next transaction on the connection writes only its own
        kept = {**res, "id": "kept-1"}
        await resources.insert_new(
            conn, "Patient", "kept-1", jsonio.dumps(kept).decode(), 2, "POST", extract(kept, registry), server_id=True
        )
    async with fresh_db.read() as conn:
        ids = (await conn.execute(select(resource.c.res_id))).scalars().all()
    assert ids == ["kept-1"]


async def test_creates_left_by_a_transaction_that_ended_unseen_are_never_written(fresh_db: Database) -> None:
    """A buffer whose transaction ended without a rollback (a broken connection) is dropped unwritten
    by the next statement on the connection. (SQLite keeps no buffer: its creates are written at once.)"""
    registry = load_registry()
    res = {**ALL["zorgnet-Patient"](), "id": "stale-1"}
    async with fresh_db.write() as conn:
        pg_batch.start(conn, 2)
        buffer = pg_batch.buffer_of(conn)
        if fresh_db.is_sqlite:
            assert buffer is None
            return
        assert buffer is not None
        await resources.insert_new(
            conn, "Patient", "stale-1", jsonio.dumps(res).decode(), 1, "POST", extract(res, registry), server_id=True
        )
        stale = buffer.take()  # as if its transaction had ended unseen
    buffer.transaction, buffer.pending = object(), stale
    async with fresh_db.write() as conn:
        conn.info["hub.pg_batch"] = buffer
        assert (await conn.execute(select(func.count()).select_from(resource))).scalar() == 0
        assert "hub.pg_batch" not in conn.info
    async with fresh_db.read() as conn:
        assert (await conn.execute(select(resource.c.res_id))).scalars().all() == []


async def test_a_transaction_whose_connection_broke_rolls_back_cleanly(fresh_db: Database) -> None:
    """The rollback after a broken connection (a request cancelled when its client went away) cannot
    read the connection's info; the listener leaves the buffer to be dropped later instead of raising
    PendingRollbackError over the error that ended the transaction."""
    if fresh_db.is_sqlite:
        return  # (no buffer, no listener)
    registry = load_registry()
    res = {**ALL["zorgnet-Patient"](), "id": "broken-1"}
    with pytest.raises(DBAPIError):
        async with fresh_db.write() as conn:
            own = (await conn.execute(select(func.pg_backend_pid()))).scalar()
            pg_batch.start(conn, 2)
            await resources.insert_new(
                conn,
                "Patient",
                "broken-1",
                jsonio.dumps(res).decode(),
                1,
                "POST",
                extract(res, registry),
                server_id=True,
            )
            async with fresh_db.read() as other:
                await other.execute(select(func.pg_terminate_backend(own)))
            await conn.execute(select(1))  # the waiting create meets a session that is gone
    async with fresh_db.read() as conn:
        assert (await conn.execute(select(resource.c.res_id))).scalars().all() == []


async def test_a_waiting_registration_answers_as_the_in_care_statement_does_once_written(fresh_db: Database) -> None:
    """The access check's shortcut (hub.access.policy: registered in this transaction) says what the
    in-care statement says once the waiting Patient is written: registered by its author only."""
    from hub.access.policy import _IN_CARE

    registry = load_registry()
    res = {**ALL["zorgnet-Patient"](), "id": "new-1"}
    async with fresh_db.write() as conn:
        pg_batch.start(conn, 2)
        await resources.insert_new(
            conn,
            "Patient",
            "new-1",
            jsonio.dumps(res).decode(),
            1,
            "POST",
            extract(res, registry),
            authorship=Authorship("ura-1"),
            server_id=True,
        )
        asked = [("new-1", "ura-1"), ("new-1", "ura-2"), ("other", "ura-1")]
        waiting = [pg_batch.waiting_with_author(conn, "Patient", p, u) for p, u in asked]
        written = [
            bool((await conn.execute(_IN_CARE, {"care_patient": p, "care_ura": u, "care_now": 2})).scalar())
            for p, u in asked
        ]
    assert written == [True, False, False]
    assert waiting == ([True, False, False] if not fresh_db.is_sqlite else [False, False, False])


async def test_a_statement_that_reads_none_of_what_waits_leaves_it_waiting(fresh_db: Database) -> None:
    """A statement naming the types it reads (pg_batch.READS) runs before the waiting creates only
    when none of them is of such a type; one that names a waiting type, or none at all, sees them."""
    registry = load_registry()
    res = {**ALL["zorgnet-Patient"](), "id": "wait-1"}
    count = select(func.count()).select_from(resource).where(resource.c.res_id == "wait-1")
    async with fresh_db.write() as conn:
        pg_batch.start(conn, 2)
        await resources.insert_new(
            conn, "Patient", "wait-1", jsonio.dumps(res).decode(), 1, "POST", extract(res, registry), server_id=True
        )
        waits = not fresh_db.is_sqlite  # (SQLite writes each create at once)
        other_types = count.execution_options(**{pg_batch.READS: frozenset({"Organization"})})
        assert (await conn.execute(other_types)).scalar() == (0 if waits else 1)
        assert (await conn.execute(count.execution_options(**{pg_batch.READS: frozenset()}))).scalar() == (
            0 if waits else 1
        )
        buffer = pg_batch.buffer_of(conn)
        assert (buffer is not None and len(buffer.pending) == 1) == waits
        patients = count.execution_options(**{pg_batch.READS: frozenset({"Patient"})})
        assert (await conn.execute(patients)).scalar() == 1  # it reads Patients: written first
        left = pg_batch.buffer_of(conn)
        assert left is None or not left.pending
    async with fresh_db.read() as conn:
        assert (await conn.execute(count)).scalar() == 1

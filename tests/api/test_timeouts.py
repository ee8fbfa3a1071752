"""The statement timeout (PostgreSQL), statements too complex to compile (SQLite), and cancelling
a request's work when its client goes away."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hub.api.disconnect import CancelOnDisconnect
from hub.fhir.errors import BadRequest
from hub.store.db import Database, cost_error


async def test_costly_statements_are_a_400(database_url: str, backend: str) -> None:
    db = Database(database_url, pool_size=1, statement_timeout_ms=200)
    try:
        if backend == "postgresql":
            statement = text("SELECT pg_sleep(5)")
        else:  # SQLite refuses to compile an expression nested this deep
            statement = text("SELECT " + "(" * 1200 + "1" + ")" * 1200 + " OR " + " OR ".join(["1=1"] * 1100))
        started = time.monotonic()
        with pytest.raises(DBAPIError) as caught:
            async with db.read() as conn:
                await conn.execute(statement)
        assert time.monotonic() - started < 2
        error = cost_error(caught.value, db.statement_timeout_ms)
        assert isinstance(error, BadRequest) and error.status == 400
        assert error.issues[0].code == "too-costly"
        if backend == "postgresql":
            assert "200 ms" in error.diagnostics
        async with db.read() as conn:  # the connection is usable afterwards
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.dispose()


async def test_other_database_errors_stay_errors(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    try:
        with pytest.raises(DBAPIError) as caught:
            async with db.read() as conn:
                await conn.execute(text("SELECT * FROM no_such_table"))
        assert cost_error(caught.value) is None
        assert cost_error(ValueError("x")) is None
    finally:
        await db.dispose()


async def _running_sleeps(db: Database) -> int:
    async with db.read() as conn:
        rows = await conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'")
        )
        return int(rows.scalar_one())


async def test_client_disconnect_cancels_the_work(database_url: str, backend: str) -> None:
    """A handler waiting on the database is cancelled when the client leaves; on PostgreSQL the
    statement itself is cancelled too (asyncpg sends a cancel request)."""
    db = Database(database_url, pool_size=2)
    finished: list[str] = []

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # the (empty) body
        try:
            if backend == "postgresql":
                async with db.read() as conn:
                    await conn.execute(text("SELECT pg_sleep(30)"))
            else:
                await asyncio.sleep(30)
        except asyncio.CancelledError:
            finished.append("cancelled")
            raise
        finished.append("completed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.5)  # the client waits a little, then goes away
        if backend == "postgresql":
            running.append(await _running_sleeps(db))
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    running: list[int] = []
    scope = {"type": "http", "method": "GET", "path": "/slow", "headers": []}
    try:
        started = time.monotonic()
        await asyncio.wait_for(CancelOnDisconnect(slow_app)(scope, receive, send), timeout=10)
        assert time.monotonic() - started < 3
        assert finished == ["cancelled"] and sent == []
        if backend == "postgresql":
            assert running == [1]  # the statement was running when the client left
            for _ in range(50):
                if await _running_sleeps(db) == 0:
                    break
                await asyncio.sleep(0.1)
            assert await _running_sleeps(db) == 0
    finally:
        await db.dispose()


async def test_finished_requests_are_not_cancelled() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await CancelOnDisconnect(app)({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]

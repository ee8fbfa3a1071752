"""The disconnect watcher starts late (or when the handler waits for the client) and still cancels the
work of a client that left, and only that work."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hub.api.disconnect import CancelOnDisconnect

SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": []}


class _Client:
    """An empty request body, then a disconnect after ``leaves_after`` seconds."""

    def __init__(self, leaves_after: float) -> None:
        self.leaves_after = leaves_after
        self.calls = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(self.leaves_after)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def _answer(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_a_fast_answer_never_reads_from_the_client() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _answer(send)

    client = _Client(0.01)
    await CancelOnDisconnect(app)(SCOPE, client.receive, client.send)
    assert client.calls == 0 and len(client.sent) == 2


async def test_a_handler_that_never_reads_is_cancelled_once_watched() -> None:
    finished: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            finished.append("cancelled")
            raise
        await _answer(send)

    client = _Client(0.2)
    started = time.monotonic()
    await asyncio.wait_for(CancelOnDisconnect(app, watch_after=0.05)(SCOPE, client.receive, client.send), 5)
    assert time.monotonic() - started < 2
    assert finished == ["cancelled"] and client.sent == []
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_handler_waiting_for_the_client_is_cancelled() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        await receive()  # waits for the client
        await asyncio.sleep(30)

    client = _Client(0.05)
    await asyncio.wait_for(CancelOnDisconnect(app, watch_after=10)(SCOPE, client.receive, client.send), 5)
    assert client.sent == []
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_handler_that_swallows_the_cancellation_leaves_the_task_clean() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass
        await _answer(send)

    client = _Client(0.05)
    await asyncio.wait_for(CancelOnDisconnect(app, watch_after=0.01)(SCOPE, client.receive, client.send), 5)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)  # no stray cancellation arrives later


async def test_a_cancellation_from_outside_goes_through() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(30)

    client = _Client(30)
    task = asyncio.ensure_future(CancelOnDisconnect(app, watch_after=0.01)(SCOPE, client.receive, client.send))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_answered_request_is_not_cancelled() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _answer(send)
        await asyncio.sleep(0.2)  # work after the answer (the audit note, say)

    client = _Client(0.01)
    await asyncio.wait_for(CancelOnDisconnect(app, watch_after=0.01)(SCOPE, client.receive, client.send), 5)
    assert len(client.sent) == 2

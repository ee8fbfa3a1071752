"""Cancel a request's work when its client goes away.

Starlette keeps running a handler after the client has disconnected; a costly search would then run
to the end (on PostgreSQL, until ``statement_timeout``) for nobody. This pure ASGI middleware watches
the client's messages: once the request body has been passed on, a ``http.disconnect`` before the
response is complete cancels the request's task. Cancelling the task cancels the await on the
database driver, and asyncpg then sends PostgreSQL a cancel request for the running statement.

The handler runs in the request's own task, and the watcher (a task of its own, reading the client's
messages ahead of the handler) starts only when the handler waits for the client or once the request
has run for :data:`WATCH_AFTER` seconds: most requests are answered sooner, and two tasks per request
were a tenth of a read-by-id's CPU. A client that leaves is noticed at most that much later.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

Message = dict[str, Any]

#: Seconds a request runs before its client is watched (unless the handler waits for the client).
WATCH_AFTER = 0.1


class CancelOnDisconnect:
    """Wraps an ASGI app; only ``http`` scopes are watched."""

    def __init__(self, app: Any, watch_after: float = WATCH_AFTER) -> None:
        self.app = app
        self.watch_after = watch_after

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(task, receive)
        timer = asyncio.get_running_loop().call_later(self.watch_after, watch.start)

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                watch.responded = True
            await send(message)

        try:
            await self.app(scope, watch.receive, watched_send)
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise  # cancelled from outside (server shutdown): not ours to swallow
            if watch.cancelled:
                watch.cancelled = False
                if task.uncancel() > 0:
                    raise  # and from outside too
        finally:
            watch.handled = True
            timer.cancel()
            if watch.cancelled:  # the handler swallowed our cancellation: take it back
                task.uncancel()
            await watch.stop()


class _Watch:
    """The client's messages of one request: read by the handler itself until the watcher starts,
    then by the watcher alone (one message of read-ahead, so it never buffers a body the handler has
    not asked for), which cancels the request's task on a disconnect."""

    def __init__(self, task: asyncio.Task[Any], receive: Any) -> None:
        self.task = task
        self.client_receive = receive
        self.inbox: asyncio.Queue[Message] | None = None  # made with the watcher
        self.watcher: asyncio.Task[None] | None = None
        self.body_done = False  # the handler has had the last part of the body
        self.reading = False  # the handler is reading from the client itself
        self.due = False  # the watcher is to start once that read returns
        self.responded = False
        self.handled = False
        self.disconnected = False
        self.cancelled = False  # this watch cancelled the task (and has not taken it back)

    def start(self) -> None:
        if self.watcher is not None or self.handled:
            return
        if self.reading:
            self.due = True
            return
        self.inbox = asyncio.Queue(maxsize=1)
        self.watcher = asyncio.ensure_future(self._watch(self.inbox))

    async def receive(self) -> Message:
        if self.watcher is None and not self.body_done:
            self.reading = True
            try:
                message: Message = await self.client_receive()
            finally:
                self.reading = False
            if message["type"] == "http.disconnect":
                self.body_done = True
                self._cancel()
            elif not message.get("more_body", False):
                self.body_done = True
            if self.due:
                self.start()
            return message
        self.start()
        if self.inbox is None:  # the request is over
            return {"type": "http.disconnect"}
        return await self.inbox.get()

    async def _watch(self, inbox: asyncio.Queue[Message]) -> None:
        while True:
            message = await self.client_receive()
            if message["type"] == "http.disconnect":
                self._cancel()
                with contextlib.suppress(asyncio.QueueFull):
                    inbox.put_nowait(message)
                return
            await inbox.put(message)

    def _cancel(self) -> None:
        """The client left: cancel the request's task unless it has answered."""
        if not (self.responded or self.handled or self.disconnected):
            self.disconnected = True
            self.cancelled = True
            self.task.cancel()

    async def stop(self) -> None:
        watcher, self.watcher = self.watcher, None
        self.handled = True
        if watcher is None:
            return
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

"""Cancel a request's work when its client goes away.

Starlette keeps running a handler after the client has disconnected; a costly search would then run
to the end (on PostgreSQL, until ``statement_timeout``) for nobody. This pure ASGI middleware reads
the client's messages itself: once the request body has been passed on, a ``http.disconnect``
before the response is complete cancels the handler's task. Cancelling the task cancels the await
on the database driver, and asyncpg then sends PostgreSQL a cancel request for the running statement.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

Message = dict[str, Any]


class CancelOnDisconnect:
    """Wraps an ASGI app; only ``http`` scopes are watched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One message of read-ahead: the watcher never buffers a body the handler has not asked for.
        inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)
        state = {"responded": False, "disconnected": False}

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                state["responded"] = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, inbox.get, watched_send))

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not state["responded"] and not handler.done():
                        state["disconnected"] = True
                        handler.cancel()
                    with contextlib.suppress(asyncio.QueueFull):
                        inbox.put_nowait(message)
                    return
                await inbox.put(message)

        watcher = asyncio.ensure_future(watch())
        try:
            await handler
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise  # cancelled from outside (server shutdown): not ours to swallow
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

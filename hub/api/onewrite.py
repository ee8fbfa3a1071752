"""uvicorn's HTTP protocol, writing a response's head and its body in one go.

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the body
when it sends ``http.response.body``: two writes, so two ``send`` system calls and two packets on a
connection with ``TCP_NODELAY``, and the client wakes up twice. Nearly every hub answer has its whole
body at once (a ``Content-Length``), so the head is held until the body comes and both are written
together: one system call per response (on a read-by-id the second write was a tenth of the worker's
CPU). A response without ``Content-Length`` (streamed: bulk export files, event streams) is written
as uvicorn writes it, the head at once.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _HeldHead:
    """The connection's transport for one response, holding the head written through it until the
    first body write (or until anything else is asked of it)."""

    __slots__ = ("transport", "head")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.head is None:
            self.head = data
            return
        head, self.head = self.head, b""
        self.transport.write(head + data if head else data)

    def flush(self) -> None:
        if self.head:
            self.transport.write(self.head)
        self.head = b""

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's request-response cycle; a head with ``Content-Length`` goes out with the body."""

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started and _has_length(message):
            transport = self.transport
            held = _HeldHead(transport)
            self.transport = held  # type: ignore[assignment]
            try:
                await super().send(message)
            except BaseException:
                self.transport = transport
                held.flush()
                raise
            if held.head is None:  # nothing written (a disconnected client): nothing to hold
                self.transport = transport
            return
        held_head = self.transport if isinstance(self.transport, _HeldHead) else None
        if held_head is None:
            await super().send(message)
            return
        try:
            await super().send(message)
        finally:
            self.transport = held_head.transport
            held_head.flush()


def _has_length(message: Any) -> bool:
    return any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))


class OneWriteProtocol(HttpToolsProtocol):
    """``uvicorn --http``: the httptools protocol whose responses go out in one write."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = _OneWriteCycle
        super()._start_asgi_task(cycle, app)


__all__ = ["OneWriteProtocol"]

"""The HTTP protocol of ``hub serve`` writes a response's head and body in one go, and answers as
uvicorn's own does (whole bodies, streamed bodies, HEAD, an app that stops half-way)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from hub.api.onewrite import OneWriteProtocol, _OneWriteCycle


class _Transport:
    """Records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle(method: str = "GET", keep_alive: bool = True) -> tuple[RequestResponseCycle, _Transport]:
    transport = _Transport()
    cycle = RequestResponseCycle(
        scope={"type": "http", "method": method, "path": "/", "headers": []},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    cycle.__class__ = _OneWriteCycle
    return cycle, transport


_START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
_BODY = {"type": "http.response.body", "body": b"ok"}


async def test_a_whole_response_is_one_write() -> None:
    cycle, transport = _cycle()
    await cycle.send(_START)
    assert transport.writes == []
    await cycle.send(_BODY)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and transport.writes[0].endswith(b"\r\n\r\nok")
    assert cycle.response_complete and cycle.transport is transport


async def test_the_head_of_a_streamed_response_goes_out_at_once() -> None:
    cycle, transport = _cycle()
    await cycle.send({"type": "http.response.start", "status": 200, "headers": []})
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    await cycle.send({"type": "http.response.body", "body": b"ok", "more_body": True})
    await cycle.send({"type": "http.response.body", "body": b""})
    assert transport.writes[1:] == [b"2\r\nok\r\n", b"0\r\n\r\n"]


async def test_head_requests_get_the_head_alone() -> None:
    cycle, transport = _cycle("HEAD")
    await cycle.send(_START)
    await cycle.send(_BODY)
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"content-length: 2\r\n\r\n")


async def test_a_closed_connection_still_gets_the_head_first() -> None:
    cycle, transport = _cycle(keep_alive=False)
    await cycle.send(_START)
    cycle.transport.close()  # what uvicorn does when the app returns without a body
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200 OK") and transport.closed


async def test_a_body_longer_than_announced_is_refused_after_the_head() -> None:
    cycle, transport = _cycle()
    await cycle.send(_START)
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.body", "body": b"too long"})
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200 OK")
    assert cycle.transport is transport


async def _numbers() -> AsyncIterator[bytes]:
    for i in range(3):
        yield f"{i}\n".encode()
        await asyncio.sleep(0)


async def _whole(request: Request) -> Response:
    return PlainTextResponse("x" * 100_000 if request.query_params.get("big") else "hello")


async def _streamed(request: Request) -> Response:
    return StreamingResponse(_numbers(), media_type="text/plain")


async def test_a_live_server_answers_as_uvicorn_does() -> None:
    app = Starlette(routes=[Route("/whole", _whole, methods=["GET", "HEAD"]), Route("/streamed", _streamed)])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=OneWriteProtocol, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):  # several on one kept-alive connection
                r = await client.get("/whole")
                assert (r.status_code, r.text, r.headers["content-length"]) == (200, "hello", "5")
            r = await client.get("/whole", params={"big": "1"})
            assert len(r.content) == 100_000
            r = await client.head("/whole")
            assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "5"
            r = await client.get("/streamed")
            assert r.text == "0\n1\n2\n" and r.headers["transfer-encoding"] == "chunked"
            r = await client.get("/missing")
            assert r.status_code == 404
    finally:
        server.should_exit = True
        await serving

"""The non-FHIR HTTP routes of notifications: the websocket channel and the admin dead-letter view.

Websocket (R4 Backport IG): the client gets a token from ``Subscription/{id}/$get-ws-binding-token``,
opens ``/ws/subscriptions`` and sends ``bind-with-token <token>``; the hub answers with a
handshake Bundle and then pushes notifications (and heartbeats) as text frames. While bound, the
connection holds the subscription's delivery lease, so no other connection or worker delivers
the same events at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from sqlalchemy import select, update
from starlette.responses import JSONResponse

from hub.events.delivery import Deliverer, DeliveryConfig, DeliveryFailed, claim, dead_letters, dispatch
from hub.events.metrics import COUNTERS
from hub.events.subscriptions import token_hash
from hub.events.tables import subscription_state
from hub.fhir.errors import FhirError, Forbidden
from hub.fhir.instants import now_us

router = APIRouter()


@router.get("/admin/events/dead-letters", include_in_schema=False)
async def dead_letter_view(request: Request) -> JSONResponse:
    """Subscriptions in error or switched off, with their undelivered event counts (admins only)."""
    services = request.app.state.services
    try:
        principal = await services.verifier.verify_authorization(request.headers.get("authorization"))
        if not principal.is_admin:
            raise Forbidden("The dead-letter view is for administrators")
    except FhirError as exc:
        return JSONResponse(exc.outcome(), status_code=exc.status, media_type="application/fhir+json")
    async with services.repo.db.read() as conn:
        rows = await dead_letters(conn)
    return JSONResponse({"subscriptions": rows, "counters": COUNTERS.snapshot()})


@router.websocket("/ws/subscriptions")
async def websocket_channel(ws: WebSocket) -> None:
    services = ws.app.state.services
    db = services.repo.db
    await ws.accept()
    try:
        message = await asyncio.wait_for(ws.receive_text(), timeout=30)
    except (TimeoutError, WebSocketDisconnect):
        with contextlib.suppress(Exception):
            await ws.close(code=1008)
        return
    token = message.removeprefix("bind-with-token").strip()
    sub_id = await _bind(db, token) if message.startswith("bind-with-token ") else None
    if sub_id is None:
        await ws.send_text('{"error": "unknown or expired binding token"}')
        await ws.close(code=1008)
        return
    config = DeliveryConfig.from_settings(services.settings)
    worker = f"ws-{uuid.uuid4().hex[:12]}"

    async def send(_st: Any, body: bytes) -> None:
        try:
            await ws.send_text(body.decode())
        except Exception as exc:  # the socket went away
            raise DeliveryFailed(f"websocket closed: {type(exc).__name__}") from None

    deliverer = Deliverer(db, services.settings.fhir_base, send, worker=worker, config=config, audit=services.audit)
    closed = asyncio.Event()

    async def reader() -> None:
        with contextlib.suppress(Exception):
            while True:
                await ws.receive_text()
        closed.set()

    reading = asyncio.create_task(reader())
    try:
        handshaken = False
        while not closed.is_set():
            await dispatch(db, config.dispatch_batch)  # also without a worker process running
            leased = bool(
                await claim(
                    db,
                    worker,
                    channel="websocket",
                    limit=1,
                    lease_seconds=config.lease_seconds,
                    sub_id=sub_id,
                    include_requested=not handshaken,
                )
            )
            if not handshaken and not leased:
                leased = await _force_lease(db, worker, sub_id, config.lease_seconds)
            if leased:
                try:
                    if not handshaken:
                        handshaken = True
                        await deliverer.deliver_once(sub_id, handshake=True)
                    while not closed.is_set() and await deliverer.deliver_once(sub_id):
                        pass
                finally:
                    from hub.events.delivery import release

                    await release(db, worker, [sub_id])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), timeout=config.poll_seconds)
    finally:
        reading.cancel()
        with contextlib.suppress(Exception):
            await ws.close()


async def _bind(db: Any, token: str) -> str | None:
    s = subscription_state
    async with db.write() as conn:
        row = (
            await conn.execute(
                select(s.c.sub_id, s.c.ws_token_expires, s.c.status).where(
                    s.c.ws_token_hash == token_hash(token), s.c.channel == "websocket"
                )
            )
        ).first()
        if row is None or row[1] < now_us() or row[2] == "off":
            return None
        # single use
        await conn.execute(update(s).where(s.c.sub_id == row[0]).values(ws_token_hash=None, ws_token_expires=0))
    return str(row[0])


async def _force_lease(db: Any, worker: str, sub_id: str, lease_seconds: float) -> bool:
    """The handshake of a fresh binding is due even with nothing else to send."""
    s = subscription_state
    now = now_us()
    async with db.write() as conn:
        result = await conn.execute(
            update(s)
            .where(s.c.sub_id == sub_id, s.c.lease_until < now)
            .values(lease_owner=worker, lease_until=now + int(lease_seconds * 1_000_000))
        )
    return bool(result.rowcount)

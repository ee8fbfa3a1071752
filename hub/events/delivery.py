"""Fan-out and delivery of outbox events: at least once, in order per subscription, access decided
at delivery time.

1. **Dispatch** (:func:`dispatch`): one dispatcher at a time (a PostgreSQL advisory lock; SQLite's
   write lock) takes the oldest ``outbox_event`` rows, matches them against the subscriptions'
   topics and filters, appends a numbered ``subscription_event`` per match (1, 2, 3 ... per
   subscription) and removes the outbox rows — all in one transaction, so an event is fanned out
   exactly once.
2. **Claim** (:func:`claim`): a worker leases due subscriptions (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, then ``lease_owner``/``lease_until``), so two workers never deliver to the same
   subscription at the same time; a worker killed mid-delivery loses its lease when it expires
   and another worker delivers the same events again (the receiver deduplicates by event number).
3. **Deliver** (:class:`Deliverer`): the handshake first, then the subscription's undelivered
   events in order, up to ``max_count`` per notification; each batch is filtered by the access
   policy of the subscriber *now* (a withdrawn consent stops the next notification), audited as a
   disclosure, sent, and only after the receiver's 2xx is the subscription's ``delivered`` number
   advanced. A failure backs off exponentially with jitter; after ``error_after`` failures the
   status is ``error`` (still retried), after ``off_after`` it is ``off`` (a dead letter, see
   :func:`dead_letters`). Heartbeats go out when nothing was sent for the heartbeat period.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.events import owners
from hub.events.metrics import COUNTERS, Counters
from hub.events.notifications import Event, dumps, notification_bundle
from hub.events.tables import outbox_event, subscription_event, subscription_state
from hub.events.topics import BY_URL, EventFacts, matches
from hub.fhir.instants import now_us
from hub.store.db import Database

log = logging.getLogger("hub.events")

#: The PostgreSQL advisory lock that makes one dispatcher run at a time.
DISPATCH_LOCK = 0x5A4E4431
LIVE = ("requested", "active", "error")


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    poll_seconds: float = 0.2
    lease_seconds: float = 30.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    error_after: int = 3
    off_after: int = 10
    dispatch_batch: int = 2000
    claim_batch: int = 8
    rounds_per_claim: int = 20

    @classmethod
    def from_settings(cls, settings: Any) -> DeliveryConfig:
        return cls(
            poll_seconds=settings.events_poll_seconds,
            lease_seconds=settings.events_lease_seconds,
            backoff_base=settings.events_backoff_base,
            backoff_cap=settings.events_backoff_cap,
            error_after=settings.events_error_after,
            off_after=settings.events_off_after,
        )

    def backoff_us(self, failures: int) -> int:
        """Exponential backoff with full jitter in [½, 1] of the step: 1 s, 2 s, 4 s ... up to the cap."""
        step = min(self.backoff_cap, self.backoff_base * (2 ** max(0, failures - 1)))
        return int(step * random.uniform(0.5, 1.0) * 1_000_000)


class DeliveryFailed(Exception):
    """The receiver did not acknowledge a notification."""


# -- dispatch --------------------------------------------------------------------------------------


async def dispatch(db: Database, limit: int = 2000, counters: Counters = COUNTERS) -> int:
    """Fan out up to ``limit`` outbox events; returns how many were taken. An empty outbox costs one
    read (no transaction, no lock), which is what an idle worker's polling mostly finds."""
    o = outbox_event
    async with db.read() as conn:
        if (await conn.execute(select(o.c.seq).limit(1))).first() is None:
            return 0
    async with db.write() as conn:
        # Take the oldest rows out of the outbox; on PostgreSQL only while holding the dispatch lock
        # (an InitPlan evaluated once: no lock, no rows). They come back in any order: sort by seq.
        taking = select(o.c.seq).order_by(o.c.seq).limit(limit)
        if not db.is_sqlite:
            taking = taking.where(select(func.pg_try_advisory_xact_lock(DISPATCH_LOCK)).scalar_subquery())
        rows = sorted(
            (await conn.execute(delete(o).where(o.c.seq.in_(taking.scalar_subquery())).returning(*o.c)))
            .mappings()
            .all(),
            key=lambda r: int(r["seq"]),
        )
        if not rows:
            return 0
        s = subscription_state
        subs = (
            (
                await conn.execute(
                    select(s.c.sub_id, s.c.topic, s.c.filters, s.c.owner_key, s.c.events_total, s.c.created).where(
                        s.c.status.in_(LIVE)
                    )
                )
            )
            .mappings()
            .all()
        )
        parsed = [
            (
                sub["sub_id"],
                BY_URL.get(sub["topic"]),
                [tuple(f) for f in orjson.loads(sub["filters"])],
                owners.owner_ura(sub["owner_key"]),
                int(sub["created"]),
            )
            for sub in subs
        ]
        totals = {sub["sub_id"]: int(sub["events_total"]) for sub in subs}
        start = dict(totals)
        fanned: list[dict[str, Any]] = []
        for row in rows:
            facts = EventFacts(
                row["res_type"],
                row["category"],
                row["change"],
                frozenset((row["patients"] or "").split()),
                frozenset((row["orgs"] or "").split()),
                row["new_status"],
            )
            for sub_id, topic, filters, ura, created in parsed:
                if topic is None or row["recorded"] < created or not matches(topic, filters, facts, ura):
                    continue
                totals[sub_id] += 1
                fanned.append(
                    {
                        "sub_id": sub_id,
                        "number": totals[sub_id],
                        "recorded": row["recorded"],
                        "pid": row["pid"],
                        "res_type": row["res_type"],
                        "res_id": row["res_id"],
                        "version": row["version"],
                        "change": row["change"],
                        "patients": row["patients"] or "",
                        "old_status": row["old_status"],
                        "new_status": row["new_status"],
                    }
                )
        changed = {k: v for k, v in totals.items() if v != start[k]}
        if fanned and db.is_sqlite:
            await conn.execute(insert(subscription_event), fanned)
            await conn.execute(
                update(s).where(s.c.sub_id == bindparam("b_id")).values(events_total=bindparam("b_total")),
                [{"b_id": k, "b_total": v} for k, v in changed.items()],
            )
        elif fanned:
            await _fan_out_pg(conn, fanned, changed)
    counters.inc("dispatched", len(rows))
    counters.inc("matched", len(fanned))
    return len(rows)


_EVENT_COLUMNS = (
    "sub_id",
    "number",
    "recorded",
    "pid",
    "res_type",
    "res_id",
    "version",
    "change",
    "patients",
    "old_status",
    "new_status",
)
_EVENT_TYPES = ("text", "bigint", "bigint", "bigint", "text", "text", "int", "text", "text", "text", "text")


def _fan_out_sql() -> str:
    """The subscriptions' new events and their new totals in one statement (PostgreSQL; every value
    a parameter, column names from the table)."""
    n = len(_EVENT_COLUMNS)
    arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_EVENT_TYPES))
    return (
        f"WITH ins AS (INSERT INTO subscription_event ({', '.join(_EVENT_COLUMNS)}) "  # noqa: S608
        f"SELECT * FROM unnest({arrays})) "
        f"UPDATE subscription_state AS s SET events_total = t.total "
        f"FROM unnest(${n + 1}::text[], ${n + 2}::bigint[]) AS t(sub_id, total) WHERE s.sub_id = t.sub_id"
    )


async def _fan_out_pg(conn: AsyncConnection, fanned: list[dict[str, Any]], totals: dict[str, int]) -> None:
    """One round trip instead of an INSERT and an UPDATE (asyncpg, inside the dispatch transaction)."""
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    columns = [[f[c] for f in fanned] for c in _EVENT_COLUMNS]
    await raw.execute(_fan_out_sql(), *columns, list(totals), list(totals.values()))


# -- claiming --------------------------------------------------------------------------------------


async def claim(
    db: Database,
    worker: str,
    *,
    channel: str,
    limit: int,
    lease_seconds: float,
    sub_id: str | None = None,
    include_requested: bool = True,
) -> list[Mapping[str, Any]]:
    """Lease up to ``limit`` subscriptions with work due (events, a handshake or a heartbeat);
    returns their state rows as leased. One statement (an UPDATE of the rows a ``FOR UPDATE SKIP
    LOCKED`` subquery picked, returning them): one round trip on PostgreSQL, and the first
    notification needs no second read of the state."""
    now = now_us()
    s = subscription_state
    due = [s.c.delivered < s.c.events_total, and_(s.c.heartbeat > 0, s.c.last_sent + s.c.heartbeat * 1_000_000 <= now)]
    if include_requested:
        due.append(s.c.status == "requested")
    cond = [s.c.channel == channel, s.c.status.in_(LIVE), s.c.next_attempt <= now, s.c.lease_until < now, or_(*due)]
    if sub_id is not None:
        cond.append(s.c.sub_id == sub_id)
    picked = (
        select(s.c.sub_id)
        .where(*cond)
        .order_by(s.c.next_attempt, s.c.sub_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with db.write_one() as conn:
        rows = (
            (
                await conn.execute(
                    update(s)
                    .where(s.c.sub_id.in_(picked.scalar_subquery()))
                    .values(lease_owner=worker, lease_until=now + int(lease_seconds * 1_000_000))
                    .returning(*s.c)
                )
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


async def release(db: Database, worker: str, sub_ids: Sequence[str] | None = None) -> None:
    s = subscription_state
    cond = [s.c.lease_owner == worker]
    if sub_ids is not None:
        cond.append(s.c.sub_id.in_(list(sub_ids)))
    async with db.write_one() as conn:
        await conn.execute(update(s).where(*cond).values(lease_owner=None, lease_until=0))


# -- delivering ------------------------------------------------------------------------------------

#: Sends one notification: (state row, body) -> None, raising DeliveryFailed when not acknowledged.
Send = Callable[[Any, bytes], Awaitable[None]]


class RestHook:
    """The rest-hook channel: POST the Bundle to the endpoint with the subscriber's headers."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self, st: Any, body: bytes) -> None:
        headers = {"Content-Type": "application/fhir+json"}
        for line in orjson.loads(st["headers"] or "[]"):
            name, _, value = str(line).partition(":")
            headers[name.strip()] = value.strip()
        try:
            response = await self.client.post(
                st["endpoint"], content=body, headers=headers, timeout=float(st["timeout"])
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code} from the endpoint")


class Deliverer:
    """Delivers the leased subscriptions of one worker through one channel."""

    def __init__(
        self,
        db: Database,
        base: str,
        send: Send,
        *,
        worker: str,
        config: DeliveryConfig,
        audit: Any = None,
        counters: Counters = COUNTERS,
    ) -> None:
        self.db = db
        self.base = base
        self.send = send
        self.worker = worker
        self.config = config
        self.audit = audit
        self.counters = counters
        #: Set when the worker is stopping: finish the notification in flight, start no other.
        self.stopping = False

    async def deliver(self, sub_id: str, state: Mapping[str, Any] | None = None) -> None:
        """Deliver what is due for one leased subscription (several notifications in a row while
        there is backlog), then give the lease back. ``state``: the row as :func:`claim` leased it."""
        released = False
        try:
            for _ in range(self.config.rounds_per_claim):
                state, released = await self._round(sub_id, state)
                if state is None or self.stopping:
                    break
        except Exception:  # a bug must not stall the others; the lease expires and it is retried
            log.exception("delivery to Subscription/%s failed unexpectedly", sub_id)
            released = False
        finally:
            if not released:
                await release(self.db, self.worker, [sub_id])

    async def deliver_once(self, sub_id: str, *, handshake: bool | None = None) -> bool:
        """One notification (handshake, events or heartbeat); True when more is due and the lease
        is still held."""
        state, _released = await self._round(sub_id, None, handshake=handshake)
        return state is not None

    async def _round(
        self, sub_id: str, st: Mapping[str, Any] | None, *, handshake: bool | None = None
    ) -> tuple[Mapping[str, Any] | None, bool]:
        """One notification. Returns the subscription's state when more is due and the lease is
        still held (the next round starts from it without reading it again), else None; and
        whether the lease was already given back (by the acknowledgement that found nothing more due).

        Round trips on PostgreSQL: the undelivered events, the access check, the POST, and the
        acknowledgement (which also returns the state, or releases the lease when nothing is left)."""
        now = now_us()
        s = subscription_state
        async with self.db.read() as conn:
            if st is None:
                row = (await conn.execute(select(s).where(s.c.sub_id == sub_id))).mappings().first()
                st = dict(row) if row is not None else None
            if st is None or st["lease_owner"] != self.worker or st["status"] not in LIVE:
                return None, False
            if st["end"] <= now:
                await self._switch_off(sub_id, "The subscription's end has passed")
                return None, False
            kind = "handshake" if (handshake if handshake is not None else st["status"] == "requested") else ""
            events: list[Event] = []
            shown: list[Event] = []
            contents: Any = {}
            if not kind:
                if st["delivered"] < st["events_total"]:
                    e = subscription_event
                    rows = (
                        (
                            await conn.execute(
                                select(e)
                                .where(e.c.sub_id == sub_id, e.c.number > st["delivered"])
                                .order_by(e.c.number)
                                .limit(int(st["max_count"]))
                            )
                        )
                        .mappings()
                        .all()
                    )
                    events = [Event.from_row(r) for r in rows]
                if events:
                    kind = "event-notification"
                    owner = owners.owner_principal(st["owner"])
                    shown = await owners.readable(conn, owner, events)
                    if st["payload"] == "full-resource":
                        contents = await owners.contents(conn, shown)
                elif st["heartbeat"] and st["last_sent"] + st["heartbeat"] * 1_000_000 <= now:
                    kind = "heartbeat"
                else:
                    return None, False
        last = events[-1].number if events else int(st["delivered"])
        withheld = len(events) - len(shown)
        if kind == "event-notification" and not shown:
            self.counters.inc("withheld", withheld)
            return await self._acknowledged(sub_id, last, sent=False)
        body = dumps(
            notification_bundle(
                base=self.base,
                sub_id=sub_id,
                topic=st["topic"],
                status="active" if kind != "handshake" else "requested",
                kind=kind,
                events_since_start=last if kind == "event-notification" else int(st["events_total"]),
                events=shown,
                payload=st["payload"],
                contents=contents,
            )
        )
        try:
            await self.send(st, body)
        except DeliveryFailed as exc:
            await self._failed(st, str(exc))
            return None, False
        if shown:
            await self._audit(st, shown)
        acked = await self._acknowledged(sub_id, last, sent=True)
        self.counters.inc("withheld", withheld)
        if kind == "event-notification":
            self.counters.inc("delivered", len(shown))
            self.counters.inc("notifications")
        else:
            self.counters.inc("handshakes" if kind == "handshake" else "heartbeats")
        return acked

    async def _acknowledged(self, sub_id: str, last: int, *, sent: bool) -> tuple[Mapping[str, Any] | None, bool]:
        """Advance ``delivered`` to ``last``, only while this worker holds the lease. In the same
        statement: keep the lease (extended) when more events are due, else give it back. Returns
        (the state when more is due and the lease is kept, else None; whether it was given back)."""
        s = subscription_state
        now = now_us()
        more = s.c.events_total > last
        values: dict[str, Any] = {
            "delivered": last,
            "failures": 0,
            "next_attempt": 0,
            "last_error": None,
            "status": case((s.c.status == "off", "off"), else_="active"),
            "lease_owner": case((more, s.c.lease_owner), else_=None),
            "lease_until": case((more, now + int(self.config.lease_seconds * 1_000_000)), else_=0),
        }
        if sent:
            values["last_sent"] = now
        async with self.db.write_one() as conn:
            row = (
                (
                    await conn.execute(
                        update(s)
                        .where(s.c.sub_id == sub_id, s.c.lease_owner == self.worker, s.c.delivered <= last)
                        .values(**values)
                        .returning(*s.c)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:  # the lease was lost (expired and taken): the other worker goes on
            return None, True
        if row["lease_owner"] != self.worker:
            return None, True
        return dict(row), False

    async def _failed(self, st: Any, reason: str) -> None:
        s = subscription_state
        failures = int(st["failures"]) + 1
        status = st["status"]
        if failures >= self.config.off_after:
            status = "off"
            self.counters.inc("off")
            log.warning("Subscription/%s switched off after %d failures: %s", st["sub_id"], failures, reason)
        elif failures >= self.config.error_after:
            if status != "error":
                self.counters.inc("error")
            status = "error"
        self.counters.inc("failed")
        async with self.db.write_one() as conn:
            await conn.execute(
                update(s)
                .where(s.c.sub_id == st["sub_id"], s.c.lease_owner == self.worker)
                .values(
                    failures=failures,
                    next_attempt=now_us() + self.config.backoff_us(failures),
                    last_error=reason,
                    status=case((s.c.status == "off", "off"), else_=status),
                )
            )

    async def _switch_off(self, sub_id: str, reason: str) -> None:
        s = subscription_state
        async with self.db.write() as conn:
            await conn.execute(update(s).where(s.c.sub_id == sub_id).values(status="off", last_error=reason))

    async def _audit(self, st: Any, shown: Sequence[Event]) -> None:
        """The notification is a disclosure to the subscriber: one audit record per notification,
        naming the resources (up to 20) and the clients whose data left."""
        if self.audit is None or not getattr(self.audit, "enabled", False):
            return
        from hub.audit.trail import AuditTrail

        trail = AuditTrail(
            self.audit,
            "POST",
            f"Subscription/{st['sub_id']}",
            f"channel={st['channel']}&payload={st['payload']}",
            interaction="operation",
            principal=owners.owner_principal(st["owner"]),
        )
        trail.operation = "subscription-notification"
        await trail.disclose(
            200,
            [tuple(sorted({p for e in shown for p in e.patients}))],
            resources=[(e.res_type, e.res_id, str(e.version)) for e in shown],
        )


# -- the worker ------------------------------------------------------------------------------------


class Worker:
    """Dispatches and delivers until stopped: ``hub worker``, or inside ``hub serve`` on SQLite."""

    def __init__(
        self,
        db: Database,
        base: str,
        *,
        config: DeliveryConfig | None = None,
        audit: Any = None,
        client: httpx.AsyncClient | None = None,
        counters: Counters = COUNTERS,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.config = config or DeliveryConfig()
        self.name = name or f"worker-{uuid.uuid4().hex[:12]}"
        self.counters = counters
        self._client = client
        self._own_client = client is None
        self._wake = asyncio.Event()
        self._delivery_wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._deliverer: Deliverer | None = None
        self.base = base
        self.audit = audit

    def wake(self) -> None:
        """Called by the outbox when an event was appended: look again soon."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the notifications in flight (acknowledged or not), start no other, give the leases back."""
        self._stop.set()
        if self._deliverer is not None:
            self._deliverer.stopping = True
        self._wake.set()
        self._delivery_wake.set()

    async def run(self) -> None:
        """Two loops until stopped: the fan-out of new outbox events, and delivery. They run side by
        side so that events keep being numbered while notifications are in flight."""
        client = self._client or httpx.AsyncClient(limits=httpx.Limits(max_connections=64))
        deliverer = Deliverer(
            self.db,
            self.base,
            RestHook(client),
            worker=self.name,
            config=self.config,
            audit=self.audit,
            counters=self.counters,
        )
        self._deliverer = deliverer
        try:
            await asyncio.gather(self._dispatch_loop(), self._delivery_loop(deliverer))
        finally:
            try:
                await release(self.db, self.name)
            finally:
                if self._own_client:
                    await client.aclose()

    async def _idle(self, event: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout=self.config.poll_seconds)
        except TimeoutError:
            pass
        event.clear()

    async def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                taken = await dispatch(self.db, self.config.dispatch_batch, self.counters)
            except Exception:
                log.exception("outbox dispatch failed")
                taken = 0
            if taken:
                self._delivery_wake.set()
            else:
                await self._idle(self._wake)

    async def _delivery_loop(self, deliverer: Deliverer) -> None:
        """Claim one due subscription at a time and deliver to it in the background, up to
        ``claim_batch`` at once. A worker that is already busy waits a poll interval before it takes
        another, so that idle workers get the next one first (several workers share the load)."""
        inflight: set[asyncio.Task[None]] = set()
        try:
            while not self._stop.is_set():
                leased: list[Mapping[str, Any]] = []
                if len(inflight) < self.config.claim_batch:
                    try:
                        leased = await claim(
                            self.db, self.name, channel="rest-hook", limit=1, lease_seconds=self.config.lease_seconds
                        )
                    except Exception:
                        log.exception("claiming subscriptions failed")
                for st in leased:
                    task = asyncio.create_task(deliverer.deliver(st["sub_id"], st))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                if leased and len(inflight) == 1:
                    continue  # was idle: look for more at once
                await self._idle(self._delivery_wake)
        finally:
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)

    async def run_once(self, deliverer: Deliverer) -> bool:
        """One fan-out and one delivery round (for tools and tests that step the worker)."""
        taken = await dispatch(self.db, self.config.dispatch_batch, self.counters)
        leased = await claim(
            self.db,
            self.name,
            channel="rest-hook",
            limit=self.config.claim_batch,
            lease_seconds=self.config.lease_seconds,
        )
        if leased:
            await asyncio.gather(*(deliverer.deliver(st["sub_id"], st) for st in leased))
        return bool(taken or leased)


async def dead_letters(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Subscriptions in ``error`` or ``off`` with what they have not received (the dead-letter view)."""
    s = subscription_state
    rows = (
        (
            await conn.execute(
                select(
                    s.c.sub_id,
                    s.c.topic,
                    s.c.status,
                    s.c.channel,
                    s.c.endpoint,
                    s.c.owner_key,
                    s.c.failures,
                    s.c.last_error,
                    s.c.events_total,
                    s.c.delivered,
                    s.c.next_attempt,
                )
                .where(s.c.status.in_(("error", "off")))
                .order_by(s.c.sub_id)
            )
        )
        .mappings()
        .all()
    )
    return [{**dict(r), "undelivered": int(r["events_total"]) - int(r["delivered"])} for r in rows]

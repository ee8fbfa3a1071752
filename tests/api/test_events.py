"""Notifications end to end: the outbox row of every write, topics, Subscriptions, and delivery to a
receiver in its own process over real HTTP on loopback (on SQLite and PostgreSQL).

The network is the one of test_access_rules: organisations A and B in the care team of client 1
(pat-0), C without a relationship; A wrote the care plan ``careplan-0-1``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from hub.events.delivery import DeliveryConfig, Worker
from hub.events.metrics import Counters
from hub.events.tables import outbox_event, subscription_event, subscription_state
from tests.api.access_helpers import NetworkSpec, build, load
from tests.api.events_helpers import TOPIC, receiver, subscription, wait_for, worker_process
from tests.api.test_access_rules import BSN1, PLAN, A, B, C, consent, network, put, rule
from tests.conftest import clean

FAST = DeliveryConfig(
    poll_seconds=0.05, lease_seconds=5, backoff_base=0.05, backoff_cap=0.2, error_after=3, off_after=50
)


@pytest.fixture
async def net(hub_app: Any) -> NetworkSpec:
    await clean(hub_app)
    spec = network()
    await load(hub_app, build(spec))
    return spec


class Running:
    """An in-test delivery worker on the hub's database (the receiver is another process)."""

    def __init__(self, app: Any, config: DeliveryConfig = FAST) -> None:
        services = app.state.services
        self.counters = Counters()
        self.worker = Worker(
            services.repo.db, app.state.settings.fhir_base, config=config, audit=services.audit, counters=self.counters
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.worker.run())
        return self

    async def __aexit__(self, *_exc: Any) -> None:
        self.worker.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
async def running(hub_app: Any) -> AsyncIterator[Running]:
    async with Running(hub_app) as r:
        yield r


async def outbox_rows(app: Any) -> list[Any]:
    async with app.state.services.repo.db.read() as conn:
        return list((await conn.execute(select(outbox_event).order_by(outbox_event.c.seq))).mappings().all())


async def create(c: httpx.AsyncClient, body: dict[str, Any]) -> str:
    resp = await c.post("/fhir/Subscription", json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "requested"
    return str(resp.json()["id"])


async def touch_plan(a: httpx.AsyncClient, n: int = 1, label: str = "revision") -> None:
    """``n`` updates of the care plan by its author A."""
    for i in range(n):
        plan = (await a.get(f"/fhir/{PLAN}")).json()
        plan["description"] = f"{label} {i}"
        resp = await a.put(f"/fhir/{PLAN}", json=plan)
        assert resp.status_code == 200, resp.text


NOTICE = {
    "resourceType": "Composition",
    "id": "notice-0",
    "status": "final",
    "type": {"coding": [{"system": "http://loinc.org", "code": "57830-2"}]},
    "subject": {"reference": "Patient/pat-0"},
    "date": "2026-11-20T10:00:00+01:00",
    "author": [{"reference": "Organization/org-0"}],
    "title": "Aanmeldbericht",
}


def overdracht(task_id: str, status: str = "requested") -> dict[str, Any]:
    """An overdracht from A (org-0) to B (org-1) with its advance notice, as the workflow rules want it."""
    body: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "308292007"}]},
        "for": {"reference": "Patient/pat-0"},
        "requester": {"reference": "Organization/org-0"},
        "owner": {"reference": "Organization/org-1"},
        "input": [
            {
                "type": {"coding": [{"system": "http://loinc.org", "code": "57830-2"}]},
                "valueReference": {"reference": "Composition/notice-0"},
            }
        ],
    }
    if status == "on-hold":
        body["restriction"] = {"period": {"start": "2030-01-06"}}
    return body


async def move(client: httpx.AsyncClient, task_id: str, status: str) -> httpx.Response:
    """A state change as a real client makes it: read the Task, change its status, write it back."""
    task = (await client.get(f"/fhir/Task/{task_id}")).json()
    task["status"] = status
    if status == "on-hold":
        task["restriction"] = {"period": {"start": "2030-01-06"}}
    return await client.put(f"/fhir/Task/{task_id}", json=task)


# -- outbox --------------------------------------------------------------------------------------


async def test_every_write_appends_one_event_in_its_transaction(net: NetworkSpec, client_as: Any, hub_app: Any) -> None:
    a = client_as(f"org:{A}")
    before = len(await outbox_rows(hub_app))
    await touch_plan(a)
    rows = await outbox_rows(hub_app)
    assert len(rows) == before + 1
    last = rows[-1]
    assert (last["res_type"], last["res_id"], last["change"], last["category"]) == (
        "CarePlan",
        "careplan-0-1",
        "update",
        "zorgplan",
    )
    assert last["patients"] == "pat-0" and last["version"] >= 2
    # A refused write (no care relationship) and a failed transaction leave no event.
    c = client_as(f"org:{C}")
    plan = (await a.get(f"/fhir/{PLAN}")).json()
    assert (await c.put("/fhir/CarePlan/other", json={**plan, "id": "other"})).status_code == 403
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {**plan, "id": "x1"}, "request": {"method": "PUT", "url": "CarePlan/x1"}},
            {
                "resource": {"resourceType": "Patient", "birthDate": "not-a-date"},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    assert (await a.post("/fhir", json=bundle)).status_code >= 400
    assert len(await outbox_rows(hub_app)) == before + 1
    # A Task's status change is visible from the event alone (old and new status, the organisations):
    # the sender (A) creates it, the receiver (B) accepts, the sender cancels (an overdracht is not deleted).
    b = client_as(f"org:{B}")
    assert (await a.put("/fhir/Composition/notice-0", json=NOTICE)).status_code in (200, 201)
    assert (await a.put("/fhir/Task/t1", json=overdracht("t1"))).status_code == 201
    resp = await move(b, "t1", "accepted")
    assert resp.status_code == 200, resp.text
    rows = (await outbox_rows(hub_app))[-2:]
    assert [(r["change"], r["old_status"], r["new_status"]) for r in rows] == [
        ("create", None, "requested"),
        ("update", "requested", "accepted"),
    ]
    assert rows[1]["orgs"].split() == sorted([A, B])
    assert (await move(a, "t1", "cancelled")).status_code == 200
    last = (await outbox_rows(hub_app))[-1]
    assert (last["change"], last["old_status"], last["new_status"]) == ("update", "accepted", "cancelled")


# -- topics and subscriptions ----------------------------------------------------------------------


async def test_topics_are_served_and_listed(client: httpx.AsyncClient) -> None:
    meta = (await client.get("/fhir/metadata")).json()
    sub = next(r for r in meta["rest"][0]["resource"] if r["type"] == "Subscription")
    canonicals = {e["valueCanonical"] for e in sub["extension"]}
    assert canonicals == {TOPIC + t for t in ("overdracht", "careplan", "acp", "consent", "wmo")}
    assert {o["name"] for o in sub["operation"]} == {"status", "events", "get-ws-binding-token"}
    listing = (await client.get("/fhir/SubscriptionTopic")).json()
    assert listing["total"] == 5
    one = (await client.get("/fhir/SubscriptionTopic/overdracht")).json()
    assert one["url"] == TOPIC + "overdracht" and one["resourceType"] == "SubscriptionTopic"
    assert (await client.get("/fhir/SubscriptionTopic/nope")).status_code == 404
    assert (await client.post("/fhir/SubscriptionTopic", json={})).status_code == 405


async def test_subscriptions_are_checked_against_the_access_decision(net: NetworkSpec, client_as: Any) -> None:
    a, c = client_as(f"org:{A}"), client_as(f"org:{C}")
    me, admin = client_as(f"client:{BSN1}"), client_as("admin")
    hook = "http://127.0.0.1:9/hook"

    async def refused(who: httpx.AsyncClient, body: dict[str, Any], status: int, where: str) -> None:
        resp = await who.post("/fhir/Subscription", json=body)
        assert resp.status_code == status, resp.text
        issue = resp.json()["issue"][0]
        assert where in (issue.get("expression") or [""])[0] + issue["diagnostics"], issue

    await refused(a, {**subscription("careplan", hook), "criteria": "http://x/topic"}, 422, "criteria")
    await refused(a, subscription("careplan", hook, filters=("CarePlan?code=1",)), 422, "filter")
    await refused(a, subscription("overdracht", hook, filters=("CarePlan?patient=Patient/pat-0",)), 422, "filter")
    await refused(a, subscription("careplan", "ftp://x/hook"), 422, "endpoint")
    await refused(a, subscription("careplan", hook, headers=("no colon",)), 422, "header")
    await refused(a, subscription("careplan", hook, payload="everything"), 422, "payload")
    # Organisation C has no relationship with pat-0: it may not subscribe to their data.
    await refused(c, subscription("careplan", hook, filters=("patient=Patient/pat-0",)), 403, "pat-0")
    await refused(c, subscription("careplan", hook, filters=("patient=Patient/pat-1",)), 403, "pat-1")
    # Topics are for some kinds of callers only.
    await refused(me, subscription("overdracht", hook), 403, "overdracht")
    await refused(admin, subscription("careplan", hook), 403, "careplan")
    ok = await create(a, subscription("careplan", hook, filters=("CarePlan?patient=Patient/pat-0",)))
    mine = await create(me, subscription("consent", hook, filters=("patient=Patient/pat-0",)))
    # Only the owner sees (or changes) a subscription: it carries the subscriber's headers.
    assert (await a.get(f"/fhir/Subscription/{ok}")).status_code == 200
    for other in (c, me, admin, client_as(f"org:{B}")):
        assert (await other.get(f"/fhir/Subscription/{ok}")).status_code == 404
        assert (await other.delete(f"/fhir/Subscription/{ok}")).status_code == 404
        assert (await other.get(f"/fhir/Subscription/{ok}/$status")).status_code == 404
    assert [e["resource"]["id"] for e in (await a.get("/fhir/Subscription")).json()["entry"]] == [ok]
    assert [e["resource"]["id"] for e in (await me.get("/fhir/Subscription")).json()["entry"]] == [mine]
    assert (await a.get("/fhir/Subscription?owner=x")).status_code == 400
    # The generic paths never show a Subscription.
    assert (await a.get(f"/fhir?_type=Subscription&_id={ok}")).json().get("total", 0) == 0
    assert (await a.delete(f"/fhir/Subscription/{ok}")).status_code == 200
    assert (await a.get(f"/fhir/Subscription/{ok}")).status_code in (404, 410)


# -- delivery --------------------------------------------------------------------------------------


async def test_receiver_failing_first_deliveries_gets_every_event_in_order(
    net: NetworkSpec, client_as: Any, hub_app: Any, running: Running
) -> None:
    a, b = client_as(f"org:{A}"), client_as(f"org:{B}")
    with receiver("--fail-first", "3") as rx:
        sub = await create(
            b,
            subscription(
                "careplan",
                f"{rx.url}/hook",
                filters=("patient=Patient/pat-0",),
                headers=("Authorization: Bearer secret-of-b",),
                max_count=4,
            ),
        )
        await wait_for(lambda: any(n["type"] == "handshake" for n in rx.state()["accepted"]))
        await touch_plan(a, 10)
        await wait_for(lambda: set(rx.numbers(sub)) >= set(range(1, 11)), timeout=60)
        await wait_for(lambda: running.counters.get("delivered") >= 10)  # acknowledged after the 200
        got = rx.numbers(sub)
        state = rx.state()
    # In order, none missing; a number repeats only because its notification was refused before.
    firsts = list(dict.fromkeys(got))
    assert firsts == list(range(1, 11))
    assert got == sorted(got)
    assert state["refused"] == 3
    assert state["last_headers"]["Authorization"] == "Bearer secret-of-b"
    assert running.counters.get("failed") == 3 and running.counters.get("delivered") >= 10
    status = (await b.get(f"/fhir/Subscription/{sub}/$status")).json()
    params = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
    assert params["status"]["valueCode"] == "active"
    assert params["events-since-subscription-start"]["valueString"] == "10"
    assert (await b.get(f"/fhir/Subscription/{sub}")).json()["status"] == "active"
    # Replay from event 7, with the resources.
    replay = (await b.get(f"/fhir/Subscription/{sub}/$events?eventsSinceNumber=7&content=full-resource")).json()
    events = [p for p in replay["entry"][0]["resource"]["parameter"] if p["name"] == "notification-event"]
    assert [int(e["part"][0]["valueString"]) for e in events] == [7, 8, 9, 10]
    assert all(e["resource"]["id"] == "careplan-0-1" for e in replay["entry"][1:])
    assert (await b.get(f"/fhir/Subscription/{sub}/$events?eventsSinceNumber=x")).status_code == 400


async def test_overdracht_topic_follows_task_state_changes(
    net: NetworkSpec, client_as: Any, hub_app: Any, running: Running
) -> None:
    a, b, c = client_as(f"org:{A}"), client_as(f"org:{B}"), client_as(f"org:{C}")
    with receiver() as rx:
        owner = await create(b, subscription("overdracht", f"{rx.url}/b", payload="full-resource"))
        other = await create(c, subscription("overdracht", f"{rx.url}/c"))
        accepted = await create(b, subscription("overdracht", f"{rx.url}/b2", filters=("Task?status=accepted",)))
        assert (await a.put("/fhir/Composition/notice-0", json=NOTICE)).status_code in (200, 201)
        # the sender creates it; the receiver answers (received, a proposed date, then accepted)
        assert (await a.put("/fhir/Task/ov-1", json=overdracht("ov-1"))).status_code == 201
        for status in ("received", "on-hold", "accepted"):
            resp = await move(b, "ov-1", status)
            assert resp.status_code == 200, resp.text
        await wait_for(lambda: len(set(rx.numbers(owner))) == 4 and len(rx.numbers(accepted)) == 1)
        notes = [n for n in rx.state()["accepted"] if n["type"] == "event-notification"]
        assert rx.numbers(accepted) == [1]
    statuses = [r["status"] for n in notes if n["subscription"] == owner for r in n["resources"]]
    assert statuses == ["requested", "received", "on-hold", "accepted"]
    assert not [n for n in notes if n["subscription"] == other]  # C is neither owner nor requester


async def test_consent_withdrawn_before_delivery_stops_the_payload(
    net: NetworkSpec, client_as: Any, hub_app: Any
) -> None:
    a, b, me = client_as(f"org:{A}"), client_as(f"org:{B}"), client_as(f"client:{BSN1}")
    with receiver() as rx:
        sub = await create(b, subscription("careplan", f"{rx.url}/hook", payload="full-resource"))
        await touch_plan(a, 1, "secret")  # event 1, while B may read care plans
        await put(me, consent("c-1", rule("deny", "zorgplan", org=1)))  # withdrawn before any worker ran
        async with Running(hub_app) as r:
            await wait_for(lambda: r.counters.get("withheld") >= 1)
            await put(me, consent("c-1", rule("permit", "zorgplan", org=1)))
            await touch_plan(a)  # event 2, allowed again
            await wait_for(lambda: rx.numbers(sub) == [2])
        state = rx.state()
        assert rx.numbers(sub) == [2]
    assert all("secret" not in str(n["resources"]) for n in state["accepted"])
    assert "revision 0" in str(state["accepted"][-1]["resources"])
    # The delivered notification is in the audit trail as a disclosure to B about client pat-0.
    audit = client_as("admin")
    found = (await audit.get("/fhir/AuditEvent?patient=Patient/pat-0&_count=200")).json()
    subtypes = [s.get("code") for e in found.get("entry", []) for s in e["resource"].get("subtype", [])]
    assert "$subscription-notification" in subtypes


async def test_failing_endpoint_goes_error_then_off_and_shows_in_the_dead_letters(
    net: NetworkSpec, client_as: Any, hub_app: Any
) -> None:
    a, b = client_as(f"org:{A}"), client_as(f"org:{B}")
    config = DeliveryConfig(
        poll_seconds=0.05, lease_seconds=5, backoff_base=0.02, backoff_cap=0.05, error_after=2, off_after=4
    )
    with receiver("--fail-first", "1000") as rx:
        sub = await create(b, subscription("careplan", f"{rx.url}/hook"))
        async with Running(hub_app, config) as r:
            await touch_plan(a, 2)
            await wait_for(lambda: r.counters.get("off") == 1)
    shown = (await b.get(f"/fhir/Subscription/{sub}")).json()
    assert shown["status"] == "off" and "HTTP 500" in shown["error"]
    admin = client_as("admin")
    resp = await admin.get("/admin/events/dead-letters")
    assert resp.status_code == 200
    row = next(s for s in resp.json()["subscriptions"] if s["sub_id"] == sub)
    assert row["status"] == "off" and row["undelivered"] == 2 and row["failures"] == 4
    assert (await b.get("/admin/events/dead-letters")).status_code == 403
    assert (await client_as(None).get("/admin/events/dead-letters")).status_code == 401
    # Asking for it again starts it over: a new handshake, then the events it missed.
    body = (await b.get(f"/fhir/Subscription/{sub}")).json()
    body["status"] = "requested"
    assert (await b.put(f"/fhir/Subscription/{sub}", json=body)).json()["status"] == "requested"
    async with hub_app.state.services.repo.db.read() as conn:
        st = (await conn.execute(select(subscription_state).where(subscription_state.c.sub_id == sub))).first()
        n = (
            await conn.execute(
                select(func.count()).select_from(subscription_event).where(subscription_event.c.sub_id == sub)
            )
        ).scalar_one()
    assert st is not None and st.failures == 0 and n == 2


async def test_websocket_channel_binds_with_a_token(
    net: NetworkSpec, hub_app: Any, database_url: str, tmp_path: Any
) -> None:
    """The PGO's channel against a live ``hub serve``: $get-ws-binding-token, bind, handshake, then
    notifications as text frames."""
    import json

    import websockets

    from tests.api.live import live_hub

    with (
        receiver() as rx,
        live_hub(
            database_url, hub_app.state.settings.var_dir, HUB_EVENTS_POLL_SECONDS="0.05", HUB_EVENTS_IN_PROCESS="true"
        ) as hub,
    ):
        me = httpx.AsyncClient(base_url=hub.base, headers={"Authorization": f"Bearer {hub.token(f'client:{BSN1}')}"})
        a = httpx.AsyncClient(base_url=hub.base, headers={"Authorization": f"Bearer {hub.token(f'org:{A}')}"})
        async with me, a:
            resp = await me.post("/Subscription", json=subscription("careplan", None, channel="websocket"))
            assert resp.status_code == 201, resp.text
            sub = resp.json()["id"]
            # The same changes also go to a rest-hook, delivered by the worker inside `hub serve`.
            hook = await a.post("/Subscription", json=subscription("careplan", f"{rx.url}/a"))
            assert hook.status_code == 201, hook.text
            params = {
                p["name"]: p for p in (await me.get(f"/Subscription/{sub}/$get-ws-binding-token")).json()["parameter"]
            }
            token, url = params["token"]["valueString"], params["websocket-url"]["valueUrl"]
            assert url.startswith("ws://127.0.0.1:") and url.endswith("/ws/subscriptions")
            for i in range(2):
                plan = (await a.get(f"/{PLAN}")).json()
                plan["description"] = f"ws {i}"
                assert (await a.put(f"/{PLAN}", json=plan)).status_code == 200
            received: list[dict[str, Any]] = []
            async with websockets.connect(url) as ws:
                await ws.send(f"bind-with-token {token}")
                while sum(len(_events(r)) for r in received) < 2:
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
            kinds = [_param(r, "type")["valueCode"] for r in received]
            assert kinds[0] == "handshake" and set(kinds[1:]) == {"event-notification"}
            assert [int(e["part"][0]["valueString"]) for r in received for e in _events(r)] == [1, 2]
            assert (await me.get(f"/Subscription/{sub}")).json()["status"] == "active"
            async with websockets.connect(url) as ws:  # a binding token is single use
                await ws.send(f"bind-with-token {token}")
                assert "unknown" in str(await asyncio.wait_for(ws.recv(), 20))
            bad = await a.get(f"/Subscription/{sub}/$get-ws-binding-token")
            assert bad.status_code == 404  # not A's
            await wait_for(lambda: rx.numbers(hook.json()["id"]) == [1, 2], timeout=30)


def _param(bundle: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in bundle["entry"][0]["resource"]["parameter"] if p["name"] == name)


def _events(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in bundle["entry"][0]["resource"]["parameter"] if p["name"] == "notification-event"]


async def test_heartbeats_and_the_end_of_a_subscription(
    net: NetworkSpec, client_as: Any, hub_app: Any, running: Running
) -> None:
    b = client_as(f"org:{B}")
    with receiver() as rx:
        sub = await create(b, subscription("careplan", f"{rx.url}/hook", heartbeat=1))
        await wait_for(lambda: any(n["type"] == "heartbeat" for n in rx.state()["accepted"]), timeout=30)
        ended = {**(await b.get(f"/fhir/Subscription/{sub}")).json(), "end": "2020-01-01T00:00:00Z"}
        assert (await b.put(f"/fhir/Subscription/{sub}", json=ended)).status_code == 200
        await wait_for(lambda: _status_of(b, sub), timeout=30)


async def _status_of(c: httpx.AsyncClient, sub: str) -> bool:
    return bool((await c.get(f"/fhir/Subscription/{sub}")).json()["status"] == "off")


async def test_worker_killed_mid_delivery_loses_nothing(net: NetworkSpec, client_as: Any, hub_app: Any) -> None:
    """kill -9 of ``hub worker`` while the receiver holds its notification; a new worker delivers
    the same events again once the lease has expired (the receiver dedupes by event number)."""
    import signal

    a, b = client_as(f"org:{A}"), client_as(f"org:{B}")
    with receiver("--hang-first", "1", "--hang-seconds", "60") as rx:
        sub = await create(b, subscription("careplan", f"{rx.url}/hook", max_count=3))
        await touch_plan(a, 7)
        with worker_process(hub_app, HUB_EVENTS_LEASE_SECONDS="2") as first:
            await wait_for(lambda: rx.state()["in_flight"] == 1, timeout=60)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        assert rx.numbers(sub) == []
        with worker_process(hub_app, HUB_EVENTS_LEASE_SECONDS="2"):
            await wait_for(lambda: set(rx.numbers(sub)) == set(range(1, 8)), timeout=60)
            got = rx.numbers(sub)
    assert got == list(range(1, 8))


async def test_two_workers_deliver_ten_thousand_events_exactly_once(
    net: NetworkSpec, client_as: Any, hub_app: Any, backend: str
) -> None:
    """Two ``hub worker`` processes on one PostgreSQL, 10,000 events for each of four subscriptions
    to a healthy receiver: every (subscription, event number) arrives exactly once, in order.

    The events are appended as outbox rows of the care plan's current version in transactions of
    1,000 (what 10,000 writes would leave; the write path itself is covered above)."""
    if backend != "postgresql":
        return  # several worker processes on one database is the PostgreSQL deployment
    import time

    from sqlalchemy import insert

    from hub.fhir.instants import now_us
    from hub.store.tables import resource

    b = client_as(f"org:{B}")
    db = hub_app.state.services.repo.db
    async with db.read() as conn:
        pid, version = (
            await conn.execute(
                select(resource.c.pid, resource.c.version).where(
                    resource.c.res_type == "CarePlan", resource.c.res_id == "careplan-0-1"
                )
            )
        ).one()
    n = 10_000
    with receiver() as rx:
        subs = [await create(b, subscription("careplan", f"{rx.url}/hook/{i}", max_count=500)) for i in range(4)]

        def count() -> dict[str, Any]:
            return dict(httpx.get(f"{rx.url}/count", timeout=10).json())

        with worker_process(hub_app), worker_process(hub_app):
            await wait_for(lambda: count()["handshakes"] == 4, timeout=30)
            started = time.monotonic()
            for _batch in range(0, n, 1000):
                async with db.write() as conn:
                    await conn.execute(
                        insert(outbox_event),
                        [
                            {
                                "recorded": now_us(),
                                "pid": pid,
                                "res_type": "CarePlan",
                                "res_id": "careplan-0-1",
                                "version": version,
                                "change": "update",
                                "category": "zorgplan",
                                "patients": "pat-0",
                                "orgs": "",
                                "old_status": None,
                                "new_status": None,
                            }
                            for _ in range(1000)
                        ],
                    )
            await wait_for(lambda: count()["events"] >= 4 * n, timeout=60, step=0.25)
            elapsed = time.monotonic() - started
            await asyncio.sleep(0.5)  # nothing more arrives: no duplicates in flight
        accepted = rx.state()["accepted"]
    for sub in subs:
        numbers = [
            e["number"]
            for x in accepted
            if x["subscription"] == sub and x["type"] == "event-notification"
            for e in x["events"]
        ]
        assert numbers == list(range(1, n + 1)), sub
    assert elapsed < 60

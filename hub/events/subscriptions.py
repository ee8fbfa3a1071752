"""``Subscription`` over the FHIR API (R4 Subscriptions Backport IG), and the topics as resources.

Subscriptions are handled here rather than by the generic handlers: a Subscription carries the
subscriber's channel headers (often a secret), so only its owner may see it, and creating one is
itself an access question — the caller must be able to read what the topic covers, and the
filters it names are checked against the access decision. The resource is stored through the
repository (versions, audit, outbox as for any write); its delivery state lives in
``subscription_state``, written in the same transaction, and is what ``status`` shows.

Supported: create, read, update, delete, search (your own), ``$status``, ``$events``
(``eventsSinceNumber``, ``eventsUntilNumber``, ``content``) and ``$get-ws-binding-token``. Each is a
function of a :class:`Subscriber` (who asks, through which repository) answering plain values; the
HTTP side (the interaction, ``Prefer``, the result) is :mod:`hub.api.subscriptions`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.decision import SYSTEM, Policy
from hub.access.policy import AccessPolicy
from hub.audit.trail import AuditTrail
from hub.events import owners
from hub.events.notifications import BACKPORT, Event, notification_bundle
from hub.events.tables import subscription_event, subscription_state
from hub.events.topics import BY_URL, TOPICS, Topic, topic_resource
from hub.fhir import jsonio
from hub.fhir.bundles import bundle
from hub.fhir.errors import BadRequest, Forbidden, NotFound, Unprocessable
from hub.fhir.instants import now_us, to_iso
from hub.fhir.normalize import date_range
from hub.fhir.parse import check_resource
from hub.store.repository import Repository, WriteOutcome
from hub.store.resources import Stored
from hub.store.tables import DATE_MAX, resource

FILTER_URL = BACKPORT + "backport-filter-criteria"
PAYLOAD_URL = BACKPORT + "backport-payload-content"
HEARTBEAT_URL = BACKPORT + "backport-heartbeat-period"
TIMEOUT_URL = BACKPORT + "backport-timeout"
MAX_COUNT_URL = BACKPORT + "backport-max-count"
SUBSCRIPTION_PROFILE = BACKPORT + "backport-subscription"
PAYLOADS = ("empty", "id-only", "full-resource")
CHANNELS = ("rest-hook", "websocket")
#: How long a websocket binding token is valid.
WS_TOKEN_SECONDS = 300
#: Most events one ``$events`` call returns.
MAX_EVENTS_QUERY = 1000


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What a Subscription asks for, parsed and checked."""

    topic: Topic
    filters: tuple[tuple[str, str], ...]
    channel: str
    endpoint: str | None
    headers: tuple[str, ...]
    payload: str
    heartbeat: int
    timeout: int
    max_count: int
    end: int
    off: bool


def _ext(element: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(element, dict):
        return []
    return [e for e in element.get("extension") or () if isinstance(e, dict) and e.get("url") == url]


def _int_ext(element: Any, url: str, key: str, default: int, low: int, high: int, where: str) -> int:
    found = _ext(element, url)
    if not found:
        return default
    value = found[0].get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Unprocessable(f"{where} must be a whole number from {low} to {high}", expression=where)
    return value


def parse_spec(res: dict[str, Any], *, allow_http: bool) -> SubscriptionSpec:
    """Check a Subscription against what the hub supports; 422 naming the element otherwise."""
    criteria = res.get("criteria")
    topic = BY_URL.get(criteria) if isinstance(criteria, str) else None
    if topic is None:
        known = ", ".join(t.url for t in TOPICS.values())
        raise Unprocessable(
            f"Subscription.criteria must be one of the hub's topics ({known})", expression="Subscription.criteria"
        )
    filters: list[tuple[str, str]] = []
    for ext in _ext(res.get("_criteria"), FILTER_URL):
        filters.extend(parse_filter(topic, ext.get("valueString")))
    channel = res.get("channel")
    if not isinstance(channel, dict):
        raise Unprocessable("Subscription.channel is required", expression="Subscription.channel")
    kind = channel.get("type")
    if kind not in CHANNELS:
        raise Unprocessable(
            f"Subscription.channel.type must be one of {', '.join(CHANNELS)}", expression="Subscription.channel.type"
        )
    endpoint = channel.get("endpoint")
    if kind == "rest-hook":
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        schemes = ("https", "http") if allow_http else ("https",)
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            raise Unprocessable(
                f"A rest-hook needs an absolute {' or '.join(schemes)} endpoint URL",
                expression="Subscription.channel.endpoint",
            )
    else:
        endpoint = None
    headers = channel.get("header") or []
    if not isinstance(headers, list) or not all(
        isinstance(h, str) and ":" in h and h.split(":", 1)[0].strip() and "\n" not in h and "\r" not in h
        for h in headers
    ):
        raise Unprocessable(
            "Subscription.channel.header entries must be 'Name: value' lines", expression="Subscription.channel.header"
        )
    payload_exts = _ext(channel.get("_payload"), PAYLOAD_URL)
    if payload_exts:
        payload = payload_exts[0].get("valueCode")
        if payload not in PAYLOADS:
            raise Unprocessable(
                f"The payload content must be one of {', '.join(PAYLOADS)}", expression="Subscription.channel.payload"
            )
    else:
        payload = "id-only" if channel.get("payload") else "empty"
    mime = channel.get("payload")
    if mime is not None and mime not in ("application/fhir+json", "application/json"):
        raise Unprocessable(
            "The hub sends notifications as application/fhir+json", expression="Subscription.channel.payload"
        )
    end = DATE_MAX
    if res.get("end") is not None:
        try:
            end = date_range(res["end"], "instant")[0]
        except (ValueError, TypeError):
            raise Unprocessable("Subscription.end is not an instant", expression="Subscription.end") from None
    return SubscriptionSpec(
        topic=topic,
        filters=tuple(filters),
        channel=kind,
        endpoint=endpoint,
        headers=tuple(headers),
        payload=str(payload),
        heartbeat=_int_ext(
            channel, HEARTBEAT_URL, "valueUnsignedInt", 0, 0, 86_400, "Subscription.channel.extension(heartbeat-period)"
        ),
        timeout=_int_ext(
            channel, TIMEOUT_URL, "valueUnsignedInt", 10, 1, 120, "Subscription.channel.extension(timeout)"
        ),
        max_count=_int_ext(
            channel, MAX_COUNT_URL, "valuePositiveInt", 100, 1, 1000, "Subscription.channel.extension(max-count)"
        ),
        end=end,
        off=res.get("status") == "off",
    )


def parse_filter(topic: Topic, text: Any) -> list[tuple[str, str]]:
    """``Task?patient=Patient/1&status=accepted`` (or without the type) -> [(name, value)]."""
    where = "Subscription.criteria.extension(filter-criteria)"
    if not isinstance(text, str) or not text.strip():
        raise Unprocessable("A filter criteria extension needs a valueString", expression=where)
    prefix, _, query = text.partition("?") if "?" in text else ("", "", text)
    out: list[tuple[str, str]] = []
    if prefix:
        if topic.types and prefix not in topic.types:
            raise Unprocessable(
                f"Topic {topic.code} covers {', '.join(sorted(topic.types))}, not {prefix}", expression=where
            )
        if not topic.types:
            out.append(("type", prefix))
    allowed = {name for name, _ in topic.filters}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in allowed:
            raise Unprocessable(
                f"Topic {topic.code} cannot filter by '{name}' (it can by {', '.join(sorted(allowed))})",
                expression=where,
            )
        if not value:
            raise Unprocessable(f"Filter '{name}' needs a value", expression=where)
        if name == "patient":
            ref_type, _, ref_id = value.rpartition("/")
            if ref_type not in ("", "Patient") or not ref_id:
                raise Unprocessable("The patient filter is a Patient reference (Patient/{id})", expression=where)
            value = ref_id
        out.append((name, value))
    return out


async def check_may_subscribe(conn: AsyncConnection, policy: Policy, spec: SubscriptionSpec) -> None:
    """May the caller subscribe to this topic with these filters? Asked of the access policy:
    the caller's kind must be one the topic is for, and every client named in a filter must be one
    whose data the caller may read now. The hub's own subscriptions (SystemPolicy) may."""
    if not isinstance(policy, AccessPolicy):
        return
    p = policy.principal
    topic = spec.topic
    if p.kind not in topic.kinds or (p.kind == "admin" and not p.is_admin):
        raise Forbidden(f"Topic {topic.code} is not for this kind of caller ({p.kind})")
    if p.kind == "professional" and not p.organisation_ura:
        raise Forbidden("Only a system acting for an organisation may subscribe to this topic")
    if p.kind == "related":
        d = policy.delegated
        if d is None or not (d.legal_representative or topic.categories & d.categories):
            raise Forbidden(f"The client did not delegate {', '.join(sorted(topic.categories))} data to you")
    patients = [v for n, v in spec.filters if n == "patient"]
    for patient_id in patients:
        row = (
            await conn.execute(
                select(resource.c.pid).where(
                    resource.c.res_type == "Patient", resource.c.res_id == patient_id, resource.c.deleted.is_(False)
                )
            )
        ).first()
        if row is None or not await policy.visible(conn, [row[0]]):
            raise Forbidden(
                f"You may not read the data of Patient/{patient_id}",
                expression="Subscription.criteria.extension(filter-criteria)",
            )


# -- the interactions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscriber:
    """Who manages subscriptions in one request, and through what: the app's repository (bound to the
    hub's own policy: access is decided here, by :func:`check_may_subscribe` and the owner key, not by
    categories), the caller's policy, the request's audit trail, the FHIR base and the transaction
    (``conn``) the interaction joins, if any."""

    repo: Repository
    policy: Policy
    trail: AuditTrail | None
    base: str
    conn: AsyncConnection | None = None

    @property
    def key(self) -> str:
        return owners.owner_key(self.policy.principal)

    @property
    def writer(self) -> Repository:
        return self.repo.with_policy(SYSTEM, self.trail)


async def _state(conn: AsyncConnection, who: Subscriber, sub_id: str) -> Any:
    """The subscription's state row, if the caller owns it (else 404: others' subscriptions are unknown)."""
    s = subscription_state
    row = (await conn.execute(select(s).where(s.c.sub_id == sub_id))).mappings().first()
    if row is None or row["owner_key"] != who.key:
        raise NotFound(f"Subscription/{sub_id} is not known", expression="Subscription")
    return row


def _shown(content: str, status: str, error: str | None) -> dict[str, Any]:
    """The stored resource with the delivery state's status (and error) in it."""
    res = jsonio.loads(content)
    res["status"] = status
    if error and status in ("error", "off"):
        res["error"] = error[:500]
    else:
        res.pop("error", None)
    return res


async def write(
    who: Subscriber, body: Any, sub_id: str | None, *, if_match: str | None, allow_http: bool
) -> tuple[WriteOutcome, dict[str, Any]]:
    """Create (``sub_id`` None) or update a Subscription: the stored outcome and the resource as shown."""
    res = check_resource(body, "Subscription")
    spec = parse_spec(res, allow_http=allow_http)
    principal = who.policy.principal
    key = who.key
    repo = who.writer
    now = now_us()
    async with repo.writing(who.conn) as conn:
        await check_may_subscribe(conn, who.policy, spec)
        current = None
        if sub_id is not None:
            current = (
                (await conn.execute(select(subscription_state).where(subscription_state.c.sub_id == sub_id)))
                .mappings()
                .first()
            )
            if current is not None and current["owner_key"] != key:
                raise NotFound(f"Subscription/{sub_id} is not known", expression="Subscription")
            if current is None:
                existing = (
                    await conn.execute(
                        select(resource.c.pid).where(resource.c.res_type == "Subscription", resource.c.res_id == sub_id)
                    )
                ).first()
                if existing is not None:
                    raise NotFound(f"Subscription/{sub_id} is not known", expression="Subscription")
        status = _next_status(spec, current)
        stored_body = {k: v for k, v in res.items() if k != "error"}
        stored_body["status"] = "requested" if status == "requested" else status
        if sub_id is None:
            outcome = await repo.create({k: v for k, v in stored_body.items() if k != "id"}, conn=conn)
        else:
            outcome = await repo.update("Subscription", sub_id, stored_body, conn=conn, if_match=if_match)
        stored = outcome.stored
        values = {
            "topic": spec.topic.url,
            "filters": orjson.dumps(list(spec.filters)).decode(),
            "channel": spec.channel,
            "endpoint": spec.endpoint,
            "headers": orjson.dumps(list(spec.headers)).decode(),
            "payload": spec.payload,
            "heartbeat": spec.heartbeat,
            "timeout": spec.timeout,
            "max_count": spec.max_count,
            "end": spec.end,
            "status": status,
        }
        if current is None:
            await conn.execute(
                insert(subscription_state).values(
                    sub_id=stored.res_id,
                    owner=owners.owner_json(principal) if principal else "{}",
                    owner_key=key,
                    events_total=0,
                    delivered=0,
                    failures=0,
                    next_attempt=0,
                    last_sent=now,
                    lease_until=0,
                    ws_token_expires=0,
                    created=now,
                    **values,
                )
            )
        else:
            if status == "requested":
                values.update(failures=0, next_attempt=0, last_error=None)
            await conn.execute(
                update(subscription_state).where(subscription_state.c.sub_id == stored.res_id).values(**values)
            )
    return outcome, _shown(stored.content or "{}", status, None)


def _next_status(spec: SubscriptionSpec, current: Any) -> str:
    """A new subscription is ``requested`` (the worker's handshake makes it ``active``); ``off`` when
    the client says so; a changed channel needs a new handshake; re-requesting one in error or
    off starts it again; otherwise the state is kept."""
    if spec.off:
        return "off"
    if current is None:
        return "requested"
    changed = (current["channel"], current["endpoint"], current["topic"]) != (
        spec.channel,
        spec.endpoint,
        spec.topic.url,
    )
    if changed or current["status"] in ("error", "off"):
        return "requested"
    return str(current["status"])


async def read(who: Subscriber, sub_id: str) -> tuple[Stored, dict[str, Any]]:
    """The caller's Subscription as stored, and as shown (with its delivery state)."""
    async with who.repo.reading(who.conn) as conn:
        state = await _state(conn, who, sub_id)
        stored = await who.repo.read("Subscription", sub_id, conn=conn)
    return stored, _shown(stored.content or "{}", state["status"], state["last_error"])


async def remove(who: Subscriber, sub_id: str) -> WriteOutcome | None:
    """Delete the caller's Subscription with its delivery state and events (None: deleted already)."""
    repo = who.writer
    async with repo.writing(who.conn) as conn:
        await _state(conn, who, sub_id)
        outcome = await repo.delete("Subscription", sub_id, conn=conn)
        await conn.execute(delete(subscription_event).where(subscription_event.c.sub_id == sub_id))
        await conn.execute(delete(subscription_state).where(subscription_state.c.sub_id == sub_id))
    return outcome


async def search(who: Subscriber, query: list[tuple[str, str]]) -> dict[str, Any]:
    """The caller's own Subscriptions (by status, _id, criteria), as a searchset Bundle."""
    s = subscription_state
    cond = [s.c.owner_key == who.key]
    for name, value in query:
        if name == "status":
            cond.append(s.c.status.in_(value.split(",")))
        elif name == "_id":
            cond.append(s.c.sub_id.in_(value.split(",")))
        elif name == "url" or name == "criteria":
            cond.append(s.c.topic == value)
        elif name in ("_format", "_count", "_pretty"):
            continue
        else:
            raise BadRequest(f"Subscription search supports status, _id and criteria, not '{name}'", expression=name)
    async with who.repo.reading(who.conn) as conn:
        rows = (
            await conn.execute(
                select(s.c.sub_id, s.c.status, s.c.last_error, resource.c.content)
                .select_from(
                    s.join(resource, (resource.c.res_type == "Subscription") & (resource.c.res_id == s.c.sub_id))
                )
                .where(*cond)
                .order_by(s.c.created)
            )
        ).all()
    entries = [
        {
            "fullUrl": f"{who.base}/Subscription/{sid}",
            "resource": _shown(content, status, err),
            "search": {"mode": "match"},
        }
        for sid, status, err, content in rows
    ]
    return bundle("searchset", entries, total=len(entries))


async def status(who: Subscriber, sub_id: str) -> dict[str, Any]:
    """``$status``: the subscription's status Bundle."""
    async with who.repo.reading(who.conn) as conn:
        st = await _state(conn, who, sub_id)
    out = notification_bundle(
        base=who.base,
        sub_id=sub_id,
        topic=st["topic"],
        status=st["status"],
        kind="query-status",
        events_since_start=int(st["events_total"]),
        payload="empty",
        error=st["last_error"],
    )
    out["type"] = "searchset"
    out["total"] = 1
    for entry in out["entry"]:
        entry.pop("request", None)
        entry.pop("response", None)
        entry["search"] = {"mode": "match"}
    return out


async def events(who: Subscriber, sub_id: str, params: dict[str, str]) -> dict[str, Any]:
    """Replay: the subscription's events from ``eventsSinceNumber`` (default 1) to
    ``eventsUntilNumber``, with access decided now (what the owner may no longer read is left out)."""
    since = _number(params.get("eventsSinceNumber"), "eventsSinceNumber", 1)
    async with who.repo.reading(who.conn) as conn:
        st = await _state(conn, who, sub_id)
        until = _number(params.get("eventsUntilNumber"), "eventsUntilNumber", int(st["events_total"]))
        payload = params.get("content") or st["payload"]
        if payload not in PAYLOADS:
            raise BadRequest(f"content must be one of {', '.join(PAYLOADS)}", expression="content")
        e = subscription_event
        rows = (
            (
                await conn.execute(
                    select(e)
                    .where(e.c.sub_id == sub_id, e.c.number >= since, e.c.number <= until)
                    .order_by(e.c.number)
                    .limit(MAX_EVENTS_QUERY)
                )
            )
            .mappings()
            .all()
        )
        found = [Event.from_row(r) for r in rows]
        owner = owners.owner_principal(st["owner"])
        shown = await owners.readable(conn, owner, found)
        stored_contents = await owners.contents(conn, shown) if payload == "full-resource" else {}
        if who.trail is not None and shown and payload != "empty":
            for ev in shown[:20]:
                who.trail.resources[(ev.res_type, ev.res_id)] = str(ev.version)
            who.trail.patient_ids |= {p for ev in shown for p in ev.patients}
    return notification_bundle(
        base=who.base,
        sub_id=sub_id,
        topic=st["topic"],
        status=st["status"],
        kind="query-event",
        events_since_start=int(st["events_total"]),
        events=shown,
        payload=payload,
        contents=stored_contents,
    )


def _number(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise BadRequest(f"{name} must be a whole number", expression=name)
    return int(value)


async def ws_token(who: Subscriber, sub_id: str) -> dict[str, Any]:
    """A short-lived token the client sends over the websocket (``bind-with-token <token>``)."""
    token = secrets.token_urlsafe(32)
    expires = now_us() + WS_TOKEN_SECONDS * 1_000_000
    async with who.repo.writing(who.conn) as conn:
        st = await _state(conn, who, sub_id)
        if st["channel"] != "websocket":
            raise BadRequest("Only websocket subscriptions have binding tokens", expression="Subscription.channel.type")
        await conn.execute(
            update(subscription_state)
            .where(subscription_state.c.sub_id == sub_id)
            .values(ws_token_hash=token_hash(token), ws_token_expires=expires)
        )
    ws_base = who.base.replace("https://", "wss://").replace("http://", "ws://").rsplit("/fhir", 1)[0]
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "token", "valueString": token},
            {"name": "expiration", "valueDateTime": to_iso(expires)},
            {"name": "subscription", "valueString": f"{who.base}/Subscription/{sub_id}"},
            {"name": "websocket-url", "valueUrl": f"{ws_base}/ws/subscriptions"},
        ],
    }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- topics as resources ---------------------------------------------------------------------------


def topics(parts: list[str], query: list[tuple[str, str]], base: str) -> dict[str, Any]:
    """``SubscriptionTopic`` (``parts`` the path's segments) and ``SubscriptionTopic/{code}``: the topics,
    readable by every authenticated caller (the CapabilityStatement lists their canonicals publicly)."""
    if len(parts) == 1:
        url = dict(query).get("url")
        found = [t for t in TOPICS.values() if url in (None, t.url)]
        entries = [
            {
                "fullUrl": f"{base}/SubscriptionTopic/{t.code}",
                "resource": topic_resource(t, base),
                "search": {"mode": "match"},
            }
            for t in found
        ]
        return bundle("searchset", entries, total=len(entries))
    if len(parts) == 2 and parts[1] in TOPICS:
        return topic_resource(TOPICS[parts[1]], base)
    raise NotFound(f"SubscriptionTopic/{'/'.join(parts[1:])} is not known", expression="SubscriptionTopic")

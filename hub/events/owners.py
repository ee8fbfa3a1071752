"""Who a subscription is delivered as: the principal that created it, kept as JSON, and the key
that says who may manage it (any system of the same organisation; the client; the person acting
for that client; an administrator)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.principal import Principal
from hub.events.notifications import Event
from hub.fhir.errors import Forbidden
from hub.fhir.instants import now_us
from hub.store.tables import resource_history


def owner_json(p: Principal) -> str:
    data: dict[str, Any] = {
        "kind": p.kind,
        "subject": p.subject,
        "scopes": sorted(p.scopes),
        "client_id": p.client_id,
        "organisation_ura": p.organisation_ura,
        "practitioner": list(p.practitioner) if p.practitioner else None,
        "patient_bsn": p.patient_bsn,
        "person_id": p.person_id,
        "acting_for": p.acting_for,
        "relation": p.relation,
        "issuer": p.issuer,
    }
    return orjson.dumps(data).decode()


def owner_principal(text: str) -> Principal:
    data = orjson.loads(text)
    practitioner = data.get("practitioner")
    return Principal(
        kind=data["kind"],
        subject=data["subject"],
        scopes=frozenset(data.get("scopes") or ()),
        client_id=data.get("client_id"),
        organisation_ura=data.get("organisation_ura"),
        practitioner=(practitioner[0], practitioner[1]) if practitioner else None,
        patient_bsn=data.get("patient_bsn"),
        person_id=data.get("person_id"),
        acting_for=data.get("acting_for"),
        relation=data.get("relation"),
        issuer=data.get("issuer"),
    )


def owner_key(p: Principal | None) -> str:
    """Who may manage the subscription: the same organisation, client, representative or admin."""
    if p is None:
        return "hub"
    if p.kind == "professional" and p.organisation_ura:
        return f"ura:{p.organisation_ura}"
    if p.kind == "client" and p.patient_bsn:
        return f"bsn:{p.patient_bsn}"
    if p.kind == "related" and p.person_id:
        return f"person:{p.person_id}:{p.acting_for or ''}"
    if p.kind == "admin" and p.is_admin:
        return f"admin:{p.subject}"
    raise Forbidden("This caller cannot own subscriptions")


def owner_ura(key: str) -> str | None:
    return key[4:] if key.startswith("ura:") else None


async def readable(conn: AsyncConnection, owner: Principal, events: Sequence[Event]) -> list[Event]:
    """The events whose resource the owner may read *now*: the one access decision
    (hub.access.policy), built for the subscriber as for a request of theirs at this moment."""
    if not events:
        return []
    from hub.access.policy import build_policy

    policy = await build_policy(conn, owner, now=now_us())
    visible = await policy.visible(conn, sorted({e.pid for e in events}))
    return [e for e in events if e.pid in visible]


async def contents(conn: AsyncConnection, events: Sequence[Event]) -> Mapping[tuple[int, int], str]:
    """The stored JSON of each event's version (for full-resource payloads)."""
    wanted = {(e.pid, e.version) for e in events if e.change != "delete"}
    if not wanted:
        return {}
    h = resource_history
    rows = (
        await conn.execute(
            select(h.c.pid, h.c.version, h.c.content)
            .where(h.c.pid.in_(sorted({p for p, _ in wanted})))
            .where(h.c.version.in_(sorted({v for _, v in wanted})))
        )
    ).all()
    out: dict[tuple[int, int], str] = {}
    for pid, version, content in rows:
        if (pid, version) in wanted and content is not None:
            out[(pid, version)] = content if isinstance(content, str) else orjson.dumps(content).decode()
    return out

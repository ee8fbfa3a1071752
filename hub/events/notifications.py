"""Notification Bundles in the R4 Subscriptions Backport IG shape.

A notification is a ``history`` Bundle whose first entry is a ``Parameters`` resource (profile
``backport-subscription-status-r4``) naming the subscription, its topic, status, the notification
type (``handshake``, ``heartbeat``, ``event-notification``, ``query-status``, ``query-event``),
the number of events since the subscription started and one ``notification-event`` part per
event (event number, timestamp, focus). With ``full-resource`` payload the resources follow as
further entries. The hub adds an extension to each event naming the change (create, update,
delete), the version and, for status-bearing resources, the old and new status.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hub.fhir.instants import now_us, to_iso

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
CHANGE_EXTENSION = "https://zorgnet-hub.nl/fhir/StructureDefinition/notification-change"


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one subscription (a ``subscription_event`` row)."""

    number: int
    recorded: int
    pid: int
    res_type: str
    res_id: str
    version: int
    change: str
    patients: tuple[str, ...]
    old_status: str | None = None
    new_status: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Event:
        return cls(
            int(row["number"]),
            int(row["recorded"]),
            int(row["pid"]),
            row["res_type"],
            row["res_id"],
            int(row["version"]),
            row["change"],
            tuple(p for p in (row["patients"] or "").split() if p),
            row["old_status"],
            row["new_status"],
        )


def _event_part(event: Event, base: str, payload: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "event-number", "valueString": str(event.number)},
        {"name": "timestamp", "valueInstant": to_iso(event.recorded)},
    ]
    if payload != "empty":
        parts.append({"name": "focus", "valueReference": {"reference": f"{base}/{event.res_type}/{event.res_id}"}})
    change: list[dict[str, Any]] = [{"url": "change", "valueCode": event.change}]
    if payload != "empty":
        change.append({"url": "version", "valueString": str(event.version)})
        if event.old_status is not None:
            change.append({"url": "oldStatus", "valueCode": event.old_status})
        if event.new_status is not None:
            change.append({"url": "newStatus", "valueCode": event.new_status})
    return {"name": "notification-event", "extension": [{"url": CHANGE_EXTENSION, "extension": change}], "part": parts}


def status_parameters(
    *,
    base: str,
    sub_id: str,
    topic: str,
    status: str,
    kind: str,
    events_since_start: int,
    events: Sequence[Event] = (),
    payload: str = "id-only",
    error: str | None = None,
) -> dict[str, Any]:
    """The ``Parameters`` (SubscriptionStatus) that opens every notification and answers ``$status``."""
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{sub_id}"}},
        {"name": "topic", "valueCanonical": topic},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events_since_start)},
    ]
    params.extend(_event_part(e, base, payload) for e in events)
    if error:
        params.append({"name": "error", "valueCodeableConcept": {"text": error}})
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": params,
    }


def notification_bundle(
    *,
    base: str,
    sub_id: str,
    topic: str,
    status: str,
    kind: str,
    events_since_start: int,
    events: Sequence[Event] = (),
    payload: str = "id-only",
    contents: Mapping[tuple[int, int], str] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A notification (or ``$status`` / ``$events`` answer) as a history Bundle. ``contents`` maps
    (pid, version) to the stored JSON text, used for ``full-resource`` payloads."""
    status_res = status_parameters(
        base=base,
        sub_id=sub_id,
        topic=topic,
        status=status,
        kind=kind,
        events_since_start=events_since_start,
        events=events,
        payload=payload,
        error=error,
    )
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status_res['id']}",
            "resource": status_res,
            "request": {"method": "GET", "url": f"{base}/Subscription/{sub_id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if payload == "full-resource":
        for e in events:
            url = f"{base}/{e.res_type}/{e.res_id}"
            content = (contents or {}).get((e.pid, e.version))
            entry: dict[str, Any] = {"fullUrl": url}
            if content is not None and e.change != "delete":
                entry["resource"] = orjson.Fragment(content)
            method = {"create": "POST", "delete": "DELETE"}.get(e.change, "PUT")
            entry["request"] = {"method": method, "url": e.res_type if method == "POST" else f"{e.res_type}/{e.res_id}"}
            entry["response"] = {
                "status": {"POST": "201", "DELETE": "204"}.get(method, "200"),
                "etag": f'W/"{e.version}"',
            }
            entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": to_iso(now_us())},
        "type": "history",
        "timestamp": to_iso(now_us()),
        "entry": entries,
    }


def dumps(bundle: dict[str, Any]) -> bytes:
    return orjson.dumps(bundle)

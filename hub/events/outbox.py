"""The transactional outbox: every resource write appends one ``outbox_event`` row in its own
transaction (the repository calls :meth:`Outbox.append` next to the audit record), so an event
exists exactly when the change committed. Nothing is sent from here: workers read the rows later
(:mod:`hub.events.delivery`).

The row is generic — resource type, id, version, the change kind, the data category, the client(s)
it belongs to — plus what the topics need that a later read could no longer tell: for a Task, its
status before and after the write and the organisations it names as owner or requester.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.fhir import jsonio
from hub.store.resources import Stored

#: Resource types whose status change is an event of its own (old and new status are kept).
STATUS_TYPES = frozenset({"Task", "ServiceRequest", "CarePlan", "Consent"})


class Outbox:
    """Prepares the event of each write; storage appends it in the write's own statement(s)
    (:func:`hub.store.resources.insert_event`, or a CTE of the PostgreSQL fast path). ``wake``
    (optional) nudges an in-process worker that there is work."""

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self.wake = wake

    async def event(
        self,
        conn: AsyncConnection,
        res_type: str,
        resource: dict[str, Any] | None,
        previous: Stored | None,
        patients: Sequence[str],
    ) -> dict[str, Any]:
        """The event columns of a write of ``resource`` (None for a delete) replacing ``previous``."""
        old: dict[str, Any] | None = None
        if previous is not None and previous.content and res_type in STATUS_TYPES:
            old = jsonio.loads(previous.content)
        new_status = resource.get("status") if resource is not None and res_type in STATUS_TYPES else None
        orgs = ""
        if res_type == "Task":
            orgs = " ".join(sorted(await _task_orgs(conn, resource if resource is not None else old)))
        if previous is None or previous.deleted:
            change = "create"
        else:
            change = "delete" if resource is None else "update"
        if self.wake is not None:
            self.wake()
        return {
            "change": change,
            "patients": " ".join(sorted(set(patients))),
            "orgs": orgs,
            "old_status": _short(old.get("status") if old is not None else None),
            "new_status": _short(new_status),
        }


async def _task_orgs(conn: AsyncConnection, task: dict[str, Any] | None) -> set[str]:
    """URAs of the organisations a Task names as owner or requester (directly, through a
    PractitionerRole, or by identifier)."""
    if not task:
        return set()
    from hub.access.facts import organisation_uras

    refs = [task[key] for key in ("owner", "requester") if isinstance(task.get(key), dict)]
    if not refs:
        return set()
    return set((await organisation_uras(conn, refs)).values())


def _short(value: Any) -> str | None:
    return value[:32] if isinstance(value, str) else None

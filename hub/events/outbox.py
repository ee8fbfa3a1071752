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

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.events.tables import outbox_event
from hub.fhir import jsonio
from hub.store.resources import Stored

#: Resource types whose status change is an event of its own (old and new status are kept).
STATUS_TYPES = frozenset({"Task", "ServiceRequest", "CarePlan", "Consent"})


class Outbox:
    """Appends events; ``wake`` (optional) nudges an in-process worker that there is work."""

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self.wake = wake

    async def append(
        self,
        conn: AsyncConnection,
        stored: Stored,
        resource: dict[str, Any] | None,
        previous: Stored | None,
        patients: Sequence[str],
    ) -> None:
        """One event for the write that produced ``stored`` (``resource`` None for a delete;
        ``previous`` the version it replaced)."""
        old: dict[str, Any] | None = None
        if previous is not None and previous.content and stored.res_type in STATUS_TYPES:
            old = jsonio.loads(previous.content)
        new_status = resource.get("status") if resource is not None and stored.res_type in STATUS_TYPES else None
        old_status = old.get("status") if old is not None else None
        orgs = ""
        if stored.res_type == "Task":
            orgs = " ".join(sorted(await _task_orgs(conn, resource if resource is not None else old)))
        kind = "create" if previous is None or previous.deleted else ("delete" if stored.deleted else "update")
        await conn.execute(insert(outbox_event).values(
            recorded=stored.last_updated, pid=stored.pid, res_type=stored.res_type, res_id=stored.res_id,
            version=stored.version, change=kind, category=stored.category or "medisch",
            patients=" ".join(sorted(set(patients))), orgs=orgs,
            old_status=_short(old_status), new_status=_short(new_status),
        ))
        if self.wake is not None:
            self.wake()


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

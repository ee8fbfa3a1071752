"""Keeping the workflow facts up to date, in the transaction of the write that implies them.

- the creator of a new resource (from the :class:`WriteVerdict`) is written with the resource itself
  (:class:`hub.store.resources.Authorship`).
- :func:`after_write`: an overdracht Task's write rewrites what its receiver may read
  (``overdracht_access``); a Composition's write rewrites it for the Tasks that name it (its
  sections decide what the receiver may read with it); an Organization's or PractitionerRole's
  write for the Tasks naming it as their owner (its URA decides who the receiver is).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, bindparam, delete, false, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.fhir.references import resolve
from hub.store import pg_batch
from hub.store.direct import InTransaction
from hub.store.resources import Stored
from hub.store.tables import idx_reference, resource
from hub.workflows import overdracht
from hub.workflows.tables import overdracht_access

#: The types :func:`after_write` derives anything for.
DERIVING_TYPES = frozenset({"Task", "Organization", "PractitionerRole", "Composition"})


def derives_anything(stored: Stored, res: dict[str, Any] | None, replaced: Stored | None = None) -> bool:
    """Whether :func:`after_write` derives anything that changes for the write of ``stored``
    (``res``; None: a deletion) replacing ``replaced`` (None: a create); one it derives nothing for
    may be made alone (hub.store.repository)."""
    from hub.access.facts import organisation_without_ura

    return stored.res_type in DERIVING_TYPES and not organisation_without_ura(stored, res, replaced)


async def after_write(
    conn: AsyncConnection,
    stored: Stored,
    res: dict[str, Any] | None,
    _author_ura: str | None,
    *,
    base: str | None = None,
) -> None:
    """``base`` is the hub's FHIR base: only references to resources on this hub count
    (:func:`hub.fhir.references.resolve`)."""
    if stored.res_type not in DERIVING_TYPES:
        return
    if stored.res_type == "Task":
        await derive_task(conn, stored.pid, res, base)
    elif stored.res_type in ("Organization", "PractitionerRole"):
        from hub.access.facts import new_organisation_without_ura

        if not new_organisation_without_ura(stored, res):  # (its receivers' URAs are as they were)
            await _rederive_owned_by(conn, stored.res_type, stored.res_id, base)
    elif stored.res_type == "Composition":
        rows = await _TASKS_NAMING_COMPOSITION.fetch(conn, {"res_id": stored.res_id})
        for (task_pid,) in rows:
            found = await _CONTENT_BY_PID.fetch(conn, {"pid": task_pid})
            task = found[0] if found else None
            await derive_task(conn, task_pid, orjson.loads(task[0]) if task and task[0] else None, base)


async def _rederive_owned_by(conn: AsyncConnection, res_type: str, res_id: str, base: str | None) -> None:
    """An organisation (or its PractitionerRole) registered or changed after Tasks named it as their
    receiver: what those receivers may read is derived again (its URA decides who it is)."""
    targets = [(res_type, res_id)]
    if res_type == "Organization":
        roles = (
            await conn.execute(
                select(idx_reference.c.pid, resource.c.res_id)
                .select_from(idx_reference.join(resource, resource.c.pid == idx_reference.c.pid))
                .where(
                    idx_reference.c.res_type == "PractitionerRole",
                    idx_reference.c.param == "organization",
                    idx_reference.c.target_type == "Organization",
                    idx_reference.c.target_id == res_id,
                )
            )
        ).all()
        targets += [("PractitionerRole", r[1]) for r in roles]
    tasks = (
        await conn.execute(
            select(resource.c.pid, resource.c.content).where(
                resource.c.pid.in_(
                    select(idx_reference.c.pid).where(
                        idx_reference.c.res_type == "Task",
                        idx_reference.c.param == "owner",
                        or_(
                            *(
                                and_(idx_reference.c.target_type == t, idx_reference.c.target_id == i)
                                for t, i in targets
                            )
                        ),
                    )
                ),
                resource.c.deleted == false(),
            )
        )
    ).all()
    for pid, content in tasks:
        await derive_task(conn, pid, orjson.loads(content) if content else None, base)


def _local(ref: str, base: str | None) -> tuple[str, str] | None:
    """The local resource a reference names; None for an external one (another server's URL that
    merely ends in ``Type/id`` names nothing here)."""
    target = resolve(ref, base)
    if target.res_type is None or target.res_id is None:
        return None
    return target.res_type, target.res_id


def _section_refs(node: Any) -> list[str]:
    """The references of a Composition's sections (nested sections too)."""
    out: list[str] = []
    for section in node.get("section") or [] if isinstance(node, dict) else []:
        if not isinstance(section, dict):
            continue
        for entry in section.get("entry") or []:
            if isinstance(entry, dict) and isinstance(entry.get("reference"), str):
                out.append(entry["reference"])
        out += _section_refs(section)
    return out


async def derive_task(conn: AsyncConnection, pid: int, task: dict[str, Any] | None, base: str | None = None) -> None:
    """Rewrite what the receiver of this overdracht Task may read because of it."""
    from hub.access.facts import organisation_uras

    await _FORGET_TASK.execute(conn, {"pid": pid})
    if task is None or not overdracht.yields_access(task):
        return  # not an overdracht, or one with a counterpart outside the hub
    for_ref = (task.get("for") or {}).get("reference")
    patient = _local(for_ref, base) if isinstance(for_ref, str) else None
    if patient is None or patient[0] != "Patient":
        return
    owner = task.get("owner")
    ura = (await organisation_uras(conn, [owner], base)).get(_key(owner)) if isinstance(owner, dict) else None
    if not ura:
        return
    status = str(task.get("status"))
    scopes = overdracht.access_scopes(status)
    targets: dict[tuple[str, str, str], bool] = {}

    def add(target: tuple[str, str] | None, scope: str) -> None:
        if target is not None:
            key = (target[0], target[1], scope)
            targets[key] = targets.get(key, False) or scope in scopes

    add(("Task", str(task.get("id"))), "task")
    add(patient, "notice")
    for scope, kind in (("notice", overdracht.ADVANCE_NOTICE), ("handoff", overdracht.HANDOFF)):
        for ref in overdracht.inputs(task, kind):
            doc = _local(ref, base)
            add(doc, scope)
            if doc is None or doc[0] != "Composition":
                continue
            found = await _COMPOSITION_CONTENT.fetch(conn, {"res_id": doc[1]})
            row = found[0] if found else None
            if row is None or row[0] is None:
                continue
            for entry in _section_refs(orjson.loads(row[0])):
                add(_local(entry, base), scope)
    await conn.execute(
        _TASK_ACCESS,
        [
            {
                "source_pid": pid,
                "patient_id": patient[1],
                "org_ura": ura,
                "task_status": status,
                "target_type": t,
                "target_id": i,
                "scope": s,
                "active": active,
            }
            for (t, i, s), active in targets.items()
        ],
    )


# The statements of after_write and derive_task, built once and run on the driver connection in the
# write transaction (hub.store.direct).
_TASKS_NAMING_COMPOSITION = InTransaction(
    select(overdracht_access.c.source_pid)
    .where(overdracht_access.c.target_type == "Composition", overdracht_access.c.target_id == bindparam("res_id"))
    .distinct()
    .execution_options(**{pg_batch.READS: frozenset()})  # (derived rows only: no waiting create is read)
)
_CONTENT_BY_PID = InTransaction(
    select(resource.c.content).where(resource.c.pid == bindparam("pid"), resource.c.deleted == false())
)
_FORGET_TASK = InTransaction(
    delete(overdracht_access)
    .where(overdracht_access.c.source_pid == bindparam("pid"))
    .execution_options(**{pg_batch.READS: frozenset()})
)
#: (Rows derived here only: the Bundle's waiting creates may keep waiting.)
_TASK_ACCESS = insert(overdracht_access).execution_options(**{pg_batch.READS: frozenset()})
_COMPOSITION_CONTENT = InTransaction(
    select(resource.c.content).where(
        resource.c.res_type == "Composition", resource.c.res_id == bindparam("res_id"), resource.c.deleted == false()
    )
)


def _key(ref: dict[str, Any]) -> str:
    from hub.access.facts import _ref_key

    return _ref_key(ref)

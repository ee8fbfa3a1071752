"""Reading the log as FHIR: ``GET AuditEvent/{id}`` and ``GET AuditEvent?...`` over ``audit_log``.

AuditEvents never pass through the resource store: the log is their only home, ``id`` is the
record's ``seq``, and they cannot be created, changed or deleted through the API
(:func:`reject_write`, 405).

Who sees what is decided by the caller (the access layer) and passed in as :class:`Visibility`:

- administrators: ``Visibility()`` - everything;
- a client (PGO): ``Visibility(patient_ids={own Patient ids})`` - every access to their data,
  denied ones included;
- a mantelzorger: the delegated clients' Patient ids, when the delegation includes ``audit``;
- a professional organisation: ``Visibility(agent_ura=URA)`` - only what that organisation did.

Both restrictions are part of the SQL, before paging and counting, so ``total`` and pages never
show more than a read would. Parameters: ``patient``, ``entity``, ``agent``, ``date``, ``type``,
``subtype``, ``action``, ``outcome``, ``_id``, ``_count``, ``_offset``, ``_sort`` (``date`` or
``-date``, the default: newest first), ``_total`` (``none`` skips the count), ``_snapshot``
(set in paging links so later records do not shift pages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit.tables import audit_entity, audit_head, audit_log, audit_patient
from hub.fhir.bundles import bundle
from hub.fhir.errors import BadRequest, Issue, MethodNotAllowed, operation_outcome
from hub.fhir.integers import MAX_BIGINT, parse_int, to_int
from hub.fhir.query import MAX_OFFSET
from hub.fhir.search_values import parse_count

SEARCH_PARAMS: frozenset[str] = frozenset(
    {
        "patient",
        "entity",
        "agent",
        "date",
        "type",
        "subtype",
        "action",
        "outcome",
        "_id",
    }
)
_CONTROL = frozenset({"_count", "_offset", "_sort", "_total", "_snapshot", "_format", "_pretty"})


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which records a caller may see: ``patient_ids`` None = any patient (an empty set = none);
    ``agent_ura`` set = only records where that organisation was an agent."""

    patient_ids: frozenset[str] | None = None
    agent_ura: str | None = None
    #: Only successful interactions (a professional must not learn, from its own denied attempts,
    #: which client a hidden resource belongs to).
    successful_only: bool = False

    def condition(self) -> ColumnElement[bool] | None:
        conds: list[ColumnElement[bool]] = []
        if self.successful_only:
            conds.append(audit_log.c.outcome == "0")
        if self.patient_ids is not None:
            if not self.patient_ids:
                return false()
            conds.append(
                audit_log.c.seq.in_(
                    select(audit_patient.c.seq).where(audit_patient.c.patient_id.in_(sorted(self.patient_ids)))
                )
            )
        if self.agent_ura is not None:
            conds.append(audit_log.c.agent_ura == self.agent_ura)
        return and_(*conds) if conds else None


def reject_write(method: str) -> None:
    """Raise 405 for anything but reading: the log is append-only, and only the hub appends."""
    if method.upper() not in ("GET", "HEAD"):
        raise MethodNotAllowed(
            f"AuditEvent is read-only: {method.upper()} is not allowed (the log is append-only)",
            headers={"Allow": "GET, HEAD"},
        )


def served(seq: int, event: str) -> str:
    """The stored canonical JSON with its ``id`` spliced in (no parse, no re-serialization)."""
    return f'{{"id":"{seq}",{event[1:]}'


async def read_audit(conn: AsyncConnection, res_id: str, visibility: Visibility) -> str | None:
    """The AuditEvent ``res_id`` as JSON text, or None when it does not exist or is not visible."""
    if to_int(res_id) is None:
        return None
    stmt = select(audit_log.c.seq, audit_log.c.event).where(audit_log.c.seq == to_int(res_id))
    cond = visibility.condition()
    if cond is not None:
        stmt = stmt.where(cond)
    row = (await conn.execute(stmt)).one_or_none()
    return None if row is None else served(int(row[0]), row[1])


async def search_audit(
    conn: AsyncConnection,
    params: Sequence[tuple[str, str]],
    visibility: Visibility,
    *,
    base: str,
    default_count: int = 20,
    max_count: int = 1000,
    strict: bool = False,
) -> dict[str, Any]:
    """The searchset Bundle for ``GET [base]/AuditEvent?params`` as ``visibility`` allows."""
    conds: list[ColumnElement[bool]] = []
    warnings: list[Issue] = []
    count, offset, snapshot, ascending, want_total = default_count, 0, None, False, True
    canonical: list[tuple[str, str]] = []
    for name, value in params:
        if name == "_count":
            count = parse_count(value, default_count, max_count)
        elif name == "_offset":
            offset = _int(value, name)
        elif name == "_snapshot":
            snapshot = _int(value, name)
        elif name == "_sort":
            if value not in ("date", "-date", "_id", "-_id"):
                raise BadRequest(f"AuditEvent sorts by date or -date, not '{value}'", expression="_sort")
            ascending = not value.startswith("-")
            canonical.append((name, value))
        elif name == "_total":
            want_total = value != "none"
            canonical.append((name, value))
        elif name in _CONTROL:
            continue
        elif name in SEARCH_PARAMS:
            if value:
                conds.append(_criterion(name, value))
                canonical.append((name, value))
        else:
            msg = f"Unknown or unsupported AuditEvent search parameter '{name}'"
            if strict:
                raise BadRequest(msg, expression=name, code="not-supported")
            warnings.append(Issue(msg + " (ignored)", "not-supported", "warning", (name,)))
    vis = visibility.condition()
    if vis is not None:
        conds.append(vis)
    if snapshot is None:
        head = select(audit_head.c.last_seq).where(audit_head.c.id == 1)
        snapshot = int((await conn.execute(head)).scalar_one())
    conds.append(audit_log.c.seq <= snapshot)
    where = and_(*conds)
    order = audit_log.c.seq.asc() if ascending else audit_log.c.seq.desc()
    page = select(audit_log.c.seq, audit_log.c.event).where(where).order_by(order)
    rows = (await conn.execute(page.limit(count + 1).offset(offset))).all() if count > 0 else []
    has_next = len(rows) > count
    rows = rows[:count]
    total = None
    if want_total:
        counted = select(func.count()).select_from(audit_log).where(where)
        total = int((await conn.execute(counted)).scalar_one())
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/AuditEvent/{seq}",
            "resource": orjson.Fragment(served(int(seq), event)),
            "search": {"mode": "match"},
        }
        for seq, event in rows
    ]
    if warnings:
        entries.append({"resource": operation_outcome(warnings), "search": {"mode": "outcome"}})
    url = f"{base}/AuditEvent"
    links = [("self", _link(url, canonical, count, offset, snapshot))]
    if has_next:
        links.append(("next", _link(url, canonical, count, offset + count, snapshot)))
    if offset > 0:
        links.append(("previous", _link(url, canonical, count, max(0, offset - count), snapshot)))
    return bundle("searchset", entries, total=total, links=links)


def _link(url: str, canonical: list[tuple[str, str]], count: int, offset: int, snapshot: int) -> str:
    params = [*canonical, ("_count", str(count))]
    if offset:
        params += [("_offset", str(offset)), ("_snapshot", str(snapshot))]
    return f"{url}?{urlencode(params)}"


def _int(value: str, name: str) -> int:
    return parse_int(value, name, maximum=MAX_OFFSET if name == "_offset" else MAX_BIGINT)


def _criterion(name: str, value: str) -> ColumnElement[bool]:
    """One parameter occurrence: its comma-separated values are alternatives (OR)."""
    values = [v for v in value.split(",") if v]
    if name == "_id":
        seqs = [i for i in (to_int(v) for v in values) if i is not None]
        return audit_log.c.seq.in_(seqs) if seqs else false()
    if name == "patient":
        ids = [_ref_id(v, "Patient") for v in values]
        return audit_log.c.seq.in_(select(audit_patient.c.seq).where(audit_patient.c.patient_id.in_(ids)))
    if name == "entity":
        refs = [_plain_ref(v) for v in values]
        alts: list[ColumnElement[bool]] = [
            audit_log.c.seq.in_(select(audit_entity.c.seq).where(audit_entity.c.ref.in_(refs)))
        ]
        patients = [r.removeprefix("Patient/") for r in refs if r.startswith("Patient/")]
        if patients:
            alts.append(
                audit_log.c.seq.in_(select(audit_patient.c.seq).where(audit_patient.c.patient_id.in_(patients)))
            )
        return or_(*alts)
    if name == "agent":
        whos = [v.rsplit("|", 1)[-1] for v in values]
        return or_(
            audit_log.c.agent_client.in_(whos), audit_log.c.agent_ura.in_(whos), audit_log.c.agent_user.in_(whos)
        )
    if name == "date":
        return or_(*(_date(v) for v in values))
    column = {
        "type": audit_log.c.type_code,
        "subtype": audit_log.c.interaction,
        "action": audit_log.c.action,
        "outcome": audit_log.c.outcome,
    }[name]
    return column.in_([v.rsplit("|", 1)[-1] for v in values])


def _ref_id(value: str, res_type: str) -> str:
    """``123``, ``Patient/123`` or ``https://.../Patient/123`` -> ``123``."""
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == res_type:
        return parts[-1]
    if len(parts) == 1:
        return value
    raise BadRequest(f"'{value}' is not a {res_type} reference", expression=res_type.lower())


def _plain_ref(value: str) -> str:
    """``Type/id`` (version and base removed) from an entity reference."""
    ref = value.split("/_history/", 1)[0].rstrip("/")
    parts = ref.split("/")
    if len(parts) < 2:
        raise BadRequest(f"entity must be a reference 'Type/id', not '{value}'", expression="entity")
    return f"{parts[-2]}/{parts[-1]}"


_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb")


def _date(value: str) -> ColumnElement[bool]:
    from hub.fhir.normalize import date_range

    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    raw = value[2:] if value[:2] in _PREFIXES else value
    try:
        low, high = date_range(raw, "dateTime")
    except BadRequest:
        raise BadRequest(f"date must be a FHIR date or instant, not '{value}'", expression="date") from None
    col = audit_log.c.recorded
    return {
        "eq": and_(col >= low, col <= high),
        "ne": or_(col < low, col > high),
        "lt": col < low,
        "eb": col < low,
        "le": col <= high,
        "gt": col > high,
        "sa": col > high,
        "ge": col >= low,
    }[prefix]


__all__ = ["SEARCH_PARAMS", "Visibility", "read_audit", "reject_write", "search_audit", "served"]

"""The shared care plan: who may change which part, as pure rules over two versions.

The coordinator (regiehouder: the organisation that wrote the plan, or the one ``CarePlan.author``
names) edits the plan's structure and goals. Every other party writes activities only:

- a professional participant adds activities it performs and changes the status and progress of
  the activities it performs (``detail.status``, ``detail.statusReason``, when it started and
  stopped (``detail.scheduled[x]``), ``progress``, outcome);
- the client, and a mantelzorger with a ``zorgplan`` delegation, add activities they perform and
  change those activities;
- the client (and a legal representative) also has a say over the other parties' activities in
  their own plan: they put one on hold, cancel it or stop it (``detail.status`` with
  ``detail.statusReason``), nothing else of it (the client in control of their own care; whether
  care was given, ``completed``, is its performer's to report, and the performer resumes what was
  put on hold);
- nobody removes or reassigns another party's activity; the normal way out is a status change.

The rules compare the stored version with the new one, so a PUT, a JSON Patch and a FHIRPath Patch
are judged alike: a patch that touches another party's activity changes that activity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.workflows.refusal import refuse

#: Parts of an activity a professional participant may change on the activities it performs.
STATUS_ELEMENTS = frozenset({"progress", "outcomeCodeableConcept", "outcomeReference"})
#: (The period is the performer's to report: when it started and stopped, e.g. iWmo 305/307.)
STATUS_DETAIL_ELEMENTS = frozenset({"status", "statusReason", "scheduledPeriod", "scheduledTiming", "scheduledString"})
#: What the client (or a legal representative) may do to another party's activity: the status they
#: may set, from a status that is not final, with a reason, and nothing else of the activity.
CLIENT_STATUSES = frozenset({"on-hold", "cancelled", "stopped"})
CLIENT_FINAL = frozenset({"completed", "cancelled", "stopped", "entered-in-error"})
CLIENT_DETAIL_ELEMENTS = frozenset({"status", "statusReason"})
#: Elements of the plan nobody but the coordinator changes are all except these.
FREE_ELEMENTS = frozenset({"meta", "text", "activity"})


def performer_refs(activity: Any) -> list[Any]:
    """The performers an activity names (``detail.performer``)."""
    if not isinstance(activity, dict):
        return []
    detail = activity.get("detail")
    return list(detail.get("performer") or []) if isinstance(detail, dict) else []


def _only_status(old: dict[str, Any], new: dict[str, Any]) -> bool:
    for name in set(old) | set(new):
        if name == "detail":
            o, n = old.get("detail") or {}, new.get("detail") or {}
            if any(o.get(k) != n.get(k) for k in (set(o) | set(n)) - STATUS_DETAIL_ELEMENTS):
                return False
        elif name not in STATUS_ELEMENTS and old.get(name) != new.get(name):
            return False
    return True


def _client_status(old: dict[str, Any], new: dict[str, Any], where: str) -> None:
    """The client's say over another party's activity: only its status (to one of
    :data:`CLIENT_STATUSES`, from one not in :data:`CLIENT_FINAL`) and the reason; refused otherwise."""
    o, n = old.get("detail") or {}, new.get("detail") or {}
    same_rest = (
        isinstance(o, dict)
        and isinstance(n, dict)
        and all(old.get(k) == new.get(k) for k in (set(old) | set(new)) - {"detail"})
        and all(o.get(k) == n.get(k) for k in (set(o) | set(n)) - CLIENT_DETAIL_ELEMENTS)
    )
    if not same_rest:
        raise refuse(
            403,
            "careplan-client-status",
            f"{where} is performed by another party: you change its status "
            "(on-hold, cancelled, stopped) and the reason, nothing else of it",
            expression=where,
        )
    before, after = o.get("status"), n.get("status")
    if before == after:
        return  # the reason only
    if after not in CLIENT_STATUSES or before in CLIENT_FINAL:
        allowed = "none (it is final)" if before in CLIENT_FINAL else ", ".join(sorted(CLIENT_STATUSES))
        raise refuse(
            403,
            "careplan-client-status",
            f"{where}.detail.status: you set another party's activity from "
            f"{before!r} to {after!r}; allowed for you: {allowed}; whether care was given is its "
            "performer's to report",
            expression=f"{where}.detail.status",
        )


def check_update(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    performs: Callable[[Any], bool],
    status_only: bool,
    client_say: bool = False,
) -> None:
    """A participant's (not the coordinator's) new version of the plan. ``performs(activity)``: the
    caller performs that activity; ``status_only``: the caller is a professional participant (may
    change status and progress only), not the client or a mantelzorger; ``client_say``: the caller
    is the client (or a legal representative), who also pauses or ends other parties' activities."""
    for name in sorted((set(old) | set(new)) - FREE_ELEMENTS):
        if old.get(name) != new.get(name):
            raise refuse(
                403,
                "careplan-structure",
                f"CarePlan.{name} is the coordinator's (regiehouder's) to "
                "change; participants change the activities they perform",
                expression=f"CarePlan.{name}",
            )
    before, after = list(old.get("activity") or []), list(new.get("activity") or [])
    for i in range(min(len(before), len(after))):
        o, n = before[i], after[i]
        if o == n:
            continue
        where = f"CarePlan.activity[{i}]"
        if client_say and not performs(o) and isinstance(o, dict) and isinstance(n, dict):
            _client_status(o, n, where)
            continue
        if not performs(o):
            raise refuse(
                403,
                "careplan-activity",
                f"{where} is performed by another party; only its performer and the coordinator change it",
                expression=where,
            )
        if not performs(n):
            raise refuse(
                403,
                "careplan-activity",
                f"{where} cannot be handed to another performer but by the coordinator",
                expression=where,
            )
        if status_only and isinstance(o, dict) and isinstance(n, dict) and not _only_status(o, n):
            raise refuse(
                403,
                "careplan-activity-status",
                f"{where}: a participant changes the status and "
                "progress of the activities it performs; the coordinator changes the rest",
                expression=where,
            )
    if len(after) < len(before):
        where = f"CarePlan.activity[{len(after)}]"
        raise refuse(
            403,
            "careplan-activity-remove",
            "activities are not removed from a shared care plan but by "
            "the coordinator; set the activity's status to 'cancelled' instead",
            expression=where,
        )
    for i in range(len(before), len(after)):
        if not performs(after[i]):
            where = f"CarePlan.activity[{i}]"
            raise refuse(
                403,
                "careplan-activity-add",
                f"{where}: a participant adds activities it performs itself "
                "(detail.performer must name you); the coordinator assigns activities to others",
                expression=where,
            )

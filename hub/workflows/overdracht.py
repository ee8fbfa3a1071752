"""The eOverdracht Task as a state machine (eOverdracht 4.0, notified pull), as pure rules.

The sender (``Task.requester``'s organisation) creates the Task ``requested`` with the advance
notice (aanmeldbericht, LOINC 57830-2) as input. The receiver (``Task.owner``) answers:
``received``, ``accepted``, ``rejected`` or ``on-hold`` (an alternative date proposed). Once
accepted, the sender attaches the nursing handoff (SNOMED 371535009); the receiver moves the Task
``in-progress`` and, on admission, ``completed``. The sender may cancel until completion. Every
other step, or a step by the wrong party, is refused with the next states that party may choose.

What the receiver may read follows the state (:func:`access_scopes`): the Task and the advance
notice before acceptance, the handoff as well from acceptance, and from completion it is in care
of the client (a care relation, under the client's consent). Rejection and cancellation leave it
the Task only.

An overdracht with a counterpart OUTSIDE the hub (an eOverdracht 4.0 STU3 system that is no hub
party) is marked by a ``meta.tag`` of :data:`EXCHANGE_SYSTEM`: ``imported`` (received from an
external sender: the requester is an organisation named by identifier only, the owner is the
writer) or ``exported`` (sent to an external receiver: the owner is named by identifier only, the
requester is the writer). The hub party's adapter then records the outside party's steps as well
(:func:`roles_in`), because the outside party cannot write to the hub; in return such a Task yields
no access facts for anyone (:func:`yields_access`): the outside party is no hub party, and the hub
party gains no right over the client it did not already have. Who counts as a hub party, so that no
organisation can pass a handover off as one from (or to) another hub party, is decided with the
hub's registrations (:mod:`hub.workflows.check`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from hub.access.overdracht import CARE_STATES as CARE_STATES
from hub.access.overdracht import EXCHANGE_SYSTEM as EXCHANGE_SYSTEM
from hub.access.overdracht import OVERDRACHT_CODE as OVERDRACHT_CODE
from hub.access.overdracht import SNOMED as SNOMED
from hub.access.overdracht import codes as _codes
from hub.access.overdracht import exchange as exchange
from hub.access.overdracht import is_overdracht as is_overdracht
from hub.access.overdracht import yields_access as yields_access
from hub.workflows.refusal import refuse

LOINC = "http://loinc.org"
ADVANCE_NOTICE = (LOINC, "57830-2")
HANDOFF = (SNOMED, "371535009")
#: The codes eOverdracht 4.0 uses for the same inputs since its later patch levels (the Task profile's
#: slices advanceNotice and nursingHandoff): SNOMED 721915006 and 11171000146100.
SAME_KIND: dict[tuple[str, str], frozenset[tuple[str, str]]] = {
    ADVANCE_NOTICE: frozenset({ADVANCE_NOTICE, (SNOMED, "721915006")}),
    HANDOFF: frozenset({HANDOFF, (SNOMED, "11171000146100")}),
}
ALTERNATIVE_DATE = (SNOMED, "146851000146105")
BUSINESS_STATUS_SYSTEM = "https://zorgnet-hub.nl/fhir/CodeSystem/overdracht-status"

SENDER, RECEIVER = "sender", "receiver"
#: The sides of an overdracht whose counterpart is outside the hub (tag :data:`EXCHANGE_SYSTEM`).
IMPORTED, EXPORTED = "imported", "exported"
EXTERNAL_SIDE = {IMPORTED: SENDER, EXPORTED: RECEIVER}

#: Every R4 Task status.
STATES = (
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
)

#: The overdracht's steps: from state -> {next state: the party that takes the step}.
TRANSITIONS: dict[str, dict[str, str]] = {
    "requested": {
        "received": RECEIVER,
        "accepted": RECEIVER,
        "rejected": RECEIVER,
        "on-hold": RECEIVER,
        "cancelled": SENDER,
    },
    "received": {"accepted": RECEIVER, "rejected": RECEIVER, "on-hold": RECEIVER, "cancelled": SENDER},
    "on-hold": {"accepted": RECEIVER, "rejected": RECEIVER, "cancelled": SENDER},
    "accepted": {"in-progress": RECEIVER, "cancelled": SENDER},
    "in-progress": {"completed": RECEIVER, "cancelled": SENDER},
}
#: States in which nothing changes any more.
CLOSED = frozenset(s for s in STATES if s not in TRANSITIONS)

#: What the receiver may read, by state: the Task itself; the advance notice (and the client's
#: demographics it needs to decide); the nursing handoff and what its sections reference.
NOTICE_STATES = frozenset({"requested", "received", "on-hold", "accepted", "in-progress", "completed"})
HANDOFF_STATES = frozenset({"accepted", "in-progress", "completed"})
#: Elements nobody changes after creation (who the overdracht is for, from whom, to whom, what).
IMMUTABLE = ("for", "requester", "owner", "code", "intent", "authoredOn", "identifier", "basedOn", "partOf", "focus")
#: Elements the receiver answers with (the rest is the sender's).
RECEIVER_ELEMENTS = frozenset({"output", "restriction"})
#: Elements either party may write (the hub keeps the last three right itself, see :func:`amend`).
COMMON_ELEMENTS = frozenset(
    {"meta", "text", "note", "statusReason", "status", "lastModified", "executionPeriod", "businessStatus"}
)

BUSINESS_TEXT = {
    "requested": "aangemeld",
    "received": "aanmelding ontvangen",
    "accepted": "geaccepteerd",
    "rejected": "afgewezen",
    "on-hold": "alternatieve datum voorgesteld",
    "in-progress": "opname bezig",
    "completed": "overdracht afgerond",
    "cancelled": "geannuleerd",
}


def external_reference(task: dict[str, Any]) -> Any:
    """The reference to the outside party of an imported/exported overdracht (requester or owner)."""
    side = EXTERNAL_SIDE.get(exchange(task) or "")
    if side is None:
        return None
    return task.get("requester" if side == SENDER else "owner")


def roles_in(task: dict[str, Any], requester: bool, owner: bool) -> frozenset[str]:
    """The caller's roles, given whether it is the Task's requester and/or owner. Of an imported
    overdracht the owner also takes the external sender's steps (and the requester, naming no hub
    party, none); of an exported one the requester also takes the external receiver's."""
    kind = exchange(task)
    if kind == IMPORTED:
        return frozenset({SENDER, RECEIVER}) if owner else frozenset()
    if kind == EXPORTED:
        return frozenset({SENDER, RECEIVER}) if requester else frozenset()
    return frozenset(({SENDER} if requester else set()) | ({RECEIVER} if owner else set()))


def check_external_form(task: dict[str, Any]) -> None:
    """An imported/exported overdracht names its outside party by identifier only (a Reference with
    an ``identifier`` and no literal ``reference``): nothing on the hub stands for it."""
    kind = exchange(task)
    if kind is None:
        return
    if kind not in EXTERNAL_SIDE:
        raise refuse(
            422,
            "overdracht-exchange",
            f"'{kind}' is not a code of {EXCHANGE_SYSTEM} (imported, exported)",
            expression="Task.meta.tag",
        )
    where = "Task.requester" if EXTERNAL_SIDE[kind] == SENDER else "Task.owner"
    ref = external_reference(task)
    ident = ref.get("identifier") if isinstance(ref, dict) else None
    if not isinstance(ident, dict) or not ident.get("system") or not ident.get("value") or "reference" in ref:
        raise refuse(
            422,
            "overdracht-external",
            f"an {kind} overdracht names the organisation outside the hub by "
            "identifier only (system and value, no literal reference)",
            expression=where,
        )


def inputs(task: dict[str, Any], kind: tuple[str, str]) -> list[str]:
    """The references (``Type/id``) of the inputs of one kind (advance notice, handoff; by any of the
    kind's codes, :data:`SAME_KIND`)."""
    codes = SAME_KIND.get(kind, frozenset({kind}))
    out = []
    for item in task.get("input") or []:
        if isinstance(item, dict) and codes & set(_codes(item.get("type"))):
            ref = (item.get("valueReference") or {}).get("reference")
            if isinstance(ref, str):
                out.append(ref)
    return out


def allowed_next(status: str, roles: Iterable[str]) -> list[str]:
    """The next states these roles may choose from ``status`` (in the state machine's order)."""
    mine = set(roles)
    return [nxt for nxt, party in TRANSITIONS.get(status, {}).items() if party in mine]


def _who(roles: frozenset[str]) -> str:
    return " and ".join(sorted(roles)) if roles else "neither the sender nor the receiver"


def _has_proposed_date(task: dict[str, Any]) -> bool:
    period = (task.get("restriction") or {}).get("period") or {}
    if period.get("start") or period.get("end"):
        return True
    return any(
        ALTERNATIVE_DATE in set(_codes(o.get("type"))) and o.get("valueDateTime")
        for o in task.get("output") or []
        if isinstance(o, dict)
    )


def check_create(task: dict[str, Any], roles: frozenset[str]) -> None:
    """A new overdracht: by its sender, ``requested``, with the advance notice and no handoff yet."""
    if SENDER not in roles:
        raise refuse(
            403,
            "overdracht-sender",
            "an overdracht is created by its sender: Task.requester must name your organisation",
            expression="Task.requester",
        )
    if task.get("status") != "requested":
        raise refuse(
            422,
            "overdracht-start",
            f"a new overdracht starts as 'requested', not '{task.get('status')}'",
            expression="Task.status",
            allowed=["requested"],
        )
    if not inputs(task, ADVANCE_NOTICE):
        raise refuse(
            422,
            "overdracht-advance-notice",
            "a new overdracht carries the advance notice (aanmeldbericht, LOINC 57830-2) as input",
            expression="Task.input",
        )
    if inputs(task, HANDOFF):
        raise refuse(
            422,
            "overdracht-handoff",
            "the nursing handoff is attached after the receiver accepted",
            expression="Task.input",
        )


def check_update(old: dict[str, Any], new: dict[str, Any], roles: frozenset[str]) -> None:
    """A new version of an overdracht Task written by a caller with these ``roles``."""
    before, after = str(old.get("status")), str(new.get("status"))
    choices = allowed_next(before, roles)
    if not roles:
        raise refuse(
            409,
            "overdracht-party",
            "only the sender (requester) and the receiver (owner) change an overdracht",
            expression="Task",
            allowed=choices,
        )
    if before in CLOSED:
        raise refuse(
            409,
            "overdracht-closed",
            f"the overdracht is {before}; it does not change any more",
            expression="Task.status",
            allowed=choices,
        )
    if exchange(old) != exchange(new):
        raise refuse(
            422,
            "overdracht-immutable",
            f"whether the overdracht's counterpart is outside the hub (the {EXCHANGE_SYSTEM} tag) does not change",
            expression="Task.meta.tag",
        )
    for name in IMMUTABLE:
        if old.get(name) != new.get(name):
            raise refuse(
                422,
                "overdracht-immutable",
                f"Task.{name} does not change after the overdracht was sent",
                expression=f"Task.{name}",
            )
    if before != after:
        step = TRANSITIONS[before].get(after)
        if step is None:
            raise refuse(
                409,
                "overdracht-transition",
                f"'{before}' -> '{after}' is not a step of the overdracht",
                expression="Task.status",
                allowed=choices,
            )
        if step not in roles:
            raise refuse(
                409,
                "overdracht-party",
                f"'{before}' -> '{after}' is the {step}'s step, and you are {_who(roles)}",
                expression="Task.status",
                allowed=choices,
            )
    for name in sorted((set(old) | set(new)) - COMMON_ELEMENTS - set(IMMUTABLE)):
        if old.get(name) == new.get(name):
            continue
        owner = RECEIVER if name in RECEIVER_ELEMENTS else SENDER
        if owner not in roles:
            raise refuse(
                403,
                "overdracht-elements",
                f"Task.{name} is written by the {owner}, and you are {_who(roles)}",
                expression=f"Task.{name}",
            )
    if inputs(new, HANDOFF) != inputs(old, HANDOFF) and after not in HANDOFF_STATES:
        raise refuse(
            422,
            "overdracht-handoff",
            f"the nursing handoff is attached after the receiver accepted (the overdracht is {after})",
            expression="Task.input",
        )
    if after == "completed" and not inputs(new, HANDOFF):
        raise refuse(
            422,
            "overdracht-handoff",
            "a completed overdracht carries the nursing handoff (SNOMED 371535009)",
            expression="Task.input",
        )
    if after == "on-hold" and before != after and not _has_proposed_date(new):
        raise refuse(
            422,
            "overdracht-on-hold",
            "on hold means an alternative date is proposed (Task.restriction.period or an output 146851000146105)",
            expression="Task.restriction",
        )


def check_delete(old: dict[str, Any], roles: frozenset[str]) -> None:
    """An overdracht is never deleted: the sender cancels it, kept in history."""
    raise refuse(
        409,
        "overdracht-delete",
        "an overdracht is not deleted; the sender cancels it (status 'cancelled'), which is kept in its history",
        expression="Task",
        allowed=allowed_next(str(old.get("status")), roles),
    )


def amend(new: dict[str, Any], old: dict[str, Any] | None, when: str) -> dict[str, Any]:
    """What the hub keeps right on every version of an overdracht Task: ``lastModified`` (this
    version's time), ``authoredOn`` (at creation), and at a change of state ``businessStatus`` and
    ``executionPeriod`` (started on ``in-progress``, ended on a closing state)."""
    if not is_overdracht(new):
        return new
    out = copy.deepcopy(new)
    out["lastModified"] = when
    if old is None:
        out.setdefault("authoredOn", when)
    status = str(out.get("status"))
    if old is None or old.get("status") != status:
        if status in BUSINESS_TEXT:
            out["businessStatus"] = {
                "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": status}],
                "text": BUSINESS_TEXT[status],
            }
        period = dict(out.get("executionPeriod") or {})
        if status == "in-progress":
            period.setdefault("start", when)
        if status in CLOSED and status != "draft":
            period.setdefault("end", when)
            if "start" in period and period["start"] > period["end"]:
                period["start"] = period["end"]
        if period:
            out["executionPeriod"] = period
    return out


def access_scopes(status: str) -> frozenset[str]:
    """What the receiver may read in this state: ``task``, ``notice``, ``handoff``."""
    scopes = {"task"}
    if status in NOTICE_STATES:
        scopes.add("notice")
    if status in HANDOFF_STATES:
        scopes.add("handoff")
    return frozenset(scopes)


def describe_access(status: str) -> str:
    """For ``Patient/$access``: what the receiver sees now."""
    scopes = access_scopes(status)
    if "handoff" in scopes:
        return "advance notice and nursing handoff" + (", and a care relation" if status in CARE_STATES else "")
    if "notice" in scopes:
        return "advance notice only"
    return "the Task only (no access to the client's data)"

"""The workflow layer's pure rules, without a database: the overdracht's bookkeeping and content
rules, and the shared care plan's parts per party."""

from __future__ import annotations

from typing import Any

import pytest

from hub.workflows import careplan, overdracht
from hub.workflows.refusal import WorkflowRefusal

SCT = "http://snomed.info/sct"


def _task(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": SCT, "code": "308292007"}]},
        "for": {"reference": "Patient/p"},
        "requester": {"reference": "Organization/a"},
        "owner": {"reference": "Organization/b"},
        "input": [
            {
                "type": {"coding": [{"system": "http://loinc.org", "code": "57830-2"}]},
                "valueReference": {"reference": "Composition/n"},
            }
        ],
        **extra,
    }


def _refusal(exc: pytest.ExceptionInfo[Exception]) -> WorkflowRefusal:
    assert isinstance(exc.value, WorkflowRefusal)
    return exc.value


def test_amend_keeps_the_bookkeeping_right() -> None:
    created = overdracht.amend(_task("requested"), None, "2026-11-30T10:00:00Z")
    assert created["authoredOn"] == created["lastModified"] == "2026-11-30T10:00:00Z"
    assert created["businessStatus"]["coding"][0]["code"] == "requested"
    started = overdracht.amend(_task("in-progress"), _task("accepted"), "2026-12-01T09:00:00Z")
    assert started["executionPeriod"] == {"start": "2026-12-01T09:00:00Z"}
    done = overdracht.amend({**started, "status": "completed"}, started, "2026-12-01T11:00:00Z")
    assert done["executionPeriod"] == {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T11:00:00Z"}
    assert done["businessStatus"]["text"] == "overdracht afgerond"
    same = overdracht.amend({**done, "note": [{"text": "x"}]}, done, "2026-12-02T08:00:00Z")
    assert same["businessStatus"] == done["businessStatus"] and same["lastModified"] == "2026-12-02T08:00:00Z"
    other = {"resourceType": "Task", "status": "requested"}
    assert overdracht.amend(other, None, "2026-12-02T08:00:00Z") is other


def test_on_hold_needs_a_date_and_rejection_of_a_closed_task_names_no_states() -> None:
    with pytest.raises(Exception) as exc:
        overdracht.check_update(_task("requested"), _task("on-hold"), frozenset({"receiver"}))
    assert _refusal(exc).rule == "overdracht-on-hold"
    overdracht.check_update(
        _task("requested"), _task("on-hold", restriction={"period": {"start": "2030-01-01"}}), frozenset({"receiver"})
    )
    stu3_style = _task(
        "on-hold",
        output=[{"type": {"coding": [{"system": SCT, "code": "146851000146105"}]}, "valueDateTime": "2030-01-01"}],
    )
    overdracht.check_update(_task("received"), stu3_style, frozenset({"receiver"}))
    with pytest.raises(Exception) as exc:
        overdracht.check_update(_task("cancelled"), _task("requested"), frozenset({"sender"}))
    assert _refusal(exc).rule == "overdracht-closed" and _refusal(exc).allowed == ()


def test_both_roles_take_both_kinds_of_steps() -> None:
    """An organisation that hands over to itself (another location) is sender and receiver."""
    both = frozenset({"sender", "receiver"})
    assert overdracht.allowed_next("requested", both) == ["received", "accepted", "rejected", "on-hold", "cancelled"]
    assert overdracht.allowed_next("in-progress", frozenset({"receiver"})) == ["completed"]
    assert overdracht.allowed_next("completed", both) == []


def _plan(*activities: dict[str, Any], title: str = "plan") -> dict[str, Any]:
    return {"resourceType": "CarePlan", "title": title, "activity": list(activities)}


def _act(who: str, status: str = "in-progress", description: str = "x") -> dict[str, Any]:
    return {"detail": {"status": status, "description": description, "performer": [{"reference": who}]}}


def _mine(who: str) -> Any:
    return lambda a: any(p.get("reference") == who for p in careplan.performer_refs(a))


def test_care_plan_parts() -> None:
    old = _plan(_act("A"), _act("B"))
    careplan.check_update(old, _plan(_act("A", "completed"), _act("B")), performs=_mine("A"), status_only=True)
    cases = [
        (_plan(_act("A", description="y"), _act("B")), True, "careplan-activity-status"),
        (_plan(_act("A"), _act("B", "completed")), True, "careplan-activity"),
        (_plan(_act("B")), False, "careplan-activity"),  # removing activity 0 shifts B onto it
        (_plan(_act("A")), False, "careplan-activity-remove"),
        (_plan(_act("A"), _act("B"), title="mine"), False, "careplan-structure"),
        (_plan(_act("A"), _act("B"), _act("B")), False, "careplan-activity-add"),
        (_plan(_act("B"), _act("B")), False, "careplan-activity"),  # handing it to someone else
    ]
    for new, status_only, rule in cases:
        with pytest.raises(Exception) as exc:
            careplan.check_update(old, new, performs=_mine("A"), status_only=status_only)
        assert _refusal(exc).rule == rule, (new, rule)
    careplan.check_update(
        old, _plan(_act("A", description="z"), _act("B"), _act("A")), performs=_mine("A"), status_only=False
    )


def test_the_client_pauses_or_ends_another_partys_activity_and_nothing_else() -> None:
    """The client's say (``client_say``) over an activity B performs: on-hold, cancelled or stopped, with a
    reason, from a status that is not final; never completed, never any other element, never a removal."""
    old = _plan(_act("C"), _act("B"))
    reason = {"text": "ik ben twee weken bij mijn dochter"}
    for status in ("on-hold", "cancelled", "stopped"):
        new = _plan(_act("C"), _act("B", status))
        new["activity"][1]["detail"]["statusReason"] = reason
        careplan.check_update(old, new, performs=_mine("C"), status_only=False, client_say=True)
    paused = _plan(_act("C"), _act("B", "on-hold"))
    careplan.check_update(
        paused, _plan(_act("C"), _act("B", "cancelled")), performs=_mine("C"), status_only=False, client_say=True
    )
    moved = _plan(_act("C"), _act("B"))
    moved["activity"][1]["detail"]["scheduledString"] = "maandag"
    cases = [
        (old, _plan(_act("C"), _act("B", "completed")), "careplan-client-status"),  # the performer's to report
        (paused, _plan(_act("C"), _act("B", "in-progress")), "careplan-client-status"),  # resuming: the performer
        (_plan(_act("C"), _act("B", "completed")), _plan(_act("C"), _act("B", "cancelled")), "careplan-client-status"),
        (old, _plan(_act("C"), _act("B", description="anders")), "careplan-client-status"),
        (old, _plan(_act("C"), _act("B", "on-hold", description="anders")), "careplan-client-status"),
        (old, moved, "careplan-client-status"),
        (old, _plan(_act("C"), _act("C")), "careplan-client-status"),  # taking it over
        (old, _plan(_act("C")), "careplan-activity-remove"),
        (old, _plan(_act("B"), _act("B")), "careplan-activity"),  # their own handed away: still refused
        (old, _plan(_act("C"), _act("B"), title="mijn plan"), "careplan-structure"),
    ]
    for before, new, rule in cases:
        with pytest.raises(Exception) as exc:
            careplan.check_update(before, new, performs=_mine("C"), status_only=False, client_say=True)
        assert _refusal(exc).rule == rule, (new, rule)
    # without the client's say (a mantelzorger, a professional) the same status change is refused
    with pytest.raises(Exception) as exc:
        careplan.check_update(old, _plan(_act("C"), _act("B", "on-hold")), performs=_mine("C"), status_only=False)
    assert _refusal(exc).rule == "careplan-activity"


def test_only_relative_references_are_this_hubs_resources() -> None:
    """A foreign absolute reference must never be read as one of the hub's own resources (it would let
    an overdracht Task give access to a real client through another server's URL)."""
    from hub.workflows.derive import _local

    own = "https://hub.example/fhir"
    assert _local("Patient/pat-0", own) == ("Patient", "pat-0")
    assert _local("Composition/n1/_history/2", own) == ("Composition", "n1")
    assert _local(f"{own}/Patient/pat-0", own) == ("Patient", "pat-0")  # the hub's own base
    for foreign in ("http://evil.example/fhir/Patient/pat-0", "foo/Patient/pat-0", "urn:uuid:1234", "#contained"):
        assert _local(foreign, own) is None, foreign
        assert _local(foreign, None) is None, foreign


EXCHANGE = overdracht.EXCHANGE_SYSTEM


def test_an_overdracht_with_an_outside_party_gives_its_hub_side_both_roles_and_no_access() -> None:
    imported = _task(
        "requested",
        meta={"tag": [{"system": EXCHANGE, "code": "imported"}]},
        requester={"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/agb-z", "value": "1"}},
    )
    exported = _task(
        "requested",
        meta={"tag": [{"system": EXCHANGE, "code": "exported"}]},
        owner={"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "2"}},
    )
    both = frozenset({overdracht.SENDER, overdracht.RECEIVER})
    assert overdracht.roles_in(imported, requester=False, owner=True) == both
    assert overdracht.roles_in(imported, requester=True, owner=False) == frozenset()  # the outside sender: none
    assert overdracht.roles_in(exported, requester=True, owner=False) == both
    assert overdracht.roles_in(exported, requester=False, owner=True) == frozenset()
    assert overdracht.roles_in(_task("requested"), requester=True, owner=False) == {overdracht.SENDER}
    assert not overdracht.yields_access(imported) and not overdracht.yields_access(exported)
    assert overdracht.yields_access(_task("completed"))
    overdracht.check_external_form(imported)
    literal = {**imported, "requester": {"reference": "Organization/a", "identifier": {"system": "s", "value": "v"}}}
    with pytest.raises(Exception) as caught:
        overdracht.check_external_form(literal)
    assert _refusal(caught).rule == "overdracht-external"
    unknown = {**imported, "meta": {"tag": [{"system": EXCHANGE, "code": "forwarded"}]}}
    with pytest.raises(Exception) as caught:
        overdracht.check_external_form(unknown)
    assert _refusal(caught).rule == "overdracht-exchange"
    with pytest.raises(Exception) as caught:
        overdracht.check_update(imported, {**imported, "meta": {}}, both)
    assert _refusal(caught).rule == "overdracht-immutable"


def test_eoverdracht_4_input_codes_count_as_the_same_kind() -> None:
    task = _task(
        "completed",
        input=[
            {
                "type": {"coding": [{"system": SCT, "code": "721915006"}]},
                "valueReference": {"reference": "Composition/n"},
            },
            {
                "type": {"coding": [{"system": SCT, "code": "11171000146100"}]},
                "valueReference": {"reference": "Composition/h"},
            },
        ],
    )
    assert overdracht.inputs(task, overdracht.ADVANCE_NOTICE) == ["Composition/n"]
    assert overdracht.inputs(task, overdracht.HANDOFF) == ["Composition/h"]

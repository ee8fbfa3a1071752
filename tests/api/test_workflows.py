"""The workflow layer over real HTTP, on SQLite and PostgreSQL: the eOverdracht transition matrix,
the shared care plan's parts per party, ownership of deletes, and reading by the Task's state.

The Nictiz eOverdracht STU3 Task examples (REQUESTED, ACCEPTED, ON-HOLD-ALTDATE, REJECTED, CANCELLED,
COMPLETED-Overdrachtbericht) are expressed here in R4: the advance notice is an input of type LOINC
57830-2, the nursing handoff one of SNOMED 371535009, the proposed date ``restriction.period`` (the
STU3 examples use an output 146851000146105). The expected rules are written here from the issue,
independently of :mod:`hub.workflows`.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest_asyncio
from sqlalchemy import select

from hub.workflows.derive import derive_task
from hub.workflows.tables import overdracht_access
from tests.conftest import clean, token_for_app

SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
PERSON = "https://zorgnet-hub.nl/fhir/NamingSystem/person-id"
HUB = "https://zorgnet-hub.nl/fhir"
JSON_PATCH = {"Content-Type": "application/json-patch+json"}

CLIENT_BSN = "999993653"
ORGS = {"sender": "00023456", "receiver": "00056789", "third": "00045678", "thuiszorg": "00034567"}
PARTIES = {
    "sender": f"org:{ORGS['sender']}",
    "receiver": f"org:{ORGS['receiver']}",
    "third": f"org:{ORGS['third']}",
    "client": f"client:{CLIENT_BSN}",
    "mantelzorger": f"person:marieke:for:{CLIENT_BSN}",
    "admin": "admin",
}
#: The overdracht's states (the profile's value set), and every R4 Task status as a next state.
STATES = ("requested", "received", "accepted", "rejected", "cancelled", "in-progress", "on-hold", "completed")
R4_STATES = (*STATES, "draft", "ready", "failed", "entered-in-error")
#: The issue's eOverdracht steps: (from, to) -> the party that takes the step.
STEPS: dict[tuple[str, str], str] = {}
for _from in ("requested", "received"):
    for _to in ("received", "accepted", "rejected", "on-hold"):
        if _from != _to:
            STEPS[(_from, _to)] = "receiver"
STEPS.update(
    {
        ("on-hold", "accepted"): "receiver",
        ("on-hold", "rejected"): "receiver",
        ("accepted", "in-progress"): "receiver",
        ("in-progress", "completed"): "receiver",
    }
)
for _from in ("requested", "received", "on-hold", "accepted", "in-progress"):
    STEPS[(_from, "cancelled")] = "sender"
WITH_HANDOFF = ("accepted", "in-progress", "completed")


def _org(key: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": f"org-{key}",
        "name": key,
        "identifier": [{"system": URA, "value": ORGS[key]}],
    }


def task(task_id: str, status: str) -> dict[str, Any]:
    """An overdracht Task in ``status`` (R4 form of the Nictiz examples)."""
    body: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": SCT, "code": "308292007", "display": "overdracht van zorg"}]},
        "for": {"reference": "Patient/client"},
        "requester": {"reference": "Organization/org-sender"},
        "owner": {"reference": "Organization/org-receiver"},
        "input": [
            {
                "type": {"coding": [{"system": LOINC, "code": "57830-2"}]},
                "valueReference": {"reference": "Composition/notice"},
            }
        ],
    }
    if status in WITH_HANDOFF:
        body["input"].append(
            {
                "type": {"coding": [{"system": SCT, "code": "371535009"}]},
                "valueReference": {"reference": "Composition/handoff"},
            }
        )
    if status == "on-hold":
        body["restriction"] = {"period": {"start": "2030-01-06"}}
    if status == "rejected":
        body["statusReason"] = {"text": "geen plek"}
    return body


def network() -> list[dict[str, Any]]:
    subject = {"reference": "Patient/client"}
    consent_actor = {
        "role": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "DELEGATEE"}]
        },
        "reference": {"reference": "RelatedPerson/marieke"},
    }
    return [
        *(_org(k) for k in ORGS),
        *(
            {
                "resourceType": "PractitionerRole",
                "id": f"role-{k}",
                "organization": {"reference": f"Organization/org-{k}"},
            }
            for k in ORGS
        ),
        {
            "resourceType": "Patient",
            "id": "client",
            "identifier": [{"system": BSN, "value": CLIENT_BSN}],
            "name": [{"family": "Smit", "given": ["Johanna"]}],
            "birthDate": "1938-04-12",
        },
        {
            "resourceType": "RelatedPerson",
            "id": "marieke",
            "patient": subject,
            "identifier": [{"system": PERSON, "value": "marieke"}],
            "relationship": [
                {"coding": [{"system": "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4.23.1", "code": "100001"}]}
            ],
        },
        {
            "resourceType": "CareTeam",
            "id": "team",
            "status": "active",
            "subject": subject,
            "participant": [
                {"member": subject},
                {"member": {"reference": "RelatedPerson/marieke"}},
                *({"member": {"reference": f"PractitionerRole/role-{k}"}} for k in ("sender", "third", "thuiszorg")),
            ],
        },
        {
            "resourceType": "Consent",
            "id": "delegation",
            "status": "active",
            "scope": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
            },
            "category": [{"coding": [{"system": f"{HUB}/CodeSystem/consent-category", "code": "delegatie"}]}],
            "patient": subject,
            "dateTime": "2026-01-01",
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {
                "type": "permit",
                "actor": [consent_actor],
                "code": [
                    {"coding": [{"system": f"{HUB}/CodeSystem/data-category", "code": c}]}
                    for c in ("zorgplan", "overdracht")
                ],
            },
        },
        {
            "resourceType": "Composition",
            "id": "notice",
            "status": "final",
            "type": {"coding": [{"system": LOINC, "code": "57830-2"}]},
            "subject": subject,
            "date": "2026-11-20T10:00:00+01:00",
            "author": [{"reference": "Organization/org-sender"}],
            "title": "Aanmeldbericht",
            "section": [{"title": "Reden", "entry": [{"reference": "Condition/reason"}]}],
        },
        {
            "resourceType": "Condition",
            "id": "reason",
            "subject": subject,
            "code": {"text": "valincidenten, thuis niet meer veilig"},
        },
        {
            "resourceType": "Observation",
            "id": "wound",
            "status": "final",
            "subject": subject,
            "code": {"text": "wondbeoordeling"},
            "valueString": "decubitus graad 2 stuit",
        },
        {
            "resourceType": "Observation",
            "id": "acp",
            "status": "final",
            "subject": subject,
            "code": {"coding": [{"system": SCT, "code": "395091006"}]},
            "valueCodeableConcept": {"coding": [{"system": SCT, "code": "264362003"}]},
        },
    ]


def handoff() -> dict[str, Any]:
    return {
        "resourceType": "Composition",
        "id": "handoff",
        "status": "final",
        "type": {"coding": [{"system": SCT, "code": "11171000146100"}]},
        "subject": {"reference": "Patient/client"},
        "date": "2026-11-22T10:00:00+01:00",
        "author": [{"reference": "Organization/org-sender"}],
        "title": "Verpleegkundige overdracht",
        "section": [
            {
                "title": "Administratieve gegevens",
                "code": {"coding": [{"system": SCT, "code": "405624007"}]},
                "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Administratie</div>'},
            },
            {
                "title": "Medische context",
                "code": {"coding": [{"system": SCT, "code": "371524004"}]},
                "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Medisch</div>'},
            },
            {
                "title": "Zorgplan",
                "code": {"coding": [{"system": SCT, "code": "773130005"}]},
                "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Wond</div>'},
                "entry": [{"reference": "Observation/wound"}],
            },
        ],
    }


def care_plan() -> dict[str, Any]:
    def activity(code: str, performer: str) -> dict[str, Any]:
        return {
            "detail": {
                "code": {"coding": [{"system": f"{HUB}/CodeSystem/care-activity", "code": code}]},
                "status": "in-progress",
                "description": code,
                "performer": [{"reference": performer}],
            }
        }

    return {
        "resourceType": "CarePlan",
        "id": "plan",
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": f"{HUB}/CodeSystem/careplan-category", "code": "gedeeld-zorgplan"}]}],
        "title": "Gedeeld zorgplan",
        "subject": {"reference": "Patient/client"},
        "author": {"reference": "Organization/org-sender"},
        "activity": [
            activity("persoonlijke-verzorging", "PractitionerRole/role-thuiszorg"),
            activity("maaltijden", "RelatedPerson/marieke"),
        ],
    }


async def write_internal(app: Any, resources: list[dict[str, Any]]) -> None:
    """Store as the hub itself would (no caller, no workflow check): a given starting point."""
    repo = app.state.services.repo
    async with repo.db.write() as conn:
        for res in resources:
            await repo.update(res["resourceType"], res["id"], copy.deepcopy(res), conn=conn)


@pytest_asyncio.fixture(loop_scope="session")
async def hub(hub_app: Any) -> AsyncIterator[Any]:
    await clean(hub_app)
    await write_internal(hub_app, network())
    yield hub_app


class As:
    """HTTP as one party."""

    def __init__(self, app: Any, http: httpx.AsyncClient, party: str) -> None:
        self.http = http
        self.party = party
        self.h = {"Authorization": f"Bearer {token_for_app(app, PARTIES[party])}"}

    async def get(self, url: str) -> httpx.Response:
        return await self.http.get(f"/fhir/{url}", headers=self.h)

    async def patch(self, url: str, ops: Any, fhirpath: bool = False) -> httpx.Response:
        ctype = {"Content-Type": "application/fhir+json"} if fhirpath else JSON_PATCH
        return await self.http.patch(f"/fhir/{url}", headers={**self.h, **ctype}, json=ops)

    async def put(self, res: dict[str, Any]) -> httpx.Response:
        return await self.http.put(f"/fhir/{res['resourceType']}/{res['id']}", headers=self.h, json=res)

    async def post(self, res: dict[str, Any]) -> httpx.Response:
        return await self.http.post(f"/fhir/{res['resourceType']}", headers=self.h, json=res)

    async def delete(self, url: str) -> httpx.Response:
        return await self.http.delete(f"/fhir/{url}", headers=self.h)


@pytest_asyncio.fixture(loop_scope="session")
async def parties(hub: Any) -> AsyncIterator[dict[str, As]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub), base_url="http://hub.test") as http:
        yield {p: As(hub, http, p) for p in PARTIES}


def _diagnostics(resp: httpx.Response) -> str:
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " | ".join(i.get("diagnostics", "") for i in body["issue"])


def step_ops(new: str) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [{"op": "replace", "path": "/status", "value": new}]
    if new == "on-hold":
        ops.append({"op": "add", "path": "/restriction", "value": {"period": {"start": "2030-02-01"}}})
    if new in ("rejected", "cancelled"):
        ops.append({"op": "add", "path": "/statusReason", "value": {"text": "reden"}})
    return ops


# -- the transition matrix --------------------------------------------------------------------------


async def test_transition_matrix(hub: Any, parties: dict[str, As]) -> None:
    """Every (state, next state, party): allowed exactly where the steps say; a refusal names the
    rule and the allowed next states, and changes nothing."""
    await write_internal(hub, [handoff()])
    tried = allowed = 0
    for state in STATES:
        for new in R4_STATES:
            if new == state:
                continue
            tid = f"m-{state}-{new}"
            await write_internal(hub, [task(tid, state)])
            for party, who in parties.items():
                before = (await parties["sender"].get(f"Task/{tid}")).json()
                resp = await who.patch(f"Task/{tid}", step_ops(new))
                step = STEPS.get((state, new))
                tried += 1
                where = f"{party}: {state} -> {new}: {resp.text[:400]}"
                if step == party:
                    allowed += 1
                    assert resp.status_code == 200, where
                    got = resp.json()
                    assert got["status"] == new
                    assert got["lastModified"] == got["meta"]["lastUpdated"]
                    assert got["businessStatus"]["coding"][0]["code"] == new
                    if new == "in-progress":
                        assert got["executionPeriod"]["start"] == got["lastModified"]
                    if new in ("completed", "cancelled", "rejected"):
                        assert got["executionPeriod"]["end"] == got["lastModified"]
                    await write_internal(hub, [task(tid, state)])
                    continue
                if party == "admin":
                    assert resp.status_code == 404, where  # never sees overdracht content
                elif party == "client":  # (permission before profile validation)
                    assert resp.status_code == 403, where  # clients do not write overdracht data
                elif new not in STATES:
                    assert resp.status_code == 422, where  # not a state of the overdracht profile
                elif new == "completed" and state not in WITH_HANDOFF:
                    assert resp.status_code == 422, where  # a completed overdracht carries the handoff
                else:
                    assert resp.status_code == 409, where
                    text = _diagnostics(resp)
                    assert "Rule overdracht-" in text, where
                    mine = [n for (s, n), p in STEPS.items() if s == state and p == party]
                    assert f"Allowed next states for you: {', '.join(mine) or 'none'}" in text, where
                after = (await parties["sender"].get(f"Task/{tid}")).json()
                assert after["meta"]["versionId"] == before["meta"]["versionId"], where
    assert tried == 8 * 11 * 6
    assert allowed == len(STEPS)


async def test_creating_an_overdracht(hub: Any, parties: dict[str, As]) -> None:
    new = task("ignored", "requested")
    del new["id"]
    resp = await parties["third"].post(new)
    assert resp.status_code == 403 and "Rule overdracht-sender" in _diagnostics(resp)
    wrong = {**new, "status": "accepted"}
    resp = await parties["sender"].post(wrong)
    assert resp.status_code == 422 and "Rule overdracht-start" in _diagnostics(resp)
    bare = {**new, "input": []}
    bare.pop("input")
    resp = await parties["sender"].post(bare)
    assert resp.status_code == 422 and "overdracht-advance-notice" in _diagnostics(resp), resp.text
    resp = await parties["sender"].post(new)
    assert resp.status_code == 201, resp.text
    got = resp.json()
    assert got["businessStatus"]["coding"][0]["code"] == "requested"
    assert got["lastModified"] == got["authoredOn"] == got["meta"]["lastUpdated"]
    # the handoff is attached by the sender once accepted, not before
    ops = [
        {
            "op": "add",
            "path": "/input/-",
            "value": {
                "type": {"coding": [{"system": SCT, "code": "371535009"}]},
                "valueReference": {"reference": "Composition/handoff"},
            },
        }
    ]
    resp = await parties["sender"].patch(f"Task/{got['id']}", ops)
    assert resp.status_code == 422 and "overdracht-handoff" in _diagnostics(resp)
    assert (await parties["receiver"].patch(f"Task/{got['id']}", step_ops("accepted"))).status_code == 200
    resp = await parties["receiver"].patch(f"Task/{got['id']}", ops)
    assert resp.status_code == 403 and "overdracht-elements" in _diagnostics(resp)
    assert (await parties["sender"].patch(f"Task/{got['id']}", ops)).status_code == 200
    # who it is for and to whom it goes do not change
    resp = await parties["sender"].patch(
        f"Task/{got['id']}", [{"op": "replace", "path": "/owner", "value": {"reference": "Organization/org-third"}}]
    )
    assert resp.status_code == 422 and "overdracht-immutable" in _diagnostics(resp)
    # an overdracht is cancelled, not deleted
    resp = await parties["sender"].delete(f"Task/{got['id']}")
    assert resp.status_code == 409 and "Allowed next states for you: cancelled" in _diagnostics(resp)


# -- the three scenarios of the issue ---------------------------------------------------------------


async def test_gemeente_cannot_delete_the_shared_care_plan(hub: Any, parties: dict[str, As]) -> None:
    await write_internal(hub, [care_plan()])
    resp = await parties["third"].delete("CarePlan/plan")
    assert resp.status_code == 403, resp.text
    text = _diagnostics(resp)
    assert "Rule ownership-delete" in text and "ura:00023456" in text and "entered-in-error" in text
    assert (await parties["third"].get("CarePlan/plan")).status_code == 200
    # the refusal is in the audit log as a denied delete, with the rule as the reason
    admin = parties["admin"]
    resp = await admin.get("AuditEvent?outcome=4&action=D&_count=100")
    assert resp.status_code == 200, resp.text
    events = [e["resource"] for e in resp.json().get("entry", [])]
    assert any("Rule ownership-delete" in str(e) and "CarePlan/plan" in str(e) for e in events), events


async def test_mantelzorger_cannot_patch_another_partys_activity(hub: Any, parties: dict[str, As]) -> None:
    await write_internal(hub, [care_plan()])
    mz = parties["mantelzorger"]
    resp = await mz.patch("CarePlan/plan", [{"op": "remove", "path": "/activity/0"}])
    assert resp.status_code == 403, resp.text
    assert "Rule careplan-activity" in _diagnostics(resp)
    assert resp.json()["issue"][0]["expression"] == ["CarePlan.activity[0]"]
    fhirpath = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "CarePlan.activity[0].detail.status"},
                    {"name": "value", "valueCode": "stopped"},
                ],
            }
        ],
    }
    resp = await mz.patch("CarePlan/plan", fhirpath, fhirpath=True)
    assert resp.status_code == 403 and "careplan-activity" in _diagnostics(resp), resp.text
    # their own activity: yes; the plan's structure: no; an activity for someone else: no
    own = [
        {"op": "replace", "path": "/activity/1/detail/status", "value": "completed"},
        {"op": "replace", "path": "/activity/1/detail/description", "value": "boodschappen op dinsdag"},
    ]
    assert (await mz.patch("CarePlan/plan", own)).status_code == 200
    resp = await mz.patch("CarePlan/plan", [{"op": "replace", "path": "/title", "value": "Mijn plan"}])
    assert resp.status_code == 403 and "careplan-structure" in _diagnostics(resp)
    resp = await mz.patch(
        "CarePlan/plan",
        [
            {
                "op": "add",
                "path": "/activity/-",
                "value": {
                    "detail": {
                        "code": {"text": "wandelen"},
                        "status": "scheduled",
                        "description": "wandelen",
                        "performer": [{"reference": "RelatedPerson/marieke"}],
                    }
                },
            }
        ],
    )
    assert resp.status_code == 200, resp.text
    resp = await mz.patch(
        "CarePlan/plan",
        [
            {
                "op": "add",
                "path": "/activity/-",
                "value": {
                    "detail": {
                        "code": {"text": "douchen"},
                        "status": "scheduled",
                        "description": "douchen",
                        "performer": [{"reference": "PractitionerRole/role-third"}],
                    }
                },
            }
        ],
    )
    assert resp.status_code == 403 and "careplan-activity-add" in _diagnostics(resp)
    # a professional participant: status of its own activity yes, its description no
    tz = As(hub, mz.http, "third")
    tz.h = {"Authorization": f"Bearer {token_for_app(hub, 'org:' + ORGS['thuiszorg'])}"}
    assert (
        await tz.patch("CarePlan/plan", [{"op": "replace", "path": "/activity/0/detail/status", "value": "on-hold"}])
    ).status_code == 200
    resp = await tz.patch(
        "CarePlan/plan", [{"op": "replace", "path": "/activity/0/detail/description", "value": "anders"}]
    )
    assert resp.status_code == 403 and "careplan-activity-status" in _diagnostics(resp)
    # the coordinator changes anything; concurrent edits are a 412 via If-Match
    coord = parties["sender"]
    current = (await coord.get("CarePlan/plan")).json()
    stale = current["meta"]["versionId"]
    ok = await coord.http.patch(
        "/fhir/CarePlan/plan",
        headers={**coord.h, **JSON_PATCH, "If-Match": f'W/"{stale}"'},
        json=[{"op": "remove", "path": "/activity/0"}],
    )
    assert ok.status_code == 200, ok.text
    late = await coord.http.patch(
        "/fhir/CarePlan/plan",
        headers={**coord.h, **JSON_PATCH, "If-Match": f'W/"{stale}"'},
        json=[{"op": "replace", "path": "/title", "value": "x"}],
    )
    assert late.status_code == 412


async def test_the_client_pauses_or_ends_another_partys_activity(hub: Any, parties: dict[str, As]) -> None:
    """The client in control of their own care: they put a professional's activity in their plan on hold,
    cancel or stop it (with a reason), and change nothing else of it; a mantelzorger (not a legal
    representative) has no such say. Refusals are 403 with an OperationOutcome and change nothing."""
    await write_internal(hub, [care_plan()])
    client, mz = parties["client"], parties["mantelzorger"]
    reason = {"text": "ik ben twee weken bij mijn dochter"}
    resp = await client.patch(
        "CarePlan/plan",
        [
            {"op": "replace", "path": "/activity/0/detail/status", "value": "on-hold"},
            {"op": "add", "path": "/activity/0/detail/statusReason", "value": reason},
        ],
    )
    assert resp.status_code == 200, resp.text
    stored = (await parties["sender"].get("CarePlan/plan")).json()
    assert stored["activity"][0]["detail"]["status"] == "on-hold"
    assert stored["activity"][0]["detail"]["statusReason"] == reason
    version = stored["meta"]["versionId"]
    refused = [
        (
            [{"op": "replace", "path": "/activity/0/detail/status", "value": "in-progress"}],
            "careplan-client-status",
            "CarePlan.activity[0].detail.status",
        ),  # resuming is the performer's
        (
            [{"op": "replace", "path": "/activity/0/detail/status", "value": "completed"}],
            "careplan-client-status",
            "CarePlan.activity[0].detail.status",
        ),  # whether care was given is the performer's to report
        (
            [{"op": "replace", "path": "/activity/0/detail/description", "value": "alleen 's ochtends"}],
            "careplan-client-status",
            "CarePlan.activity[0]",
        ),
        (
            [
                {"op": "replace", "path": "/activity/0/detail/status", "value": "cancelled"},
                {"op": "replace", "path": "/activity/0/detail/performer/0/reference", "value": "Patient/client"},
            ],
            "careplan-client-status",
            "CarePlan.activity[0]",
        ),
        ([{"op": "remove", "path": "/activity/0"}], "careplan-client-status", "CarePlan.activity[0]"),
        ([{"op": "replace", "path": "/title", "value": "Mijn plan"}], "careplan-structure", "CarePlan.title"),
    ]
    for ops, rule, where in refused:
        resp = await client.patch("CarePlan/plan", ops)
        assert resp.status_code == 403, (ops, resp.text)
        assert f"Rule {rule}" in _diagnostics(resp), (ops, resp.text)
        assert resp.json()["issue"][0]["expression"] == [where], (ops, resp.text)
    assert (await parties["sender"].get("CarePlan/plan")).json()["meta"]["versionId"] == version  # nothing written
    # a PUT of the whole plan is judged alike: cancelling it (final afterwards) yes, then nothing more
    current = (await client.get("CarePlan/plan")).json()
    current["activity"][0]["detail"]["status"] = "cancelled"
    resp = await client.put(current)
    assert resp.status_code == 200, resp.text
    resp = await client.patch(
        "CarePlan/plan", [{"op": "replace", "path": "/activity/0/detail/status", "value": "on-hold"}]
    )
    assert resp.status_code == 403 and "it is final" in _diagnostics(resp), resp.text
    # the mantelzorger (a zorgplan delegation, not a legal representative) has no say over it
    await write_internal(hub, [care_plan()])
    resp = await mz.patch("CarePlan/plan", [{"op": "replace", "path": "/activity/0/detail/status", "value": "on-hold"}])
    assert resp.status_code == 403 and "Rule careplan-activity:" in _diagnostics(resp), resp.text
    # the client's legal representative (mentor, role 15) has the client's say, and no more
    subject = {"reference": "Patient/client"}
    await write_internal(
        hub,
        [
            {
                "resourceType": "RelatedPerson",
                "id": "mentor",
                "patient": subject,
                "identifier": [{"system": PERSON, "value": "mentor-jan"}],
                "relationship": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.2.4.3.11.22.472", "code": "15"}]}],
            },
            {
                "resourceType": "Consent",
                "id": "delegation-mentor",
                "status": "active",
                "scope": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
                    ]
                },
                "category": [{"coding": [{"system": f"{HUB}/CodeSystem/consent-category", "code": "delegatie"}]}],
                "patient": subject,
                "dateTime": "2026-01-01",
                "policyRule": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
                },
                "provision": {
                    "type": "permit",
                    "actor": [
                        {
                            "role": {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "DELEGATEE",
                                    }
                                ]
                            },
                            "reference": {"reference": "RelatedPerson/mentor"},
                        }
                    ],
                    "code": [{"coding": [{"system": f"{HUB}/CodeSystem/data-category", "code": "zorgplan"}]}],
                },
            },
        ],
    )
    mentor = As(hub, mz.http, "mantelzorger")
    mentor.h = {"Authorization": f"Bearer {token_for_app(hub, f'person:mentor-jan:for:{CLIENT_BSN}')}"}
    resp = await mentor.patch(
        "CarePlan/plan", [{"op": "replace", "path": "/activity/0/detail/status", "value": "stopped"}]
    )
    assert resp.status_code == 200, resp.text
    resp = await mentor.patch(
        "CarePlan/plan", [{"op": "replace", "path": "/activity/1/detail/description", "value": "anders"}]
    )
    assert resp.status_code == 403 and "Rule careplan-client-status" in _diagnostics(resp), resp.text


async def test_foreign_cancel_is_refused(hub: Any, parties: dict[str, As]) -> None:
    await write_internal(hub, [task("t-cancel", "requested")])
    resp = await parties["third"].patch("Task/t-cancel", step_ops("cancelled"))
    assert resp.status_code == 409, resp.text
    text = _diagnostics(resp)
    assert "Rule overdracht-party" in text and "Allowed next states for you: none" in text
    assert (await parties["sender"].patch("Task/t-cancel", step_ops("cancelled"))).status_code == 200
    resp = await parties["sender"].patch("Task/t-cancel", step_ops("requested"))
    assert resp.status_code == 409 and "Rule overdracht-closed" in _diagnostics(resp)


# -- reading follows the state ----------------------------------------------------------------------


async def _visible(who: As, keys: list[str]) -> set[str]:
    return {k for k in keys if (await who.get(k)).status_code == 200}


async def test_receiver_reads_by_the_tasks_state(hub: Any, parties: dict[str, As]) -> None:
    await write_internal(hub, [task("t-read", "requested"), handoff()])
    rcv, snd = parties["receiver"], parties["sender"]
    keys = [
        "Task/t-read",
        "Patient/client",
        "Composition/notice",
        "Condition/reason",
        "Composition/handoff",
        "Observation/wound",
        "Observation/acp",
    ]
    notice = {"Task/t-read", "Patient/client", "Composition/notice", "Condition/reason"}
    assert await _visible(rcv, keys) == notice
    everything = (await rcv.get("Patient/client/$everything")).json()
    assert {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in everything["entry"]
        if e["search"]["mode"] == "match"
    } == notice
    search = (await rcv.get("Observation?_total=accurate")).json()
    assert search["total"] == 0
    access = (await parties["client"].get("Patient/client/$access")).json()
    assert "advance notice only, Task/t-read requested" in str(access), access
    assert (await rcv.patch("Task/t-read", step_ops("received"))).status_code == 200
    assert await _visible(rcv, keys) == notice
    assert (await rcv.patch("Task/t-read", step_ops("accepted"))).status_code == 200
    attach = [
        {
            "op": "add",
            "path": "/input/-",
            "value": {
                "type": {"coding": [{"system": SCT, "code": "371535009"}]},
                "valueReference": {"reference": "Composition/handoff"},
            },
        }
    ]
    assert (await snd.patch("Task/t-read", attach)).status_code == 200
    handed = notice | {"Composition/handoff", "Observation/wound"}
    assert await _visible(rcv, keys) == handed
    assert (await rcv.get("Observation?_total=accurate")).json()["total"] == 1
    assert (await rcv.patch("Task/t-read", step_ops("in-progress"))).status_code == 200
    assert (await rcv.patch("Task/t-read", step_ops("completed"))).status_code == 200
    # completed: a care relation like any other (no objection: the client's other data too)
    assert await _visible(rcv, keys) == set(keys)


async def test_cancel_and_reject_revoke_on_the_next_request(hub: Any, parties: dict[str, As]) -> None:
    await write_internal(hub, [task("t-rev", "accepted"), handoff()])
    rcv = parties["receiver"]
    assert "Composition/handoff" in await _visible(rcv, ["Composition/handoff"])
    assert (await parties["sender"].patch("Task/t-rev", step_ops("cancelled"))).status_code == 200
    keys = ["Task/t-rev", "Patient/client", "Composition/notice", "Composition/handoff", "Observation/wound"]
    assert await _visible(rcv, keys) == {"Task/t-rev"}
    await write_internal(hub, [task("t-rej", "requested")])
    assert (await rcv.patch("Task/t-rej", step_ops("rejected"))).status_code == 200
    assert await _visible(rcv, ["Task/t-rej", "Patient/client", "Composition/notice"]) == {"Task/t-rej"}
    access = (await parties["client"].get("Patient/client/$access")).json()
    assert "the Task only (no access to the client's data), Task/t-rej rejected" in str(access), access


async def test_state_changes_reach_the_outbox_hook(hub: Any, parties: dict[str, As]) -> None:
    seen: list[Any] = []

    async def outbox(_conn: Any, change: Any) -> None:
        seen.append(change)

    repo = hub.state.services.repo
    repo.on_state_change = outbox
    try:
        await write_internal(hub, [task("t-ev", "requested")])
        assert (await parties["receiver"].patch("Task/t-ev", step_ops("accepted"))).status_code == 200
        assert (await parties["third"].patch("Task/t-ev", step_ops("cancelled"))).status_code == 409
    finally:
        repo.on_state_change = None
    assert [(c.res_id, c.previous, c.status, c.version, c.party) for c in seen] == [
        ("t-ev", "requested", "accepted", 2, f"ura:{ORGS['receiver']}")
    ]
    assert seen[0].topic == "http://zorgnet.nl/fhir/SubscriptionTopic/overdracht"
    assert seen[0].patient_id == "client"


async def test_a_receiver_registered_later_reads_the_advance_notice(hub: Any, parties: dict[str, As]) -> None:
    later = task("t-later", "requested")
    later["owner"] = {"reference": "Organization/org-later"}
    await write_internal(hub, [later])
    token = token_for_app(hub, "org:00067890")
    rcv = As(hub, parties["sender"].http, "receiver")
    rcv.h = {"Authorization": f"Bearer {token}"}
    assert await _visible(rcv, ["Task/t-later", "Composition/notice"]) == set()
    await write_internal(
        hub,
        [
            {
                "resourceType": "Organization",
                "id": "org-later",
                "name": "later",
                "identifier": [{"system": URA, "value": "00067890"}],
            }
        ],
    )
    assert await _visible(rcv, ["Task/t-later", "Composition/notice", "Observation/wound"]) == {
        "Task/t-later",
        "Composition/notice",
    }


async def test_a_receiver_first_written_without_a_ura_changes_nothing_derived(hub: Any, parties: dict[str, As]) -> None:
    """Its first version names no organisation (the Tasks naming it are not derived again): what
    the Tasks yield equals deriving them again; a later version with the URA gives the access."""
    later = task("t-later", "requested")
    later["owner"] = {"reference": "Organization/org-later"}
    await write_internal(hub, [later])
    org = {"resourceType": "Organization", "id": "org-later", "name": "later"}
    await write_internal(hub, [org])
    db = hub.state.services.repo.db

    async def rows() -> set[tuple[Any, ...]]:
        async with db.read() as conn:
            return {tuple(r) for r in (await conn.execute(select(overdracht_access))).all()}

    kept = await rows()
    async with db.write() as conn:
        stored = await hub.state.services.repo.read("Task", "t-later", conn=conn)
        await derive_task(conn, stored.pid, orjson.loads(stored.content or "null"))
    assert await rows() == kept
    rcv = As(hub, parties["sender"].http, "receiver")
    rcv.h = {"Authorization": f"Bearer {token_for_app(hub, 'org:00067890')}"}
    assert await _visible(rcv, ["Task/t-later", "Composition/notice"]) == set()
    await write_internal(hub, [{**org, "identifier": [{"system": URA, "value": "00067890"}]}])
    assert await _visible(rcv, ["Task/t-later", "Composition/notice"]) == {"Task/t-later", "Composition/notice"}


async def test_a_transaction_entry_obeys_the_same_rules(hub: Any, parties: dict[str, As]) -> None:
    """A refused entry refuses the whole transaction (nothing half written), with the rule."""
    await write_internal(hub, [task("t-tx", "requested"), care_plan()])
    third = parties["third"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:7d1c2f43-4b0e-4c36-9a55-08a3b7f7e001",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": {"reference": "Patient/client"},
                    "code": {"text": "notitie"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {**task("t-tx", "cancelled"), "statusReason": {"text": "x"}},
                "request": {"method": "PUT", "url": "Task/t-tx"},
            },
        ],
    }
    resp = await third.http.post("/fhir", headers=third.h, json=bundle)
    assert resp.status_code == 409, resp.text
    assert "Rule overdracht-party" in _diagnostics(resp)
    assert (await third.get("Observation?code:text=notitie&_total=accurate")).json()["total"] == 0
    resp = await third.http.post(
        "/fhir",
        headers=third.h,
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "CarePlan/plan"}}],
        },
    )
    assert resp.status_code == 403 and "Rule ownership-delete" in _diagnostics(resp), resp.text
    sender = parties["sender"]  # the coordinator may
    resp = await sender.http.post(
        "/fhir",
        headers=sender.h,
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "CarePlan/plan"}}],
        },
    )
    assert resp.status_code == 200, resp.text

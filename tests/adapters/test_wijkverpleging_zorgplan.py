"""The nursing care plan against a live hub (SQLite and PostgreSQL) and the fake nursing system (own process).

The nursing system (FHIR STU3) holds a nursing care plan: problems coded in the Omaha System, NANDA-I and
SNOMED CT, interventions, and outcomes. The adapter brings them into the client's shared care plan as the
nursing organisation's activities; the huisarts coordinates the plan (regiehouder); a status the huisarts
or the client sets on a nursing activity in the hub reaches the nursing system, and one set in the nursing
system reaches the hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from adapters.common.client import RetryPolicy
from adapters.wijkverpleging.state import State
from adapters.wijkverpleging.zorgplan import SOURCE_ACTIVITY, NursingCarePlan, activity_key
from tests.adapters.eoverdracht_env import (
    BSN,
    CLIENT_BSN,
    URA,
    WIJKZORG_URA,
    WijkWorld,
    counterpart,
    wijk_world_fixture,  # noqa: F401 - the live hub fixture
)

HUISARTS_URA = "00012345"
SCT = "http://snomed.info/sct"
OMAHA = "http://www.omahasystem.org"
NANDA = "http://www.nanda.org"
CATEGORY = "https://zorgnet-hub.nl/fhir/CodeSystem/careplan-category"
QUICK = RetryPolicy(attempts=2, base_delay=0.05, max_delay=0.1)


def nursing_plan() -> list[dict[str, Any]]:
    """The nursing system's STU3 data for the client: three problems, two outcomes, two interventions."""
    subject = {"reference": "Patient/p1", "display": "Maria XXX_Molog"}

    def problem(pid: str, system: str, code: str, display: str) -> dict[str, Any]:
        return {
            "resourceType": "Condition",
            "id": pid,
            "clinicalStatus": "active",
            "verificationStatus": "confirmed",
            "category": [{"coding": [{"system": SCT, "code": "106225005", "display": "verpleegkundig probleem"}]}],
            "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
            "subject": subject,
        }

    def outcome(gid: str, text: str, code: dict[str, Any]) -> dict[str, Any]:
        return {
            "resourceType": "Goal",
            "id": gid,
            "status": "in-progress",
            "description": {"text": text},
            "subject": subject,
            "outcomeCode": [{"coding": [code]}],
        }

    def intervention(aid: str, code: list[dict[str, Any]], text: str, problem_id: str, goal_id: str) -> dict[str, Any]:
        return {
            "id": aid,
            "detail": {
                "code": {"coding": code, "text": text},
                "status": "in-progress",
                "description": text,
                "reasonReference": [{"reference": f"Condition/{problem_id}"}],
                "goal": [{"reference": f"Goal/{goal_id}"}],
                "scheduledPeriod": {"start": "2026-11-01"},
            },
        }

    return [
        {
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [{"system": BSN, "value": CLIENT_BSN}],
            "name": [{"family": "XXX_Molog", "given": ["Maria"]}],
        },
        problem("pr-huid", OMAHA, "31", "Huid (Omaha: integumentair)"),
        problem("pr-huidintegriteit", NANDA, "00046", "Verstoorde huidintegriteit"),
        problem("pr-adl", SCT, "284773001", "Beperking in zelfzorg"),
        outcome("go-wond", "Wond gesloten binnen 6 weken", {"system": SCT, "code": "385425000", "display": "genezen"}),
        outcome("go-adl", "Wast zich zelfstandig", {"system": OMAHA, "code": "KBS-B4", "display": "gedrag 4"}),
        {
            "resourceType": "CarePlan",
            "id": "nursing-plan-1",
            "status": "active",
            "intent": "plan",
            "title": "Verpleegkundig zorgplan",
            "subject": subject,
            "addresses": [
                {"reference": "Condition/pr-huid"},
                {"reference": "Condition/pr-huidintegriteit"},
                {"reference": "Condition/pr-adl"},
            ],
            "goal": [{"reference": "Goal/go-wond"}, {"reference": "Goal/go-adl"}],
            "activity": [
                intervention(
                    "int-wond",
                    [
                        {"system": SCT, "code": "225358003", "display": "wondverzorging"},
                        {"system": OMAHA, "code": "T-31", "display": "behandeling: huid"},
                    ],
                    "Wondverzorging stuit, 2x per week",
                    "pr-huidintegriteit",
                    "go-wond",
                ),
                intervention(
                    "int-adl",
                    [{"system": SCT, "code": "183030005", "display": "hulp bij wassen"}],
                    "Ondersteuning bij wassen, dagelijks",
                    "pr-adl",
                    "go-adl",
                ),
            ],
        },
    ]


async def shared_care_plan(world: WijkWorld) -> tuple[str, dict[str, str]]:
    """The huisarts (in the client's care team) coordinates a shared care plan with one activity of its own."""
    admin = world.hub.token("admin")
    async with httpx.AsyncClient(base_url=world.hub.base, headers={"Authorization": f"Bearer {admin}"}) as http:
        org = {
            "resourceType": "Organization",
            "identifier": [{"system": URA, "value": HUISARTS_URA}],
            "name": "Huisartsenpraktijk Rivierstad",
            "active": True,
        }
        r = await http.post("/Organization", json=org, headers={"If-None-Exist": f"identifier={URA}|{HUISARTS_URA}"})
        assert r.status_code in (200, 201), r.text
        huisarts_org = r.json()["id"]
        team = {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": f"Patient/{world.patient_id}"},
            "participant": [{"member": {"reference": f"Organization/{huisarts_org}"}}],
        }
        assert (await http.post("/CareTeam", json=team)).status_code == 201
    huisarts = {"Authorization": f"Bearer {world.hub.token(f'org:{HUISARTS_URA}')}"}
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "title": "Gedeeld zorgplan",
        "category": [{"coding": [{"system": CATEGORY, "code": "gedeeld-zorgplan"}]}],
        "subject": {"reference": f"Patient/{world.patient_id}"},
        "author": {"reference": f"Organization/{huisarts_org}"},
        "activity": [
            {
                "detail": {
                    "code": {"text": "medicatiebeoordeling"},
                    "status": "scheduled",
                    "performer": [{"reference": f"Organization/{huisarts_org}"}],
                }
            }
        ],
    }
    async with httpx.AsyncClient(base_url=world.hub.base, headers=huisarts) as http:
        r = await http.post("/CarePlan", json=plan)
        assert r.status_code == 201, r.text
        return str(r.json()["id"]), huisarts


def ours(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        next(e["valueUri"] for e in a["extension"] if e["url"] == SOURCE_ACTIVITY).split("#")[1]: a
        for a in plan["activity"]
        if a.get("extension")
    }


async def test_the_nursing_care_plan_joins_the_shared_care_plan_and_statuses_flow_both_ways(
    wijk_world: WijkWorld, tmp_path: Path
) -> None:
    plan_id, huisarts = await shared_care_plan(wijk_world)
    with counterpart(nursing_plan(), tmp_path) as nursing:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            sync = NursingCarePlan(hub, http, State(tmp_path / "state.sqlite"), WIJKZORG_URA, nursing.fhir, QUICK)
            # 1. problems, interventions, outcomes into the shared care plan, as the organisation's activities
            synced = await sync.push("nursing-plan-1")
            assert (synced.hub_plan_id, synced.added, synced.changed) == (plan_id, 2, 0)
            plan = await hub.read("CarePlan", plan_id)
            assert plan["activity"][0]["detail"]["code"]["text"] == "medicatiebeoordeling"  # the huisarts's, kept
            mine = ours(plan)
            assert set(mine) == {"int-wond", "int-adl"}
            orgs = await hub.search("Organization", {"identifier": f"{URA}|{WIJKZORG_URA}"})
            for activity in mine.values():
                assert activity["detail"]["performer"][0]["reference"] == f"Organization/{orgs[0]['id']}"
                assert activity["detail"]["status"] == "in-progress"
            wond = mine["int-wond"]["detail"]
            assert [(c["system"], c["code"]) for c in wond["code"]["coding"]] == [
                (SCT, "225358003"),
                ("http://www.omahasystem.org", "T-31"),
            ]
            problem = await hub.read(*wond["reasonReference"][0]["reference"].split("/"))
            assert problem["code"]["coding"][0] == {
                "system": NANDA,
                "code": "00046",
                "display": "Verstoorde huidintegriteit",
            }
            assert problem["subject"]["reference"] == f"Patient/{wijk_world.patient_id}"
            goal = await hub.read(*wond["goal"][0]["reference"].split("/"))
            assert goal["description"]["text"] == "Wond gesloten binnen 6 weken"
            problems = await hub.search("Condition", {"patient": f"Patient/{wijk_world.patient_id}"})
            assert {c["code"]["coding"][0]["system"] for c in problems} >= {OMAHA, NANDA, SCT}
            # again: nothing new, nothing written
            before = plan["meta"]["versionId"]
            assert (await sync.push("nursing-plan-1")).added == 0
            assert (await hub.read("CarePlan", plan_id))["meta"]["versionId"] == before
            # 2. the coordinator puts an intervention on hold in the hub: it reaches the nursing system
            async with httpx.AsyncClient(base_url=wijk_world.hub.base, headers=huisarts) as doctor:
                current = (await doctor.get(f"/CarePlan/{plan_id}")).json()
                index = current["activity"].index(ours(current)["int-adl"])
                ops = [
                    {"op": "replace", "path": f"/activity/{index}/detail/status", "value": "on-hold"},
                    {
                        "op": "add",
                        "path": f"/activity/{index}/detail/statusReason",
                        "value": {"text": "opname ziekenhuis"},
                    },
                ]
                r = await doctor.patch(
                    f"/CarePlan/{plan_id}", json=ops, headers={"Content-Type": "application/json-patch+json"}
                )
                assert r.status_code == 200, r.text
            assert await http.post(f"{nursing.admin}/fail", json={"count": 10}) is not None  # down: kept pending
            assert await sync.pull_back() == []
            await http.post(f"{nursing.admin}/fail", json={"count": 0})
            key = activity_key(nursing.fhir, "nursing-plan-1", "int-adl")
            assert await sync.pull_back() == [(key, "on-hold")]
            assert await sync.pull_back() == []  # delivered once
            theirs = (await http.get(f"{nursing.fhir}/CarePlan/nursing-plan-1")).json()
            adl = next(a for a in theirs["activity"] if a["id"] == "int-adl")["detail"]
            assert (adl["status"], adl["statusReason"]) == ("on-hold", "opname ziekenhuis")
            # 3. the nurse completes the wound care in the nursing system: it reaches the hub
            theirs["activity"][0]["detail"]["status"] = "completed"
            assert (await http.put(f"{nursing.fhir}/CarePlan/nursing-plan-1", json=theirs)).status_code == 200
            synced = await sync.push("nursing-plan-1")
            assert (synced.added, synced.changed) == (0, 1)
            mine = ours(await hub.read("CarePlan", plan_id))
            assert (mine["int-wond"]["detail"]["status"], mine["int-adl"]["detail"]["status"]) == (
                "completed",
                "on-hold",
            )
            assert await sync.pull_back() == []  # the hub's status came from the nursing system: not sent back
            # 4. the client (their PGO's token) ends the paused washing help in their own plan: it reaches the
            #    nursing system; what is not the client's to change is refused (403) and nothing flows back
            client = {"Authorization": f"Bearer {wijk_world.hub.token(f'client:{CLIENT_BSN}')}"}
            async with httpx.AsyncClient(base_url=wijk_world.hub.base, headers=client) as pgo:
                current = (await pgo.get(f"/CarePlan/{plan_id}")).json()
                wond = current["activity"].index(ours(current)["int-wond"])
                adl = current["activity"].index(ours(current)["int-adl"])
                patch = {"Content-Type": "application/json-patch+json"}
                for ops in (
                    [{"op": "replace", "path": f"/activity/{adl}/detail/status", "value": "completed"}],
                    [{"op": "replace", "path": f"/activity/{adl}/detail/description", "value": "alleen douchen"}],
                    [{"op": "replace", "path": f"/activity/{wond}/detail/status", "value": "cancelled"}],  # final
                ):
                    r = await pgo.patch(f"/CarePlan/{plan_id}", json=ops, headers=patch)
                    assert r.status_code == 403, r.text
                    assert r.json()["resourceType"] == "OperationOutcome"
                    assert "Rule careplan-client-status" in r.json()["issue"][0]["diagnostics"], r.text
                assert await sync.pull_back() == []
                ops = [
                    {"op": "replace", "path": f"/activity/{adl}/detail/status", "value": "cancelled"},
                    {
                        "op": "replace",
                        "path": f"/activity/{adl}/detail/statusReason",
                        "value": {"text": "mijn dochter helpt"},
                    },
                ]
                r = await pgo.patch(f"/CarePlan/{plan_id}", json=ops, headers=patch)
                assert r.status_code == 200, r.text
            assert await sync.pull_back() == [(key, "cancelled")]
            theirs = (await http.get(f"{nursing.fhir}/CarePlan/nursing-plan-1")).json()
            adl_there = next(a for a in theirs["activity"] if a["id"] == "int-adl")["detail"]
            assert (adl_there["status"], adl_there["statusReason"]) == ("cancelled", "mijn dochter helpt")
            assert await sync.pull_back() == []
            assert (await sync.push("nursing-plan-1")).changed == 0  # agreed on both sides: nothing to bring back
            sync.state.close()


async def test_no_shared_care_plan_to_join_writes_nothing(wijk_world: WijkWorld, tmp_path: Path) -> None:
    data = nursing_plan()
    data[0]["identifier"][0]["value"] = "999911120"  # a client who is not in the network
    with counterpart(data, tmp_path) as nursing:
        async with wijk_world.hub_client() as hub, httpx.AsyncClient(timeout=30) as http:
            sync = NursingCarePlan(hub, http, State(tmp_path / "state.sqlite"), WIJKZORG_URA, nursing.fhir, QUICK)
            from adapters.wijkverpleging.sender_api import TransferError

            try:
                await sync.push("nursing-plan-1")
            except TransferError as exc:
                assert exc.offending == "Patient/p1"
            else:
                raise AssertionError("a client outside the network was accepted")
            found = await hub.search("Condition", {"identifier": f"urn:ietf:rfc:3986|{nursing.fhir}/Condition/pr-adl"})
            assert found == []
            sync.state.close()

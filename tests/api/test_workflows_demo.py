"""The issue's findings, replayed on the demo network as its members would: each is now refused with
an OperationOutcome naming the rule, and the verpleeghuis sees only the advance notice of the
overdracht it has not accepted."""

from __future__ import annotations

from typing import Any

from tests.api.test_operations import C1, demo  # noqa: F401  (fixture)

C2 = "999990019"  # Willem Mulder: an overdracht from the wijkverpleging to the verpleeghuis, requested
GEMEENTE = "org:00045678"
VERPLEEGHUIS = "org:00056789"
WIJKVERPLEGING = "org:00023456"
PATCH = {"Content-Type": "application/json-patch+json"}


def _rule(resp: Any) -> str:
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["diagnostics"])


async def _one(c: Any, query: str) -> str:
    r = await c.get(f"/fhir/{query}")
    assert r.status_code == 200 and r.json()["total"] == 1, r.text
    return str(r.json()["entry"][0]["resource"]["id"])


async def test_the_gemeente_cannot_delete_the_shared_care_plan(demo: dict[str, str], client_as: Any) -> None:  # noqa: F811
    gemeente = client_as(GEMEENTE)
    plan = await _one(gemeente, f"CarePlan?subject=Patient/{demo[C1]}&_total=accurate")
    r = await gemeente.delete(f"/fhir/CarePlan/{plan}")
    assert r.status_code == 403 and _rule(r).startswith("Rule ownership-delete"), r.text
    assert (await gemeente.get(f"/fhir/CarePlan/{plan}")).status_code == 200


async def test_a_mantelzorger_changes_only_her_own_activity(demo: dict[str, str], client_as: Any) -> None:  # noqa: F811
    grant = {
        "resourceType": "Parameters",
        "parameter": [{"name": "person", "valueString": "marieke"}, {"name": "category", "valueCode": "zorgplan"}],
    }
    r = await client_as(f"client:{C1}").post(f"/fhir/Patient/{demo[C1]}/$grant-delegation", json=grant)
    assert r.status_code == 201, r.text
    marieke = client_as(f"person:marieke:for:{C1}")
    plan = await _one(marieke, "CarePlan?_total=accurate")
    r = await marieke.patch(f"/fhir/CarePlan/{plan}", json=[{"op": "remove", "path": "/activity/0"}], headers=PATCH)
    assert r.status_code == 403 and _rule(r).startswith("Rule careplan-activity:"), r.text
    assert r.json()["issue"][0]["expression"] == ["CarePlan.activity[0]"]
    r = await marieke.patch(
        f"/fhir/CarePlan/{plan}",
        headers=PATCH,
        json=[{"op": "replace", "path": "/activity/1/detail/status", "value": "completed"}],
    )
    assert r.status_code == 200, r.text  # the meals are hers


async def test_a_foreign_cancel_is_refused(demo: dict[str, str], client_as: Any) -> None:  # noqa: F811
    gemeente, sender = client_as(GEMEENTE), client_as(WIJKVERPLEGING)
    task = await _one(sender, f"Task?patient=Patient/{demo[C2]}&_total=accurate")
    cancel = [{"op": "replace", "path": "/status", "value": "cancelled"}]
    r = await gemeente.patch(f"/fhir/Task/{task}", json=cancel, headers=PATCH)
    assert r.status_code == 409 and _rule(r).startswith("Rule overdracht-party"), r.text
    assert "Allowed next states for you: none" in str(r.json())
    r = await client_as(VERPLEEGHUIS).patch(f"/fhir/Task/{task}", json=cancel, headers=PATCH)
    assert r.status_code == 409 and "Allowed next states for you: received, accepted, rejected, on-hold" in str(
        r.json()
    ), r.text
    assert (await sender.patch(f"/fhir/Task/{task}", json=cancel, headers=PATCH)).status_code == 200
    r = await sender.patch(
        f"/fhir/Task/{task}", json=[{"op": "replace", "path": "/status", "value": "requested"}], headers=PATCH
    )
    assert r.status_code == 409 and _rule(r).startswith("Rule overdracht-closed"), r.text


async def test_the_verpleeghuis_sees_the_advance_notice_only(demo: dict[str, str], client_as: Any) -> None:  # noqa: F811
    vh = client_as(VERPLEEGHUIS)
    everything = await vh.get(f"/fhir/Patient/{demo[C2]}/$everything")
    assert everything.status_code == 200, everything.text
    types = sorted(
        {e["resource"]["resourceType"] for e in everything.json()["entry"] if e["search"]["mode"] == "match"}
    )
    assert types == ["Composition", "Patient", "Task"]
    for query in ("CarePlan", "Consent", "Observation", "Goal"):
        r = await vh.get(f"/fhir/{query}?patient=Patient/{demo[C2]}&_total=accurate")
        assert r.json()["total"] == 0, (query, r.text)
    r = await client_as(f"client:{C2}").get(f"/fhir/Patient/{demo[C2]}/$access")
    assert "Verpleeghuis De Boomgaard: advance notice only, Task/" in str(r.json()), r.text

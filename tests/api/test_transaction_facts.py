"""Access facts in a transaction Bundle, on both databases.

A Bundle's writes recompute each client's grants once, not once per write (hub/store/deferred.py);
every later entry's access check and read, and the state the transaction commits, are still what
recomputing after each write gave. The network is that of tests/api/test_access_rules.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.api.access_helpers import URA_SYSTEM, NetworkSpec
from tests.api.test_access_rules import BSN1, PLAN, C, consent, rule, status, total
from tests.api.test_leaks import care_team, net, service_request  # noqa: F401 - net is a fixture
from tests.conformance import examples

GEMEENTE = "00045678"


def _post(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


async def _transaction(c: httpx.AsyncClient, *entries: dict[str, Any]) -> httpx.Response:
    return await c.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": list(entries)})


def _plan(subject: str) -> dict[str, Any]:
    body = examples.care_plan()
    for key in ("id", "careTeam", "goal"):
        body.pop(key, None)
    body["subject"] = {"reference": subject}
    return body


@pytest.fixture
async def gemeente(net: NetworkSpec, client_as: Any) -> httpx.AsyncClient:  # noqa: F811 - the fixture
    r = await client_as("admin").post(
        "/admin/organisations", json={"ura": GEMEENTE, "name": "Gemeente", "kind": "gemeente", "types": ["G6"]}
    )
    assert r.status_code == 201, r.text
    return client_as(f"org:{GEMEENTE}")


async def test_a_later_entry_is_checked_and_read_with_the_care_an_earlier_entry_gave(
    gemeente: httpx.AsyncClient,
) -> None:
    # Alone, the gemeente may not write the client's care plan, nor see the client.
    assert (await gemeente.post("/fhir/CarePlan", json=_plan("Patient/pat-0"))).status_code == 403
    assert await total(gemeente, "Patient?_id=pat-0") == 0
    r = await _transaction(gemeente, _post(_toewijzing("pat-0")), _post(_plan("Patient/pat-0")))
    assert r.status_code == 200, r.text  # the toewijzing brought the gemeente into care: the check saw it
    assert await total(gemeente, "Patient?_id=pat-0") == 1
    # A read in the Bundle sees it too (here no check in between asked for the client's facts).
    assert await total(gemeente, "Patient?_id=pat-1") == 0
    r = await _transaction(gemeente, _post(_toewijzing("pat-1")), _get("Patient?_id=pat-1"))
    assert r.status_code == 200, r.text
    assert r.json()["entry"][1]["resource"]["total"] == 1


def _toewijzing(patient: str) -> dict[str, Any]:
    """A toewijzing of the gemeente's own Wmo team (it performs the care itself)."""
    body = service_request(f"Patient/{patient}", "Organization/org-0")
    body["performer"] = [{"identifier": {"system": URA_SYSTEM, "value": GEMEENTE}}]
    return body


async def test_a_refused_entry_leaves_no_facts(gemeente: httpx.AsyncClient, hub_app: Any) -> None:
    bad = {
        "resourceType": "Observation",
        "status": "no-such-status",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/pat-0"},
    }
    r = await _transaction(gemeente, _post(_toewijzing("pat-0")), _post(bad))
    assert 400 <= r.status_code < 500, r.text
    assert await total(gemeente, "Patient?_id=pat-0") == 0
    async with hub_app.state.services.repo.db.write() as conn:  # the pooled connection owes nothing
        assert not conn.info.get("hub.deferred")
        count = (
            await conn.execute(text("SELECT count(*) FROM care_relation WHERE org_ura = :u"), {"u": GEMEENTE})
        ).scalar_one()
    assert count == 0


async def test_writes_for_several_clients_give_what_they_give_one_by_one(
    net: NetworkSpec,  # noqa: F811 - the fixture
    client_as: Any,
) -> None:
    admin, c = client_as("admin"), client_as(f"org:{C}")
    assert await status(c, PLAN) == 404
    assert await total(c, "Patient?_id=pat-1") == 0
    r = await _transaction(
        admin,
        _post(care_team("Patient/pat-0", "Organization/org-2")),
        _post(care_team("Patient/pat-1", "Organization/org-2")),
    )
    assert r.status_code == 200, r.text
    assert await status(c, PLAN) == 200
    assert await total(c, "Patient?_id=pat-1") == 1


async def test_the_last_word_of_a_bundle_counts(net: NetworkSpec, client_as: Any) -> None:  # noqa: F811
    # The client brings C in and, in the same Bundle, objects to C reading the care plan.
    me, c = client_as(f"client:{BSN1}"), client_as(f"org:{C}")
    objection = consent("c-objects", rule("deny", "zorgplan", org=2))
    objection.pop("id")
    r = await _transaction(me, _post(care_team("Patient/pat-0", "Organization/org-2")), _post(objection))
    assert r.status_code == 200, r.text
    assert await status(c, PLAN) == 404
    assert await total(c, "Patient?_id=pat-0") == 1  # in care: what the objection does not cover


async def test_a_commit_with_facts_owed_is_refused(hub_app: Any) -> None:
    from hub.store import deferred

    async def settle(_conn: Any, _items: set[str]) -> None:
        raise AssertionError("not settled here")

    engine = hub_app.state.services.repo.db.engine
    with pytest.raises(RuntimeError, match="not yet recomputed"):
        async with engine.begin() as conn:  # a transaction that is not Database.write(): nothing settles it
            deferred.owe(conn, settle, ["pat-x"])
    async with engine.connect() as conn:
        assert not conn.info.get("hub.deferred")


async def test_an_organisation_changed_in_the_bundle_counts_for_the_entries_after_it(
    net: NetworkSpec,  # noqa: F811 - the fixture
    client_as: Any,
) -> None:
    # Organization X has no URA yet: a team naming it brings nobody into care. In the same Bundle X
    # gets C's URA, and a team written after that brings C in (the URA looked up again, not remembered).
    admin, c = client_as("admin"), client_as(f"org:{C}")
    r = await admin.put("/fhir/Organization/org-x", json={"resourceType": "Organization", "id": "org-x", "name": "X"})
    assert r.status_code == 201, r.text
    named = {
        "resourceType": "Organization",
        "id": "org-x",
        "name": "X",
        "identifier": [{"system": URA_SYSTEM, "value": C}],
    }
    team = {**care_team("Patient/pat-0", "Organization/org-x"), "id": "team-x"}
    r = await _transaction(
        admin,
        _post(care_team("Patient/pat-1", "Organization/org-x")),
        {"resource": named, "request": {"method": "PUT", "url": "Organization/org-x"}},
        {"resource": team, "request": {"method": "PUT", "url": "CareTeam/team-x"}},
    )
    assert r.status_code == 200, r.text
    assert await status(c, PLAN) == 200
    assert await total(c, "Patient?_id=pat-1") == 1  # the earlier team, derived again when X changed

"""The audit trail end to end: every interaction through the real FHIR endpoint is logged before
the answer, and a client sees exactly the accesses to their own data (denied ones included)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.test_operations import C1, HUISARTS, STRANGER, demo  # noqa: F401  (fixture)


async def _events(c: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    r = await c.get(f"/fhir/AuditEvent?_count=200{query}")
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


def _who(event: dict[str, Any]) -> set[str]:
    return {a.get("who", {}).get("identifier", {}).get("value", "") for a in event.get("agent", [])}


async def test_client_sees_exactly_the_accesses_to_their_data(demo: dict[str, str], client_as: Any) -> None:  # noqa: F811
    c1, c2 = demo[C1], demo["999990019"]
    huisarts, stranger, me = client_as(HUISARTS), client_as(STRANGER), client_as(f"client:{C1}")
    before = len(await _events(me))
    assert (await huisarts.get(f"/fhir/Patient/{c1}")).status_code == 200
    assert (await huisarts.get(f"/fhir/CarePlan?subject=Patient/{c1}")).status_code == 200
    assert (await stranger.get(f"/fhir/Patient/{c1}")).status_code == 404  # denied
    assert (await huisarts.get(f"/fhir/Patient/{c2}")).status_code == 200  # another client's data
    events = await _events(me)
    new = events[: len(events) - before]
    outcomes = sorted((e["outcome"], "00077777" in _who(e)) for e in new)
    assert len(new) == 3, [e.get("subtype") for e in new]
    assert outcomes == [("0", False), ("0", False), ("4", True)]
    for e in new:
        patients = {
            ent["what"]["reference"]
            for ent in e.get("entity", [])
            if "what" in ent and ent["what"].get("reference", "").startswith("Patient/")
        }
        assert f"Patient/{c1}" in patients and f"Patient/{c2}" not in patients


async def test_audit_is_append_only_and_professionals_see_only_their_own(
    demo: dict[str, str],  # noqa: F811
    client_as: Any,
) -> None:
    huisarts, stranger = client_as(HUISARTS), client_as(STRANGER)
    await huisarts.get(f"/fhir/Patient/{demo[C1]}")
    await stranger.get(f"/fhir/Patient/{demo[C1]}")
    mine = await _events(stranger)
    assert mine == [] or all("00077777" in _who(e) and e["outcome"] == "0" for e in mine)
    for method in ("PUT", "DELETE", "PATCH"):
        r = await huisarts.request(method, "/fhir/AuditEvent/1", json={"resourceType": "AuditEvent"})
        assert r.status_code == 405
    r = await huisarts.post("/fhir/AuditEvent", json={"resourceType": "AuditEvent"})
    assert r.status_code == 405
    admin = await _events(client_as("admin"))
    assert any("00077777" in _who(e) and e["outcome"] == "4" for e in admin)


async def test_writes_are_logged_with_their_transaction(client: httpx.AsyncClient, client_as: Any) -> None:
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True})
    pid = r.json()["id"]
    events = await _events(client_as("admin"), f"&entity=Patient/{pid}")
    assert [e["action"] for e in events] == ["C"]
    r = await client.post("/fhir/Patient", json={"resourceType": "Patient", "foo": 1})
    assert r.status_code == 400
    failed = await _events(client_as("admin"), "&outcome=4")
    assert any(e["action"] == "C" for e in failed)


async def test_a_search_names_its_clients_from_its_own_statements(
    demo: dict[str, str],  # noqa: F811
    client_as: Any,
    count_statements: Any,
) -> None:
    """The page and _include statements return each resource's clients themselves: no separate
    compartment lookup for the audit record, and the record still names the client."""
    c1 = demo[C1]
    huisarts, me = client_as(HUISARTS), client_as(f"client:{C1}")
    before = len(await _events(me))
    with count_statements() as counter:
        r = await huisarts.get(f"/fhir/CarePlan?subject=Patient/{c1}&_include=CarePlan:subject")
    assert r.status_code == 200
    kinds = {e["search"]["mode"] for e in r.json()["entry"]}
    assert kinds == {"match", "include"}, kinds
    lookups = [s for s in counter.statements if " ".join(s.split()).startswith("SELECT DISTINCT idx_compartment.pid")]
    assert lookups == []
    events = await _events(me)
    new = events[: len(events) - before]
    assert len(new) == 1
    refs = {ent["what"]["reference"] for ent in new[0].get("entity", []) if "what" in ent}
    assert f"Patient/{c1}" in refs


def _named_lookups(statements: list[str]) -> list[str]:
    """The named-client lookups (:func:`hub.store.resources.existing_ids`) among ``statements``."""
    return [s for s in statements if " ".join(s.split()).startswith("SELECT resource.res_id FROM resource WHERE")]


async def test_a_named_client_whose_data_is_returned_needs_no_lookup_and_one_returned_none_gets_it(
    demo: dict[str, str],  # noqa: F811
    client_as: Any,
    count_statements: Any,
) -> None:
    """A search or ``$everything`` naming Patient/x notes x from what it returns; only when it
    returns nothing of x (here: a stranger sees nothing) does the lookup run, and x's view then
    shows the attempt, as it did when the lookup always ran first."""
    c1 = demo[C1]
    huisarts, stranger, me = client_as(HUISARTS), client_as(STRANGER), client_as(f"client:{C1}")
    before = len(await _events(me))
    with count_statements() as counter:
        r = await huisarts.get(f"/fhir/CarePlan?subject=Patient/{c1}")
        assert r.status_code == 200 and r.json()["total"] >= 1
        r = await me.get(f"/fhir/Patient/{c1}/$everything")
        assert r.status_code == 200 and r.json()["entry"]
    assert _named_lookups(counter.statements) == []
    with count_statements() as counter:
        r = await stranger.get(f"/fhir/CarePlan?subject=Patient/{c1}")
        assert r.status_code == 200 and r.json()["total"] == 0
    assert len(_named_lookups(counter.statements)) == 1
    events = await _events(me)
    new = events[: len(events) - before]
    outcomes = sorted((e["outcome"], "00077777" in _who(e)) for e in new)
    # the huisarts's search and the client's own $everything succeeded; the stranger's attempt is there too
    assert outcomes == [("0", False), ("0", False), ("4", True)], outcomes

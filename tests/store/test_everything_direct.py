"""``$everything`` on the driver (one statement for the page and its include round, run on the asyncpg
connection: ``SearchEngine.everything_on_driver``) answers exactly what the general search path
answers, for every kind of caller: the same matches in the same order, the same included resources,
the same clients per row (the audit trail's), totals, snapshots and paging positions; hidden, deleted,
missing and other clients' data included. And a client's policy read on the driver
(``build_policy_on``) holds the same Patients as the one read through SQLAlchemy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from hub.access.policy import build_policy, build_policy_on
from hub.api.context import Call
from hub.api.operations.everything import everything_query
from hub.store.direct import DriverConnection
from hub.store.search.engine import SearchEngine, SearchPage
from tests.api.test_operations import C1, HUISARTS, STRANGER, demo  # noqa: F401  (fixture)
from tests.conftest import DEFAULT_AS, token_for_app

BASE = "http://hub.test/fhir"
OTHER = "999990019"
NO_PATIENT = "999999990"
DAUGHTER = f"person:marieke:for:{C1}"
CALLERS = (HUISARTS, STRANGER, DEFAULT_AS, f"client:{C1}", f"client:{OTHER}", f"client:{NO_PATIENT}", DAUGHTER, "admin")
PARAMS: tuple[list[tuple[str, str]], ...] = (
    [],
    [("_count", "1")],
    [("_count", "2"), ("_offset", "1")],
    [("_type", "Observation,CarePlan,Patient")],
    [("_since", "2000-01-01")],
    [("_since", "2999-01-01T00:00:00Z")],
)


async def _prepare(hub_app: Any, client_as: Any, demo: dict[str, str]) -> None:  # noqa: F811
    """A delegation for the daughter, and a deleted Observation of C1."""
    me = client_as(f"client:{C1}")
    grant = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "person", "valueString": "marieke"},
            {"name": "category", "valueCode": "zorgplan"},
            {"name": "category", "valueCode": "netwerk"},
        ],
    }
    r = await me.post(f"/fhir/Patient/{demo[C1]}/$grant-delegation", json=grant)
    assert r.status_code == 201, r.text
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "gone"},
        "subject": {"reference": f"Patient/{demo[C1]}"},
    }
    r = await client_as(HUISARTS).post("/fhir/Observation", json=observation)
    assert r.status_code == 201, r.text
    assert (await client_as(HUISARTS).delete(f"/fhir/Observation/{r.json()['id']}")).status_code in (200, 204)


async def _policy(hub_app: Any, spec: str) -> Any:
    services = hub_app.state.services
    principal = await services.verifier.verify(token_for_app(hub_app, spec))
    async with services.repo.db.lookup() as conn:
        return await build_policy(conn, principal)


def _same(fast: SearchPage, slow: SearchPage) -> None:
    assert fast.matches == slow.matches
    assert sorted(fast.included, key=lambda s: s.pid) == sorted(slow.included, key=lambda s: s.pid)
    assert slow.patients is not None and fast.patients is not None
    returned = {s.pid for s in slow.matches + slow.included}
    assert fast.patients == {pid: slow.patients[pid] for pid in returned}
    assert (fast.total, fast.has_next, fast.snapshot) == (slow.total, slow.has_next, slow.snapshot)
    assert (fast.next_cursor, fast.previous_cursor) == (slow.next_cursor, slow.previous_cursor)
    assert fast.warnings == slow.warnings


async def _both(db: Any, engine: SearchEngine, query: Any, policy: Any) -> SearchPage:
    """The general path's page of ``query`` after checking that the driver's is the same."""
    async with db.lookup() as conn:
        slow = await engine.execute(conn, query, visible=policy.sql_filter, local_base=BASE, with_patients=True)
    async with db.lookup_driver() as fairy:
        fast = await engine.everything_on_driver(
            DriverConnection(fairy, db.lookup_engine.dialect), query, visible=policy.sql_filter, local_base=BASE
        )
    assert fast is not None, query
    _same(fast, slow)
    return slow


async def test_everything_on_the_driver_answers_what_the_general_path_answers(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
) -> None:
    services = hub_app.state.services
    db, engine = services.repo.db, services.search
    assert isinstance(engine, SearchEngine)
    if backend != "postgresql":
        assert not db.direct_lookups  # the driver path is asyncpg's; SQLite takes the general path
        return
    await _prepare(hub_app, client_as, demo)
    patients = [*demo.values(), "no-such-patient"]
    compared = seen = hidden = 0
    for spec in CALLERS:
        policy = await _policy(hub_app, spec)
        call = Call(services, BASE, policy=policy)
        for patient in patients:
            for params in PARAMS:
                query = everything_query(call, patient, params, strict=False)
                slow = await _both(db, engine, query, policy)
                compared += 1
                seen += bool(slow.matches)
                hidden += not slow.matches and patient in demo.values()
                if slow.next_cursor is not None:  # the next page, by its cursor within the snapshot
                    query = everything_query(call, patient, params, strict=False)
                    query.cursor, query.snapshot = slow.next_cursor, slow.snapshot
                    await _both(db, engine, query, policy)
    assert compared and seen and hidden  # visible and hidden compartments were both compared


async def test_everything_takes_the_driver_path_and_answers_the_same_over_http(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = hub_app.state.services
    db, engine = services.repo.db, services.search
    taken: list[bool] = []
    original = SearchEngine.everything_on_driver

    async def counted(self: SearchEngine, *args: Any, **kwargs: Any) -> Any:
        page = await original(self, *args, **kwargs)
        taken.append(page is not None)
        return page

    monkeypatch.setattr(SearchEngine, "everything_on_driver", counted)
    me = client_as(f"client:{C1}")
    url = f"/fhir/Patient/{demo[C1]}/$everything?_count=1000"
    await me.get(url)  # (the first search learns the database's collation)
    fast = await me.get(url)
    assert fast.status_code == 200, fast.text
    assert taken[-1:] == ([True] if backend == "postgresql" else [])
    assert engine.bytewise is not None
    listen = lambda *_a: None  # noqa: E731  (someone observing the lookup pool: the general path)
    event.listen(db.lookup_engine.sync_engine, "before_cursor_execute", listen)
    try:
        calls = len(taken)
        slow = await me.get(url)
        assert len(taken) == calls  # not asked
    finally:
        event.remove(db.lookup_engine.sync_engine, "before_cursor_execute", listen)
    assert slow.status_code == 200, slow.text

    def entries(body: dict[str, Any], mode: str) -> list[Any]:
        return [e for e in body.get("entry", []) if e["search"]["mode"] == mode]

    a, b = fast.json(), slow.json()
    assert entries(a, "match") == entries(b, "match") and entries(a, "match")
    key = lambda e: e["fullUrl"]  # noqa: E731
    assert sorted(entries(a, "include"), key=key) == sorted(entries(b, "include"), key=key)
    assert (a["total"], a["link"]) == (b["total"], b["link"])
    # what others may not see stays unseen: another client's $everything of C1 is a 404 either way
    assert (await client_as(f"client:{OTHER}").get(url)).status_code == 404
    assert (await client_as(STRANGER).get(url)).status_code == 404


async def test_a_clients_policy_read_on_the_driver_holds_the_same_patients(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    backend: str,
) -> None:
    services = hub_app.state.services
    db = services.repo.db
    for spec in (f"client:{C1}", f"client:{OTHER}", f"client:{NO_PATIENT}", DAUGHTER, HUISARTS):
        principal = await services.verifier.verify(token_for_app(hub_app, spec))
        async with db.lookup() as conn:
            slow = await build_policy(conn, principal)
        fast = await build_policy_on(db, principal)
        assert (fast.patient_ids, fast.delegated, fast.shape(), fast.params()["acl_patients"]) == (
            slow.patient_ids,
            slow.delegated,
            slow.shape(),
            slow.params()["acl_patients"],
        ), spec
    principal = await services.verifier.verify(token_for_app(hub_app, f"client:{C1}"))
    assert (await build_policy_on(db, principal)).patient_ids == (demo[C1],)

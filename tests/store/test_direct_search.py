"""Searches run on the asyncpg connection (hub.store.direct, ``DriverConnection``) answer exactly what
the same searches answer through SQLAlchemy: the same matches, includes, totals, paging and clients,
for every kind of caller (hidden, deleted, missing and other parties' resources included). And the
total a page's own statement counts is the one the separate count statement finds."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from hub.demo import UZI
from hub.store.direct import DirectQuery, DriverConnection
from hub.store.search.engine import SearchEngine, SearchPage
from tests.api.test_audit_trail import _events
from tests.api.test_operations import C1, HUISARTS, demo  # noqa: F401  (fixture)
from tests.store.test_direct import _policies, deleted_observation, observed_lookups

BASE = "http://hub.test/fhir"


async def _queries(db: Any, patients: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Searches that name their matches by key (the ones the driver's path takes), over the stored data."""
    async with db.lookup() as conn:
        rows = (await conn.execute(text("SELECT res_type, res_id FROM resource ORDER BY pid"))).all()
        uzis = (
            await conn.execute(
                text("SELECT DISTINCT code FROM idx_token WHERE res_type = 'Practitioner' AND system = :s"),
                {"s": UZI},
            )
        ).all()
    assert uzis and len(rows) > 20
    out: list[tuple[str, list[tuple[str, str]]]] = [(t, [("_id", i)]) for t, i in rows[::7]]
    out += [("Patient", [("_id", "no-such-id")]), ("Patient", [("identifier", f"{BSN}|{C1}")])]
    for pid in patients:
        subject = ("subject", f"Patient/{pid}")
        out += [
            ("Observation", [subject]),
            ("Observation", [subject, ("_count", "1")]),
            ("CarePlan", [subject, ("_include", "CarePlan:goal"), ("_include", "CarePlan:care-team")]),
            ("CareTeam", [subject, ("_revinclude", "CarePlan:care-team"), ("_count", "1")]),
            ("Task", [("patient", f"Patient/{pid}"), ("_count", "2"), ("_offset", "1")]),
        ]
    for (uzi,) in uzis:
        chain = ("participant:Practitioner.identifier", f"{UZI}|{uzi}")
        out += [("CareTeam", [chain]), ("CareTeam", [chain, ("status", "active"), ("_count", "1")])]
    return out


BSN = "http://fhir.nl/fhir/NamingSystem/bsn"


def _answer(page: SearchPage) -> Any:
    return (
        [dataclasses.astuple(s) for s in page.matches],
        [dataclasses.astuple(s) for s in page.included],
        page.total,
        page.has_next,
        page.next_cursor,
        page.previous_cursor,
        page.snapshot,
        page.patients,
    )


@contextmanager
def _fetches_counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """One entry per :meth:`DirectQuery.fetch` (a statement on the driver's path) while the block runs."""
    runs: list[int] = []
    original = DirectQuery.fetch

    async def counted(self: DirectQuery, fairy: Any, params: Any) -> Any:
        runs.append(1)
        return await original(self, fairy, params)

    with monkeypatch.context() as patched:  # (undone when the block ends)
        patched.setattr(DirectQuery, "fetch", counted)
        yield runs


async def test_direct_search_matches_the_sqlalchemy_search(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
) -> None:
    services = hub_app.state.services
    db = services.repo.db
    engine: SearchEngine = services.search
    if backend != "postgresql":
        assert not db.direct_lookups  # the driver path is asyncpg's; SQLite searches never take it
        return
    await deleted_observation(client_as, demo[C1], "direct search")  # a deleted resource in a client's data too
    queries = await _queries(db, sorted(demo.values()))
    policies = await _policies(hub_app)
    compared = found = hidden = 0
    for policy in policies:
        for res_type, params in queries:
            for with_patients in (False, True):
                query = engine.parse(res_type, params)
                assert engine.plan_stable(query, BASE), (res_type, params)
                async with db.lookup() as conn:
                    slow = await engine.execute(
                        conn, query, visible=policy.sql_filter, local_base=BASE, with_patients=with_patients
                    )
                async with db.lookup_driver() as fairy:
                    fast = await engine.execute(
                        DriverConnection(fairy, db.lookup_engine.dialect),
                        engine.parse(res_type, params),
                        visible=policy.sql_filter,
                        local_base=BASE,
                        with_patients=with_patients,
                    )
                assert _answer(fast) == _answer(slow), (policy, res_type, params)
                compared += 1
                found += bool(slow.matches)
                async with db.lookup() as conn:
                    everything = await engine.execute(
                        conn, engine.parse(res_type, params), visible=services.repo.policy.sql_filter, local_base=BASE
                    )
                hidden += len(everything.matches) > len(slow.matches)
    assert compared > 200 and found and hidden  # found and hidden resources were both compared


async def test_a_page_that_looks_up_named_clients_answers_the_same_and_finds_them_as_the_lookup(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
) -> None:
    """A page statement that also looks up the clients the request named by BSN (``named``, the audit
    trail's) answers the same page, and finds the same clients as ``patients_by_identifier``, whatever
    the caller may see (hidden, deleted and unknown BSNs included)."""
    from hub.store.resources import patients_by_identifier

    services = hub_app.state.services
    db = services.repo.db
    engine: SearchEngine = services.search
    if backend != "postgresql":
        return  # (the driver's path only)
    await deleted_observation(client_as, demo[C1], "named lookup")
    bsns = [*sorted(demo), "999990019", "123"]
    async with db.lookup() as conn:
        expected = await patients_by_identifier(conn, BSN, bsns)
    assert expected
    compared = 0
    queries = await _queries(db, sorted(demo.values()))
    for policy in await _policies(hub_app):
        for (res_type, params), with_patients in itertools.product(queries, (True, False)):
            async with db.lookup_driver() as fairy:
                driver = DriverConnection(fairy, db.lookup_engine.dialect)
                plain, named = [
                    await engine.execute(
                        driver,
                        engine.parse(res_type, params),
                        visible=policy.sql_filter,
                        local_base=BASE,
                        with_patients=with_patients,
                        named=lookup,
                    )
                    for lookup in (None, (BSN, bsns))
                ]
            assert _answer(named) == _answer(plain), (policy, res_type, params)
            assert named.named is not None and {k: sorted(v) for k, v in named.named.items()} == {
                k: sorted(v) for k, v in expected.items()
            }
            compared += 1
    assert compared > 100


async def test_a_bsn_search_on_the_driver_looks_its_named_client_up_in_its_page_statement(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One statement per BSN search (no separate named-client lookup), for a caller who sees the client
    and for one who does not; the latter's attempt is in the client's own audit view."""
    me = client_as(f"client:{C1}")
    before = len(await _events(me))
    path = f"/fhir/Patient?identifier={BSN}|{C1}"
    with _fetches_counted(monkeypatch) as runs:
        seen = await client_as(HUISARTS).get(path)
        hidden = await client_as("org:00077777").get(path)
    assert seen.status_code == 200 and seen.json()["total"] == 1
    assert hidden.status_code == 200 and hidden.json()["total"] == 0
    assert len(runs) == (2 if backend == "postgresql" else 0)
    events = await _events(me)
    new = events[: len(events) - before]
    outcomes = sorted((e["outcome"], any("00077777" in str(a.get("who")) for a in e["agent"])) for e in new)
    assert outcomes == [("0", False), ("4", True)], outcomes  # the huisarts found the client; the stranger's attempt


async def test_the_pages_own_total_is_the_count_statements(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
) -> None:
    """The total the page statement counts (``count(*) OVER ()``) against the count statement's
    (``_summary=count``), for every caller, also when the page is full and when it is past the end."""
    services = hub_app.state.services
    db = services.repo.db
    engine: SearchEngine = services.search
    queries = await _queries(db, sorted(demo.values()))
    queries += [
        ("Observation", [("_count", "2")]),
        ("Observation", [("_count", "2"), ("_offset", "3")]),
        ("Observation", [("_count", "2"), ("_offset", "100000")]),
        ("CareTeam", [("status", "active"), ("_count", "1"), ("_sort", "-_lastUpdated")]),
    ]
    full = 0
    for policy in await _policies(hub_app):
        for res_type, params in queries:
            async with db.read() as conn:
                page = await engine.execute(conn, engine.parse(res_type, params), visible=policy.sql_filter)
                counted = await engine.execute(
                    conn, engine.parse(res_type, [*params, ("_summary", "count")]), visible=policy.sql_filter
                )
            assert page.total == counted.total, (policy, res_type, params)
            full += page.has_next
    assert full  # totals of full pages (the ones that used to need the count statement) were compared


async def test_searches_take_the_driver_path_when_nothing_observes_the_statements(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    client_as: Any,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = f"/fhir/CarePlan?subject=Patient/{demo[C1]}&_include=CarePlan:care-team"
    with _fetches_counted(monkeypatch) as runs:
        r = await client_as(HUISARTS).get(path)
        assert r.status_code == 200 and r.json()["total"] >= 1
        assert len(runs) == (1 if backend == "postgresql" else 0)  # the page (and its total) with its include round
        # with someone listening to the lookup pool's statements, searches go through SQLAlchemy (they see them)
        with observed_lookups(hub_app.state.services.repo.db) as seen:
            again = await client_as(HUISARTS).get(path)
        assert again.status_code == 200 and again.json()["entry"] == r.json()["entry"]
        assert len(runs) == (1 if backend == "postgresql" else 0)
        assert any("FROM resource" in s for s in seen)


async def test_bookkeeping_lookups_on_the_driver_answer_as_through_sqlalchemy(
    demo: dict[str, str],  # noqa: F811
    hub_app: Any,
    backend: str,
) -> None:
    """The named-client lookups of the audit trail (``existing_ids``, ``patients_by_identifier``)."""
    from hub.store import resources as dao

    repo = hub_app.state.services.repo
    db = repo.db
    ids = [*sorted(demo.values()), "no-such-id"]
    bsns = [*sorted(demo), "999990019", "123"]
    answers = []
    for lookups in (["Patient"], ["Observation"]):
        async with repo.keyed(None) as keyed:
            assert isinstance(keyed, DriverConnection) == (backend == "postgresql")
            fast = (
                await dao.existing_ids(keyed, lookups[0], ids),
                await dao.existing_ids(keyed, lookups[0], ids[:1]),
                await dao.patients_by_identifier(keyed, BSN, bsns),
            )
        async with db.lookup() as conn:
            slow = (
                await dao.existing_ids(conn, lookups[0], ids),
                await dao.existing_ids(conn, lookups[0], ids[:1]),
                await dao.patients_by_identifier(conn, BSN, bsns),
            )
        assert fast == slow
        answers.append(slow)
    assert answers[0][0] == set(demo.values()) and answers[1][0] == set()
    assert set(answers[0][2]) == set(demo)

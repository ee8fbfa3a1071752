"""Paging through 1,000 matches with _count=37 while others write: each match once, in sort order;
and the SQL statement count of a search, which must not grow with the page size (HAPI-style)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from hub.access.decision import SYSTEM
from tests.api.search_helpers import link, loaded_client, ordered_ids, relative, search

N = 1000
CODE = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
PANEL = {"coding": [{"system": "http://loinc.org", "code": "85353-1"}]}


def _day(i: int) -> str:
    """Two observations per day (ties are broken by creation order), days spread over 2020-2021."""
    day = (i * 7) % (N // 2)
    return f"{2020 + day // 365}-{1 + (day % 365) // 31:02d}-{1 + (day % 365) % 31 % 28:02d}"


def _data() -> list[dict[str, Any]]:
    orgs = [{"resourceType": "Organization", "id": f"org{k}", "name": f"Org {k}"} for k in range(5)]
    patients = [
        {
            "resourceType": "Patient",
            "id": f"pat{k:03d}",
            "name": [{"family": f"Fam{(k * 37) % 100:03d}"}],
            "managingOrganization": {"reference": f"Organization/org{k % 5}"},
        }
        for k in range(100)
    ]
    observations = [
        {
            "resourceType": "Observation",
            "id": f"obs{i:04d}",
            "status": "final",
            "code": CODE,
            "subject": {"reference": f"Patient/pat{i % 100:03d}"},
            "effectiveDateTime": _day(i),
            "valueQuantity": {"value": i % 50, "system": "http://unitsofmeasure.org", "code": "/min"},
        }
        for i in range(N)
    ]
    panels = [
        {
            "resourceType": "Observation",
            "id": f"panel{k}",
            "status": "final",
            "code": PANEL,
            "hasMember": [{"reference": f"Observation/obs{i:04d}"} for i in range(k * 50, k * 50 + 50)],
        }
        for k in range(N // 50)
    ]
    return [*orgs, *patients, *observations, *panels]


def _expected_order() -> list[str]:
    return [f"obs{i:04d}" for i in sorted(range(N), key=lambda i: (_day(i), i))]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hub(hub_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with loaded_client(hub_app, _data()) as c:
        yield c


async def _write_matching(client: httpx.AsyncClient, n: int, tag: str) -> None:
    for k in range(n):
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": CODE,
            "effectiveDateTime": _day(k * 13),
            "subject": {"reference": "Patient/pat000"},
            "valueQuantity": {"value": 1},
            "id": f"new-{tag}-{k}",
        }
        r = await client.put(f"/fhir/Observation/new-{tag}-{k}", json=obs)
        assert r.status_code == 201, r.text


async def test_paging_1000_matches_with_count_37_while_writing(hub: httpx.AsyncClient) -> None:
    first = await search(hub, "Observation?code=8867-4&_sort=date&_count=37&date=lt2030")
    assert first["total"] == N
    seen = ordered_ids(first)
    pages = [first]
    writer = asyncio.create_task(_write_matching(hub, 60, "bg"))  # runs while we page
    url = link(first, "next")
    n = 0
    while url:
        await _write_matching(hub, 1, f"p{n}")  # and one more write between every two pages
        page = await search(hub, relative(url))
        pages.append(page)
        seen += ordered_ids(page)
        url = link(page, "next")
        n += 1
    await writer
    assert len(pages) == -(-N // 37)
    assert seen == _expected_order()  # each match once, in sort order, none of the new ones
    # every page's total is that of the snapshot; self/previous links reproduce the same pages
    assert {p["total"] for p in pages} == {N}
    again = await search(hub, relative(link(pages[5], "self") or ""))
    assert ordered_ids(again) == ordered_ids(pages[5])
    back = await search(hub, relative(link(pages[5], "previous") or ""))
    assert ordered_ids(back) == ordered_ids(pages[4])
    assert link(pages[0], "previous") is None and link(pages[-1], "next") is None
    # a new search sees the new resources
    fresh = await search(hub, "Observation?code=8867-4&_summary=count")
    assert fresh["total"] == N + 60 + n
    for new_id in [f"new-bg-{k}" for k in range(60)] + [f"new-p{k}-0" for k in range(n)]:
        assert (await hub.delete(f"/fhir/Observation/{new_id}")).status_code == 200


def _counted(statements: list[str]) -> list[str]:
    """The statements the search itself sent (no transaction control; not the audit writer's, which
    shares the engine on SQLite and seals the log on its own timer)."""
    return [s for s in statements if s.split(None, 1)[0].upper() in ("SELECT", "WITH") and "audit_" not in s]


SEARCH = [
    ("code", "8867-4"),
    ("_sort", "-date,_id"),
    ("_include", "Observation:subject"),
    ("_revinclude", "Observation:has-member"),
]


@pytest.mark.parametrize("count", [10, 500])
async def test_statement_count_does_not_grow_with_page_size(
    hub: httpx.AsyncClient, hub_app: Any, count_statements: Any, count: int
) -> None:
    services = hub_app.state.services
    query = services.search.parse("Observation", [*SEARCH, ("_count", str(count))])
    async with services.repo.db.read() as conn:
        with count_statements() as counter:
            page = await services.search.execute(
                conn, query, visible=SYSTEM.sql_filter, local_base="http://hub.test/fhir"
            )
    # the page (with its snapshot and the total), one include round, one revinclude round
    assert len(_counted(counter.statements)) == 3
    assert len(page.matches) == count and page.total == N
    assert {s.res_type for s in page.included} == {"Patient", "Observation"}
    assert 1 <= len([s for s in page.included if s.res_type == "Observation"]) <= N // 50
    # over HTTP: the same number of search statements whatever the page size
    with count_statements() as counter:
        bundle = await search(hub, "Observation?" + "&".join(f"{k}={v}" for k, v in SEARCH) + f"&_count={count}")
    assert len(_counted(counter.statements)) <= 3 + 2  # + what access control may read for the request
    assert len(ordered_ids(bundle)) == count


@pytest.mark.parametrize("count", [10, 500])
async def test_statement_count_is_bounded_with_iterate_and_chains(
    hub: httpx.AsyncClient, hub_app: Any, count_statements: Any, count: int
) -> None:
    services = hub_app.state.services
    query = services.search.parse(
        "Observation",
        [
            ("subject:Patient.organization.name", "org"),
            ("_sort", "date,-value-quantity,subject"),
            ("_include", "Observation:subject"),
            ("_include:iterate", "Patient:organization"),
            ("_revinclude:iterate", "Patient:organization"),
            ("_revinclude", "Observation:has-member"),
            ("_count", str(count)),
        ],
    )
    async with services.repo.db.read() as conn:
        with count_statements() as counter:
            page = await services.search.execute(
                conn, query, visible=SYSTEM.sql_filter, local_base="http://hub.test/fhir"
            )
    assert len(page.matches) == count
    # page + total + at most MAX_INCLUDE_DEPTH rounds of (include, revinclude)
    assert len(_counted(counter.statements)) <= 2 + 2 * 4
    assert {s.res_type for s in page.included} == {"Patient", "Organization", "Observation"}

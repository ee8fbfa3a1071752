"""``Patient/{id}/$everything``: the compartment plus what it references, with _since, _type and paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.search_data import RESOURCES
from tests.api.search_helpers import ids, link, loaded_client, relative, search


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hub(hub_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with loaded_client(hub_app, RESOURCES) as c:
        yield c


async def test_everything_is_the_compartment_plus_references(hub: httpx.AsyncClient) -> None:
    body = await search(hub, "Patient/p1/$everything")
    assert body["type"] == "searchset"
    assert ids(body) == {"Patient/p1", "Observation/ob1", "RiskAssessment/ra1"}
    assert ids(body, "include") == {"Practitioner/pr1", "Organization/o1"}
    assert body["total"] == 3


async def test_everything_type_and_since(hub: httpx.AsyncClient) -> None:
    body = await search(hub, "Patient/p1/$everything?_type=Observation,RiskAssessment")
    assert ids(body) == {"Observation/ob1", "RiskAssessment/ra1"}
    assert ids(body, "include") == {"Patient/p1", "Practitioner/pr1"}
    body = await search(hub, "Patient/p3/$everything?_type=Patient")
    assert ids(body) == {"Patient/p3"} and ids(body, "include") == {"Organization/o3"}
    assert ids(await search(hub, "Patient/p1/$everything?_since=2000-01-01")) == {
        "Patient/p1",
        "Observation/ob1",
        "RiskAssessment/ra1",
    }
    body = await search(hub, "Patient/p1/$everything?_since=2999-01-01T00:00:00Z")
    assert body["total"] == 0 and "entry" not in body
    await search(hub, "Patient/p1/$everything?_type=Nope", status=400)
    await search(hub, "Patient/p1/$everything?_since=yesterday", status=400)


async def test_everything_pages(hub: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url: str | None = "Patient/p5/$everything?_count=1"
    pages = 0
    while url:
        body = await search(hub, url)
        assert body["total"] == 3
        seen += [
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in body["entry"]
            if e["search"]["mode"] == "match"
        ]
        nxt = link(body, "next")
        assert nxt is None or "/Patient/p5/$everything?" in nxt
        url = relative(nxt) if nxt else None
        pages += 1
    assert pages == 3 and sorted(seen) == ["Observation/ob7", "Observation/ob8", "Patient/p5"]


async def test_everything_post_parameters(hub: httpx.AsyncClient) -> None:
    params = {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "RiskAssessment"}]}
    r = await hub.post("/fhir/Patient/p2/$everything", json=params)
    assert r.status_code == 200, r.text
    assert ids(r.json()) == {"RiskAssessment/ra2"}


async def test_everything_unknown_patient_and_parameters(hub: httpx.AsyncClient) -> None:
    assert (await search(hub, "Patient/nobody/$everything", status=404))["resourceType"] == "OperationOutcome"
    await search(hub, "Observation/ob1/$everything", status=404)
    body = await search(hub, "Patient/p1/$everything?start=2020")
    assert any(e["search"]["mode"] == "outcome" for e in body["entry"])
    await search(hub, "Patient/p1/$everything?start=2020", status=400, Prefer="handling=strict")


@pytest.mark.parametrize("count", [1, 500])
async def test_everything_statement_count(hub: httpx.AsyncClient, count_statements: Any, count: int) -> None:
    with count_statements() as counter:
        await search(hub, f"Patient/p1/$everything?_count={count}")
    selects = [s for s in counter.statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 3 + 2  # page, total, one include round (+ what access control may read)

"""Compartment search: ``GET /fhir/Patient/{id}/{type}`` per the R4 Patient CompartmentDefinition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.search_data import RESOURCES
from tests.api.search_helpers import ids, loaded_client, ordered_ids, search


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hub(hub_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with loaded_client(hub_app, RESOURCES) as c:
        yield c


CASES = [
    ("Patient/p1/Observation", "Observation/ob1"),  # not ob3: its subject is another server's Patient/p1
    ("Patient/p1/Observation?code=85354-9", ""),
    ("Patient/p3/Observation?code=85354-9", "Observation/ob4"),
    ("Patient/p3/Observation?code:not=85354-9", ""),
    ("Patient/p1/RiskAssessment", "RiskAssessment/ra1"),
    ("Patient/p4/RiskAssessment?probability:missing=true", "RiskAssessment/ra4"),
    ("Patient/p1/Patient", "Patient/p1"),
    ("Patient/p5/Observation?date=ge2022", "Observation/ob8"),
    ("Patient/nobody/Observation", ""),
    ("Patient/p1/Observation?subject:Patient.name=smit", "Observation/ob1"),
]


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_compartment_search(hub: httpx.AsyncClient, url: str, expected: str) -> None:
    body = await search(hub, url)
    assert ids(body) == set(expected.split())
    assert body["total"] == len(expected.split())


async def test_compartment_sort_include_links_and_post(hub: httpx.AsyncClient) -> None:
    body = await search(hub, "Patient/p5/Observation?_sort=-date")
    assert ordered_ids(body) == ["ob8", "ob7"]
    body = await search(hub, "Patient/p1/Observation?_include=Observation:performer")
    assert ids(body, "include") == {"Practitioner/pr1"}
    body = await search(hub, "Patient/p5/Observation?_count=1")
    nxt = next(x["url"] for x in body["link"] if x["relation"] == "next")
    assert nxt.startswith("http://hub.test/fhir/Patient/p5/Observation?")
    second = await search(hub, nxt.split("/fhir/", 1)[1])
    assert ids(second) | ids(body) == {"Observation/ob7", "Observation/ob8"}
    r = await hub.post(
        "/fhir/Patient/p3/Observation/_search",
        content="code=85354-9",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and ids(r.json()) == {"Observation/ob4"}


@pytest.mark.parametrize("url", ["Patient/p1/Organization", "Practitioner/pr1/Observation"])
async def test_compartments_the_hub_does_not_have(hub: httpx.AsyncClient, url: str) -> None:
    body = await search(hub, url, status=400)
    assert body["issue"][0]["code"] == "not-supported"

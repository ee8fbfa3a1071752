"""Keyset paging: a next link continues after the last row it showed, so a row deleted or changed
*before* that point cannot make a later row be skipped or repeated (offset paging could); previous
links go back the same way; ``_total=estimate`` is the planner's estimate on PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.search_helpers import analyze, link, ordered_ids, search


def _obs(i: int, day: int | None) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"k{i:02d}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    }
    if day is not None:
        obs["effectiveDateTime"] = f"2024-01-{day:02d}"
    return obs


def _relative(url: str) -> str:
    return url.split("/fhir/", 1)[1]


async def _load(client: httpx.AsyncClient, n: int) -> None:
    for i in range(n):
        # days repeat (ties broken by pid) and two have no date (sorted last, both directions)
        day = None if i in (3, 7) else 1 + (i * 7) % 5
        assert (await client.put(f"/fhir/Observation/k{i:02d}", json=_obs(i, day))).status_code == 201


async def _all_pages(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    pages = [await search(client, url)]
    while (nxt := link(pages[-1], "next")) is not None:
        pages.append(await search(client, _relative(nxt)))
    return pages


@pytest.mark.parametrize("sort", ["date", "-date", "_id", "-_lastUpdated", "date,-_id"])
async def test_keyset_pages_cover_each_row_once_and_go_back(client: httpx.AsyncClient, sort: str) -> None:
    await _load(client, 12)
    whole = ordered_ids(await search(client, f"Observation?_sort={sort}&_count=100"))
    pages = await _all_pages(client, f"Observation?_sort={sort}&_count=5")
    assert [i for p in pages for i in ordered_ids(p)] == whole
    assert [len(ordered_ids(p)) for p in pages] == [5, 5, 2]
    # previous links give the same pages back; the first page has none
    assert link(pages[0], "previous") is None
    back = await search(client, _relative(link(pages[2], "previous") or ""))
    assert ordered_ids(back) == ordered_ids(pages[1])
    back = await search(client, _relative(link(back, "previous") or ""))
    assert ordered_ids(back) == ordered_ids(pages[0])
    assert link(back, "previous") is None
    again = await search(client, _relative(link(pages[1], "self") or ""))
    assert ordered_ids(again) == ordered_ids(pages[1])


async def test_a_row_deleted_before_the_cursor_does_not_skip_one(client: httpx.AsyncClient) -> None:
    await _load(client, 12)
    first = await search(client, "Observation?_sort=_id&_count=4")
    assert ordered_ids(first) == ["k00", "k01", "k02", "k03"]
    # an earlier row goes away after the first page was read (offset paging would now skip k04)
    assert (await client.delete("/fhir/Observation/k01")).status_code == 200
    second = await search(client, _relative(link(first, "next") or ""))
    assert ordered_ids(second) == ["k04", "k05", "k06", "k07"]
    # a row created meanwhile before the cursor neither shows up nor shifts the rest
    assert (await client.put("/fhir/Observation/k00a", json=_obs(0, 1) | {"id": "k00a"})).status_code == 201
    third = await search(client, _relative(link(second, "next") or ""))
    assert ordered_ids(third) == ["k08", "k09", "k10", "k11"]
    assert link(third, "next") is None


async def test_a_cursor_from_elsewhere_is_refused(client: httpx.AsyncClient) -> None:
    await _load(client, 6)
    first = await search(client, "Observation?_sort=date&_count=2")
    cursor = (link(first, "next") or "").split("_cursor=")[1].split("&")[0]
    # the cursor of a search sorted by one key does not fit a search sorted by two
    body = await search(client, f"Observation?_sort=date,_id&_cursor={cursor}", status=400)
    assert "_cursor" in body["issue"][0]["diagnostics"]
    body = await search(client, "Observation?_cursor=not-a-cursor", status=400)
    assert "_cursor" in body["issue"][0]["diagnostics"]


async def test_total_estimate(client: httpx.AsyncClient, hub_app: Any) -> None:
    await _load(client, 30)
    await analyze(hub_app)
    accurate = await search(client, "Observation?code=8867-4&_count=5&_total=accurate")
    estimate = await search(client, "Observation?code=8867-4&_count=5&_total=estimate")
    assert accurate["total"] == 30
    assert ordered_ids(estimate) == ordered_ids(accurate)
    # an estimate is a count of the right order (PostgreSQL: the planner's; SQLite counts)
    assert 1 <= estimate["total"] <= 300
    if hub_app.state.services.repo.db.is_sqlite:
        assert estimate["total"] == 30
    none = await search(client, "Observation?code=8867-4&_count=5&_total=none")
    assert "total" not in none

"""Search statements are cached per query shape and access policy shape (hub.store.search.engine):
two callers whose policies have the same shape share one statement, and each still sees only what
their own policy lets them see (the policy's values travel as bind values, never in the statement).

The network is tests/api/test_access_rules.py's: organisations A (in client 1's care team) and C
(no relationship; it wrote one observation about client 1), clients 1 (``pat-0``) and 2 (``pat-1``).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.access_helpers import NetworkSpec
from tests.api.test_access_rules import BSN1, BSN2, OBS_BY_C, PLAN, A, C, net  # noqa: F401


async def ids(c: httpx.AsyncClient, query: str) -> set[str]:
    resp = await c.get(f"/fhir/{query}")
    assert resp.status_code == 200, resp.text
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in resp.json().get("entry", [])}


def cached(hub_app: Any) -> int:
    return len(hub_app.state.services.search.statements)


async def test_same_shape_different_policies_see_their_own(
    net: NetworkSpec,  # noqa: F811
    hub_app: Any,
    client_as: Any,
) -> None:
    a, c = client_as(f"org:{A}"), client_as(f"org:{C}")
    query = "CarePlan?subject=Patient/pat-0"
    seen_by_a = await ids(a, query)
    built = cached(hub_app)
    seen_by_c = await ids(c, query)
    assert cached(hub_app) == built, "both professionals' policies have one shape: one statement"
    assert seen_by_a == {PLAN}
    assert seen_by_c == set()
    assert await ids(a, query) == seen_by_a  # and the cached statement did not keep C's values
    assert await ids(c, "Observation?subject=Patient/pat-0") == {OBS_BY_C}  # only what C wrote itself

    one, two = client_as(f"client:{BSN1}"), client_as(f"client:{BSN2}")
    query = "CarePlan?subject=Patient/pat-0&_include=CarePlan:subject"
    mine = await ids(one, query)
    built = cached(hub_app)
    assert await ids(two, query) == set()
    assert cached(hub_app) == built
    assert {PLAN, "Patient/pat-0"} <= mine
    assert await ids(one, query) == mine


async def test_everything_of_the_same_shape_follows_each_callers_policy(
    net: NetworkSpec,  # noqa: F811
    client_as: Any,
) -> None:
    one, two = client_as(f"client:{BSN1}"), client_as(f"client:{BSN2}")
    mine = await ids(one, "Patient/pat-0/$everything")
    assert {PLAN, "Patient/pat-0"} <= mine
    assert (await two.get("/fhir/Patient/pat-0/$everything")).status_code == 404
    theirs = await ids(two, "Patient/pat-1/$everything")
    assert "Patient/pat-1" in theirs and not theirs & mine
    assert await ids(one, "Patient/pat-0/$everything") == mine

"""Chains, reverse chains (``_has``), _include/_revinclude (with :iterate and *), _sort, result shaping,
unknown parameters and POST _search, on the matrix data set (:mod:`tests.api.search_data`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.search_data import BSN, RESOURCES
from tests.api.search_helpers import ids, loaded_client, ordered_ids, search


def _s(text: str) -> frozenset[str]:
    return frozenset(text.split())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hub(hub_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with loaded_client(hub_app, RESOURCES) as c:
        yield c


CHAINS = [
    # ob2's subject is an absolute URL on this hub (it counts), ob3's is on another server (it never does)
    ("Observation?subject:Patient.name=smit", "Observation/ob1 Observation/ob2"),
    ("Observation?subject.name=smit", "Observation/ob1 Observation/ob2"),
    ("Observation?patient.family=muller", "Observation/ob4"),
    ("Observation?subject:Patient.birthdate=lt1980", "Observation/ob4"),
    (f"Observation?patient.identifier={BSN}|111222333", "Observation/ob1"),
    ("Observation?subject:Group.code=smit", ""),
    # two and three levels deep
    ("Observation?subject:Patient.organization.name=zorg%20alpha", "Observation/ob1"),
    ("Observation?subject:Patient.organization.partof.name=koepel", "Observation/ob2"),
    ("Observation?subject:Patient.organization.partof.partof.name=koepel", "Observation/ob1"),
    ("Observation?patient.general-practitioner:Practitioner.name=karel", "Observation/ob1"),
    # name parts are searched on their own: "de Vries" has the part "vries", not "ries"
    ("Observation?patient.general-practitioner:Practitioner.name=vries", "Observation/ob1"),
    ("Observation?patient.general-practitioner:Practitioner.name=ries", ""),
    ("Observation?patient.general-practitioner:Organization.name=zorg", "Observation/ob7 Observation/ob8"),
    ("Observation?subject:Patient.organization.identifier=AGB3", "Observation/ob4"),
    ("Observation?subject:Patient.organization.name=nobody", ""),
    # a chain AND a plain criterion; OR within the chained value
    ("Observation?subject:Patient.name=smit&status=amended", ""),
    ("Observation?subject:Patient.gender=male,other", "Observation/ob2 Observation/ob4"),
    ("RiskAssessment?subject:Patient.organization.partof=Organization/o3", "RiskAssessment/ra2"),
    # reverse chains
    ("Patient?_has:Observation:subject:code=85354-9", "Patient/p3"),
    ("Patient?_has:Observation:patient:value-quantity=gt75", "Patient/p2"),
    ("Patient?_has:Observation:subject:status=final&gender=female", "Patient/p1"),
    ("Patient?_has:Observation:subject:code=29463-7,8867-4", "Patient/p1 Patient/p2 Patient/p5"),
    ("Patient?_has:Observation:subject:code=29463-7&_has:Observation:subject:status=amended", ""),
    ("Patient?_has:RiskAssessment:subject:probability=gt0.3", "Patient/p2 Patient/p3"),
    ("Practitioner?_has:Observation:performer:subject:Patient.name=smitsen", "Practitioner/pr2"),
    # nested _has
    (
        "Organization?_has:Patient:organization:_has:Observation:subject:code=29463-7",
        "Organization/o1 Organization/o2",
    ),
    ("Organization?_has:Patient:organization:_has:Observation:subject:code=85354-9", "Organization/o3"),
    ("Organization?_has:Organization:partof:_has:Patient:organization:gender=female", "Organization/o2"),
    ("Organization?_has:Patient:organization:_has:RiskAssessment:subject:probability=100", "Organization/o2"),
]


@pytest.mark.parametrize(("url", "expected"), CHAINS, ids=[c[0] for c in CHAINS])
async def test_chains_and_has(hub: httpx.AsyncClient, url: str, expected: str) -> None:
    assert ids(await search(hub, url)) == _s(expected)


INCLUDES = [
    ("Observation?_id=ob1&_include=Observation:subject", "Observation/ob1", "Patient/p1"),
    ("Observation?_id=ob1&_include=Observation:subject:Patient", "Observation/ob1", "Patient/p1"),
    ("Observation?_id=ob1&_include=Observation:subject:Group", "Observation/ob1", ""),
    (
        "Observation?_id=ob1&_include=Observation:subject&_include=Observation:performer",
        "Observation/ob1",
        "Patient/p1 Practitioner/pr1",
    ),
    ("Observation?_id=ob1&_include=Observation:*", "Observation/ob1", "Patient/p1 Practitioner/pr1"),
    ("Observation?_id=ob1&_include=*", "Observation/ob1", "Patient/p1 Practitioner/pr1"),
    # the foreign reference of ob3 is not followed; the local absolute one of ob2 is
    (
        "Observation?_id=ob1,ob2,ob3&_include=Observation:subject",
        "Observation/ob1 Observation/ob2 Observation/ob3",
        "Patient/p1 Patient/p2",
    ),
    (
        "Observation?_id=ob1&_include=Observation:subject&_include:iterate=Patient:organization",
        "Observation/ob1",
        "Patient/p1 Organization/o1",
    ),
    (
        "Observation?_id=ob1&_include=Observation:subject&_include:iterate=Patient:organization"
        "&_include:iterate=Organization:partof",
        "Observation/ob1",
        "Patient/p1 Organization/o1 Organization/o2 Organization/o3",
    ),
    # without :iterate an include applies to the matches only
    (
        "Observation?_id=ob1&_include=Observation:subject&_include=Patient:organization",
        "Observation/ob1",
        "Patient/p1",
    ),
    ("Patient?_id=p1&_revinclude=Observation:subject", "Patient/p1", "Observation/ob1"),
    ("Patient?_id=p2&_revinclude=Observation:subject", "Patient/p2", "Observation/ob2"),
    ("Patient?_id=p1&_revinclude=*", "Patient/p1", "Observation/ob1 RiskAssessment/ra1"),
    ("Patient?_id=p5&_revinclude=*", "Patient/p5", "Observation/ob7 Observation/ob8"),
    ("Organization?_id=o3&_revinclude=Organization:partof", "Organization/o3", "Organization/o2"),
    (
        "Organization?_id=o3&_revinclude:iterate=Organization:partof",
        "Organization/o3",
        "Organization/o2 Organization/o1",
    ),
    (
        "Organization?_id=o1&_revinclude=Patient:organization&_revinclude:iterate=Observation:subject",
        "Organization/o1",
        "Patient/p1 Observation/ob1",
    ),
    (
        "Patient?_id=p1&_revinclude=Observation:subject&_include:iterate=Observation:performer",
        "Patient/p1",
        "Observation/ob1 Practitioner/pr1",
    ),
    (
        "Patient?_id=p1,p2&_revinclude=RiskAssessment:subject&_include=Patient:organization",
        "Patient/p1 Patient/p2",
        "RiskAssessment/ra1 RiskAssessment/ra2 Organization/o1 Organization/o2",
    ),
    # a resource that is both a match and a target is listed once, as a match
    (
        "Organization?_id=o1,o2&_include=Organization:partof",
        "Organization/o1 Organization/o2",
        "Organization/o3",
    ),
]


@pytest.mark.parametrize(("url", "matches", "included"), INCLUDES, ids=[c[0] for c in INCLUDES])
async def test_includes(hub: httpx.AsyncClient, url: str, matches: str, included: str) -> None:
    bundle = await search(hub, url)
    assert ids(bundle) == _s(matches)
    assert ids(bundle, "include") == _s(included)
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(full_urls) == len(set(full_urls))
    assert bundle["total"] == len(_s(matches))  # includes never count


SORTS = [
    ("Patient?_sort=family", "p5 p3 p1 p2 p4"),
    ("Patient?_sort=-family", "p2 p1 p3 p5 p4"),
    ("Patient?_sort=birthdate", "p3 p2 p1 p5 p4"),
    ("Patient?_sort=-birthdate", "p5 p2 p1 p3 p4"),
    ("Patient?_sort=gender,-birthdate", "p5 p1 p2 p3 p4"),
    ("Patient?_sort=-gender,family", "p3 p2 p5 p1 p4"),
    ("Patient?_sort=_id", "p1 p2 p3 p4 p5"),
    ("Patient?_sort=-_id", "p5 p4 p3 p2 p1"),
    ("Patient?_sort=identifier", "p1 p2 p3 p4 p5"),
    ("Patient?_sort=organization,_id", "p1 p2 p3 p4 p5"),
    ("RiskAssessment?_sort=-probability", "ra2 ra3 ra1 ra4"),
    ("RiskAssessment?_sort=probability", "ra1 ra3 ra2 ra4"),
    ("Observation?_sort=value-quantity&value-quantity:missing=false", "ob7 ob1 ob2 ob3 ob6"),
    ("Observation?_sort=-date,_id", "ob8 ob3 ob2 ob7 ob1 ob4 ob5 ob6"),
    ("Observation?_sort=date,_id", "ob5 ob3 ob2 ob1 ob4 ob7 ob8 ob6"),
    ("ValueSet?_sort=-url", "vs3 vs2 vs1 vs4"),
]


@pytest.mark.parametrize(("url", "order"), SORTS, ids=[c[0] for c in SORTS])
async def test_sort(hub: httpx.AsyncClient, url: str, order: str) -> None:
    assert ordered_ids(await search(hub, url)) == order.split()


async def test_sort_is_the_same_across_pages(hub: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url: str | None = "Observation?_sort=-date,_id&_count=3"
    while url:
        bundle = await search(hub, url)
        seen += ordered_ids(bundle)
        nxt = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), None)
        url = nxt.split("/fhir/", 1)[1] if nxt else None
    assert seen == "ob8 ob3 ob2 ob7 ob1 ob4 ob5 ob6".split()


async def test_summary_count_and_total(hub: httpx.AsyncClient) -> None:
    body = await search(hub, "Patient?_summary=count")
    assert body["total"] == 5 and "entry" not in body
    body = await search(hub, "Patient?_total=none&_count=2")
    assert "total" not in body and len(body["entry"]) == 2
    body = await search(hub, "Patient?_total=accurate&_count=2")
    assert body["total"] == 5
    body = await search(hub, "Patient?_total=estimate&_count=2")
    assert body["total"] == 5
    body = await search(hub, "Patient?_count=0")
    assert body["total"] == 5 and "entry" not in body


async def test_summary_and_elements_shape_resources(hub: httpx.AsyncClient) -> None:
    subsetted = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
    res = (await search(hub, "Patient?_id=p1&_elements=gender,birthDate"))["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "gender", "birthDate"}
    assert subsetted in res["meta"]["tag"]
    res = (await search(hub, "Patient?_id=p1&_summary=true"))["entry"][0]["resource"]
    assert {"identifier", "name", "gender", "birthDate"} <= set(res) and "telecom" in res
    assert subsetted in res["meta"]["tag"]
    res = (await search(hub, "RiskAssessment?_id=ra1&_summary=true"))["entry"][0]["resource"]
    assert "prediction" not in res and {"status", "subject"} <= set(res)
    res = (await search(hub, "Patient?_id=p1&_summary=data"))["entry"][0]["resource"]
    assert "text" not in res and "address" in res
    res = (await search(hub, "Patient?_id=p1&_summary=text"))["entry"][0]["resource"]
    assert set(res) <= {"resourceType", "id", "meta", "text"}
    res = (await search(hub, "Patient?_id=p1&_summary=false"))["entry"][0]["resource"]
    assert "address" in res and subsetted not in res["meta"].get("tag", [])
    # included resources are shaped alike
    body = await search(hub, "Observation?_id=ob1&_include=Observation:subject&_elements=status")
    shapes = {e["resource"]["resourceType"]: set(e["resource"]) for e in body["entry"]}
    assert shapes["Observation"] == {"resourceType", "id", "meta", "status", "code"}  # code is mandatory


async def test_unknown_parameters_are_reported_or_refused(hub: httpx.AsyncClient) -> None:
    body = await search(hub, "Patient?family=smit&foo=bar&_text=x")
    assert ids(body) == {"Patient/p1", "Patient/p2"}
    outcome = [e for e in body["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    issues = outcome[0]["resource"]["issue"]
    assert {i["expression"][0] for i in issues} == {"foo", "_text"}
    assert all(i["severity"] == "warning" for i in issues)
    assert "foo" not in next(x["url"] for x in body["link"] if x["relation"] == "self")
    strict = await search(hub, "Patient?family=smit&foo=bar", status=400, Prefer="handling=strict")
    assert strict["issue"][0]["expression"] == ["foo"]
    body = await search(hub, "Patient?family=smit", Prefer="handling=strict")
    assert ids(body) == {"Patient/p1", "Patient/p2"}
    # an unknown chained name is unknown too
    body = await search(hub, "Observation?subject:Patient.nope=1")
    assert any(e["search"]["mode"] == "outcome" for e in body["entry"])


async def test_post_search_form_encoded(hub: httpx.AsyncClient) -> None:
    r = await hub.post(
        "/fhir/Patient/_search",
        content="family=smit&gender=male",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    assert ids(r.json()) == {"Patient/p2"}
    self_link = next(x["url"] for x in r.json()["link"] if x["relation"] == "self")
    assert self_link.startswith("http://hub.test/fhir/Patient?") and "family=smit" in self_link
    r = await hub.post(
        "/fhir/Patient/_search?gender=female",
        content="family=smit",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert ids(r.json()) == {"Patient/p1"}


async def test_system_search_with_type(hub: httpx.AsyncClient) -> None:
    body = await search(hub, "?_type=Patient,Practitioner&_count=50")
    assert ids(body) == {f"Patient/p{i}" for i in range(1, 6)} | {"Practitioner/pr1", "Practitioner/pr2"}
    body = await search(hub, "?_type=Organization&_id=o1")
    assert ids(body) == {"Organization/o1"}
    body = await search(hub, "?_tag=pilot")
    assert ids(body) == {"Patient/p1", "Patient/p3"}

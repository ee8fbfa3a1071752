"""The search matrix: every parameter type x modifier x prefix, positive and negative, on both databases.

The data set (:mod:`tests.api.search_data`) is loaded once per module and backend; each case is one
GET whose matches must be exactly the expected set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.search_data import BSN, RESOURCES, V2
from tests.api.search_helpers import ids, loaded_client, search


def _set(prefix: str, names: str) -> frozenset[str]:
    return frozenset(f"{prefix}/{n}" for n in names.split())


def P(names: str = "") -> frozenset[str]:  # noqa: N802 - reads like the resource type
    return _set("Patient", names)


def O(names: str = "") -> frozenset[str]:  # noqa: N802, E743
    return _set("Observation", names)


def RA(names: str = "") -> frozenset[str]:  # noqa: N802
    return _set("RiskAssessment", names)


def VS(names: str = "") -> frozenset[str]:  # noqa: N802
    return _set("ValueSet", names)


ALL_P = P("p1 p2 p3 p4 p5")

STRING = [
    ("Patient?family=smit", P("p1 p2")),
    ("Patient?family=SMIT", P("p1 p2")),
    ("Patient?family=Smitsen", P("p2")),
    ("Patient?family=mit", P()),
    ("Patient?family:exact=Smit", P("p1")),
    ("Patient?family:exact=smit", P()),
    ("Patient?family:exact=Smi", P()),
    ("Patient?family:exact=Müller", P("p3")),
    ("Patient?family:contains=itse", P("p2")),
    ("Patient?family:contains=ULL", P("p3")),
    ("Patient?family:contains=xyz", P()),
    ("Patient?family=muller", P("p3")),
    ("Patient?family=Müll", P("p3")),
    ("Patient?given=zoe", P("p3")),
    ("Patient?name=de", P("p5")),
    # each word of a name is a part searched on its own ("de Vries" has the part "vries")
    ("Patient?name=vries", P("p5")),
    ("Patient?name=ries", P()),
    ("Patient?name:contains=vries", P("p5")),
    ("Patient?name=100%25", P("p5")),
    ("Patient?name=100_", P()),
    ("Patient?name:contains=r_x", P("p5")),
    ("Patient?name:contains=r%25x", P()),
    ("Patient?address-city=den%20haag", P("p1")),
    ("Patient?address-city=den%20%20haag", P("p1")),
    ("Patient?family:missing=true", P("p4")),
    ("Patient?family:missing=false", P("p1 p2 p3 p5")),
    ("Patient?family=smit,muller", P("p1 p2 p3")),
    ("Patient?family=smit&given=piet", P("p2")),
    ("Patient?family=smit&family=smits", P("p2")),
    ("Patient?family=smit&family=muller", P()),
    ("Observation?value-string=hello", O("ob5")),
    ("Observation?value-string:exact=Héllo Wereld", O("ob5")),
    ("Observation?value-string:exact=Hello Wereld", O()),
]

TOKEN = [
    ("Patient?identifier=111222333", P("p1 p2")),
    (f"Patient?identifier={BSN}|111222333", P("p1")),
    ("Patient?identifier=http://example.org/other|111222333", P("p2")),
    ("Patient?identifier=|333", P("p3")),
    ("Patient?identifier=|111222333", P()),
    (f"Patient?identifier={BSN}|", P("p1 p4 p5")),
    (f"Patient?identifier:of-type={V2}|MR|M1", P("p1")),
    (f"Patient?identifier:of-type={V2}|NNNLD|111222333", P("p1")),
    (f"Patient?identifier:of-type={V2}|MR|111222333", P()),
    ("Patient?identifier:text=bsn", P("p1")),
    ("Patient?identifier:text=mrn", P()),
    ("Patient?identifier:missing=false", ALL_P),
    ("Patient?identifier:missing=true", P()),
    ("Patient?gender=female", P("p1 p5")),
    ("Patient?gender=male,other", P("p2 p3")),
    ("Patient?gender=Female", P()),
    ("Patient?gender:not=female", P("p2 p3 p4")),
    ("Patient?gender:not=female,male", P("p3 p4")),
    ("Patient?gender:missing=true", P("p4")),
    ("Patient?active=true", P("p1")),
    ("Patient?active=false", P("p5")),
    ("Patient?active:missing=true", P("p2 p3 p4")),
    ("Patient?telecom=0612345678", P("p1")),
    ("Patient?telecom=0612", P()),
    ("Observation?code=29463-7", O("ob1 ob2 ob3 ob6")),
    ("Observation?code=http://loinc.org|29463-7", O("ob1 ob2 ob3 ob6")),
    ("Observation?code=http://snomed.info/sct|29463-7", O()),
    ("Observation?code=http://loinc.org|", O("ob1 ob2 ob3 ob4 ob6 ob7 ob8")),
    ("Observation?code:text=gewicht", O("ob1")),
    ("Observation?code:text=body", O("ob1")),
    ("Observation?code:text=notitie", O("ob5")),
    ("Observation?code:not=29463-7", O("ob4 ob5 ob7 ob8")),
    ("Observation?code:missing=true", O()),
    ("Observation?status=final,amended", O("ob1 ob2 ob3 ob4 ob6")),
    ("Observation?status=final&code=85354-9", O("ob4")),
    ("Observation?component-code=8480-6", O("ob4")),
    ("Observation?component-code=29463-7", O()),
    # meta: _tag and _security are tokens, _profile and _source are uris
    ("Patient?_tag=pilot", P("p1 p3")),
    ("Patient?_tag=http://zorgnet.nl/tags|pilot", P("p1")),
    ("Patient?_tag=|pilot", P("p3")),
    ("Patient?_tag=http://zorgnet.nl/tags|", P("p1 p2")),
    ("Patient?_tag:not=pilot", P("p2 p4 p5")),
    ("Patient?_tag:missing=true", P("p4 p5")),
    ("Patient?_security=R", P("p1")),
    ("Patient?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R", P("p1")),
    ("Patient?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N", P()),
    ("Patient?_security:missing=true", P("p2 p3 p4 p5")),
    ("Patient?_id=p1,p3", P("p1 p3")),
    ("Patient?_id=nope", P()),
    ("Patient?_id:not=p1", P("p2 p3 p4 p5")),
    ("Patient?_id=p1&family=smit", P("p1")),
]

URI = [
    ("Patient?_profile=http://example.org/StructureDefinition/patient-a", P("p1")),
    ("Patient?_profile=http://example.org/StructureDefinition/patient", P()),
    ("Patient?_profile:below=http://example.org/StructureDefinition/", P("p1 p2")),
    ("Patient?_profile:missing=true", P("p3 p4 p5")),
    ("Patient?_source=http://source.example/system-a%23123", P("p1")),
    ("Patient?_source=http://source.example/system-b", P("p2")),
    ("Patient?_source:below=http://source.example/", P("p1 p2")),
    ("Patient?_source:missing=false", P("p1 p2")),
    ("ValueSet?url=http://example.org/fhir/ValueSet/a", VS("vs1")),
    ("ValueSet?url=http://example.org/fhir/ValueSet", VS()),
    ("ValueSet?url=http://example.org/fhir/valueset/a", VS()),
    ("ValueSet?url:below=http://example.org/fhir", VS("vs1 vs2")),
    ("ValueSet?url:below=http://example.org/fhir/ValueSet/a", VS("vs1 vs2")),
    ("ValueSet?url:below=http://example.org/fhir/ValueSet/a/b/c", VS()),
    ("ValueSet?url:above=http://example.org/fhir/ValueSet/a/b/c", VS("vs1 vs2")),
    ("ValueSet?url:above=http://example.org/fhir/ValueSet/a", VS("vs1")),
    ("ValueSet?url:above=http://example.org/", VS()),
    ("ValueSet?url:missing=true", VS("vs4")),
    ("ValueSet?url=http://other.org/vs,http://example.org/fhir/ValueSet/a", VS("vs1 vs3")),
]

REFERENCE = [
    ("Observation?subject=Patient/p1", O("ob1")),
    ("Observation?subject=p1", O("ob1")),
    ("Observation?patient=p1", O("ob1")),
    ("Observation?patient=Patient/p2", O("ob2")),
    ("Observation?subject=Patient/p2", O("ob2")),
    ("Observation?subject=p2", O("ob2")),
    ("Observation?subject=http://hub.test/fhir/Patient/p2", O("ob2")),
    ("Observation?subject=http://hub.test/fhir/Patient/p1", O("ob1")),
    ("Observation?subject=http://other.example/fhir/Patient/p1", O("ob3")),
    ("Observation?subject=http://other.example/fhir/Patient/p2", O()),
    ("Observation?subject:Patient=p3", O("ob4")),
    ("Observation?subject:Group=p3", O()),
    ("Observation?subject=Group/p3", O()),
    ("Observation?subject=Patient/p1,Patient/p3", O("ob1 ob4")),
    (f"Observation?subject:identifier={BSN}|111222333", O("ob5")),
    ("Observation?subject:identifier=111222333", O("ob5")),
    ("Observation?subject:identifier=http://example.org/other|111222333", O()),
    ("Observation?subject:missing=true", O("ob6")),
    ("Observation?subject:missing=false", O("ob1 ob2 ob3 ob4 ob5 ob7 ob8")),
    ("Observation?performer=Practitioner/pr1", O("ob1")),
    ("Observation?performer=Practitioner/pr1,Practitioner/pr2", O("ob1 ob2")),
    ("Observation?performer=Organization/pr1", O()),
    ("Patient?general-practitioner=Practitioner/pr1", P("p1")),
    ("Patient?general-practitioner=Organization/o1", P("p5")),
    ("Patient?general-practitioner:Organization=o1", P("p5")),
    ("Patient?organization=o1", P("p1")),
    ("Patient?organization:missing=true", P("p4 p5")),
]

# Observation.effective: ob1 dateTime (second, +01:00), ob2 month, ob3 Period = the year 2021, ob4 instant
# (ms), ob5 Timing (June 2020), ob6 none, ob7 day, ob8 open-ended Period from 2022.
DATE = [
    ("Observation?date=2021", O("ob1 ob2 ob3 ob4 ob7")),
    ("Observation?date=2021-03", O("ob1 ob2 ob4 ob7")),
    ("Observation?date=2021-03-04", O("ob1 ob4")),
    ("Observation?date=2021-03-04T09:15:30Z", O("ob1 ob4")),
    ("Observation?date=2021-03-04T10:15:30%2B01:00", O("ob1 ob4")),
    ("Observation?date=2021-03-04T04:15:30-05:00", O("ob1 ob4")),
    ("Observation?date=2021-03-04T10:15:30Z", O()),
    ("Observation?date=2021-03-04T09:15:30.123Z", O("ob4")),
    ("Observation?date=2021-03-04T09:15:30.124Z", O()),
    ("Observation?date=2021-03-04T09:15Z", O("ob1 ob4")),
    ("Observation?date=2021-03-04T09:16Z", O()),
    ("Observation?date=2020-06", O("ob5")),
    ("Observation?date=2020-06-30", O()),
    ("Observation?date=2022", O()),
    ("Observation?date=eq2021-03", O("ob1 ob2 ob4 ob7")),
    ("Observation?date=ne2021-03", O("ob3 ob5 ob8")),
    ("Observation?date=gt2021-03", O("ob3 ob8")),
    ("Observation?date=lt2021-03", O("ob3 ob5")),
    ("Observation?date=ge2021-03", O("ob1 ob2 ob3 ob4 ob7 ob8")),
    ("Observation?date=le2021-03", O("ob1 ob2 ob3 ob4 ob5 ob7")),
    ("Observation?date=sa2021-03", O("ob8")),
    ("Observation?date=eb2021-03", O("ob5")),
    ("Observation?date=sa2021-03-04T09:15:30Z", O("ob7 ob8")),
    ("Observation?date=eb2021-03-04", O("ob5")),
    ("Observation?date=eb2020-06-01", O()),
    ("Observation?date=gt2021-03-04T09:15:30Z", O("ob2 ob3 ob7 ob8")),
    ("Observation?date=lt2021-03-04T09:15:30Z", O("ob2 ob3 ob5")),
    ("Observation?date=lt2021-03-04T09:15:30.123Z", O("ob1 ob2 ob3 ob5")),
    ("Observation?date=gt2099", O("ob8")),
    ("Observation?date=ge2030-01-01T00:00:00Z", O("ob8")),
    ("Observation?date=ap1900", O()),
    ("Observation?date=2021-03,2020", O("ob1 ob2 ob4 ob5 ob7")),
    # each repetition is its own criterion: the year-long Period overlaps both half-lines
    ("Observation?date=ge2021-03-01&date=lt2021-04-01", O("ob1 ob2 ob3 ob4 ob7")),
    ("Observation?date=ge2021-03-01&date=le2021-12-31&date=eb2022", O("ob1 ob2 ob3 ob4 ob7")),
    ("Observation?date:missing=true", O("ob6")),
    ("Patient?birthdate=1980-05-17", P("p1")),
    ("Patient?birthdate=1980-05", P("p1 p2")),
    ("Patient?birthdate=1980", P("p1 p2")),
    ("Patient?birthdate=1979", P("p3")),
    ("Patient?birthdate=1980-05-18", P()),
    ("Patient?birthdate=gt1980-05-17", P("p2 p5")),
    ("Patient?birthdate=ge1980-05-17", P("p1 p2 p5")),
    ("Patient?birthdate=lt1980-05-17", P("p2 p3")),
    ("Patient?birthdate=le1980-05-17", P("p1 p2 p3")),
    ("Patient?birthdate=eb1980", P("p3")),
    ("Patient?birthdate=sa1980", P("p5")),
    ("Patient?birthdate=ne1980", P("p3 p5")),
    ("Patient?birthdate=sa1980-12-31T23:59:59Z", P("p5")),
    ("Patient?birthdate=1980-12-31T23:59:59Z", P()),
    ("Patient?birthdate:missing=true", P("p4")),
    ("Patient?death-date=2020-03-01", P("p2")),
    ("Patient?death-date=2020-02-29", P()),
    ("Patient?death-date=2020-03-01T04:30:00Z", P("p2")),
    ("Patient?death-date=2020-02-29T23:30:00-05:00", P("p2")),
    ("Patient?death-date=2020-03-01T05:30:00%2B01:00", P("p2")),
    ("Patient?death-date=2020-02-29T23:30:00Z", P()),
    ("Patient?_lastUpdated=gt2000-01-01", ALL_P),
    ("Patient?_lastUpdated=lt2000", P()),
    ("Patient?_lastUpdated=sa2100", P()),
    ("Patient?_lastUpdated=eb2100", ALL_P),
    ("Patient?_lastUpdated=2000", P()),
]

NUMBER = [
    ("RiskAssessment?probability=0.25", RA("ra1")),
    ("RiskAssessment?probability=0.250", RA("ra1")),
    ("RiskAssessment?probability=0.2", RA()),
    ("RiskAssessment?probability=0.26", RA()),
    ("RiskAssessment?probability=100", RA("ra2")),
    ("RiskAssessment?probability=1e2", RA("ra2")),
    ("RiskAssessment?probability=eq0.5", RA("ra3")),
    ("RiskAssessment?probability=ne0.25", RA("ra2 ra3")),
    ("RiskAssessment?probability=gt0.25", RA("ra2 ra3")),
    ("RiskAssessment?probability=ge0.25", RA("ra1 ra2 ra3")),
    ("RiskAssessment?probability=lt0.5", RA("ra1")),
    ("RiskAssessment?probability=le0.5", RA("ra1 ra3")),
    ("RiskAssessment?probability=sa0.25", RA("ra2 ra3")),
    ("RiskAssessment?probability=eb0.5", RA("ra1")),
    ("RiskAssessment?probability=ap100", RA("ra2")),
    ("RiskAssessment?probability=ap0.26", RA("ra1")),
    ("RiskAssessment?probability=ap0.4", RA()),
    ("RiskAssessment?probability=0.25,0.5", RA("ra1 ra3")),
    ("RiskAssessment?probability:missing=true", RA("ra4")),
]

QUANTITY = [
    ("Observation?value-quantity=70.5", O("ob1")),
    ("Observation?value-quantity=70.5|http://unitsofmeasure.org|kg", O("ob1")),
    ("Observation?value-quantity=70.5|http://unitsofmeasure.org|g", O()),
    ("Observation?value-quantity=70.5|http://example.org|kg", O()),
    ("Observation?value-quantity=80||kg", O("ob2")),
    ("Observation?value-quantity=95.25||kg", O("ob3")),
    ("Observation?value-quantity=95.25|http://unitsofmeasure.org|kg", O()),
    ("Observation?value-quantity=70", O()),
    ("Observation?value-quantity=71", O("ob1")),
    ("Observation?value-quantity=gt75|http://unitsofmeasure.org|kg", O("ob2")),
    ("Observation?value-quantity=gt75", O("ob2 ob3 ob6")),
    ("Observation?value-quantity=ge80", O("ob2 ob3 ob6")),
    ("Observation?value-quantity=lt70.5", O("ob7")),
    ("Observation?value-quantity=le70.5", O("ob1 ob7")),
    ("Observation?value-quantity=ne80", O("ob1 ob3 ob6 ob7")),
    ("Observation?value-quantity=ap80", O("ob2")),
    ("Observation?value-quantity=sa100", O("ob6")),
    ("Observation?value-quantity=eb61", O("ob7")),
    ("Observation?value-quantity=60||/min,150||g", O("ob6 ob7")),
    ("Observation?value-quantity:missing=true", O("ob4 ob5 ob8")),
    ("Observation?component-value-quantity=120|http://unitsofmeasure.org|mm[Hg]", O("ob4")),
]

COMPOSITE = [
    ("Observation?code-value-quantity=http://loinc.org|29463-7$gt75|http://unitsofmeasure.org|kg", O("ob2")),
    ("Observation?code-value-quantity=29463-7$70.5", O("ob1")),
    ("Observation?code-value-quantity=29463-7$lt75", O("ob1")),
    ("Observation?code-value-quantity=8867-4$lt75", O("ob7")),
    ("Observation?code-value-quantity=29463-7$60", O()),
    ("Observation?code-value-quantity=29463-7$70.5,8867-4$60", O("ob1 ob7")),
    ("Observation?component-code-value-quantity=8480-6$gt100", O("ob4")),
    ("Observation?component-code-value-quantity=8462-4$gt100", O()),
    ("Observation?component-code-value-quantity=8462-4$80", O("ob4")),
    ("Observation?component-code-value-quantity=8480-6$80", O()),
    ("Observation?combo-code-value-quantity=8480-6$120", O("ob4")),
    ("Observation?combo-code-value-quantity=29463-7$80", O("ob2")),
    ("Observation?code-value-quantity:missing=true", O("ob4 ob5 ob8")),
]

CASES = [*STRING, *TOKEN, *URI, *REFERENCE, *DATE, *NUMBER, *QUANTITY, *COMPOSITE]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hub(hub_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with loaded_client(hub_app, RESOURCES) as c:
        yield c


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_matrix(hub: httpx.AsyncClient, url: str, expected: frozenset[str]) -> None:
    bundle = await search(hub, url + ("&" if "?" in url else "?") + "_count=100")
    assert ids(bundle) == expected
    assert bundle["total"] == len(expected)


@pytest.mark.parametrize(
    "url",
    [
        "Observation?date=2021-13",
        "Observation?date=21-03",
        "Observation?date=xx2021",
        "RiskAssessment?probability=abc",
        "Observation?value-quantity=1|2",
        "Patient?family:foo=x",
        "Patient?gender:missing=maybe",
        "Patient?identifier:of-type=MR|1",
        "Observation?subject=a/b/c",
        "Observation?code-value-quantity=29463-7",
        "Patient?_sort=nope",
        "Patient?_count=-1",
        "Patient?_include=Patient:family",
        "Patient?_total=some",
        "Patient?_summary=yes",
    ],
)
async def test_malformed_values_are_400(hub: httpx.AsyncClient, url: str) -> None:
    body = await search(hub, url, status=400)
    assert body["resourceType"] == "OperationOutcome"

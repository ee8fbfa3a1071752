"""Search answers as the R4 specification (search.html) says, for the classes an independent
implementation found wrong: chains through references with several target types, modifiers
(refused when unsupported; ``:in``/``:not-in``/``:above``/``:below``; ``:text`` as a string
search) and name parts (voorvoegsels, nl-core own/partner name)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.search_helpers import ids, loaded_client, ordered_ids, search

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
HUB = "https://zorgnet-hub.nl/fhir"
RELATIE = "http://decor.nictiz.nl/fhir/ValueSet/2.16.840.1.113883.2.4.3.11.60.40.2.3.1.1--20200901000000"
CAREPLAN = "https://zorgnet-hub.nl/fhir/CodeSystem/careplan-category"
EXT = "http://hl7.org/fhir/StructureDefinition/humanname-"


def _s(text: str) -> set[str]:
    return set(text.split())


def _obs(oid: str, subject: str, status: str, code: str, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": "http://loinc.org", "code": code}]}
    if text:
        concept["text"] = text
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": concept,
        "subject": {"reference": subject},
    }


RESOURCES: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "berg",
        "identifier": [{"system": BSN, "value": "999993653"}],
        "name": [
            {
                "family": "van der Berg",
                "_family": {
                    "extension": [
                        {"url": EXT + "own-prefix", "valueString": "van der"},
                        {"url": EXT + "own-name", "valueString": "Berg"},
                    ]
                },
                "given": ["Anna"],
            }
        ],
        "generalPractitioner": [{"reference": "Practitioner/gp"}],
    },
    {
        "resourceType": "Patient",
        "id": "partner",
        "identifier": [{"system": BSN, "value": "999990019"}],
        "name": [
            {
                "family": "Jansen",
                "_family": {
                    "extension": [
                        {"url": EXT + "own-name", "valueString": "Jansen"},
                        {"url": EXT + "partner-prefix", "valueString": "de"},
                        {"url": EXT + "partner-name", "valueString": "Wit"},
                    ]
                },
            }
        ],
        "generalPractitioner": [{"reference": "Organization/huisarts"}],
    },
    {"resourceType": "Patient", "id": "bergman", "name": [{"family": "Bergman"}]},
    {"resourceType": "Practitioner", "id": "gp", "name": [{"family": "Huisman", "given": ["Karel"]}]},
    {"resourceType": "Organization", "id": "huisarts", "name": "Huisartsenpraktijk Huisman"},
    {
        "resourceType": "Group",
        "id": "g1",
        "type": "person",
        "actual": True,
        "identifier": [{"system": BSN, "value": "999993653"}],
    },
    {
        "resourceType": "CarePlan",
        "id": "cp-patient",
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": CAREPLAN, "code": "gedeeld-zorgplan"}]}],
        "subject": {"reference": "Patient/berg"},
        "activity": [
            {
                "detail": {
                    "status": "in-progress",
                    "performer": [{"reference": "Practitioner/gp"}],
                    "code": {"coding": [{"system": f"{HUB}/CodeSystem/care-activity", "code": "verpleging"}]},
                }
            }
        ],
    },
    _obs("o-berg", "Patient/berg", "final", "8480-6", "Bloeddruk systolisch"),
    _obs("o-group", "Group/g1", "amended", "8462-4", "Bloeddruk diastolisch"),
    _obs("o-partner", "Patient/partner", "registered", "8867-4", "Hartfrequentie (rust) Réveil"),
    {
        "resourceType": "RelatedPerson",
        "id": "mother",
        "patient": {"reference": "Patient/berg"},
        "relationship": [{"coding": [{"system": ROLE, "code": "MTH"}]}],
    },
    {
        "resourceType": "RelatedPerson",
        "id": "friend",
        "patient": {"reference": "Patient/berg"},
        "relationship": [{"coding": [{"system": ROLE, "code": "FRND"}]}],
    },
    {
        "resourceType": "Questionnaire",
        "id": "q-ab",
        "status": "active",
        "url": "http://example.org/fhir/Questionnaire/a/b",
    },
    {
        "resourceType": "Questionnaire",
        "id": "q-a",
        "status": "active",
        "url": "http://example.org/fhir/Questionnaire/a",
    },
    {
        "resourceType": "Questionnaire",
        "id": "q-abc",
        "status": "active",
        "url": "http://example.org/fhir/Questionnaire/abc",
    },
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hub(hub_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with loaded_client(hub_app, RESOURCES) as c:
        yield c


CASES = [
    # A chain searches every target type that has the parameter (subject: Patient or Group) ...
    # (the README's example: CarePlan.subject may be a Patient or a Group; the Group comes first)
    (f"CarePlan?subject.identifier={BSN}|999993653", "CarePlan/cp-patient"),
    ("Observation?subject.identifier=999993653", "Observation/o-berg Observation/o-group"),
    ("Patient?general-practitioner.name=huis", "Patient/berg Patient/partner"),
    ("Patient?general-practitioner.name=huisman", "Patient/berg"),
    # ... and an explicit type narrows it to that type
    (f"CarePlan?subject:Patient.identifier={BSN}|999993653", "CarePlan/cp-patient"),
    (f"CarePlan?subject:Group.identifier={BSN}|999993653", ""),
    (f"Observation?subject:Group.identifier={BSN}|999993653", "Observation/o-group"),
    ("Patient?general-practitioner:Organization.name=huis", "Patient/partner"),
    # a parameter only one target type has (Patient.family) still only finds through that type
    ("Observation?subject.family=berg", "Observation/o-berg"),
    # :in / :not-in against ValueSets the hub holds
    (
        "Observation?status:in=http://hl7.org/fhir/ValueSet/observation-status",
        "Observation/o-berg Observation/o-group Observation/o-partner",
    ),
    (
        "Observation?status:in=http://hl7.org/fhir/ValueSet/observation-status|4.0.1",
        "Observation/o-berg Observation/o-group Observation/o-partner",
    ),
    ("Observation?status:not-in=http://hl7.org/fhir/ValueSet/observation-status", ""),
    (
        "RelatedPerson?relationship:in=http://hl7.org/fhir/ValueSet/relatedperson-relationshiptype",
        "RelatedPerson/mother RelatedPerson/friend",
    ),
    # ... an nl-core ValueSet (zib RelatieCodelijst: MTH is in it, FRND is not) and the hub's own
    (f"RelatedPerson?relationship:in={RELATIE}", "RelatedPerson/mother"),
    (f"RelatedPerson?relationship:not-in={RELATIE}", "RelatedPerson/friend"),
    (f"CarePlan?activity-code:in={HUB}/ValueSet/care-activity", "CarePlan/cp-patient"),
    (f"CarePlan?activity-code:not-in={HUB}/ValueSet/care-activity", ""),
    # :below / :above over a code system hierarchy (v3 RoleCode: MTH is below FAMMEMB)
    (f"RelatedPerson?relationship:below={ROLE}|FAMMEMB", "RelatedPerson/mother"),
    (f"RelatedPerson?relationship:below={ROLE}|MTH", "RelatedPerson/mother"),
    (f"RelatedPerson?relationship:above={ROLE}|MTH", "RelatedPerson/mother"),
    (f"RelatedPerson?relationship:above={ROLE}|FAMMEMB", ""),
    # :below / :above on uris go by path segment
    ("Questionnaire?url:below=http://example.org/fhir/Questionnaire/a", "Questionnaire/q-a Questionnaire/q-ab"),
    ("Questionnaire?url:below=http://example.org/fhir/Questionnaire/ab", ""),
    (
        "Questionnaire?url:above=http://example.org/fhir/Questionnaire/a/b/_history/2",
        "Questionnaire/q-a Questionnaire/q-ab",
    ),
    ("Questionnaire?url:above=http://example.org/fhir/Questionnaire/abcd", ""),
    # :text is a string search on the text: starts-with on words, case- and accent-insensitive
    ("Observation?code:text=systol", "Observation/o-berg"),
    ("Observation?code:text=BLOEDDRUK", "Observation/o-berg Observation/o-group"),
    ("Observation?code:text=bloeddruk%20dia", "Observation/o-group"),
    ("Observation?code:text=olisch", ""),
    ("Observation?code:text=reveil", "Observation/o-partner"),
    ("Observation?code:text=rust", "Observation/o-partner"),
    # name parts are matched on their own: each word of family, and the nl-core name parts
    ("Patient?family=berg", "Patient/berg Patient/bergman"),
    ("Patient?family=der", "Patient/berg"),
    ("Patient?family=van%20der", "Patient/berg"),
    ("Patient?family=erg", ""),
    ("Patient?family=wit", "Patient/partner"),
    ("Patient?family=de%20wit", "Patient/partner"),
    ("Patient?name=wit", "Patient/partner"),
    ("Patient?name=anna", "Patient/berg"),
    # :exact is the whole value, never a part
    ("Patient?family:exact=Berg", ""),
    ("Patient?family:exact=van%20der%20Berg", "Patient/berg"),
    ("Patient?family:contains=der%20b", "Patient/berg"),
]


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_search_as_specified(hub: httpx.AsyncClient, url: str, expected: str) -> None:
    assert ids(await search(hub, url + "&_count=100")) == _s(expected)


REFUSED = [
    # the spec: a server SHALL reject a modifier it does not support (400, never ignored)
    ("Observation?code:below=http://loinc.org|8480-6", "not held"),
    ("Observation?code:above=http://loinc.org|8480-6", "not held"),
    ("Observation?code:in=http://example.org/ValueSet/unknown", "not known"),
    ("Observation?code:not-in=http://example.org/ValueSet/unknown", "not known"),
    ("Observation?subject:above=Patient/berg", "not supported"),
    ("Observation?subject:below=Patient/berg", "not supported"),
    ("Patient?birthdate:exact=2000", "modifier"),
    ("Observation?code:code-text=x", "not supported"),
    ("Observation?status:below=final", "system|code"),
    ("Observation?subject.family:in=http://hl7.org/fhir/ValueSet/observation-status", "modifier"),
]


@pytest.mark.parametrize(("url", "words"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_unsupported_modifiers_are_refused(hub: httpx.AsyncClient, url: str, words: str) -> None:
    body = await search(hub, url, status=400)
    assert body["resourceType"] == "OperationOutcome"
    assert words in body["issue"][0]["diagnostics"]


async def test_name_parts_do_not_change_sort_order(hub: httpx.AsyncClient) -> None:
    # sorting uses the whole family name: "Bergman" < "Jansen" < "van der Berg"
    bundle = await search(hub, "Patient?_sort=family&_count=10")
    assert ordered_ids(bundle)[:3] == ["bergman", "partner", "berg"]


async def test_chain_is_access_filtered_per_target_type(hub_app: Any, hub: httpx.AsyncClient, client_as: Any) -> None:
    # another organisation sees neither the CarePlans nor (through the chain) the Patient or Group
    other = client_as("org:00088888:practitioner:900008888")
    body = await search(other, f"CarePlan?subject.identifier={BSN}|999993653")
    assert ids(body) == set()

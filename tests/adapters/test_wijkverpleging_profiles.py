"""The STU3 profiles the facade claims for the hub's own records: claimed where the resource passes the
profile's check (the STU3 structure and the differential the adapter ships, as the conformance runner
checks it), and only there."""

from __future__ import annotations

import copy
import json
from typing import Any

from adapters.wijkverpleging.convert import to_r4, to_stu3
from adapters.wijkverpleging.profiles import CLAIMABLE, ProfileCheck, claim_profiles
from adapters.wijkverpleging.sender import _for_stu3
from tests.adapters.eoverdracht_env import DATA

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
NL = "http://fhir.nl/fhir/StructureDefinition/"
PATIENT = NL + "nl-core-patient"
TASK = "http://nictiz.nl/fhir/StructureDefinition/eOverdracht-Task"


def hub_patient(**more: Any) -> dict[str, Any]:
    """The client as the hub records them (R4, registered by the administrator, no STU3 claim)."""
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "3", "lastUpdated": "2026-11-30T10:00:00Z"},
        "identifier": [{"system": BSN, "value": "999900080"}],
        "name": [{"family": "XXX_Molog", "given": ["Maria"]}],
        "gender": "female",
        "birthDate": "1946-03-02",
        **more,
    }


def test_every_type_the_facade_claims_for_has_its_profile_shipped() -> None:
    checks = ProfileCheck()
    for res_type, urls in CLAIMABLE.items():
        for url in urls:
            assert checks.profiles[url]["type"] == res_type, url


def test_the_hub_record_of_the_client_claims_nl_core_patient() -> None:
    served = _for_stu3(hub_patient())
    assert served["meta"] == {"profile": [PATIENT]}  # server-owned meta dropped, the claim added
    assert ProfileCheck().check(served, PATIENT) == []


def test_nothing_is_claimed_that_the_check_does_not_pass() -> None:
    """nl-core-patient allows one BSN (with a value) and one general practitioner: a hub Patient beyond
    that is served without the claim rather than with a false one."""
    for record in (
        hub_patient(identifier=[{"system": BSN, "value": "999900080"}, {"system": BSN, "value": "999911120"}]),
        hub_patient(identifier=[{"system": BSN, "extension": [{"url": "http://example.org/x", "valueString": "y"}]}]),
        hub_patient(generalPractitioner=[{"reference": "Practitioner/a"}, {"reference": "Practitioner/b"}]),
    ):
        served = _for_stu3(record)
        assert "meta" not in served, served
        assert ProfileCheck().check(served, PATIENT) != []


def test_organisations_and_professionals_claim_nl_core() -> None:
    org = _for_stu3(
        {
            "resourceType": "Organization",
            "id": "o",
            "identifier": [{"system": URA, "value": "00056789"}],
            "name": "Wijkzorg Rivierstad",
        }
    )
    assert org["meta"]["profile"] == [NL + "nl-core-organization"]
    uzi = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers"
    two = _for_stu3(
        {
            "resourceType": "Practitioner",
            "id": "pr",
            "identifier": [{"system": uzi, "value": "123456789"}, {"system": uzi, "value": "987654321"}],
        }
    )
    assert "meta" not in two  # nl-core-practitioner: one UZI number


def test_claims_a_resource_came_with_are_kept_and_nothing_is_added() -> None:
    """A resource from an STU3 sender keeps its own claims (through the hub and back); a type the facade
    has no profile for claims nothing of its own."""
    checks = ProfileCheck()
    transfer = json.loads((DATA / "transfer-kwalificatie-1.1b.json").read_text("utf-8"))
    unclaimed = []
    for stu3 in transfer:
        served = _for_stu3(to_r4(stu3))
        claimed = stu3.get("meta", {}).get("profile")
        if claimed:
            assert served["meta"]["profile"] == claimed, stu3["id"]
            continue
        unclaimed.append(stu3["id"])  # the example claims nothing: the facade claims what it passes
        for url in served.get("meta", {}).get("profile", []):
            assert url in CLAIMABLE[stu3["resourceType"]] and checks.check(served, url) == [], stu3["id"]
    assert unclaimed == ["eOverdracht-Task-eov-cert-1.1b-01"]
    task = _for_stu3(to_r4(next(r for r in transfer if r["resourceType"] == "Task")))
    assert task["meta"]["profile"] == [TASK]
    condition = {
        "resourceType": "Condition",
        "id": "c",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "decubitus"},
    }
    assert "meta" not in claim_profiles(to_stu3(condition))


def test_a_task_started_in_the_hub_claims_the_eoverdracht_task_profile_only_when_it_passes() -> None:
    states = json.loads((DATA / "task-states.json").read_text("utf-8"))
    stu3 = copy.deepcopy(next(iter(states.values())))
    r4 = to_r4(stu3)
    r4["extension"] = [e for e in r4.get("extension", []) if "eoverdracht-stu3-profile" not in e["url"]]
    r4.pop("meta", None)  # as if written in the hub (R4), with no STU3 claim
    served = _for_stu3(r4)
    assert served["meta"]["profile"] == [TASK]
    r4["code"] = {"text": "overdracht"}  # no SNOMED 308292007: not an eOverdracht Task
    assert "meta" not in _for_stu3(r4)

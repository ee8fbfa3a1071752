"""The hub's profiles: valid examples pass, and each kind of break is rejected at the right element."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from hub.fhir.errors import Issue
from hub.fhir.validation import check_base, default_validator
from hub.paths import profiles_dir
from tests.conformance import examples as ex

PROFILES = profiles_dir()
HUB_SD = "https://zorgnet-hub.nl/fhir/StructureDefinition/"


def errors(resource: dict[str, Any]) -> list[Issue]:
    return [i for i in default_validator().validate(resource) if i.severity == "error"]


def paths(issues: list[Issue]) -> set[str]:
    return {e for i in issues for e in i.expression}


@pytest.mark.parametrize("name", sorted(ex.ALL))
def test_valid_example_is_accepted(name: str) -> None:
    resource = ex.ALL[name]()
    assert check_base(resource) == []
    assert errors(resource) == []
    assert any(p.endswith("/" + name) for p in default_validator().profiles_for(resource))


def test_every_hub_profile_loads_with_a_snapshot() -> None:
    v = default_validator()
    files = sorted(PROFILES.glob("StructureDefinition-*.json"))
    assert len(files) >= 30
    for f in files:
        sd = json.loads(f.read_bytes())
        assert sd["snapshot"]["element"][0]["path"] == sd["type"]
        assert v.tree(sd["url"]) is not None, sd["url"]


Break = Callable[[dict[str, Any]], None]
CASES: list[tuple[str, Callable[[], dict[str, Any]], Break, str, str]] = [
    # (label, example, break it, expected path, words in the diagnostics)
    (
        "careplan missing subject",
        ex.care_plan,
        lambda r: r.pop("subject"),
        "CarePlan.subject",
        "Minimum cardinality",
    ),
    (
        "careplan wrong category slice",
        ex.care_plan,
        lambda r: r["category"][0]["coding"][0].update(code="ondersteuningsplan"),
        "CarePlan.category",
        "sharedCarePlan",
    ),
    (
        "careplan performer is a Device",
        ex.care_plan,
        lambda r: r["activity"][0]["detail"].update(performer=[{"reference": "Device/d1"}]),
        "CarePlan.activity[0].detail.performer[0]",
        "Device",
    ),
    (
        "careplan activity without who",
        ex.care_plan,
        lambda r: (r["activity"][1]["detail"].pop("performer"), r["activity"][1]["detail"].pop("extension")),
        "CarePlan.activity[1].detail",
        "zn-cp-2",
    ),
    (
        "careplan respite without schedule",
        ex.care_plan,
        lambda r: r["activity"][2]["detail"].pop("scheduledPeriod"),
        "CarePlan.activity[2].detail",
        "zn-cp-3",
    ),
    (
        "careplan performer kind outside value set",
        ex.care_plan,
        lambda r: r["activity"][0]["detail"]["extension"][0].update(valueCode="buurman"),
        "CarePlan.activity[0].detail.extension[0].valueCode",
        "required binding",
    ),
    (
        "client goal not expressed by anyone",
        ex.client_goal,
        lambda r: r.pop("expressedBy"),
        "Goal.expressedBy",
        "Minimum",
    ),
    (
        "client goal expressed by a Practitioner",
        ex.client_goal,
        lambda r: r.update(expressedBy={"reference": "Practitioner/p1"}),
        "Goal.expressedBy",
        "Practitioner",
    ),
    (
        "client goal not marked as own goal",
        ex.client_goal,
        lambda r: r["category"][0]["coding"][0].update(code="professioneel-doel"),
        "Goal.category",
        "clientGoal",
    ),
    ("patient without name", ex.patient, lambda r: r.pop("name"), "Patient.name", "Minimum"),
    (
        "patient with two BSNs",
        ex.patient,
        lambda r: r["identifier"].append({"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "1"}),
        "Patient.identifier",
        "bsn",
    ),
    (
        "patient gender outside value set",
        ex.patient,
        lambda r: r.update(gender="man"),
        "Patient.gender",
        "required binding",
    ),
    (
        "practitioner without UZI/BIG/AGB",
        ex.practitioner,
        lambda r: r["identifier"][0].update(system="urn:oid:1.2.3"),
        "Practitioner",
        "zn-prac-1",
    ),
    (
        "role without organisation",
        ex.practitioner_role,
        lambda r: r.pop("organization"),
        "PractitionerRole.organization",
        "Minimum",
    ),
    (
        "organisation without URA/AGB",
        ex.organization,
        lambda r: r["identifier"][0].update(system="urn:oid:1.2.3"),
        "Organization",
        "zn-org-1",
    ),
    (
        "contact person without relationship",
        ex.contact_person,
        lambda r: r.pop("relationship"),
        "RelatedPerson.relationship",
        "Minimum",
    ),
    (
        "care team member is a Device",
        ex.care_team,
        lambda r: r["participant"][1].update(member={"reference": "Device/x"}),
        "CareTeam.participant[1].member",
        "Device",
    ),
    (
        "care team status outside value set",
        ex.care_team,
        lambda r: r.update(status="open"),
        "CareTeam.status",
        "required binding",
    ),
    (
        "treatment directive for a Group",
        ex.treatment_directive,
        lambda r: r.update(patient={"reference": "Group/g1"}),
        "Consent.patient",
        "Group",
    ),
    (
        "treatment directive provision type outside value set",
        ex.treatment_directive,
        lambda r: r["provision"].update(type="maybe"),
        "Consent.provision.type",
        "required binding",
    ),
    (
        "euthanasia position outside value set",
        ex.euthanasia_position,
        lambda r: r["valueCodeableConcept"]["coding"][0].update(code="373066001"),
        "Observation.valueCodeableConcept",
        "required binding",
    ),
    (
        "euthanasia position as a string",
        ex.euthanasia_position,
        lambda r: (r.pop("valueCodeableConcept"), r.update(valueString="nee")),
        "Observation.valueString",
        "not allowed",
    ),
    (
        "euthanasia position with another code",
        ex.euthanasia_position,
        lambda r: r["code"]["coding"][0].update(code="395091006"),
        "Observation.code",
        "pattern",
    ),
    (
        "medical policy goal outside value set",
        ex.medical_policy_goal,
        lambda r: r["description"]["coding"][0].update(code="1234"),
        "Goal.description",
        "required binding",
    ),
    (
        "medical policy goal encounter extension to a Patient",
        ex.medical_policy_goal,
        lambda r: r["extension"][0].update(valueReference={"reference": "Patient/client-1"}),
        "Goal.extension[0].valueReference",
        "Patient",
    ),
    ("overdracht without owner", ex.overdracht_task, lambda r: r.pop("owner"), "Task.owner", "Minimum"),
    (
        "overdracht with another code",
        ex.overdracht_task,
        lambda r: r["code"]["coding"][0].update(code="1234"),
        "Task.code",
        "pattern",
    ),
    (
        "overdracht in a state eOverdracht does not have",
        ex.overdracht_task,
        lambda r: r.update(status="ready"),
        "Task.status",
        "required binding",
    ),
    (
        "overdracht completed without handoff",
        ex.overdracht_task,
        lambda r: r.update(status="completed"),
        "Task",
        "zn-ovd-1",
    ),
    (
        "overdracht two advance notices",
        ex.overdracht_task,
        lambda r: r["input"].append(copy.deepcopy(r["input"][0])),
        "Task.input",
        "advanceNotice",
    ),
    (
        "overdracht owned by a Practitioner",
        ex.overdracht_task,
        lambda r: r.update(owner={"reference": "Practitioner/p1"}),
        "Task.owner",
        "Practitioner",
    ),
    (
        "handoff without administrative section",
        ex.handoff_composition,
        lambda r: r["section"].pop(0),
        "Composition.section",
        "administrativeData",
    ),
    (
        "handoff subject a Group",
        ex.handoff_composition,
        lambda r: r.update(subject={"reference": "Group/g"}),
        "Composition.subject",
        "Group",
    ),
    (
        "toewijzing without toewijzingnummer",
        ex.toewijzing,
        lambda r: r["identifier"][0].update(system="urn:oid:1"),
        "ServiceRequest.identifier",
        "toewijzingNummer",
    ),
    (
        "toewijzing product outside iWmo categories",
        ex.toewijzing,
        lambda r: r["code"]["coding"][0].update(code="99"),
        "ServiceRequest.code",
        "required binding",
    ),
    (
        "toewijzing frequency outside iWmo codes",
        ex.toewijzing,
        lambda r: r["extension"][0]["valueCoding"].update(code="9"),
        "ServiceRequest.extension[0].valueCoding",
        "required binding",
    ),
    (
        "toewijzing as a timing",
        ex.toewijzing,
        lambda r: (r.pop("occurrencePeriod"), r.update(occurrenceDateTime="2025-01-01")),
        "ServiceRequest.occurrenceDateTime",
        "not allowed",
    ),
    (
        "toewijzing without start",
        ex.toewijzing,
        lambda r: r["occurrencePeriod"].pop("start"),
        "ServiceRequest",
        "zn-wmo-1",
    ),
    (
        "toewijzing performer a RelatedPerson",
        ex.toewijzing,
        lambda r: r.update(performer=[{"reference": "RelatedPerson/x"}]),
        "ServiceRequest.performer[0]",
        "RelatedPerson",
    ),
    (
        "consent for an unknown data category",
        ex.consent,
        lambda r: r["provision"]["code"][0]["coding"][0].update(code="alles"),
        "Consent.provision.code[0]",
        "required binding",
    ),
    (
        "consent without data category",
        ex.consent,
        lambda r: r["provision"].pop("code"),
        "Consent",
        "zn-con-1",
    ),
    (
        "consent with another scope",
        ex.consent,
        lambda r: r["scope"]["coding"][0].update(code="research"),
        "Consent.scope",
        "pattern",
    ),
    (
        "consent actor a Patient",
        ex.consent,
        lambda r: r["provision"]["actor"][0].update(reference={"reference": "Patient/p"}),
        "Consent.provision.actor[0].reference",
        "Patient",
    ),
]


@pytest.mark.parametrize(("label", "make", "brk", "path", "words"), CASES, ids=[c[0] for c in CASES])
def test_broken_example_is_rejected(
    label: str, make: Callable[[], dict[str, Any]], brk: Break, path: str, words: str
) -> None:
    resource = make()
    brk(resource)
    found = errors(resource)
    assert found, f"{label}: no error"
    assert path in paths(found), f"{label}: {[i.to_json() for i in found]}"
    at_path = [i for i in found if path in i.expression]
    assert any(words in i.diagnostics for i in at_path), f"{label}: {[i.diagnostics for i in at_path]}"


def test_profile_chain_hub_on_hub_on_nictiz() -> None:
    """zorgnet-ClientGoal -> zorgnet-Goal -> nl-core-TreatmentObjective -> zib -> Goal: all levels apply."""
    v = default_validator()
    goal = ex.client_goal()
    goal["subject"] = {"reference": "Group/g1"}  # zorgnet-Goal's rule
    goal.pop("lifecycleStatus")  # core R4 rule
    found = paths([i for i in v.validate(goal) if i.severity == "error"])
    assert {"Goal.subject", "Goal.lifecycleStatus"} <= found


def test_warnings_do_not_reject() -> None:
    patient = ex.patient()
    patient["identifier"][0]["system"] = "http://fhir.nl/fhir/NamingSystem/agb-z"
    issues = default_validator().validate(patient)
    assert not [i for i in issues if i.severity == "error"]
    assert any("zn-pat-1" in i.diagnostics and i.severity == "warning" for i in issues)


def test_default_profile_applies_without_meta_profile() -> None:
    plan = ex.care_plan()
    plan.pop("meta")
    plan.pop("subject")
    v = default_validator()
    assert v.profiles_for(plan) == [HUB_SD + "zorgnet-CarePlan"]
    assert "CarePlan.subject" in paths(errors(plan))


def test_unknown_claimed_profile_is_ignored_by_profiles_for_but_reported_when_asked() -> None:
    v = default_validator()
    patient = ex.patient()
    patient["meta"]["profile"].append("https://example.org/StructureDefinition/nope")
    assert v.profiles_for(patient) == [HUB_SD + "zorgnet-Patient"]
    issues = v.validate(patient, ["https://example.org/StructureDefinition/nope"])
    assert issues[0].code == "not-supported"


def test_handoff_bundle_entries_are_validated_against_their_profiles() -> None:
    bundle = ex.handoff_bundle(40)
    assert len(bundle["entry"]) == 40
    assert errors(bundle) == []
    bundle["entry"][1]["resource"].pop("name")
    assert "Bundle.entry[1].resource.name" in paths(errors(bundle))

"""Data categories: every resource gets exactly one, from the mapping file in profiles/."""

from __future__ import annotations

import json

import pytest

from hub.fhir.categories import categories, category_for, category_map, default_profile
from hub.paths import profiles_dir
from tests.conformance import examples as ex

PROFILES = profiles_dir()


def test_codes_come_from_the_codesystem() -> None:
    cs = json.loads((PROFILES / "CodeSystem-data-category.json").read_bytes())
    assert categories() == {c["code"] for c in cs["concept"]}
    assert {
        "zorgplan",
        "acp",
        "overdracht",
        "medisch",
        "agenda",
        "wmo",
        "netwerk",
        "toestemming",
    } <= categories()


def test_every_rule_names_a_known_category_and_loaded_profile() -> None:
    from hub.fhir.validation import default_validator

    v = default_validator()
    for rules in category_map().rules.values():
        for rule in rules:
            assert rule.category in categories()
            assert rule.profile is None or v.is_loaded(rule.profile), rule.profile


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (ex.care_plan, "zorgplan"),
        (ex.client_goal, "zorgplan"),
        (ex.treatment_directive, "acp"),
        (ex.euthanasia_position, "acp"),
        (ex.medical_policy_goal, "acp"),
        (ex.overdracht_task, "overdracht"),
        (ex.handoff_composition, "overdracht"),
        (ex.toewijzing, "wmo"),
        (ex.consent, "toestemming"),
        (ex.patient, "netwerk"),
        (ex.contact_person, "netwerk"),
        (ex.care_team, "netwerk"),
        (ex.organization, "registratie"),
        (ex.practitioner, "registratie"),
    ],
)
def test_category_of_examples(make, expected: str) -> None:  # type: ignore[no-untyped-def]
    assert category_for(make()) == expected


def test_content_decides_within_a_type() -> None:
    acp_by_category = {
        "resourceType": "Consent",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "129125009"}]}],
    }
    assert category_for(acp_by_category) == "acp"
    assert default_profile(acp_by_category) == "https://fhir.iknl.nl/fhir/StructureDefinition/ACP-TreatmentDirective"
    other_task = {
        "resourceType": "Task",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
    }
    assert category_for(other_task) == "zorgplan" and default_profile(other_task) is None
    assert category_for({"resourceType": "Appointment"}) == "agenda"
    assert category_for({"resourceType": "Observation", "code": {"text": "x"}}) == "medisch"
    assert category_for({"resourceType": "MedicationStatement"}) == "medisch"
    assert category_for({"resourceType": "Consent"}) == "toestemming"


def test_meta_profile_rules() -> None:
    advance = {
        "resourceType": "Consent",
        "meta": {"profile": ["https://fhir.iknl.nl/fhir/StructureDefinition/ACP-AdvanceDirective"]},
    }
    assert category_for(advance) == "acp"
    assert default_profile(advance) == "https://fhir.iknl.nl/fhir/StructureDefinition/ACP-AdvanceDirective"


def test_malformed_content_does_not_raise() -> None:
    assert category_for({"resourceType": "Consent", "scope": "x", "category": [1, None], "meta": []}) == "toestemming"
    assert category_for({}) == "medisch"

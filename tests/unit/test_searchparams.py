"""Tests for hub.fhir.searchparams: the registry of search parameters as data."""

from __future__ import annotations

from typing import Any

from hub.fhir.searchparams import (
    COLUMN_PARAMS,
    Component,
    SearchParam,
    from_resource,
    load_registry,
    split_expression,
    split_top_level,
)


def test_loads_all_r4_parameters_once() -> None:
    registry = load_registry()
    assert registry is load_registry()
    assert sum(1 for sp in registry if sp.url.startswith("http://hl7.org/fhir/SearchParameter/")) == 1375
    assert {"Patient", "Observation", "CarePlan", "Bundle"} <= registry.resource_types()


def test_get_splits_multi_base_expressions() -> None:
    registry = load_registry()
    name = registry.get("Patient", "name")
    assert isinstance(name, SearchParam)
    assert (name.type, name.expression_for("Patient")) == ("string", "Patient.name")
    phonetic = registry.get("Practitioner", "phonetic")
    assert phonetic is not None and "Patient.name" in (phonetic.expression or "")
    assert phonetic.expression_for("Practitioner") == "Practitioner.name"
    assert phonetic.expression_for("Observation") is None
    code = registry.get("MedicationRequest", "code")
    assert (
        code is not None
        and code.expression_for("MedicationRequest") == "(MedicationRequest.medication as CodeableConcept)"
    )
    patient = registry.get("Observation", "patient")
    assert patient is not None and patient.target == ("Patient",)
    assert patient.expression_for("Observation") == "Observation.subject.where(resolve() is Patient)"
    assert registry.get("Patient", "nonsense") is None


def test_relative_expressions_apply_to_every_base() -> None:
    sp = load_registry().get("InsurancePlan", "name")
    assert sp is not None and sp.expression_for("InsurancePlan") == "name | alias"


def test_resource_level_parameters() -> None:
    registry = load_registry()
    patient = registry.for_type("Patient")
    for code in (
        "_id",
        "_lastUpdated",
        "_tag",
        "_profile",
        "_security",
        "_source",
        "_text",
        "_content",
        "_list",
        "_has",
        "_filter",
        "_query",
    ):
        assert code in patient, code
    assert "_text" not in registry.for_type("Bundle")  # DomainResource only
    assert "_tag" in registry.for_type("Bundle")
    assert registry.get("SomeFutureType", "_tag") is not None
    tag = registry.get("Observation", "_tag")
    assert tag is not None and tag.indexed and tag.expression_for("Observation") == "Resource.meta.tag"
    for code, column in COLUMN_PARAMS.items():
        sp = registry.get("Patient", code)
        assert sp is not None and sp.column == column and not sp.indexed
    for code in ("_text", "_content", "_list", "_has", "_filter", "_query"):
        sp = registry.get("Patient", code)
        assert sp is not None and not sp.indexed, code
    near = registry.get("Location", "near")
    assert near is not None and near.type == "special" and not near.indexed


def test_modifiers_and_comparators() -> None:
    registry = load_registry()
    birthdate = registry.get("Patient", "birthdate")
    assert birthdate is not None and "ge" in birthdate.comparators and "missing" in birthdate.modifiers
    identifier = registry.get("Patient", "identifier")
    assert identifier is not None and identifier.comparators == () and "of-type" in identifier.modifiers
    assert identifier.multiple_or and identifier.multiple_and


def test_composites_point_at_known_components() -> None:
    registry = load_registry()
    cvq = registry.get("Observation", "code-value-quantity")
    assert cvq is not None and cvq.type == "composite"
    assert cvq.components == (
        Component("http://hl7.org/fhir/SearchParameter/clinical-code", "code"),
        Component("http://hl7.org/fhir/SearchParameter/Observation-value-quantity", "value.as(Quantity)"),
    )
    for sp in registry:
        for comp in sp.components:
            target = registry.by_url(comp.definition)
            assert target is not None and target.type not in ("composite", "special"), comp


def test_by_url() -> None:
    registry = load_registry()
    sp = registry.by_url("http://hl7.org/fhir/SearchParameter/individual-birthdate")
    assert sp is not None and sp.code == "birthdate"
    assert registry.by_url("http://hl7.org/fhir/SearchParameter/individual-birthdate|4.0.1") is sp
    assert registry.by_url("http://example.org/none") is None


def test_extra_parameters_add_and_override() -> None:
    extra: list[dict[str, Any]] = [
        {
            "resourceType": "SearchParameter",
            "url": "http://nictiz.nl/fhir/SearchParameter/Flag-category",
            "code": "category",
            "base": ["Flag"],
            "type": "token",
            "expression": "Flag.category",
        },
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/SearchParameter/Patient-gender",
            "code": "gender",
            "base": ["Patient"],
            "type": "token",
            "expression": "Patient.extension('http://example.org/gender').value",
            "multipleAnd": False,
        },
        {"resourceType": "SearchParameter", "code": "broken"},  # skipped, not fatal
    ]
    registry = load_registry(extra)
    assert registry is not load_registry()
    flag = registry.get("Flag", "category")
    assert flag is not None and flag.url.startswith("http://nictiz.nl")
    gender = registry.get("Patient", "gender")
    assert gender is not None and not gender.multiple_and and gender.url.startswith("http://example.org")
    assert load_registry().get("Flag", "category") is None


def test_split_helpers() -> None:
    assert split_top_level("a.where(x='|') | (b | c) | d") == ["a.where(x='|')", "(b | c)", "d"]
    assert split_expression("Patient.name | Person.name | Group.name", ("Patient", "Person")) == (
        ("Patient", "Patient.name"),
        ("Person", "Person.name"),
    )
    assert split_expression("Observation | Observation.component", ("Observation",)) == (
        ("Observation", "Observation | Observation.component"),
    )
    assert split_expression("Resource.meta.tag", ("Resource",)) == (("*", "Resource.meta.tag"),)


def test_from_resource_defaults() -> None:
    sp = from_resource(
        {
            "code": "x",
            "type": "quantity",
            "base": ["Observation"],
            "url": "u",
            "expression": "Observation.value",
        }
    )
    assert sp.comparators[0] == "eq" and sp.modifiers == ("missing",) and sp.multiple_or

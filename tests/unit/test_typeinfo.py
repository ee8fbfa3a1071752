"""Element information read from the R4B models: types, list-ness, components, choices, order."""

from __future__ import annotations

import json

import pytest

from hub.fhir.typeinfo import ElementInfo, element, elements, is_resource_type, resource_types, type_info
from hub.paths import definitions_dir


def test_resource_types_are_the_146_of_r4() -> None:
    compartment = json.loads((definitions_dir() / "r4" / "compartment-patient.json").read_text())
    expected = {r["code"] for r in compartment["resource"]} | {"Parameters"}
    assert resource_types() == expected
    assert len(resource_types()) == 146


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Patient", True),
        ("Parameters", True),
        ("MedicinalProduct", True),
        ("SubstanceSpecification", True),
        ("HumanName", False),
        ("Resource", False),
        ("DomainResource", False),
        ("Citation", False),
        ("SubscriptionStatus", False),
        ("patient", False),
    ],
)
def test_is_resource_type(name: str, expected: bool) -> None:
    assert is_resource_type(name) is expected


@pytest.mark.parametrize(
    ("type_name", "name", "fhir_type", "type_name_out", "is_list", "is_primitive"),
    [
        ("Patient", "id", "id", "id", False, True),
        ("Patient", "birthDate", "date", "date", False, True),
        ("Patient", "active", "boolean", "boolean", False, True),
        ("Patient", "name", "HumanName", "HumanName", True, False),
        ("Patient", "contact", "BackboneElement", "PatientContact", True, False),
        ("PatientContact", "name", "HumanName", "HumanName", False, False),
        ("Patient", "contained", "Resource", "Resource", True, False),
        ("Patient", "extension", "Extension", "Extension", True, False),
        ("Patient", "text", "Narrative", "Narrative", False, False),
        ("Narrative", "div", "xhtml", "xhtml", False, True),
        ("HumanName", "given", "string", "string", True, True),
        ("Element", "id", "string", "string", False, True),
        ("Quantity", "value", "decimal", "decimal", False, True),
        ("Observation", "valueQuantity", "Quantity", "Quantity", False, False),
        ("Observation", "component", "BackboneElement", "ObservationComponent", True, False),
        ("Timing", "repeat", "Element", "TimingRepeat", False, False),
        ("TimingRepeat", "frequency", "positiveInt", "positiveInt", False, True),
        ("Bundle", "entry", "BackboneElement", "BundleEntry", True, False),
        ("BundleEntry", "resource", "Resource", "Resource", False, False),
        ("BundleEntryResponse", "outcome", "Resource", "Resource", False, False),
        ("ParametersParameter", "resource", "Resource", "Resource", False, False),
        ("ParametersParameter", "part", "BackboneElement", "ParametersParameter", True, False),
        ("Encounter", "class", "Coding", "Coding", False, False),
        ("Extension", "valueUuid", "uuid", "uuid", False, True),
        ("Extension", "valueBase64Binary", "base64Binary", "base64Binary", False, True),
        ("Extension", "valueUnsignedInt", "unsignedInt", "unsignedInt", False, True),
    ],
)
def test_element(
    type_name: str, name: str, fhir_type: str, type_name_out: str, is_list: bool, is_primitive: bool
) -> None:
    info = element(type_name, name)
    assert isinstance(info, ElementInfo)
    assert (info.name, info.fhir_type, info.type_name, info.is_list, info.is_primitive) == (
        name,
        fhir_type,
        type_name_out,
        is_list,
        is_primitive,
    )


def test_choice_elements_know_their_base_name() -> None:
    info = element("Patient", "deceasedDateTime")
    assert info is not None and info.choice == "deceased" and info.fhir_type == "dateTime"
    patient = type_info("Patient")
    assert patient is not None and patient.choices["multipleBirth"] == (
        "multipleBirthBoolean",
        "multipleBirthInteger",
    )
    assert element("Patient", "deceased") is None


def test_required_and_unknown() -> None:
    status = element("Observation", "status")
    assert status is not None and status.required
    assert element("Patient", "foo") is None
    assert element("NoSuchType", "id") is None
    assert element("MedicinalProduct", "id") is None  # R4-only type: no R4B model
    assert elements("NoSuchType") == {}


def test_elements_are_in_specification_order() -> None:
    names = list(elements("Patient"))
    assert names[:8] == [
        "id",
        "meta",
        "implicitRules",
        "language",
        "text",
        "contained",
        "extension",
        "modifierExtension",
    ]
    assert names.index("identifier") < names.index("name") < names.index("birthDate") < names.index("link")
    assert list(elements("Extension"))[:3] == ["id", "extension", "url"]
    info = type_info("Patient")
    assert info is not None and info.is_resource and info.order["id"] == 0
    human = type_info("HumanName")
    assert human is not None and not human.is_resource


def test_every_model_backed_r4_type_resolves_completely() -> None:
    seen: set[str] = set()
    todo = [t for t in resource_types() if type_info(t) is not None]
    assert len(todo) == 146 - 18
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        assert type_info(name) is not None, name
        todo.extend(e.type_name for e in elements(name).values() if not e.is_primitive)

"""FHIR XML <-> JSON: round trips over real examples, the JSON shapes the spec prescribes, and rejects."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

from hub.fhir.errors import BadRequest
from hub.fhir.xml import json_to_xml, xml_to_json
from tests.datafiles import NICTIZ_EXAMPLES, PATCH_CASES

EXAMPLES = sorted(NICTIZ_EXAMPLES.glob("*.xml"))
NS = 'xmlns="http://hl7.org/fhir"'


def _patch_test_resources() -> list[bytes]:
    root = etree.fromstring(PATCH_CASES.read_bytes())
    out = []
    for holder in root.iter("input", "diff", "output"):
        for elem in holder:
            if isinstance(elem.tag, str):
                out.append(etree.tostring(elem))
    return out


def _x(body: str) -> dict[str, Any]:
    return xml_to_json(body.encode())


def test_there_are_examples() -> None:
    assert len(EXAMPLES) > 100


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_nictiz_example_round_trips(path: Path) -> None:
    first = xml_to_json(path.read_bytes())
    assert first == xml_to_json(json_to_xml(first))
    assert first == xml_to_json(json_to_xml(first, pretty=True))


@pytest.mark.parametrize("data", _patch_test_resources(), ids=lambda d: str(hash(d)))
def test_patch_test_resources_round_trip(data: bytes) -> None:
    first = xml_to_json(data)
    assert first == xml_to_json(json_to_xml(first))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_json_from_examples_is_valid_for_the_r4b_model(path: Path) -> None:
    data = xml_to_json(path.read_bytes())
    model = get_fhir_model_class(data["resourceType"]).model_validate(data)
    assert model.get_resource_type() == data["resourceType"]


def test_primitive_types_become_json_types() -> None:
    data = _x(f"""<Observation {NS}><id value="o1"/><status value="final"/><code><text value="w"/></code>
        <valueQuantity><value value="1.50"/><unit value="kg"/></valueQuantity>
        <component><code><text value="c"/></code><valueBoolean value="true"/></component>
        <component><code><text value="d"/></code><valueInteger value="-3"/></component>
        </Observation>""")
    assert data["resourceType"] == "Observation" and next(iter(data)) == "resourceType"
    assert data["valueQuantity"]["value"] == Decimal("1.50")
    assert str(data["valueQuantity"]["value"]) == "1.50"
    assert data["component"][0]["valueBoolean"] is True
    assert data["component"][1]["valueInteger"] == -3
    assert b'<value value="1.50"/>' in json_to_xml(data)


def test_primitive_extensions_and_ids_go_to_underscore_properties() -> None:
    data = _x(f"""<Patient {NS}>
        <name><given value="A"/>
        <given id="g2"><extension url="http://x"><valueString value="e"/></extension></given>
        <given value="C"/></name>
        <birthDate id="b" value="1950-01-01"/></Patient>""")
    assert data["name"] == [
        {
            "given": ["A", None, "C"],
            "_given": [None, {"id": "g2", "extension": [{"url": "http://x", "valueString": "e"}]}, None],
        }
    ]
    assert data["birthDate"] == "1950-01-01" and data["_birthDate"] == {"id": "b"}
    xml = json_to_xml(data).decode()
    assert '<given id="g2"><extension url="http://x"><valueString value="e"/></extension></given>' in xml
    assert '<birthDate id="b" value="1950-01-01"/>' in xml


def test_element_ids_and_extension_urls_are_attributes_resource_id_is_an_element() -> None:
    data = _x(f'<Patient {NS}><id value="p"/><name id="n1"><family value="F"/></name></Patient>')
    assert data == {"resourceType": "Patient", "id": "p", "name": [{"id": "n1", "family": "F"}]}
    assert b'<id value="p"/><name id="n1"><family value="F"/></name>' in json_to_xml(data)


def test_contained_and_bundle_resources_are_wrapped_in_their_type() -> None:
    data = _x(f"""<Bundle {NS}><type value="collection"/><entry><fullUrl value="urn:uuid:1"/>
        <resource><Patient><contained><Organization><id value="o"/></Organization></contained>
        <active value="false"/></Patient></resource></entry></Bundle>""")
    patient = data["entry"][0]["resource"]
    assert patient == {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "o"}],
        "active": False,
    }
    assert b'<resource><Patient><contained><Organization><id value="o"/>' in json_to_xml(data)


def test_narrative_div_is_an_xhtml_string() -> None:
    data = _x(f"""<Patient {NS} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
        <text><status value="generated"/>
        <div xmlns="http://www.w3.org/1999/xhtml"><p>a &amp; <b>b</b></p></div></text></Patient>""")
    assert data["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"><p>a &amp; <b>b</b></p></div>'
    assert b'<div xmlns="http://www.w3.org/1999/xhtml"><p>a &amp; <b>b</b></p></div>' in json_to_xml(data)
    prefixed = _x(
        f'<Patient {NS} xmlns:h="http://www.w3.org/1999/xhtml"><text><status value="generated"/>'
        "<h:div><h:p>x</h:p></h:div></text></Patient>"
    )
    assert prefixed["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div>'


def test_json_to_xml_puts_elements_in_spec_order_and_accepts_a_div_without_namespace() -> None:
    data = {
        "birthDate": "2000-01-01",
        "gender": "male",
        "name": [{"given": ["X"], "family": "Y"}],
        "id": "x",
        "resourceType": "Patient",
        "text": {"div": "<div><p>hi</p></div>", "status": "generated"},
    }
    xml = json_to_xml(data)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Patient xmlns="http://hl7.org/fhir"><id')
    assert (
        b'<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>hi</p></div></text>'
        b'<name><family value="Y"/><given value="X"/></name><gender value="male"/>'
        b'<birthDate value="2000-01-01"/></Patient>'
    ) in xml
    assert b"\n  <id" in json_to_xml(data, pretty=True)


def test_parameters_and_choice_values() -> None:
    data = _x(f"""<Parameters {NS}><parameter><name value="r"/><resource><Patient><id value="1"/></Patient>
        </resource></parameter>
        <parameter><name value="d"/><valueDecimal value="0.10"/></parameter></Parameters>""")
    assert data["parameter"] == [
        {"name": "r", "resource": {"resourceType": "Patient", "id": "1"}},
        {"name": "d", "valueDecimal": Decimal("0.10")},
    ]
    assert xml_to_json(json_to_xml(data)) == data


@pytest.mark.parametrize(
    ("body", "fragment", "expression"),
    [
        (f"<Patient {NS}><foo value='x'/></Patient>", "Unknown element 'Patient.foo'", "Patient.foo"),
        (
            f"<Patient {NS}><name><foo value='x'/></name></Patient>",
            "Patient.name[0].foo",
            "Patient.name[0].foo",
        ),
        (
            f"<Patient {NS}><contact><bar/></contact></Patient>",
            "Patient.contact[0].bar",
            "Patient.contact[0].bar",
        ),
        ("<Patient><id value='x'/></Patient>", "namespace", "Patient"),
        (f"<Patient {NS}><id xmlns='urn:other' value='x'/></Patient>", "namespace", "Patient.id"),
        (f"<Patient {NS}>hello<id value='x'/></Patient>", "Text content", "Patient"),
        (f"<Patient {NS}><gender value='male'>x</gender></Patient>", "Text content", "Patient.gender"),
        (f"<Patient {NS}><active value='yes'/></Patient>", "Invalid boolean", "Patient.active"),
        (
            f"<Patient {NS}><multipleBirthInteger value='1.5'/></Patient>",
            "Invalid integer",
            "Patient.multipleBirthInteger",
        ),
        (
            f"<Observation {NS}><valueQuantity><value value='NaN'/></valueQuantity></Observation>",
            "Invalid decimal",
            "Observation.valueQuantity.value",
        ),
        (
            f"<Patient {NS}><gender value='male'/><gender value='female'/></Patient>",
            "only once",
            "Patient.gender",
        ),
        (
            f"<Patient {NS}><deceasedBoolean value='true'/><deceasedDateTime value='2020'/></Patient>",
            "Both",
            "Patient.deceasedDateTime",
        ),
        (f"<Patient {NS}><gender/></Patient>", "neither a value", "Patient.gender"),
        (f"<Patient {NS}><name/></Patient>", "is empty", "Patient.name[0]"),
        (
            f"<Patient {NS}><name foo='1'><text value='x'/></name></Patient>",
            "Attribute 'foo'",
            "Patient.name[0]",
        ),
        (f"<HumanName {NS}><text value='x'/></HumanName>", "not a FHIR R4 resource type", "HumanName"),
        (f"<Citation {NS}/>", "not a FHIR R4 resource type", "Citation"),
        (f"<MedicinalProduct {NS}/>", "not supported", "MedicinalProduct"),
        (
            f"<Patient {NS}><contained><id value='x'/></contained></Patient>",
            "not a FHIR R4 resource type",
            "Patient.contained[0].id",
        ),
        (
            f"<Patient {NS}><text><status value='generated'/><div/></text></Patient>",
            "XHTML div",
            "Patient.text.div",
        ),
    ],
)
def test_rejects_what_is_not_fhir_xml(body: str, fragment: str, expression: str) -> None:
    with pytest.raises(BadRequest) as info:
        xml_to_json(body.encode())
    assert fragment in info.value.diagnostics
    assert info.value.issues[0].code == "structure"
    assert info.value.issues[0].expression == (expression,)


@pytest.mark.parametrize(
    "body",
    [
        b"<Patient xmlns='http://hl7.org/fhir'><id value='x'/>",
        b"not xml at all",
        b"<?xml version='1.0'?><!DOCTYPE p [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
        b"<Patient xmlns='http://hl7.org/fhir'><id value='&e;'/></Patient>",
        b"<!DOCTYPE Patient [<!ENTITY a 'aaaa'>]><Patient xmlns='http://hl7.org/fhir'/>",
    ],
)
def test_rejects_malformed_and_entity_laden_xml(body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        xml_to_json(body)
    assert info.value.issues[0].code == "structure"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"resourceType": "Patient", "foo": 1}, "Unknown element 'Patient.foo'"),
        ({"resourceType": "Nope"}, "resourceType"),
        ({"resourceType": "Patient", "name": {"family": "x"}}, "must be an array"),
        ({"resourceType": "Patient", "name": [{"given": ["a"], "_given": [None, None]}]}, "differ in length"),
        ({"resourceType": "Patient", "active": {"x": 1}}, "primitive value"),
        ({"resourceType": "Patient", "gender": True}, "must not be a boolean"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>"}}, "well-formed"),
    ],
)
def test_json_to_xml_rejects_invalid_json(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        json_to_xml(data)
    assert fragment in info.value.diagnostics

"""Tests for hub.fhir.fhirpath_fast: the compiled subset must agree with fhirpathpy."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

import fhirpathpy
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirpathpy.models import models
from lxml import etree

from hub.fhir.fhirpath_fast import child_spec, compile_path, is_fast, is_subtype, reference_type
from hub.fhir.searchparams import load_registry
from tests.datafiles import NICTIZ_EXAMPLES

EXAMPLES = NICTIZ_EXAMPLES


def _strip_primitive_extensions(value: Any) -> Any:
    """fhirpathpy mishandles `_element` siblings; the comparison runs on resources without them."""
    if isinstance(value, dict):
        return {k: _strip_primitive_extensions(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_strip_primitive_extensions(v) for v in value]
    return value


@pytest.fixture(scope="module")
def nl_core() -> list[dict[str, Any]]:
    """The nl-core XML examples as FHIR JSON (via the fhir.resources R4B models)."""
    import orjson

    out = []
    for path in sorted(EXAMPLES.glob("*.xml")):
        raw = path.read_bytes()
        rtype = etree.QName(etree.fromstring(raw)).localname
        try:
            model = get_fhir_model_class(rtype).model_validate_xml(raw)
        except ValueError:
            continue  # two examples use R4-only constructs the R4B models reject
        out.append(_strip_primitive_extensions(orjson.loads(model.model_dump_json(exclude_none=True))))
    assert len(out) > 100
    return out


def _canon(v: Any) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return repr(v)
    if isinstance(v, (int, float, Decimal)):
        return "n" + str(Decimal(str(v)).normalize())
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_canon(x)}" for k, x in sorted(v.items()) if k != "fhir_comments") + "}"
    if isinstance(v, list):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    return repr(v)


_RESOLVE = re.compile(r"where\(resolve\(\) is (\w+)\)")
_AS = re.compile(r"\(([A-Za-z.]+) as (\w+)\)")


def _for_fhirpathpy(expression: str, resource_type: str) -> str:
    """The same expression in a form fhirpathpy evaluates (it lacks resolve() and `Resource.` roots,
    and its `as` operator insists on singletons where the R4 expressions do not)."""
    e = re.sub(r"\b(Domain)?Resource\.", resource_type + ".", expression)
    e = _RESOLVE.sub(lambda m: f"where(reference.startsWith('{m.group(1)}/'))", e)
    return _AS.sub(lambda m: f"{m.group(1)}.ofType({m.group(2)})", e)


def test_r4_expressions_need_no_fallback() -> None:
    registry = load_registry()
    expressions = {sp.expression for sp in registry if sp.expression}
    expressions |= {e for sp in registry for _, e in sp.expressions}
    expressions |= {c.expression for sp in registry for c in sp.components}
    slow = sorted(e for e in expressions if not is_fast(e))
    assert len(expressions) > 1000
    assert slow == []


def test_matches_fhirpathpy_on_nl_core_examples(nl_core: list[dict[str, Any]]) -> None:
    registry = load_registry()
    compared = 0
    for resource in nl_core:
        rtype = resource["resourceType"]
        for code, sp in registry.for_type(rtype).items():
            expr = sp.expression_for(rtype)
            if not expr:
                continue
            mine = sorted(_canon(v) for v, _ in compile_path(expr)(resource))
            theirs = fhirpathpy.evaluate(copy.deepcopy(resource), _for_fhirpathpy(expr, rtype), {}, models["r4"])
            assert mine == sorted(_canon(v) for v in theirs), (rtype, code, expr)
            compared += 1
    assert compared > 3000


OBS: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "subject": {"reference": "Patient/p1"},
    "performer": [
        {"reference": "http://other.example/fhir/Practitioner/x/_history/2"},
        {"reference": "#pat"},
        {"identifier": {"system": "urn:oid:1", "value": "9"}, "type": "Patient"},
        {"display": "nobody"},
    ],
    "contained": [{"resourceType": "Patient", "id": "pat"}],
    "effectivePeriod": {"start": "2021-01-01"},
    "valueQuantity": {"value": 72.5, "unit": "kg"},
    "component": [
        {"code": {"text": "a"}, "valueQuantity": {"value": 1}},
        {"code": {"text": "b"}, "valueCodeableConcept": {"text": "x"}},
    ],
    "extension": [
        {"url": "http://example.org/a", "valueString": "A"},
        {"url": "http://example.org/b", "valueAge": {"value": 3, "code": "a"}},
    ],
}


def test_choice_elements_carry_their_type() -> None:
    assert compile_path("Observation.effective")(OBS) == [({"start": "2021-01-01"}, "Period")]
    assert compile_path("Observation.value as Quantity")(OBS) == [({"value": 72.5, "unit": "kg"}, "Quantity")]
    assert compile_path("(Observation.value as CodeableConcept)")(OBS) == []
    assert compile_path("Observation.value.as(Quantity)")(OBS)[0][1] == "Quantity"
    assert compile_path("Observation.component.value.ofType(CodeableConcept).text")(OBS) == [("x", "string")]
    assert compile_path("Observation.status")(OBS) == [("final", "code")]
    assert compile_path("Observation.component")(OBS)[0][1] == "Observation.component"


def test_subtypes_and_system_types() -> None:
    assert is_subtype("Age", "Quantity")
    assert is_subtype("code", "string")
    assert is_subtype("dateTime", "DateTime")
    assert not is_subtype("Quantity", "Age")
    assert compile_path("Observation.extension.value.as(Quantity)")(OBS) == [({"value": 3, "code": "a"}, "Age")]
    assert compile_path("Resource.id")(OBS) == [("o1", "string")]
    assert compile_path("DomainResource.id")(OBS) == [("o1", "string")]


def test_resolve_filters_by_target_type() -> None:
    patients = compile_path("Observation.performer.where(resolve() is Patient)")(OBS)
    assert [v for v, _ in patients] == [{"reference": "#pat"}, OBS["performer"][2]]
    practitioners = compile_path("Observation.performer.where(resolve() is Practitioner)")(OBS)
    assert [v["reference"] for v, _ in practitioners] == ["http://other.example/fhir/Practitioner/x/_history/2"]
    assert compile_path("Observation.subject.where(resolve() is Patient)")(OBS)[0][1] == "Reference"
    assert reference_type("http://hl7.org/fhir/ValueSet/abc|4.0.1") == "ValueSet"
    assert reference_type("urn:uuid:1234") is None


def test_where_with_primitive_extensions() -> None:
    patient = {
        "resourceType": "Patient",
        "telecom": [
            {"system": "phone", "_system": {"extension": [{"url": "x", "valueString": "y"}]}, "value": "1"},
            {"system": "email", "value": "a@b.nl"},
        ],
    }
    assert compile_path("Patient.telecom.where(system='phone')")(patient) == [(patient["telecom"][0], "ContactPoint")]
    assert compile_path("Patient.telecom.where(system='email').value")(patient) == [("a@b.nl", "string")]


def test_extension_functions() -> None:
    assert compile_path("Observation.extension('http://example.org/a').value")(OBS) == [("A", "string")]
    assert compile_path("Observation.extension.where(url='http://example.org/b').value")(OBS)[0][1] == "Age"
    assert compile_path("Observation.extension('http://example.org/zz')")(OBS) == []


def test_boolean_logic_and_indexers() -> None:
    deceased = "Patient.deceased.exists() and Patient.deceased != false"
    assert compile_path(deceased)({"resourceType": "Patient", "deceasedBoolean": True}) == [(True, "boolean")]
    assert compile_path(deceased)({"resourceType": "Patient", "deceasedBoolean": False}) == [(False, "boolean")]
    assert compile_path(deceased)({"resourceType": "Patient", "deceasedDateTime": "2020"}) == [(True, "boolean")]
    assert compile_path(deceased)({"resourceType": "Patient"}) == [(False, "boolean")]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Composition", "id": "c"}}, {}],
    }
    assert compile_path("Bundle.entry[0].resource")(bundle) == [(bundle["entry"][0]["resource"], "Composition")]
    assert compile_path("Observation.component.first().code.text | Observation.status")(OBS) == [
        ("a", "string"),
        ("final", "code"),
    ]
    assert compile_path("Observation.component.count()")(OBS) == [(2, "integer")]


def test_relative_evaluation_for_composites() -> None:
    comp = OBS["component"][0]
    path = compile_path("value.as(Quantity)")
    assert path.at(comp, "Observation.component", OBS) == [({"value": 1}, "Quantity")]
    assert compile_path("%resource.status").at(comp, "Observation.component", OBS) == [("final", "code")]
    assert compile_path("value.as(DateTime) | value.as(Period)").at(OBS, "Observation", OBS) == []


def test_unknown_types_fall_back_to_key_suffixes() -> None:
    data = {"valueDateTime": "2021", "name": "n"}
    assert compile_path("value").at(data, None, {}) == [("2021", "dateTime")]
    assert compile_path("name").at(data, None, {}) == [("n", None)]
    assert child_spec("Patient", "nonexistent") == (("nonexistent", None),)


def test_unsupported_expressions_use_fhirpathpy() -> None:
    expr = "Patient.name.given.select(substring(0, 1))"
    path = compile_path(expr)
    assert not path.fast and not is_fast(expr)
    patient = {"resourceType": "Patient", "name": [{"given": ["Jan", "Piet"]}]}
    assert path(patient) == [("J", None), ("P", None)]
    assert compile_path(expr) is path  # compiled once


def test_unparseable_expressions_yield_nothing() -> None:
    path = compile_path("@@@")
    assert not path.fast
    assert path({"resourceType": "Patient", "name": [{"family": "x"}]}) == []

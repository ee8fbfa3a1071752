"""FHIRPath Patch against the 33 official R4 test cases, and JSON Patch error mapping."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import pytest
from lxml import etree

from hub.fhir.errors import BadRequest, Unprocessable
from hub.fhir.patch import apply_fhirpath_patch, apply_json_patch
from hub.fhir.xml import xml_to_json
from tests.datafiles import PATCH_CASES

PATCH_TESTS = PATCH_CASES


@cache
def _cases() -> list[dict[str, Any]]:
    root = etree.fromstring(PATCH_TESTS.read_bytes(), etree.XMLParser(resolve_entities=False, no_network=True))
    cases = []
    for case in root.iter("case"):
        parts = {child.tag: child for child in case if isinstance(child.tag, str)}

        def resource(name: str, parts: dict[str, Any] = parts) -> dict[str, Any] | None:
            holder = parts.get(name)
            if holder is None:
                return None
            (elem,) = [c for c in holder if isinstance(c.tag, str)]
            return xml_to_json(etree.tostring(elem))

        error = parts.get("error")
        cases.append(
            {
                "name": case.get("name"),
                "mode": case.get("mode"),
                "input": resource("input"),
                "diff": resource("diff"),
                "output": resource("output"),
                "error": error.get("msg") if error is not None else None,
            }
        )
    return cases


def test_the_reference_file_has_33_cases() -> None:
    assert len(_cases()) == 33
    assert sum(1 for c in _cases() if c["error"]) == 1


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_official_fhirpath_patch_case(case: dict[str, Any]) -> None:
    before = repr(case["input"])
    if case["error"]:
        with pytest.raises(Unprocessable) as info:
            apply_fhirpath_patch(case["input"], case["diff"])
        assert case["error"] in info.value.diagnostics
        assert "operation 0" in info.value.diagnostics
    else:
        assert apply_fhirpath_patch(case["input"], case["diff"]) == case["output"]
    assert repr(case["input"]) == before  # the input is not mutated


def _op(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    out = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if name in ("index", "source", "destination"):
            out.append({"name": name, "valueInteger": value})
        elif name == "name":
            out.append({"name": "name", "valueString": value})
        else:
            out.append({"name": "value", **value})
    return {"name": "operation", "part": out}


def _params(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(ops)}


PATIENT = {
    "resourceType": "Patient",
    "extension": [{"url": "http://x/a", "valueString": "A"}, {"url": "http://x/b", "valueString": "B"}],
    "name": [{"family": "Jansen", "given": ["Jan", "Piet"], "_given": [None, {"id": "g2"}]}],
    "birthDate": "1950-01-01",
    "_birthDate": {"extension": [{"url": "http://x/time", "valueDateTime": "1950-01-01T10:00:00Z"}]},
    "deceasedBoolean": False,
}


def test_extension_function_paths_are_located() -> None:
    out = apply_fhirpath_patch(PATIENT, _params(_op("delete", "Patient.extension('http://x/a')")))
    assert out["extension"] == [{"url": "http://x/b", "valueString": "B"}]
    out = apply_fhirpath_patch(
        PATIENT, _params(_op("replace", "Patient.extension('http://x/b').value", value={"valueString": "C"}))
    )
    assert out["extension"][1] == {"url": "http://x/b", "valueString": "C"}


def test_primitive_lists_keep_their_extensions_aligned() -> None:
    out = apply_fhirpath_patch(PATIENT, _params(_op("delete", "Patient.name[0].given[0]")))
    assert out["name"][0]["given"] == ["Piet"] and out["name"][0]["_given"] == [{"id": "g2"}]
    out = apply_fhirpath_patch(
        PATIENT, _params(_op("insert", "Patient.name[0].given", index=0, value={"valueString": "K"}))
    )
    assert out["name"][0]["given"] == ["K", "Jan", "Piet"] and out["name"][0]["_given"] == [
        None,
        None,
        {"id": "g2"},
    ]
    out = apply_fhirpath_patch(PATIENT, _params(_op("move", "Patient.name[0].given", source=1, destination=0)))
    assert out["name"][0]["given"] == ["Piet", "Jan"] and out["name"][0]["_given"] == [{"id": "g2"}, None]


def test_deleting_the_last_extension_of_a_primitive_removes_its_underscore_object() -> None:
    out = apply_fhirpath_patch(PATIENT, _params(_op("delete", "Patient.birthDate.extension[0]")))
    assert out["birthDate"] == "1950-01-01" and "_birthDate" not in out


def test_choice_elements_are_replaced_by_type() -> None:
    out = apply_fhirpath_patch(
        PATIENT, _params(_op("replace", "Patient.deceased", value={"valueDateTime": "2020-01-01"}))
    )
    assert "deceasedBoolean" not in out and out["deceasedDateTime"] == "2020-01-01"
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    out = apply_fhirpath_patch(
        obs,
        _params(
            _op(
                "add",
                "Observation",
                name="value",
                value={"valueQuantity": {"value": Decimal("1.50"), "unit": "kg"}},
            )
        ),
    )
    assert out["valueQuantity"] == {"value": Decimal("1.50"), "unit": "kg"}


def test_insert_into_an_empty_list_and_add_an_extension_to_a_primitive() -> None:
    out = apply_fhirpath_patch(
        PATIENT,
        _params(
            _op("insert", "Patient.identifier", index=0, value={"valueIdentifier": {"value": "1"}}),
            _op("add", "Patient.name[0].family", name="id", value={"valueString": "fam"}),
        ),
    )
    assert out["identifier"] == [{"value": "1"}]
    assert out["name"][0]["_family"] == {"id": "fam"}


@pytest.mark.parametrize(
    ("params", "error", "fragment"),
    [
        (
            _params(_op("replace", "Patient.gender", value={"valueCode": "male"})),
            Unprocessable,
            "No content found",
        ),
        (_params(_op("delete", "Patient.name.given")), Unprocessable, "matches 2 elements"),
        (
            _params(_op("insert", "Patient.name", index=5, value={"valueHumanName": {}})),
            Unprocessable,
            "out of range",
        ),
        (
            _params(_op("move", "Patient.name[0].given", source=0, destination=2)),
            Unprocessable,
            "out of range",
        ),
        (
            _params(_op("add", "Patient", name="birthDate", value={"valueDate": "2000-01-01"})),
            Unprocessable,
            "already",
        ),
        (
            _params(_op("add", "Patient", name="nonsense", value={"valueString": "x"})),
            Unprocessable,
            "Unknown element",
        ),
        (_params(_op("frobnicate", "Patient")), BadRequest, "type must be one of"),
        (_params(_op("add", "Patient", name="gender")), BadRequest, "'value' is required"),
        (_params(_op("replace", "Patient.name.where(", value={"valueString": "x"})), BadRequest, "FHIRPath"),
        ({"resourceType": "Patient"}, BadRequest, "Parameters"),
    ],
)
def test_fhirpath_patch_errors(params: dict[str, Any], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        apply_fhirpath_patch(PATIENT, params)
    assert fragment in str(info.value)


def test_delete_of_nothing_is_a_no_op() -> None:
    assert apply_fhirpath_patch(PATIENT, _params(_op("delete", "Patient.gender"))) == PATIENT


# ----------------------------------------------------------------------------------------- JSON Patch


def test_json_patch_add_replace_remove_and_test() -> None:
    ops = [
        {"op": "test", "path": "/name/0/family", "value": "Jansen"},
        {"op": "add", "path": "/name/0/given/-", "value": "Kees"},
        {"op": "replace", "path": "/birthDate", "value": "1951-02-03"},
        {"op": "remove", "path": "/deceasedBoolean"},
    ]
    out = apply_json_patch(PATIENT, ops)
    assert out["name"][0]["given"] == ["Jan", "Piet", "Kees"]
    assert out["birthDate"] == "1951-02-03" and "deceasedBoolean" not in out
    assert PATIENT["name"][0]["given"] == ["Jan", "Piet"] and "deceasedBoolean" in PATIENT


def test_json_patch_failing_test_is_422_with_the_path_as_expression() -> None:
    with pytest.raises(Unprocessable) as info:
        apply_json_patch(PATIENT, [{"op": "test", "path": "/name/0/family", "value": "Pietersen"}])
    assert info.value.status == 422
    assert info.value.issues[0].expression == ("Patient.name[0].family",)
    assert "operation 0 (test)" in info.value.diagnostics


@pytest.mark.parametrize(
    ("ops", "error"),
    [
        ([{"op": "remove", "path": "/gender"}], Unprocessable),
        ([{"op": "replace", "path": "/telecom/0/value", "value": "x"}], Unprocessable),
        ([{"op": "add", "path": "/name/7", "value": {}}], Unprocessable),
        ([{"op": "bogus", "path": "/gender"}], BadRequest),
        ([{"op": "add", "value": 1}], BadRequest),
        ([{"op": "add", "path": "gender", "value": "male"}], BadRequest),
        (["add"], BadRequest),
        ({"op": "add"}, BadRequest),
        ([{"op": "replace", "path": "", "value": {"resourceType": "Observation"}}], Unprocessable),
    ],
)
def test_json_patch_errors(ops: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        apply_json_patch(PATIENT, ops)


def test_json_patch_error_names_the_failing_operation() -> None:
    with pytest.raises(Unprocessable) as info:
        apply_json_patch(PATIENT, [{"op": "add", "path": "/gender", "value": "male"}, {"op": "remove", "path": "/x"}])
    assert "operation 1 (remove)" in info.value.diagnostics
    assert info.value.issues[0].expression == ("Patient.x",)

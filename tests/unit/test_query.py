"""Tests for hub.fhir.query: search parameters parsed into criteria (no database)."""

from __future__ import annotations

import pytest

from hub.fhir.errors import BadRequest
from hub.fhir.query import (
    CompositeValue,
    DateValue,
    HasCriterion,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    TokenValue,
    parse_query,
    split_or,
)
from hub.fhir.searchparams import load_registry
from hub.fhir.typeinfo import resource_types
from hub.store.search.predicates import prefix_upper_bound


def _parse(res_type: str, params: list[tuple[str, str]], **kwargs: object):  # type: ignore[no-untyped-def]
    return parse_query(res_type, params, load_registry(), resource_types=resource_types(), **kwargs)


def test_or_split_respects_escapes() -> None:
    assert split_or("a,b\\,c,,d") == ["a", "b\\,c", "d"]


def test_token_forms() -> None:
    q = _parse("Patient", [("identifier", "sys|v"), ("identifier", "|v"), ("identifier", "sys|"), ("gender", "male")])
    values = [c.values[0] for c in q.criteria]
    assert values == [
        TokenValue("sys", "v"),
        TokenValue("", "v"),
        TokenValue("sys", None),
        TokenValue(None, "male"),
    ]
    of_type = _parse("Patient", [("identifier:of-type", "s|MR|1")]).criteria[0].values[0]
    assert (of_type.type_system, of_type.type_code, of_type.code) == ("s", "MR", "1")


def test_reference_forms() -> None:
    def ref(name: str, value: str) -> ReferenceValue:
        return _parse("Observation", [(name, value)]).criteria[0].values[0]  # type: ignore[no-any-return]

    assert ref("subject", "Patient/1") == ReferenceValue("Patient", "1")
    assert ref("subject", "1") == ReferenceValue(None, "1")
    assert ref("subject:Patient", "1") == ReferenceValue("Patient", "1")
    assert ref("subject", "http://x/fhir/Patient/1") == ReferenceValue("Patient", "1", url="http://x/fhir/Patient/1")
    assert ref("subject:identifier", "s|v") == ReferenceValue(None, None, ident_system="s", ident_value="v")


def test_prefixes_and_precision() -> None:
    d = _parse("Observation", [("date", "ge2021-03")]).criteria[0].values[0]
    assert isinstance(d, DateValue) and d.prefix == "ge" and d.high - d.low + 1 == 31 * 86_400_000_000
    n = _parse("RiskAssessment", [("probability", "lt1.50")]).criteria[0].values[0]
    assert isinstance(n, NumberValue) and n.prefix == "lt" and (n.low, n.high) == pytest.approx((1.495, 1.505))
    qv = _parse("Observation", [("value-quantity", "ap5.4|http://unitsofmeasure.org|mg")]).criteria[0].values[0]
    assert isinstance(qv, QuantityValue) and (qv.prefix, qv.system, qv.code) == (
        "ap",
        "http://unitsofmeasure.org",
        "mg",
    )


def test_composite_chain_and_has() -> None:
    comp = _parse("Observation", [("code-value-quantity", "http://loinc.org|1-8$gt5")]).criteria[0].values[0]
    assert isinstance(comp, CompositeValue) and [p[0] for p in comp.parts] == [
        "code-value-quantity$0",
        "code-value-quantity$1",
    ]
    chain = _parse("Observation", [("subject:Patient.organization.name", "x")]).criteria[0]
    assert chain.chain is not None and chain.chain.chain is not None and chain.chain.chain.name == "name"
    has = _parse("Organization", [("_has:Patient:organization:_has:Observation:subject:code", "1")]).criteria[0]
    assert isinstance(has, HasCriterion) and isinstance(has.inner, HasCriterion)
    assert has.inner.res_type == "Patient" and has.inner.source_type == "Observation"


def test_result_parameters() -> None:
    q = _parse(
        "Patient",
        [
            ("_sort", "-birthdate,family"),
            ("_count", "5000"),
            ("_include:iterate", "Patient:organization"),
            ("_revinclude", "*"),
            ("_summary", "count"),
            ("_elements", "id,name"),
        ],
        max_count=1000,
    )
    assert [(k.name, k.descending) for k in q.sort] == [("birthdate", True), ("family", False)]
    assert q.count == 1000 and q.includes[0].iterate and q.revincludes[0].param == "*"
    assert q.summary == "count" and q.elements == ("id", "name")


def test_unknown_parameters_are_ignored_or_strict() -> None:
    q = _parse("Patient", [("nope", "1"), ("family", "x")])
    assert [i.expression for i in q.ignored] == [("nope",)] and len(q.criteria) == 1
    with pytest.raises(BadRequest):
        _parse("Patient", [("nope", "1")], strict=True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("birthdate", "2021-02-30"),
        ("gender:exact", "x"),
        ("identifier:of-type", "a|b"),
        ("_sort", "name:x"),
        ("_count", "ten"),
        ("_has:Observation", "x"),
        ("family.name", "x"),
    ],
)
def test_malformed(name: str, value: str) -> None:
    with pytest.raises(BadRequest):
        _parse("Patient", [(name, value)])


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound("smi") == "smj"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("") is None

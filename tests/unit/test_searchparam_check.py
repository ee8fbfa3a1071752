"""The check a written SearchParameter must pass before it takes effect (hub.fhir.searchparam_check)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.fhir.errors import Unprocessable
from hub.fhir.searchparam_check import (
    RESERVED_CODES,
    check_not_redefining,
    check_search_parameter,
    fhirpath_problem,
)
from hub.fhir.searchparams import _core_resources, load_registry, registry_with
from hub.fhir.typeinfo import resource_types
from hub.profiles import package_resources


def _check(res: dict[str, Any]) -> None:
    registry = load_registry()
    check_search_parameter(res, resource_types(), lambda url: registry.by_url(url) is not None)


def test_every_package_definition_passes() -> None:
    """R4's own (but those the search layer answers itself) and the hub's package's."""
    package = [r for r in package_resources() if r["resourceType"] == "SearchParameter"]
    assert package
    for res in [*_core_resources(), *package]:
        if res["code"] in RESERVED_CODES:
            continue
        _check(res)


GOOD = {
    "resourceType": "SearchParameter",
    "code": "favourite",
    "type": "token",
    "base": ["Patient"],
    "status": "active",
    "expression": "Patient.extension.where(url='x').value",
}


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"base": ["Patiënt"]}, "SearchParameter.base[0]"),
        ({"base": []}, "SearchParameter.base"),
        ({"type": "colour"}, "SearchParameter.type"),
        ({"code": "_has"}, "SearchParameter.code"),
        ({"code": "a b"}, "SearchParameter.code"),
        ({"expression": "Patient.name.."}, "SearchParameter.expression"),
        ({"expression": "Patient.name )"}, "SearchParameter.expression"),
        ({"expression": "Patient.name.frobnicate()"}, "SearchParameter.expression"),
        ({"expression": None}, "SearchParameter.expression"),
        ({"type": "reference", "target": ["Nothing"]}, "SearchParameter.target[0]"),
        (
            {"type": "composite", "component": [{"definition": "http://nowhere/x", "expression": "code"}]},
            "SearchParameter.component[0].definition",
        ),
    ],
)
def test_a_definition_that_cannot_take_effect_is_refused(change: dict[str, Any], where: str) -> None:
    _check(GOOD)
    with pytest.raises(Unprocessable) as caught:
        _check({**GOOD, **change})
    assert where in [e for i in caught.value.issues for e in i.expression]


def test_fhirpath_problem() -> None:
    assert fhirpath_problem("Observation.value.as(Quantity)", ["Observation"]) is None
    assert fhirpath_problem("(Observation.value as Quantity) | Observation.component.value", ["Observation"]) is None
    assert fhirpath_problem("((", ["Observation"])


def test_stored_definitions_lay_over_the_seed() -> None:
    """An active stored one takes effect; one of another status takes a package one of its url out."""
    seed = load_registry()
    name = seed.get("Patient", "name")
    assert name is not None
    registry = registry_with([{**GOOD, "url": "http://example.org/sp"}])
    assert registry.get("Patient", "favourite") is not None
    assert (
        registry_with([{**GOOD, "url": "http://example.org/sp", "status": "retired"}]).get("Patient", "favourite")
        is None
    )
    retired_name = {
        "resourceType": "SearchParameter",
        "url": name.url,
        "code": "name",
        "type": "string",
        "base": ["Patient"],
        "status": "retired",
        "expression": "Patient.name",
    }
    assert registry_with([retired_name]).get("Patient", "name") is None
    assert registry_with([]).get("Patient", "name") is not None


def test_the_package_parameters_cannot_be_changed_or_retired() -> None:
    seed = load_registry()
    identifier = seed.get("Patient", "identifier")
    assert identifier is not None and identifier.expression
    own = {
        "resourceType": "SearchParameter",
        "url": identifier.url,
        "code": "identifier",
        "type": "token",
        "base": list(identifier.base),
        "expression": identifier.expression,
        "status": "active",
    }
    check_not_redefining(own, seed)  # stored again as it is
    for change in ({"status": "retired"}, {"expression": "Patient.name"}, {"type": "string"}):
        with pytest.raises(Unprocessable):
            check_not_redefining({**own, **change}, seed)
    with pytest.raises(Unprocessable):  # another url, the same code on the same base
        check_not_redefining({**own, "url": "http://example.org/sp/identifier"}, seed)
    check_not_redefining(GOOD, seed)

"""Slice counting as the HL7 validator does it: an item that can only be in one slice but is not
known to be (a reference under a ``profile`` discriminator that cannot be resolved) is held to that
slice's rules without counting against its maximum."""

from __future__ import annotations

from typing import Any

import pytest

from hub.fhir.validation.registry import Registry
from hub.fhir.validation.validator import Validator
from hub.paths import nictiz_package

NL = "http://nictiz.nl/fhir/StructureDefinition/"


@pytest.fixture(scope="module")
def nictiz() -> Validator:
    return Validator(Registry([], packages=[nictiz_package()]))


def _care_team(*members: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "meta": {"profile": [NL + "nl-core-CareTeam"]},
        "status": "active",
        "subject": {"reference": "Patient/p1", "type": "Patient"},
        "participant": [{"member": m} for m in members],
    }


def _errors(issues: list[Any]) -> list[str]:
    return [i.diagnostics for i in issues if i.severity == "error"]


def test_unresolved_members_do_not_exceed_a_slice_max(nictiz: Validator) -> None:
    # nl-core-CareTeam-01 has several care providers (zib-CareTeam: healthcareProfessional max 1)
    team = _care_team(
        {"reference": "PractitionerRole/r1", "type": "PractitionerRole"},
        {"reference": "PractitionerRole/r3", "type": "PractitionerRole"},
        {"reference": "PractitionerRole/r5", "type": "PractitionerRole"},
        {"reference": "RelatedPerson/x", "type": "RelatedPerson"},
    )
    assert _errors(nictiz.validate(team)) == []

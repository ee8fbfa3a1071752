"""The validator's walk follows the instance: which children of an element it checks, and the write
path's one-pass ``validate_claimed``."""

from __future__ import annotations

from typing import Any

import pytest

from hub.fhir.validation import default_validator
from hub.fhir.validation.registry import CORE_SD
from hub.fhir.validation.validator import _items, _prep
from tests.corpus import example_corpus


def _checked(rtype: str, obj: dict[str, Any]) -> list[str]:
    tree = default_validator().tree(CORE_SD + rtype)
    assert tree is not None
    prep = _prep(tree.root)
    return [prep.kids[i][0] for i in prep.present(obj)]


def test_present_children_in_profile_order_with_the_required_ones() -> None:
    obs = {
        "valueQuantity": {"value": 1},
        "subject": {"reference": "Patient/1"},
        "_status": {"extension": []},
        "unknownElement": 1,
    }
    # status and code are required (min 1): checked though code is absent; status via its "_status"
    assert _checked("Observation", obs) == ["status", "code", "subject", "value[x]"]
    assert _checked("Observation", {}) == ["status", "code"]


def test_present_matches_the_profile_walk() -> None:
    """Every child the profile-driven walk would find a value (or a minimum) for, and no other."""
    v = default_validator()
    for res in example_corpus():
        tree = v.tree(CORE_SD + res["resourceType"])
        assert tree is not None
        prep = _prep(tree.root)
        expected = [i for i, kid in enumerate(prep.kids) if kid[3] > 0 or _items(res, kid[0], "x")]
        assert list(prep.present(res)) == expected, res["resourceType"]


@pytest.mark.parametrize("index", range(0, 160, 7))
def test_validate_claimed_is_validate_and_profiles_for(index: int) -> None:
    corpus = example_corpus()
    res = corpus[index % len(corpus)]
    v = default_validator()
    issues, profiles = v.validate_claimed(res)
    assert issues == v.validate(res)
    assert profiles == v.profiles_for(res)

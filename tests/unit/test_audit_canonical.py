"""Canonical JSON: equal to RFC 8785 (JCS) for the values audit records hold; floats refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.audit.canonical import MAX_SAFE_INT, NotCanonicalizable, canonical


def _jcs_reference(value: Any) -> bytes:
    """Python's json with sorted keys, no spaces and no ASCII escaping is JCS for non-float trees
    with BMP keys: same minimal escapes (\\b \\t \\n \\f \\r, other controls as lowercase \\u00xx)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | _text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@given(_json)
@settings(max_examples=300, deadline=None)
def test_matches_reference_jcs(value: Any) -> None:
    assert canonical(value) == _jcs_reference(value)


def test_known_vector() -> None:
    value = {"b": "é\u2028\x01\n", "a": [1, None, True], "A": {"z": "", "y": "/"}}
    assert canonical(value) == b'{"A":{"y":"/","z":""},"a":[1,null,true],"b":"\xc3\xa9\xe2\x80\xa8\\u0001\\n"}'


@pytest.mark.parametrize("bad", [1.5, {"x": 1.0}, {"é": 1}, {1: "x"}, 2**53, [object()]])
def test_refuses_what_jcs_would_render_differently(bad: Any) -> None:
    with pytest.raises(NotCanonicalizable):
        canonical(bad)

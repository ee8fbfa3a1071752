"""jsonio.dumps writes Decimals through orjson (hub/fhir/jsonio.py): byte for byte what simplejson
writes, which is how every body with a fractional number was written before."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
import simplejson

from hub.fhir import jsonio
from tests.conformance.examples import ALL, handoff_bundle


def _simplejson(data: Any) -> bytes:
    return simplejson.dumps(data, use_decimal=True, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "number",
    ["1.50", "1E+2", "-0", "0.000001", "1e-7", "123456789012345678901234567890.5", "-3.0E-10", "7", "0.0"],
)
def test_a_decimal_is_written_as_simplejson_writes_it(number: str) -> None:
    data = {"valueQuantity": {"value": Decimal(number)}, "list": [Decimal(number), {"x": Decimal(number)}], "s": "é\n"}
    assert jsonio.dumps(data) == _simplejson(data)


def test_floats_beside_decimals_and_odd_values_are_still_written_by_simplejson() -> None:
    mixed = {"a": Decimal("1.5"), "b": 1e-07}
    assert jsonio.dumps(mixed) == _simplejson(mixed) == b'{"a":1.5,"b":1e-07}'
    odd = {"a": Decimal("1.5"), "b": 2**70}
    assert jsonio.dumps(odd) == _simplejson(odd)
    with pytest.raises(ValueError, match="not JSON compliant"):  # as before: simplejson refuses it
        jsonio.dumps({"a": Decimal("NaN")})


def test_parsed_resources_with_decimals_are_written_as_before() -> None:
    docs = [make() for make in ALL.values()] + [handoff_bundle(40)]
    docs.append({"resourceType": "Observation", "valueQuantity": {"value": 36.60, "unit": "Cel"}, "note": "ü"})
    for doc in docs:
        parsed = jsonio.loads(orjson.dumps(doc).replace(b"36.6", b"36.60"))
        assert jsonio.dumps(parsed) == _simplejson(parsed)
    assert isinstance(parsed["valueQuantity"]["value"], Decimal)  # (the last one had a decimal)

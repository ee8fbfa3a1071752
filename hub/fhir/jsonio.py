"""JSON in and out, fast where possible and exact where FHIR needs it.

FHIR decimals keep their precision (``1.50`` is not ``1.5``), so a body holding fractional numbers
is parsed with :class:`decimal.Decimal` (simplejson); everything else takes the orjson fast path.
Output takes orjson unless the data carries Decimals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import simplejson

from hub.fhir.errors import BadRequest


def loads(body: bytes | str) -> Any:
    """Parse JSON; raises :class:`BadRequest` naming the position of a syntax error.

    orjson parses first (fast, and in C); only when the result holds a float (whose text a float
    may not keep: ``1.50``, long fractions, exponents, integers beyond 64 bits) is the body parsed
    again with Decimals. A scan of the text for such numbers costs more than the parse itself on a
    body of megabytes of strings, so the parsed value is looked at instead."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in str(exc):  # a number too large for a double: exact parsing keeps it
            raise BadRequest(f"Malformed JSON: {exc}", code="structure") from None
        return _exact(raw)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"Body is not valid UTF-8: {exc}", code="structure") from None
    if isinstance(data, float) or (isinstance(data, dict | list) and _has_float(data)):
        return _exact(raw)
    return data


def _exact(raw: bytes) -> Any:
    """Parse with every fractional number as a :class:`Decimal` (and integers unbounded)."""
    try:
        return simplejson.loads(raw, use_decimal=True)
    except simplejson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON: {exc}", code="structure") from None
    except RecursionError:  # simplejson parses nested values recursively
        raise BadRequest("Malformed JSON: nested too deeply", code="too-costly") from None


def _has_float(data: dict[str, Any] | list[Any]) -> bool:
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            if isinstance(item, float):
                return True
            if isinstance(item, dict | list):
                stack.append(item)
    return False


def dumps(data: Any, *, pretty: bool = False) -> bytes:
    """Serialize to UTF-8 JSON bytes.

    Decimals are written as their own text (``str``, as simplejson writes them) by orjson too, in
    a fraction of simplejson's time; but where floats sit beside them simplejson keeps writing it
    all, since the two spell some floats differently (``1e-07`` and ``1e-7``)."""
    try:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 if pretty else 0)
    except TypeError:
        pass
    if not pretty and not (isinstance(data, dict | list) and _has_float(data)) and not isinstance(data, float):
        try:
            return orjson.dumps(data, default=_decimal_text)
        except TypeError:
            pass
    text: str = simplejson.dumps(
        data,
        use_decimal=True,
        ensure_ascii=False,
        separators=(",", ":") if not pretty else None,
        indent=2 if pretty else None,
    )
    return text.encode()


def _decimal_text(value: Any) -> orjson.Fragment:
    """A Decimal's JSON number, as simplejson writes it (anything else is not ours to write)."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


__all__ = ["Decimal", "dumps", "loads"]

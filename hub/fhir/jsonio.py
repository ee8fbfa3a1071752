"""JSON in and out, fast where possible and exact where FHIR needs it.

FHIR decimals keep their precision (``1.50`` is not ``1.5``), so a body whose numbers a float
cannot hold exactly is parsed with :class:`decimal.Decimal` (simplejson); everything else takes the
orjson fast path. Output takes orjson unless the data carries Decimals.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import orjson
import simplejson

from hub.fhir.errors import BadRequest

# A number literal that a float would not round-trip: a fraction ending in 0, a long fraction,
# a long mantissa, or an exponent. (Digits inside strings may trigger it too: that only costs speed.)
_INEXACT = re.compile(rb"\d\.\d*0(?![\d.])|\.\d{15,}|\d{16,}|\d[eE][+-]?\d")


def loads(body: bytes | str) -> Any:
    """Parse JSON; raises :class:`BadRequest` naming the position of a syntax error."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        if _INEXACT.search(raw):
            return simplejson.loads(raw, use_decimal=True)
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, simplejson.JSONDecodeError) as exc:
        raise BadRequest(f"Malformed JSON: {exc}", code="structure") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"Body is not valid UTF-8: {exc}", code="structure") from None
    except RecursionError:  # the Decimal path (simplejson) parses recursively
        raise BadRequest("Malformed JSON: nested too deeply", code="too-costly") from None


def dumps(data: Any, *, pretty: bool = False) -> bytes:
    """Serialize to UTF-8 JSON bytes."""
    try:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 if pretty else 0)
    except TypeError:
        return simplejson.dumps(
            data, use_decimal=True, ensure_ascii=False, separators=(",", ":") if not pretty else None,
            indent=2 if pretty else None,
        ).encode()


__all__ = ["Decimal", "dumps", "loads"]

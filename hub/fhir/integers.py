"""Strict integers from request text: ASCII digits only, bounded to what the databases hold.

``str.isdigit()`` accepts superscripts (``¹``) and other scripts' digits that ``int()`` rejects or
reads differently (``int('１２')`` is 12), and Python's ints are unbounded while a BIGINT is not.
Every integer a client sends in a URL (``_count``, ``_offset``, ``_snapshot``, ``_cursor``, version
ids, ETags) goes through here so that none of them can reach the database malformed.
"""

from __future__ import annotations

import re

from hub.fhir.errors import BadRequest

#: The largest value a PostgreSQL BIGINT (and an SQLite INTEGER) holds.
MAX_BIGINT = 2**63 - 1

_DIGITS = re.compile(r"[0-9]{1,19}")


def to_int(text: str, maximum: int = MAX_BIGINT) -> int | None:
    """``text`` as a non-negative integer of ASCII digits no larger than ``maximum``; None otherwise."""
    if not isinstance(text, str) or not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def parse_int(text: str, name: str, *, maximum: int = MAX_BIGINT, hint: str = "a non-negative integer") -> int:
    """``text`` as a non-negative integer, or a 400 naming the parameter."""
    value = to_int(text, maximum)
    if value is None:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise BadRequest(
            f"{name} must be {hint} (ASCII digits, at most {maximum}), not '{shown}'", code="value", expression=name
        )
    return value

"""Parsing the small, shared request parameters: ``_count``, instants for ``_since``/``_at``."""

from __future__ import annotations

from hub.fhir.errors import BadRequest
from hub.fhir.integers import parse_int
from hub.fhir.normalize import date_range


def parse_count(value: str | None, default: int, maximum: int) -> int:
    """``_count``: a non-negative integer, capped at the server maximum."""
    if value is None or value == "":
        return default
    return min(parse_int(value, "_count"), maximum)


def parse_instant_param(value: str, name: str, *, upper: bool = False) -> int:
    """An instant/date parameter (``_since``, ``_at``) as µs; ``upper`` takes the end of a partial date."""
    try:
        low, high = date_range(value, "dateTime")
    except BadRequest:
        raise BadRequest(f"{name} must be a FHIR instant or date, not '{value}'", expression=name) from None
    return high if upper else low

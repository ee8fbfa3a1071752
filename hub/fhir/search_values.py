"""Parsing the small, shared request parameters: ``_count``, instants for ``_since``/``_at``."""

from __future__ import annotations

from datetime import datetime

from hub.fhir.errors import BadRequest
from hub.fhir.instants import from_datetime


def parse_count(value: str | None, default: int, maximum: int) -> int:
    """``_count``: a non-negative integer, capped at the server maximum."""
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise BadRequest(f"_count must be a non-negative integer, not '{value}'", expression="_count")
    return min(int(value), maximum)


def parse_instant_param(value: str, name: str, *, upper: bool = False) -> int:
    """An instant/date parameter (``_since``, ``_at``) as µs; ``upper`` takes the end of a partial date."""
    try:
        from hub.fhir.normalize import date_range
    except ImportError:  # pragma: no cover - normalize is part of the package
        date_range = None
    if date_range is not None:
        try:
            low, high = date_range(value, "dateTime")
        except BadRequest:
            raise BadRequest(f"{name} must be a FHIR instant or date, not '{value}'", expression=name) from None
        return high if upper else low
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be a FHIR instant or date, not '{value}'", expression=name) from None
    return from_datetime(parsed)

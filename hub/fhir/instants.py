"""Instants as the hub keeps them: integer microseconds since the Unix epoch, UTC.

The database stores ``last_updated`` and date index bounds as such integers (exact, sortable, the
same on SQLite and PostgreSQL); ``meta.lastUpdated`` carries the same instant as an ISO string.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Lowest / highest instant (µs since epoch) used for open-ended date ranges.
DATE_MIN = -62135596800000000  # 0001-01-01T00:00:00Z
DATE_MAX = 253402300799999999  # 9999-12-31T23:59:59.999999Z


def now_us() -> int:
    """The current instant in µs; ``time.time_ns`` keeps full resolution."""
    return time.time_ns() // 1000


def to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def to_iso(us: int) -> str:
    """``2026-11-23T14:50:00.123456Z``: an xs:dateTime with full precision, as FHIR's instant allows."""
    d = to_datetime(us)  # as strftime("%Y-%m-%dT%H:%M:%S.%fZ") writes it (the year unpadded), 10× faster
    return f"{d.year}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond:06d}Z"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def to_http_date(us: int) -> str:
    """RFC 9110 date for ``Last-Modified``: what ``email.utils.format_datetime(..., usegmt=True)``
    writes, without its detour through a time tuple (2% of a read's CPU)."""
    d = to_datetime(us)
    return (
        f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d} "
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} GMT"
    )


def from_datetime(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

"""Value normalisation shared by index extraction and search, so both sides agree exactly.

Strings are folded the way ``:contains`` and the default string match need them; dates become
an inclusive ``(low, high)`` range of integer microseconds since the epoch (UTC), whose width is
the precision of the value: ``2021`` covers the whole year, ``2021-03-04T10:15`` one minute. The
search side parses its *values* with the same functions, so a malformed date raises
:class:`~hub.fhir.errors.BadRequest`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date
from decimal import Decimal
from typing import Any

from hub.fhir.errors import BadRequest
from hub.fhir.instants import DATE_MAX, DATE_MIN

#: Longest normalised text kept in an index column (``String(255)``).
MAX_TEXT = 255

_US = 1_000_000
_DAY_US = 86_400 * _US
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# FHIR date / dateTime / instant at any precision; minutes without seconds are accepted because
# search values may be written that way. A time needs hours *and* minutes.
_DATE_RE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?",
    re.ASCII,
)


def normalize_string(value: str) -> str:
    """Case-folded, accents removed (NFKD), whitespace folded to single spaces, at most 255 chars.

    ``casefold`` rather than ``lower`` so that e.g. "Straße" matches "strasse".
    """
    if not value.isascii():
        value = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))
    return " ".join(value.casefold().split())[:MAX_TEXT]


def _bad(value: object) -> BadRequest:
    return BadRequest(f"Invalid date/time value: {value!r}", code="value")


@functools.lru_cache(maxsize=16384)
def _instant_range(value: str) -> tuple[int, int]:
    """(low, high) in µs for one date/dateTime/instant string; cached because values repeat a lot."""
    m = _DATE_RE.fullmatch(value)
    if m is None:
        raise _bad(value)
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    year = int(y)
    try:
        if mo is None:  # year precision
            if year < 1:
                raise ValueError
            low = (date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_US
            high = DATE_MAX if year == 9999 else (date(year + 1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_US - 1
            return low, high
        month = int(mo)
        if d is None:  # year-month precision
            low = (date(year, month, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_US
            if month == 12:
                high = DATE_MAX if year == 9999 else (date(year + 1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_US - 1
            else:
                high = (date(year, month + 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_US - 1
            return low, high
        day_us = (date(year, month, int(d)).toordinal() - _EPOCH_ORDINAL) * _DAY_US
    except ValueError:
        raise _bad(value) from None
    if hh is None:  # date precision (no timezone possible: taken as UTC)
        return day_us, day_us + _DAY_US - 1
    hour, minute = int(hh), int(mi)
    second = int(ss) if ss is not None else 0
    if hour > 23 or minute > 59 or second > 60:
        raise _bad(value)
    second = min(second, 59)  # a leap second is folded into the second before it
    offset = 0
    if tz is not None and tz != "Z":
        oh, om = int(tz[1:3]), int(tz[4:6])
        if oh > 14 or om > 59:
            raise _bad(value)
        offset = (oh * 3600 + om * 60) * (-1 if tz[0] == "-" else 1)
    low = day_us + (hour * 3600 + minute * 60 + second - offset) * _US
    if ss is None:
        width = 60 * _US
    elif frac is None:
        width = _US
    else:
        digits = frac[:6]
        low += int(digits.ljust(6, "0"))
        width = 10 ** (6 - len(digits))
    return max(low, DATE_MIN), min(low + width - 1, DATE_MAX)


def _period_range(value: dict[str, Any]) -> tuple[int, int]:
    start, end = value.get("start"), value.get("end")
    if not isinstance(start, str) and not isinstance(end, str):
        raise BadRequest("Period without start or end", code="value")
    low = _instant_range(start)[0] if isinstance(start, str) else DATE_MIN
    high = _instant_range(end)[1] if isinstance(end, str) else DATE_MAX
    return low, high


def _timing_range(value: dict[str, Any]) -> tuple[int, int]:
    ranges = [_instant_range(e) for e in value.get("event") or () if isinstance(e, str)]
    repeat = value.get("repeat")
    if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
        ranges.append(_period_range(repeat["boundsPeriod"]))
    if not ranges:
        raise BadRequest("Timing without event or boundsPeriod", code="value")
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def date_range(value: str | dict[str, Any], fhir_type: str | None = None) -> tuple[int, int]:
    """Inclusive (low, high) µs since epoch UTC for a date, dateTime, instant, Period or Timing.

    ``fhir_type`` may be None: strings are then read as date/dateTime/instant and objects as
    Period (start/end) or Timing (event/repeat). Values without a timezone are taken as UTC.
    Raises :class:`BadRequest` for anything that is not a valid FHIR date at some precision.
    """
    if isinstance(value, str):
        if fhir_type in (None, "date", "dateTime", "instant", "string"):
            return _instant_range(value)
    elif isinstance(value, dict):
        if fhir_type == "Period" or (fhir_type is None and ("start" in value or "end" in value)):
            return _period_range(value)
        if fhir_type == "Timing" or (fhir_type is None and ("event" in value or "repeat" in value)):
            return _timing_range(value)
    raise _bad(value)


def to_float(value: Any) -> float | None:
    """A JSON number (int, float or Decimal, never bool) as float; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    return None


__all__ = ["MAX_TEXT", "date_range", "normalize_string", "to_float"]

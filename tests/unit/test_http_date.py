"""``Last-Modified`` dates are what ``email.utils.format_datetime(..., usegmt=True)`` writes, and
ISO instants what ``strftime`` writes."""

from __future__ import annotations

import random
from email.utils import format_datetime

from hub.fhir.instants import DATE_MAX, DATE_MIN, to_datetime, to_http_date, to_iso


def _instants() -> list[int]:
    rng = random.Random(21)
    instants = [0, -1, 1, 999_999, 1_000_000, DATE_MIN, DATE_MAX, 1_795_000_000_123_456, -50_000_000_000_000_000]
    instants += [rng.randrange(DATE_MIN, DATE_MAX) for _ in range(5000)]
    instants += [rng.randrange(0, 4_000_000_000_000_000) for _ in range(5000)]
    return instants


def test_iso_instants_match_strftime() -> None:
    for us in _instants():
        assert to_iso(us) == to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), us


def test_http_dates_match_the_standard_library() -> None:
    for us in _instants():
        expected = format_datetime(to_datetime(us).replace(microsecond=0), usegmt=True)
        assert to_http_date(us) == expected, us

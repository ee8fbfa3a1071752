"""Tests for hub.fhir.normalize: string folding and FHIR date precision ranges."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hub.fhir.errors import BadRequest
from hub.fhir.normalize import MAX_TEXT, date_range, normalize_string, to_float
from hub.store.tables import DATE_MAX, DATE_MIN


def us(*args: int) -> int:
    """µs since epoch of a UTC datetime."""
    dt = datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jansen", "jansen"),
        ("  van  der\tGiessen \n", "van der giessen"),
        ("Çelik-Ünal", "celik-unal"),
        ("Ŝtraße", "strasse"),
        ("Zoë Ångström", "zoe angstrom"),
        ("ﬁets", "fiets"),  # NFKD compatibility ligature
        ("", ""),
    ],
)
def test_normalize_string(raw: str, expected: str) -> None:
    assert normalize_string(raw) == expected


def test_normalize_string_truncates() -> None:
    assert normalize_string("A" * 1000) == "a" * MAX_TEXT


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2021", us(2021, 1, 1), us(2022, 1, 1) - 1),
        ("2024-02", us(2024, 2, 1), us(2024, 3, 1) - 1),
        ("2023-12", us(2023, 12, 1), us(2024, 1, 1) - 1),
        ("1934-04-28", us(1934, 4, 28), us(1934, 4, 29) - 1),
        ("2021-03-04T10:15", us(2021, 3, 4, 10, 15), us(2021, 3, 4, 10, 16) - 1),
        ("2021-03-04T10:15Z", us(2021, 3, 4, 10, 15), us(2021, 3, 4, 10, 16) - 1),
        ("2021-03-04T10:15:30", us(2021, 3, 4, 10, 15, 30), us(2021, 3, 4, 10, 15, 31) - 1),
        ("2021-03-04T10:15:30+01:00", us(2021, 3, 4, 9, 15, 30), us(2021, 3, 4, 9, 15, 31) - 1),
        ("2021-03-04T00:15:30-05:30", us(2021, 3, 4, 5, 45, 30), us(2021, 3, 4, 5, 45, 31) - 1),
        ("2021-03-04T10:15:30.5Z", us(2021, 3, 4, 10, 15, 30, 500000), us(2021, 3, 4, 10, 15, 30, 599999)),
        ("2021-03-04T10:15:30.123Z", us(2021, 3, 4, 10, 15, 30, 123000), us(2021, 3, 4, 10, 15, 30, 123999)),
        (
            "2021-03-04T10:15:30.1234567Z",
            us(2021, 3, 4, 10, 15, 30, 123456),
            us(2021, 3, 4, 10, 15, 30, 123456),
        ),
        ("1969-12-31T23:59:59Z", -1_000_000, -1),
        ("9999", us(9999, 1, 1), DATE_MAX),
        ("9999-12-31", us(9999, 12, 31), DATE_MAX),
        ("0001-01-01", DATE_MIN, DATE_MIN + 86_400_000_000 - 1),
    ],
)
def test_date_range_precision(value: str, low: int, high: int) -> None:
    assert date_range(value, "dateTime") == (low, high)
    assert date_range(value) == (low, high)


def test_date_range_clamps_to_the_representable_range() -> None:
    assert date_range("0001-01-01T00:00:00+01:00")[0] == DATE_MIN


@pytest.mark.parametrize(
    "value",
    [
        "",
        "21",
        "2021-13",
        "2021-00",
        "2021-02-30",
        "2021-1-01",
        "2021-01-01T10",
        "2021-01-01T25:00",
        "2021-01-01T10:61",
        "2021-01-01T10:00:00+15:00",
        "2021-01-01 10:00",
        "abc",
        "2021-01-01T10:00:00.Z",
        "0000",
    ],
)
def test_date_range_rejects_malformed(value: str) -> None:
    with pytest.raises(BadRequest):
        date_range(value, "dateTime")


def test_period_ranges() -> None:
    assert date_range({"start": "2021", "end": "2021-06"}, "Period") == (us(2021, 1, 1), us(2021, 7, 1) - 1)
    assert date_range({"start": "2021-01-01"}, "Period") == (us(2021, 1, 1), DATE_MAX)
    assert date_range({"end": "2021-01-01"}) == (DATE_MIN, us(2021, 1, 2) - 1)
    with pytest.raises(BadRequest):
        date_range({}, "Period")
    with pytest.raises(BadRequest):
        date_range({"start": "yesterday"}, "Period")


def test_timing_ranges() -> None:
    timing = {"event": ["2021-05-01", "2021-03-01T10:00:00Z"]}
    assert date_range(timing, "Timing") == (us(2021, 3, 1, 10), us(2021, 5, 2) - 1)
    bounded = {"repeat": {"boundsPeriod": {"start": "2024-01-01", "end": "2024-03-01"}, "frequency": 1}}
    assert date_range(bounded) == (us(2024, 1, 1), us(2024, 3, 2) - 1)
    with pytest.raises(BadRequest):
        date_range({"repeat": {"frequency": 1}}, "Timing")


def test_date_range_rejects_wrong_shapes() -> None:
    with pytest.raises(BadRequest):
        date_range(12, None)  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        date_range("2021", "Quantity")


def test_to_float() -> None:
    assert to_float(Decimal("1.50")) == 1.5
    assert to_float(3) == 3.0
    assert to_float(True) is None
    assert to_float("1") is None

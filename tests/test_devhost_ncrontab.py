"""Tests of the NCRONTAB parser used by the local host's timer triggers."""

from __future__ import annotations

import datetime as dt

import pytest

from devhost.ncrontab import ScheduleError, parse_schedule

UTC = dt.UTC


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("* * * * * *", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 1, 0, 0, 1)),
    ("0 */15 * * * *", at(2026, 1, 1, 10, 7, 30), at(2026, 1, 1, 10, 15, 0)),
    ("0 */15 * * * *", at(2026, 1, 1, 10, 45, 0), at(2026, 1, 1, 11, 0, 0)),
    ("30 5 9 * * *", at(2026, 1, 1, 9, 5, 30), at(2026, 1, 2, 9, 5, 30)),
    ("0 0 9-17/4 * * *", at(2026, 1, 1, 13, 0, 1), at(2026, 1, 1, 17, 0, 0)),
    ("0,30 * * * * *", at(2026, 1, 1, 0, 0, 10), at(2026, 1, 1, 0, 0, 30)),
    ("5/20 * * * * *", at(2026, 1, 1, 0, 0, 26), at(2026, 1, 1, 0, 0, 45)),
    ("0 0 0 * * 1", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 5, 0, 0, 0)),  # 2026-01-05 is a Monday
    ("0 0 0 * * 0", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 4, 0, 0, 0)),  # Sunday is 0
    ("0 0 0 29 2 *", at(2026, 3, 1, 0, 0, 0), at(2028, 2, 29, 0, 0, 0)),
    ("0 0 12 31 * *", at(2026, 4, 1, 0, 0, 0), at(2026, 5, 31, 12, 0, 0)),
    ("0 0 0 1 1 *", at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1, 0, 0, 0)),
])
def test_next_after(expression: str, after: dt.datetime, expected: dt.datetime) -> None:
    assert parse_schedule(expression).next_after(after) == expected


def test_next_after_drops_microseconds() -> None:
    schedule = parse_schedule("* * * * * *")
    assert schedule.next_after(at(2026, 1, 1, 0, 0, 0).replace(microsecond=999)) == at(2026, 1, 1, 0, 0, 1)


def test_next_after_keeps_time_zone() -> None:
    zone = dt.timezone(dt.timedelta(hours=2))
    found = parse_schedule("0 0 8 * * *").next_after(dt.datetime(2026, 1, 1, 9, 0, tzinfo=zone))
    assert found == dt.datetime(2026, 1, 2, 8, 0, tzinfo=zone)


def test_day_and_weekday_both_match() -> None:
    # Friday the 13th: 2026-02-13 is the first one after January 2026.
    schedule = parse_schedule("0 0 0 13 * 5")
    assert schedule.next_after(at(2026, 1, 1)) == at(2026, 2, 13)


def test_fields_parsed() -> None:
    schedule = parse_schedule("0 1-3,10 */6 * * *")
    assert schedule.seconds == {0}
    assert schedule.minutes == {1, 2, 3, 10}
    assert schedule.hours == {0, 6, 12, 18}
    assert schedule.weekdays == set(range(7))


@pytest.mark.parametrize(("expression", "message"), [
    ("0 */5 * * *", "has 5 fields"),
    ("60 * * * * *", "outside 0-59"),
    ("* * 24 * * *", "outside 0-23"),
    ("* * * 0 * *", "outside 1-31"),
    ("* * * * 13 *", "outside 1-12"),
    ("* * * * * 7", "outside 0-6"),
    ("* * * * * MON", "is not a number"),
    ("* 10-5 * * * *", "runs backwards"),
    ("*/0 * * * * *", "outside 1-60"),
    ("0 0 0 30 2 *", "never fires"),
])
def test_invalid_expression(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression)

"""A parser for the six-field NCRONTAB schedules of Azure Functions timer triggers.

Fields, in order: second (0-59), minute (0-59), hour (0-23), day of month (1-31), month (1-12),
day of week (0-6, Sunday is 0). Each field is `*`, a number, a range `a-b`, a step `*/n`, `a-b/n`
or `a/n` (from a to the field's maximum), or a comma-separated list of these. Names of days and
months are not supported.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from shared.errors import StackhookError

_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
# Weekdays and leap years repeat every 28 years between 1901 and 2099, so a search over 28 years
# finds every day that a schedule can match in that span. `parse_schedule` already rejects
# schedules whose days never exist, such as "0 0 0 31 2 *".
_SEARCH_DAYS = 366 * 28 + 1


class ScheduleError(StackhookError):
    """An NCRONTAB expression is invalid."""


def _parse_number(text: str, name: str, low: int, high: int, expression: str) -> int:
    if not text.isdigit():
        raise ScheduleError(f"Invalid NCRONTAB expression {expression!r}: {text!r} in the {name} field "
                            f"is not a number from {low} to {high}.")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"Invalid NCRONTAB expression {expression!r}: {value} in the {name} field "
                            f"is outside {low}-{high}.")
    return value


def _parse_field(text: str, name: str, low: int, high: int, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _parse_number(step_text, name, 1, high - low + 1 if high > low else 1, expression)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _parse_number(first, name, low, high, expression)
            end = _parse_number(last, name, low, high, expression)
            if start > end:
                raise ScheduleError(f"Invalid NCRONTAB expression {expression!r}: range {base!r} in the "
                                    f"{name} field runs backwards; write the smaller number first.")
        else:
            start = _parse_number(base, name, low, high, expression)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed NCRONTAB schedule; `next_after` returns its occurrences."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    def matches(self, moment: dt.datetime) -> bool:
        """Return whether the schedule fires at `moment` (whole seconds)."""
        return (moment.second in self.seconds and moment.minute in self.minutes and moment.hour in self.hours
                and self._matches_day(moment.date()))

    def _matches_day(self, day: dt.date) -> bool:
        # NOTE: day of month and day of week must both match. Classic Unix cron matches either one
        # when both are restricted; this host assumes NCrontab does not, which has not been checked.
        weekday = (day.weekday() + 1) % 7
        return day.month in self.months and day.day in self.days and weekday in self.weekdays

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """Return the first occurrence strictly after `moment`, in the same time zone."""
        start = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
        day = start.date()
        for offset in range(_SEARCH_DAYS):
            if offset:
                day += dt.timedelta(days=1)
            if not self._matches_day(day):
                continue
            earliest = start.time() if offset == 0 else dt.time(0, 0, 0)
            found = self._first_time_from(earliest)
            if found is not None:
                return dt.datetime.combine(day, found, tzinfo=moment.tzinfo)
        raise ScheduleError(f"NCRONTAB expression {self.expression!r} never fires: no day matches its day of "
                            "month, month and day of week together.")

    def _first_time_from(self, earliest: dt.time) -> dt.time | None:
        for hour in sorted(value for value in self.hours if value >= earliest.hour):
            for minute in sorted(self.minutes):
                if (hour, minute) < (earliest.hour, earliest.minute):
                    continue
                for second in sorted(self.seconds):
                    if (hour, minute, second) >= (earliest.hour, earliest.minute, earliest.second):
                        return dt.time(hour, minute, second)
        return None


def parse_schedule(expression: str) -> CronSchedule:
    """Parse a six-field NCRONTAB expression, seconds first; raise `ScheduleError` when it is invalid."""
    fields = expression.split()
    if len(fields) != len(_FIELDS):
        raise ScheduleError(f"Invalid NCRONTAB expression {expression!r}: it has {len(fields)} fields, "
                            "expected 6 (second minute hour day month day-of-week), such as '0 */5 * * * *'.")
    parsed = [_parse_field(text, name, low, high, expression)
              for text, (name, low, high) in zip(fields, _FIELDS, strict=True)]
    schedule = CronSchedule(expression, *parsed)
    if not any(day <= calendar.monthrange(2024, month)[1] for month in schedule.months for day in schedule.days):
        raise ScheduleError(f"NCRONTAB expression {expression!r} never fires: none of its months has "
                            "any of its days of month.")
    return schedule

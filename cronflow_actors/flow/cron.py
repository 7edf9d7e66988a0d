"""Cron expressions: 5 fields (minute hour day month weekday) or 6 (with seconds first), UTC.

Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b``, and names
for months (``jan``) and weekdays (``sun``; 0 and 7 are Sunday). When both day of month and day of
week are restricted, a day matches if either does (as in classic cron).
"""

from __future__ import annotations

import datetime as dt

import msgspec

__all__ = ["CronExpression"]

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def _number(text: str, names: dict[str, int], what: str, low: int, high: int) -> int:
    value = names.get(text.lower()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise ValueError(f"{what} value {text!r} is not in {low}-{high}")
    return value


def _field(text: str, what: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"{what} has an empty list item in {text!r}")
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"{what} step {step_text!r} must be a whole number >= 1")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _number(a, names, what, low, high), _number(b, names, what, low, high)
            if first > last:
                raise ValueError(f"{what} range {span!r} runs backwards")
        else:
            first = _number(span, names, what, low, high)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


class CronExpression(msgspec.Struct, frozen=True):
    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        if not isinstance(text, str):
            raise ValueError(f"a cron expression is a string, got {text!r}")
        parts = text.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        elif len(parts) != 6:
            raise ValueError(
                f"cron expression {text!r} has {len(parts)} fields; it needs 5 "
                "(minute hour day month weekday) or 6 (second first)"
            )
        try:
            sets = [
                _field(part, what, low, high, names)
                for part, (what, low, high, names) in zip(parts, _FIELDS, strict=True)
            ]
        except ValueError as error:
            raise ValueError(f"cron expression {text!r}: {error}") from None
        weekdays = frozenset(0 if d == 7 else d for d in sets[5])
        return cls(
            text=text,
            seconds=sets[0],
            minutes=sets[1],
            hours=sets[2],
            days=sets[3],
            months=sets[4],
            weekdays=weekdays,
            days_restricted=parts[3] != "*",
            weekdays_restricted=parts[5] != "*",
        )

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def next_after(self, when: float) -> float:
        """The first tick strictly after ``when`` (epoch seconds)."""
        start = dt.datetime.fromtimestamp(int(when) + 1, tz=dt.UTC)
        day = start.date()
        for _ in range(366 * 5):
            if self._day_matches(day):
                first = start if day == start.date() else None
                for hour in sorted(self.hours):
                    if first is not None and hour < first.hour:
                        continue
                    for minute in sorted(self.minutes):
                        if first is not None and (hour, minute) < (first.hour, first.minute):
                            continue
                        for second in sorted(self.seconds):
                            moment = dt.datetime(
                                day.year, day.month, day.day, hour, minute, second, tzinfo=dt.UTC
                            )
                            if moment >= start:
                                return moment.timestamp()
            day += dt.timedelta(days=1)
        raise ValueError(f"cron expression {self.text!r} never fires")

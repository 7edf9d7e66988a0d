"""Cron schedules: when a ``Flow.on_schedule`` trigger fires, in which time zone, and what
happens to the ticks missed while no runtime was running.

The expressions are evaluated by cronsim (BSD-3-Clause), chosen over croniter (MIT). cronsim
sets out to match Debian's cron and does where a durable scheduler needs it: the day-of-month/
day-of-week rule is cron's own (below), and at the autumn DST change a 02:30 job runs once,
where croniter runs it twice. It also has ``L``, ``LW``, ``5L``, ``MON#2`` and a leading seconds
field, ships type hints, has no dependencies, and is actively maintained for Healthchecks, which
runs it in production. croniter was declared abandoned in 2024-25 before pallets-eco took it
over, has no type hints and needs python-dateutil. What cronsim lacks: the ``@`` macros, which we
expand as crontab(5) defines them, and ``15W`` (nearest weekday), which is refused.

What a user may rely on:

- 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; names such as
  ``jan`` and ``mon``; ``*``, ``a-b``, ``*/n``, ``a-b/n``, lists; ``L`` and ``LW`` as the day of
  the month; ``5L`` (last Friday) and ``MON#2`` (second Monday) as the day of the week.
- ``@yearly`` (= ``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (= ``@midnight``) and
  ``@hourly``, as in crontab(5).
- Day of month and day of week, as cron itself does it: when neither field starts with ``*``
  the day matches if either matches (``0 0 1,15 * 5``: the 1st, the 15th and every Friday);
  when one of them starts with ``*`` both must match. So ``0 0 */2 * 1`` is the Mondays that
  fall on an odd day of the month, not every odd day plus every Monday. crontab(5) counts a field
  as "restricted" only if it contains no ``*``.
- Daylight saving time: the expression is read in the schedule's time zone (IANA name,
  ``zoneinfo``). For an expression with a fixed minute and hour, such as ``30 2 * * *``: when
  the clocks go forward, a time that does not exist that night runs right after the jump (03:00
  in Europe/Paris); when they go back, a time that exists twice runs once, at its first
  occurrence. Expressions whose minute or hour starts with ``*`` (``*/30 * * * *``,
  ``@hourly``) follow the real clock: they fire in both passes of a repeated hour and have no
  ticks in a skipped one. The special handling is Debian's and applies to 5-field expressions;
  a 6-field expression whose seconds field is ``0`` is read as its 5 fields, so it gets the same
  handling. Other 6-field expressions follow the real clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cronsim import CronSim, CronSimError

__all__ = ["CatchUp", "CronExpression", "CronSchedule", "time_zone"]

# crontab(5)'s macros, as cron expands them.
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FORMAT = (
    "5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, "
    f"or one of {', '.join(_MACROS)}"
)
# What each field takes, for the error that names a bad one.
_FIELDS = {
    "second": "0-59",
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31 (a day the chosen months have), L or LW",
    "month": "1-12 or jan-dec",
    "day-of-week": "0-7 or sun-sat (0 and 7 are Sunday), 5L (last Friday), mon#2",
}
# Local time shifts by at most two hours at a DST change; a window this wide around a tick
# found backwards always holds the ticks found forwards (see CronExpression.latest).
_DST_MARGIN = 6 * 3600.0


def time_zone(name: str) -> dt.tzinfo:
    """The zone of an IANA name (``"Europe/Paris"``, ``"UTC"``); ``ValueError`` otherwise."""
    if name == "UTC":
        return dt.UTC
    if not isinstance(name, str) or not name:
        raise ValueError(f"a time zone is an IANA name such as 'Europe/Paris', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris', "
            "'America/New_York' or 'UTC'"
        ) from None


class CronExpression(msgspec.Struct, frozen=True):
    """A checked cron expression. ``text`` is as written; ``fields`` is what is evaluated."""

    text: str
    fields: str

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Check ``text``; ``ValueError`` says what is wrong with it."""
        if not isinstance(text, str):
            raise ValueError(f"a cron expression is a string, got {text!r}")
        fields = " ".join(text.split())
        if fields.startswith("@"):
            if fields.lower() == "@reboot":
                raise ValueError(
                    "'@reboot' is not a schedule; trigger the flow yourself after the runtime "
                    "starts"
                )
            if fields.lower() not in _MACROS:
                raise ValueError(f"unknown macro {text!r}; a cron expression has {_FORMAT}")
            fields = _MACROS[fields.lower()]
        parts = fields.split()
        if len(parts) not in (5, 6):
            raise ValueError(f"{text!r} has {len(parts)} fields; a cron expression has {_FORMAT}")
        if len(parts) == 6 and parts[0] == "0":
            fields = " ".join(parts[1:])  # the same ticks, and Debian's DST handling (see above)
        reference = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        try:
            next(CronSim(fields, reference))
        except CronSimError as error:
            raise ValueError(_explain(text, parts, str(error))) from None
        except StopIteration:
            raise ValueError(
                f"{text!r} never fires (no matching day in 50 years); check the day fields"
            ) from None
        return cls(text=text, fields=fields)

    def next_after(self, when: float, zone: dt.tzinfo = dt.UTC) -> float:
        """The first tick strictly after ``when`` (epoch seconds), or ``math.inf`` if there is
        none in the next 50 years."""
        return next(self._forward(when, zone), math.inf)

    def between(self, after: float, until: float, zone: dt.tzinfo) -> Iterator[float]:
        """The ticks in ``(after, until]``, oldest first."""
        for tick in self._forward(after, zone):
            if tick > until:
                return
            yield tick

    def latest(self, after: float, until: float, zone: dt.tzinfo, count: int) -> list[float]:
        """The last ``count`` ticks in ``(after, until]``, oldest first, without walking every
        tick since ``after`` (a seconds schedule down for a week has 600,000)."""
        if count < 1:
            return []
        # Step back ``count`` ticks from ``until``, then walk forward from a little before: a
        # backward walk may place a tick differently around a DST change, a forward walk is how
        # ticks are fired.
        start = self._instant(until, zone) + dt.timedelta(seconds=1)
        backwards = CronSim(self.fields, start, reverse=True)
        anchor = after
        for _, moment in zip(range(count), backwards, strict=False):
            anchor = moment.timestamp()
            if anchor <= after:
                break
        ticks = list(self.between(max(after, anchor - _DST_MARGIN), until, zone))
        return ticks[-count:]

    def _forward(self, after: float, zone: dt.tzinfo) -> Iterator[float]:
        moments = CronSim(self.fields, self._instant(after, zone))
        last = after
        for moment in moments:
            tick = moment.timestamp()
            # After a start inside a repeated hour, a fixed-time job's first answer may be its
            # first occurrence, which is already past: skip it.
            if tick > last:
                last = tick
                yield tick

    @staticmethod
    def _instant(when: float, zone: dt.tzinfo) -> dt.datetime:
        return dt.datetime.fromtimestamp(math.floor(when), tz=dt.UTC).astimezone(zone)


def _explain(text: str, parts: list[str], reason: str) -> str:
    """cronsim says which field is bad ("Bad minute"); say what it holds and what it takes."""
    names = list(_FIELDS)[6 - len(parts) :]
    field = reason.removeprefix("Bad ").strip().rstrip(".").lower()
    if field in names:
        value = parts[names.index(field)]
        return (
            f"{text!r}: the {field} field {value!r} is not valid; it takes {_FIELDS[field]}, "
            "with ranges a-b, steps */n or a-b/n and lists a,b"
        )
    return f"{text!r}: {reason.rstrip('.').lower()}; a cron expression has {_FORMAT}"


class CatchUp(enum.StrEnum):
    """What a schedule does about the ticks it missed while no runtime was running."""

    LATEST = "latest"
    """Start one run, for the most recent missed tick."""
    NONE = "none"
    """Start nothing; wait for the next tick."""
    ALL = "all"
    """Start a run for every missed tick, oldest first, up to a limit (the most recent ones)."""

    @classmethod
    def parse(cls, value: str) -> CatchUp:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(repr(policy.value) for policy in cls)
            raise ValueError(f"catch_up must be one of {choices}, got {value!r}") from None


class CronSchedule(msgspec.Struct, frozen=True):
    """One ``on_schedule`` trigger: an expression, the zone it is read in, a catch-up policy."""

    expression: CronExpression
    timezone: str = "UTC"
    catch_up: CatchUp = CatchUp.LATEST

    @property
    def text(self) -> str:
        return self.expression.text

    @property
    def zone(self) -> dt.tzinfo:
        return time_zone(self.timezone)  # zoneinfo caches its zones

    def next_after(self, when: float) -> float:
        """The first tick strictly after ``when``, or ``math.inf`` if there is none."""
        return self.expression.next_after(when, self.zone)

    def latest(self, after: float, until: float, count: int) -> list[float]:
        """The last ``count`` ticks in ``(after, until]``, oldest first."""
        return self.expression.latest(after, until, self.zone, count)

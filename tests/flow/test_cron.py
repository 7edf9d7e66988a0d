"""Cron schedules: macros, the day rule, time zones and DST, catch-up after a downtime."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.flow import CronExpression, CronSchedule
from cronflow_actors.kernel import ManualClock
from cronflow_actors.runtime.schedules import CATCH_UP_LIMIT

STATE = "cronflow:schedules"


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def local(stamp: float, timezone: str = "UTC") -> str:
    """A tick as the wall clock of ``timezone`` shows it, with its offset."""
    zone = CronSchedule(CronExpression.parse("@daily"), timezone=timezone).zone
    return dt.datetime.fromtimestamp(stamp, tz=zone).strftime("%Y-%m-%d %H:%M:%S%z")


def ticks(cron: str, after: str, count: int, timezone: str = "UTC") -> list[str]:
    schedule = CronSchedule(CronExpression.parse(cron), timezone=timezone)
    found, when = [], utc(after)
    for _ in range(count):
        when = schedule.next_after(when)
        found.append(local(when, timezone))
    return found


def ticking(name: str, cron: str, **options: Any) -> cf.Flow:
    """A flow whose run outputs the tick it was started for."""
    return (
        cf.define(name)
        .on_schedule(cron, **options)
        .step("tick", lambda ctx: ctx.payload["scheduled_at"])
    )


async def started_ticks(rt: cf.Runtime, workflow: str) -> list[float]:
    snapshots = await rt.store.list_snapshots(workflow=workflow, limit=1000)
    return sorted([(await rt.wait(s.instance_id)).output for s in snapshots])


# -- expressions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("macro", "same_as", "first"),
    [
        ("@hourly", "0 * * * *", "2026-11-21 11:00:00+0000"),
        ("@daily", "0 0 * * *", "2026-11-22 00:00:00+0000"),
        ("@midnight", "0 0 * * *", "2026-11-22 00:00:00+0000"),
        ("@weekly", "0 0 * * 0", "2026-11-22 00:00:00+0000"),  # the 21st is a Saturday
        ("@monthly", "0 0 1 * *", "2026-12-01 00:00:00+0000"),
        ("@yearly", "0 0 1 1 *", "2027-01-01 00:00:00+0000"),
        ("@annually", "0 0 1 1 *", "2027-01-01 00:00:00+0000"),
        ("@Daily", "0 0 * * *", "2026-11-22 00:00:00+0000"),
    ],
)
def test_macros_are_crontabs_shorthands(macro: str, same_as: str, first: str) -> None:
    after = "2026-11-21 10:00:00"
    assert ticks(macro, after, 3) == ticks(same_as, after, 3)
    assert ticks(macro, after, 1) == [first]
    assert CronExpression.parse(macro).text == macro


def test_day_of_month_and_day_of_week_are_combined_as_cron_does() -> None:
    # A day field starting with "*" is not "restricted" (crontab(5)), so both fields must
    # match: the Mondays that fall on an odd day, not every odd day plus every Monday.
    assert ticks("0 0 */2 * 1", "2026-01-01 00:00:00", 4) == [
        "2026-01-05 00:00:00+0000",
        "2026-01-19 00:00:00+0000",
        "2026-02-09 00:00:00+0000",
        "2026-02-23 00:00:00+0000",
    ]
    # Both restricted: either matches (the 1st, the 15th, and every Friday).
    assert ticks("0 0 1,15 * fri", "2025-12-31 12:00:00", 5) == [
        "2026-01-01 00:00:00+0000",
        "2026-01-02 00:00:00+0000",
        "2026-01-09 00:00:00+0000",
        "2026-01-15 00:00:00+0000",
        "2026-01-16 00:00:00+0000",
    ]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 0 L * *", ["2026-01-31 00:00:00+0000", "2026-02-28 00:00:00+0000"]),
        ("0 0 LW * *", ["2026-01-30 00:00:00+0000", "2026-02-27 00:00:00+0000"]),
        ("0 0 * * 5L", ["2026-01-30 00:00:00+0000", "2026-02-27 00:00:00+0000"]),
        ("0 0 * * mon#2", ["2026-01-12 00:00:00+0000", "2026-02-09 00:00:00+0000"]),
        ("*/20 * * * * *", ["2026-01-01 00:00:20+0000", "2026-01-01 00:00:40+0000"]),
    ],
)
def test_last_days_nth_weekdays_and_seconds(cron: str, expected: list[str]) -> None:
    assert ticks(cron, "2026-01-01 00:00:00", 2) == expected


# -- time zones and DST ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward (29 March 2026, 02:00 -> 03:00): 02:30 does not exist that night; the
        # run starts right after the jump, at 03:00 local.
        (
            "2026-03-26 12:00:00",
            [
                "2026-03-27 02:30:00+0100",
                "2026-03-28 02:30:00+0100",
                "2026-03-29 03:00:00+0200",
                "2026-03-30 02:30:00+0200",
            ],
        ),
        # Fall back (25 October 2026, 03:00 -> 02:00): 02:30 happens twice; the run starts once,
        # at the first 02:30 (summer time), not again an hour later.
        (
            "2026-10-22 12:00:00",
            [
                "2026-10-23 02:30:00+0200",
                "2026-10-24 02:30:00+0200",
                "2026-10-25 02:30:00+0200",
                "2026-10-26 02:30:00+0100",
            ],
        ),
    ],
)
async def test_a_paris_schedule_at_0230_across_the_dst_changes(
    rt: cf.Runtime, clock: ManualClock, start: str, expected: list[str]
) -> None:
    clock.set(utc(start))
    rt.register(ticking("night", "30 2 * * *", timezone="Europe/Paris"))
    await rt.wait_idle()
    for _ in range(4 * 24):  # hour by hour, so a repeated 02:30 would be seen
        clock.advance(3600)
        await rt.wait_idle()
    fired = [local(tick, "Europe/Paris") for tick in await started_ticks(rt, "night")]
    assert fired == expected


def test_schedules_that_follow_the_real_clock_across_dst() -> None:
    # A wildcard hour is not a fixed time: both passes of the repeated hour have their ticks.
    assert ticks("*/30 * * * *", "2026-10-24 23:45:00", 4, "Europe/Paris") == [
        "2026-10-25 02:00:00+0200",
        "2026-10-25 02:30:00+0200",
        "2026-10-25 02:00:00+0100",
        "2026-10-25 02:30:00+0100",
    ]
    # A seconds field of 0 is the same schedule as its 5 fields, DST handling included.
    assert ticks("0 30 2 * * *", "2026-10-22 12:00:00", 4, "Europe/Paris") == ticks(
        "30 2 * * *", "2026-10-22 12:00:00", 4, "Europe/Paris"
    )


def test_a_start_inside_the_repeated_hour_never_gives_a_past_tick() -> None:
    # 01:20 UTC is 02:20 in the second (winter time) pass; 02:30 summer time is already past.
    assert ticks("30 2 * * *", "2026-10-25 01:20:00", 1, "Europe/Paris") == [
        "2026-10-26 02:30:00+0100"
    ]


# -- catch-up -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["30 2 * * *", "*/30 * * * *", "0 30 2 * * *", "15 1-3 * * *"])
@pytest.mark.parametrize(
    "until",
    ["2026-03-29 00:50:00", "2026-03-29 01:10:00", "2026-10-25 00:40:00", "2026-10-25 01:20:00"],
)
def test_the_latest_ticks_are_the_tail_of_a_forward_walk(cron: str, until: str) -> None:
    # latest() steps back from the end instead of walking every tick since the mark; around a
    # DST change it must still agree with the forward walk that fires ticks.
    schedule = CronSchedule(CronExpression.parse(cron), timezone="Europe/Paris")
    after = utc(until) - 5 * 86400
    walk = list(schedule.expression.between(after, utc(until), schedule.zone))
    for count in (1, 3, 200):
        assert schedule.latest(after, utc(until), count) == walk[-count:]


def test_the_latest_ticks_of_a_long_downtime_come_without_walking_it() -> None:
    schedule = CronSchedule(CronExpression.parse("* * * * * *"))  # 604,800 ticks in a week
    start = utc("2026-06-01 00:00:00")
    assert schedule.latest(start, start + 7 * 86400, 3) == [
        start + 7 * 86400 - n for n in (2, 1, 0)
    ]


@pytest.mark.parametrize(
    ("catch_up", "expected_hours"),
    [
        ("latest", [1, 5, 6]),
        ("none", [1, 6]),
        ("all", [1, 2, 3, 4, 5, 6]),
    ],
)
async def test_ticks_missed_while_the_runtime_was_down(
    tmp_path: Path, catch_up: str, expected_hours: list[int]
) -> None:
    db = tmp_path / "cron.db"
    flow = ticking("hourly", "0 * * * *", catch_up=catch_up)
    clock = ManualClock(start=utc("2026-06-01 00:00:30"))
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await rt.wait_idle()
        clock.advance(3600)  # 01:00:30: the 01:00 tick fires
        await rt.wait_idle()
    # down from 01:00:30 to 05:30: the 02:00, 03:00, 04:00 and 05:00 ticks are missed
    clock = ManualClock(start=utc("2026-06-01 05:30:00"))
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await rt.wait_idle()
        clock.advance(1800)  # 06:00: fires as usual
        await rt.wait_idle()
        fired = await started_ticks(rt, "hourly")
        mark = await rt.store.kv_get(STATE, "hourly|cron0", now=clock.now())
    assert fired == [utc(f"2026-06-01 {hour:02}:00:00") for hour in expected_hours]
    assert mark == {"handled_until": utc("2026-06-01 06:00:00")}


async def test_a_tick_missed_before_the_first_run_is_caught_up(tmp_path: Path) -> None:
    db = tmp_path / "cron.db"
    flow = ticking("daily", "@daily", timezone="Europe/Paris")
    async with cf.Runtime(
        db=db, clock=ManualClock(start=utc("2026-06-01 12:00:00")), workflows=[flow]
    ) as rt:
        await rt.wait_idle()  # stopped before its first tick: the schedule is marked as planned
    clock = ManualClock(start=utc("2026-06-04 12:00:00"))
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await rt.wait_idle()
        fired = await started_ticks(rt, "daily")
    assert [local(tick, "Europe/Paris") for tick in fired] == ["2026-06-04 00:00:00+0200"]


async def test_catch_up_all_is_capped_at_the_latest_ticks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "cron.db"
    flow = ticking("minutely", "* * * * *", catch_up="all")
    start = utc("2026-06-01 00:00:30")
    async with cf.Runtime(db=db, clock=ManualClock(start=start), workflows=[flow]) as rt:
        await rt.wait_idle()
    clock = ManualClock(start=start + 3 * 3600)  # 180 ticks missed
    with caplog.at_level(logging.WARNING, logger="cronflow_actors.runtime.schedules"):
        async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
            await rt.wait_idle()
            fired = await started_ticks(rt, "minutely")
    latest = utc("2026-06-01 03:00:00")
    assert fired == [latest - 60 * n for n in reversed(range(CATCH_UP_LIMIT))]
    assert "missed more than 100 ticks" in caplog.text


async def test_a_tick_started_before_its_mark_was_saved_is_not_started_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cron.db"
    flow = ticking("hourly", "0 * * * *", catch_up="all")
    clock = ManualClock(start=utc("2026-06-01 00:00:30"))
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await rt.wait_idle()
        clock.advance(3600)
        await rt.wait_idle()
        # as if the process died after starting the 01:00 run, before saving the mark
        await rt.store.kv_set(
            STATE, "hourly|cron0", {"handled_until": utc("2026-06-01 00:00:30")}, now=clock.now()
        )
    clock = ManualClock(start=utc("2026-06-01 01:30:00"))
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await rt.wait_idle()
        assert rt.schedules.fired == 0
        assert await started_ticks(rt, "hourly") == [utc("2026-06-01 01:00:00")]
        mark = await rt.store.kv_get(STATE, "hourly|cron0", now=clock.now())
    assert mark == {"handled_until": utc("2026-06-01 01:00:00")}


async def test_no_caller_takes_the_run_of_a_tick_before_it_fires(tmp_path: Path) -> None:
    # a tick's run id was 32 hex digits anyone could work out and start first (POST /runs): the
    # tick was then taken as started, and its run never ran (the third hostile client's H1)
    flow = ticking("hourly", "0 * * * *")
    clock = ManualClock(start=utc("2026-06-01 00:00:30"))
    tick = utc("2026-06-01 01:00:00")
    legacy = uuid.uuid5(SCHEDULES, f"hourly|cron0|{tick}").hex
    async with cf.Runtime(db=tmp_path / "cron.db", clock=clock, workflows=[flow]) as rt:
        await rt.wait_idle()
        await rt.trigger("hourly", {"scheduled_at": -1.0}, instance_id=legacy)
        clock.advance(3600)
        await rt.wait_idle()
        assert rt.schedules.fired == 1
        assert await started_ticks(rt, "hourly") == [-1.0, tick]
        assert (await rt.wait(f"tick:{legacy}")).output == tick


SCHEDULES = uuid.UUID("6c1f3a2e-8f6d-4c59-9b0e-2b8f0f7a9d11")  # schedules' namespace of run ids


async def test_ticks_that_went_by_during_a_late_wake_up_are_missed_ones(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    clock.set(utc("2026-06-01 00:00:30"))
    rt.register(ticking("late", "0 * * * *"))
    await rt.wait_idle()
    clock.advance(3 * 3600)  # the loop wakes at 03:00:30 for the 01:00 tick
    await rt.wait_idle()
    hours = [utc(f"2026-06-01 0{hour}:00:00") for hour in (1, 3)]
    assert await started_ticks(rt, "late") == hours  # the tick it woke for, then the latest


# -- mistakes -------------------------------------------------------------------------------------


def test_every_schedule_mistake_is_reported_in_one_error() -> None:
    flow = (
        cf.define("bad")
        .on_schedule("61 * * * *", timezone="Mars/Olympus", catch_up="sometimes")
        .on_schedule("@reboot")
        .on_schedule("@daily", timezone="europe/paris")
        .on_schedule("0 0 30 2 *")
        .on_schedule("@daily", catch_up="all")  # fine
        .step("s", lambda ctx: None)
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.build()
    problems = caught.value.problems
    assert len(problems) == 6, problems
    for expected in (
        "on_schedule('61 * * * *'): '61 * * * *': the minute field '61' is not valid",
        "on_schedule('61 * * * *'): unknown time zone 'Mars/Olympus'",
        "on_schedule('61 * * * *'): catch_up must be one of 'latest', 'none', 'all'",
        "on_schedule('@reboot'): '@reboot' is not a schedule",
        "on_schedule('@daily'): unknown time zone 'europe/paris'",
        "on_schedule('0 0 30 2 *'): '0 0 30 2 *': the day-of-month field '30' is not valid",
    ):
        assert any(problem.startswith(expected) for problem in problems), expected
    assert [schedule.text for schedule in flow.schedules] == ["@daily"]


async def test_register_refuses_a_bad_schedule(rt: cf.Runtime) -> None:
    with pytest.raises(InvalidWorkflowError, match="unknown time zone"):
        rt.register(ticking("bad", "@hourly", timezone="Nowhere/Special"))
    assert rt.registry.names() == []

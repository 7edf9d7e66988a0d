"""Pausing a flow's schedules: an operator whose downstream is broken stopped a schedule only
by leaving the flow out of the app and restarting, and putting it back fired a catch-up run at
once (newcomer h39 F3). A pause holds across a restart and starts no run for the ticks that
pass; a resume starts none for them either, and the next tick fires."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import NotFoundError
from cronflow_actors.kernel import ManualClock
from tests.flow.test_cron import started_ticks, ticking, utc


async def test_paused_schedules_start_no_run_until_resumed_and_catch_nothing_up(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cron.db"
    flow = ticking("hourly", "0 * * * *", catch_up="all")  # (the policy that catches up most)
    clock = ManualClock(start=utc("2026-06-01 00:00:30"))
    ada = cf.Principal(id="ada")
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await rt.wait_idle()
        clock.advance(3600)  # 01:00 fires
        await rt.wait_idle()
        paused = await rt.pause_schedules("hourly", note="billing is down", principal=ada)
        assert (paused.since, paused.by, paused.note) == (clock.now(), "ada", "billing is down")
        again = await rt.pause_schedules("hourly", note="another")  # paused already: as it was
        assert again == paused
        clock.advance(3600)  # 02:00 passes, paused
        await rt.wait_idle()
        assert await started_ticks(rt, "hourly") == [utc("2026-06-01 01:00:00")]
        fired = await rt.fire_schedule("hourly")  # an operator's own fire still starts one
        assert (await rt.wait(fired)).status == "completed"
    clock.advance(2 * 3600)  # down over 03:00 and 04:00, still paused
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await rt.wait_idle()
        assert await rt.schedules_paused("hourly") == paused
        assert len(await started_ticks(rt, "hourly")) == 2  # 01:00 and the fired one
        assert await rt.resume_schedules("hourly") is True
        assert await rt.resume_schedules("hourly") is False  # running already
        assert await rt.schedules_paused("hourly") is None
        await rt.wait_idle()
        assert len(await started_ticks(rt, "hourly")) == 2  # nothing caught up on resume
        clock.advance(3600)  # 05:00 fires
        await rt.wait_idle()
        ticked = await started_ticks(rt, "hourly")
        assert ticked[-1] == utc("2026-06-01 05:00:00")
        assert len(ticked) == 3


async def test_a_flow_without_a_schedule_or_not_registered_cannot_be_paused() -> None:
    plain = cf.define("plain").step("s", lambda ctx: 1)
    async with cf.Runtime(workflows=[plain]) as rt:
        with pytest.raises(NotFoundError, match="it has no on_schedule or on_interval"):
            await rt.pause_schedules("plain")
        with pytest.raises(NotFoundError, match="no flow 'nope'"):
            await rt.resume_schedules("nope")


async def test_of_two_pauses_at_once_one_stands_and_both_are_told_which() -> None:
    """Each was told its own pause stood, and the second overwrote the first (review h39 F6)."""
    flow = ticking("hourly", "0 * * * *")
    async with cf.Runtime(workflows=[flow]) as rt:
        first, second = await asyncio.gather(
            rt.pause_schedules("hourly", note="first"), rt.pause_schedules("hourly", note="second")
        )
        assert first == second == await rt.schedules_paused("hourly")
        resumed = await asyncio.gather(*(rt.resume_schedules("hourly") for _ in range(3)))
        assert sorted(resumed) == [False, False, True]

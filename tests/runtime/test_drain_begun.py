"""``Runtime.begin_drain``: what ``serve`` does as SIGTERM arrives, before it waits for the
requests in flight: no new step starts (a run's next step, a retry), and the steps running go
on and are recorded. (tests/test_serve.py drives it through a real ``serve``.)"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.kernel import ManualClock


async def test_a_drain_begun_starts_no_new_step_and_lets_the_running_ones_end(
    tmp_path: Path,
) -> None:
    release = asyncio.Event()
    began = {"slow": asyncio.Event(), "flaky": asyncio.Event()}
    ran: list[str] = []

    async def slow(ctx: Any) -> str:
        ran.append("slow")
        began["slow"].set()
        await release.wait()
        return "slow done"

    async def flaky(ctx: Any) -> None:
        ran.append("flaky")
        began["flaky"].set()
        raise RuntimeError("again")

    clock = ManualClock()
    begun = cf.define("begun").step("slow", slow).step("next", lambda ctx: ran.append("next"))
    retried = cf.define("retried").step("flaky", flaky, retry=cf.Retry(attempts=3, delay="1s"))
    runtime = cf.Runtime(db=tmp_path / "begun.db", workflows=[begun, retried], clock=clock)
    await runtime.start()
    try:
        run_id = await runtime.trigger("begun")
        await runtime.trigger("retried")
        await asyncio.gather(*(event.wait() for event in began.values()))

        runtime.begin_drain()
        release.set()
        await runtime.wait_idle()
        clock.advance(5)  # the retry's time has come
        await runtime.wait_idle()

        assert sorted(ran) == ["flaky", "slow"]  # no next step, no retry
        steps = {step.id: str(step.status) for step in (await runtime.inspect(run_id)).steps}
        assert steps["slow"] == "completed"  # recorded; "next" is started, to run at next start
    finally:
        await runtime.stop(drain=5)


async def test_a_step_a_drain_held_back_runs_at_the_next_start_as_its_first_run(
    tmp_path: Path,
) -> None:
    """The drain records the next step started and begins none: the next start ran it as
    "run again after 1 restart", ``ctx.redispatches`` 1, though it had never run (chaos h34
    F4). It runs as a first run; one cut by a stop is still counted as run again."""
    db = tmp_path / "held.db"
    release, began = asyncio.Event(), asyncio.Event()
    seen: list[int] = []

    async def slow(ctx: Any) -> str:
        began.set()
        await release.wait()
        return "slow done"

    def flow() -> cf.Flow:
        return (
            cf.define("held").step("slow", slow).step("next", lambda c: seen.append(c.redispatches))
        )

    runtime = cf.Runtime(db=db, workflows=[flow()])
    await runtime.start()
    try:
        run_id = await runtime.trigger("held")
        await began.wait()
        runtime.begin_drain()
        release.set()
        await runtime.wait_idle()
    finally:
        await runtime.stop(drain=5)
    assert seen == []  # held back by the drain
    restarted_at = time.time()
    async with cf.Runtime(db=db, workflows=[flow()]) as again:
        assert (await again.wait(run_id, timeout=10)).status == "completed"
        steps = {step.id: step for step in (await again.inspect(run_id)).steps}
        metrics = again.metrics.render().decode()
    assert seen == [0]
    assert steps["next"].redispatches == 0
    assert (steps["next"].started_at or 0) >= restarted_at  # (not the drain's: retest h34 F5)
    assert 'cronflow_steps_rerun_total{kind="step",workflow="held"} 0.0' in metrics


async def test_a_groups_deadline_that_passes_during_a_drain_ends_the_group(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Timers stopped as the drain began: a ``parallel``'s slow function ran to its end and the
    group completed with every result, its ``on_error`` never called, where a deadline outside a
    drain fails it (newcomer h35 F1). Its deadline ends it; its fallback runs at the next start."""
    db = tmp_path / "deadline.db"
    clock = ManualClock()
    began, release = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    async def slow(ctx: Any) -> str:
        began.set()
        await release.wait()
        ran.append("slow ended")
        return "slow"

    def flow() -> cf.Flow:
        group = cf.define("grouped").parallel("group", [lambda ctx: "fast", slow], timeout="10s")
        return group.on_error(lambda ctx: f"fallback: {ctx.error.type}")

    runtime = cf.Runtime(db=db, workflows=[flow()], clock=clock)
    await runtime.start()
    try:
        run_id = await runtime.trigger("grouped")
        await began.wait()
        runtime.begin_drain()
        clock.advance(10)  # the group's deadline passes as the process drains
        await asyncio.wait_for(runtime.wait_idle(), 5)  # (the slow function waited for good)
        [group] = [s for s in (await runtime.inspect(run_id)).steps if s.id == "group"]
        assert (group.status, group.error_type) == (  # its fallback's, held back
            "running",
            "cronflow_actors.errors.StepTimeoutError",
        )
    finally:
        release.set()
        with caplog.at_level(logging.INFO, logger="cronflow_actors"):
            await runtime.stop(drain=5)
    assert ran == []  # cut by its deadline, not run to its end
    said = [r.getMessage() for r in caplog.records if "the drain put off" in r.getMessage()]
    assert said == [  # (README said the log gives how many; none did: newcomer h36 F7)
        "the drain put off 1 step(s) it would have started (after a deadline or a step's end "
        "meanwhile): they run at the next start"
    ]
    async with cf.Runtime(db=db, workflows=[flow()]) as again:
        done = await again.wait(run_id, timeout=10)
    assert (done.status, done.output) == (
        "completed",
        "fallback: cronflow_actors.errors.StepTimeoutError",
    )

"""A real process killed while a step's ``on_error`` fallback runs, then a runtime on the same
file: the fallback runs again, answering the failure the step had, and the step does not run
again (it ran again, succeeded the second time, and the run completed as if the refund that
had gone out never happened: conform h39 F1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cronflow_actors as cf
from tests.flow import fallback_worker
from tests.runtime.killing import killed_after


async def test_a_fallback_cut_by_a_crash_runs_again_and_its_step_does_not(tmp_path: Path) -> None:
    db = tmp_path / "saga.db"
    said = "GatewayError: the gateway said 502 after taking the money"
    lines = killed_after("tests.flow.fallback_worker", str(db), lines=3)
    assert lines == ["charge", f"refund GatewayError 502: {said.partition(': ')[2]}", "refunding"]
    fallback_worker.CALLS.clear()

    flow = fallback_worker.saga(hang=False)
    async with cf.Runtime(db=db, workflows=[flow], wait_for_lease=True) as rt:
        result = await rt.wait("r1", timeout=20)
        assert (result.status, result.output) == (
            "completed",
            {"refunded": True, "redispatches": 1},
        )
        # the failure as it was kept: its words, its class's name, its attributes
        assert [f"refund StepFailedError 502: {said}"] == fallback_worker.CALLS
        [charge] = [step for step in (await rt.inspect("r1")).steps if step.id == "charge"]
        assert (charge.status, charge.redispatches) == ("completed", 1)
        assert (charge.error, charge.error_type) == (said, "__main__.GatewayError")


async def test_a_resumed_step_cut_by_a_crash_runs_again_not_the_old_run_s_fallbacks(
    tmp_path: Path,
) -> None:
    """A resume keeps its failed step's idempotency key: the failure kept under that key for
    the old run's fallbacks was read as the resumed step's own after a crash, its fallback
    run with the old failure and the step never again (review h39 F3)."""
    db = tmp_path / "resumed.db"
    said = killed_after("tests.flow.fallback_worker", str(db), "resume", lines=2)
    [resume] = [line for line in said if line.startswith("resume:")]  # (and "hanging")
    assert "hanging" in said
    fallback_worker.CALLS.clear()
    fallback_worker.MODE["charge"] = "charge"
    async with cf.Runtime(
        db=db, workflows=[fallback_worker.resumable()], wait_for_lease=True
    ) as rt:
        result = await rt.wait(resume, timeout=20)
        assert (result.status, result.output) == ("completed", {"charged": True})
    assert fallback_worker.CALLS == ["charge charge"]


async def test_an_action_s_fallback_cut_by_a_crash_runs_again_and_the_action_does_not(
    tmp_path: Path,
) -> None:
    """A detached action's dispatch after a restart counts its attempt up: its failure, kept
    under its attempt, was not found, and the action ran again (retest h39 R1)."""
    db = tmp_path / "action.db"
    lines = killed_after("tests.flow.fallback_worker", str(db), "action", lines=3)
    assert lines[0] == "charge"
    assert lines[2] == "refunding"
    fallback_worker.CALLS.clear()
    flow = fallback_worker.saga(hang=False, action=True)
    async with cf.Runtime(db=db, workflows=[flow], wait_for_lease=True) as rt:
        for _ in range(200):
            if fallback_worker.CALLS:
                break
            await asyncio.sleep(0.05)
        await rt.wait_idle()
        said = "GatewayError: the gateway said 502 after taking the money"
        assert [f"refund StepFailedError 502: {said}"] == fallback_worker.CALLS

"""What a recovered run does first: what was due before its restart (a run's timeout, a group's
deadline) and the message that woke it come before its cut steps run again (chaos h34 F1: a
``def`` step ran to its end in a run recorded failed or canceled). On PostgreSQL, where a cancel
wakes a run another process held: ``tests/pg/test_cluster_runtime.py`` and
``tests/pg/test_serve_cluster.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import cronflow_actors as cf
from cronflow_actors.kernel import ManualClock


class CutStep:
    """A step that records each time it begins (its ``ctx.redispatches``) and never ends by
    itself: a stop of its runtime cuts it."""

    def __init__(self) -> None:
        self.begun: list[int] = []
        self.running = asyncio.Event()

    async def __call__(self, ctx: cf.FlowContext) -> str:
        self.begun.append(ctx.redispatches)
        self.running.set()
        await asyncio.sleep(3600)
        return "done"


@pytest.mark.parametrize("kind", ["run timeout", "group deadline"])
async def test_a_step_cut_by_a_stop_is_not_run_again_once_what_was_due_ended_it(
    tmp_path: Path, clock: ManualClock, kind: str
) -> None:
    """A restart ran a cut step again before it fired the run's timeout (or its group's
    deadline) that had passed meanwhile: the step began again in a run then recorded failed,
    a plain ``def`` one to its end (chaos h34 F1)."""
    db = tmp_path / "due.db"
    slow = CutStep()

    def flow() -> cf.Flow:
        if kind == "run timeout":
            return cf.define("late", timeout="2s").step("slow", slow)
        return cf.define("late").parallel("both", [slow], timeout="2s")

    async with cf.Runtime(db=db, workflows=[flow()], clock=clock) as first:
        run_id = await first.trigger("late")
        await slow.running.wait()  # stopped while the step runs: its end is not recorded
    clock.advance(5)  # its deadline passes while no process runs it
    async with cf.Runtime(db=db, workflows=[flow()], clock=clock) as second:
        result = await second.wait(run_id, timeout=10)
        await second.wait_idle()
    assert result.status == "failed"
    assert "timed out after 2 s" in (result.error or "")
    assert slow.begun == [0]  # began once, before the stop; never again

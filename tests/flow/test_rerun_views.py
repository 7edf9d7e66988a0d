"""What ``inspect`` says of a loop's pass or a subflow's step that a crash cut and a restart
ran again: "run again after 1 restart", as of any step (it said nothing), and a loop's time is
all its passes' (it showed its last pass's start and length: conform h39 F4)."""

from __future__ import annotations

from pathlib import Path

import pytest

import cronflow_actors as cf
from tests.flow import rerun_worker
from tests.runtime.killing import killed_after


@pytest.mark.parametrize(("mode", "step", "output"), [("while", "loop", 5), ("subflow", "sub", 11)])
async def test_a_step_run_again_inside_a_loop_or_a_subflow_says_so(
    tmp_path: Path, mode: str, step: str, output: int
) -> None:
    db = tmp_path / f"{mode}.db"
    assert killed_after("tests.flow.rerun_worker", str(db), mode, lines=1) == ["hanging"]
    flow = rerun_worker.flow(mode, hang=False)
    async with cf.Runtime(db=db, workflows=[flow], wait_for_lease=True) as rt:
        result = await rt.wait("r1", timeout=20)
        assert (result.status, result.output) == ("completed", output)
        [shown] = [s for s in (await rt.inspect("r1")).steps if s.id == step]
        assert (shown.status, shown.redispatches) == ("completed", 1)
        if mode == "while":  # five passes of 50 ms at least, one of them before the crash
            assert shown.started_at is not None
            assert shown.finished_at is not None
            assert shown.finished_at - shown.started_at >= 0.25

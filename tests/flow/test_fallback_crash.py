"""A real process killed while a step's ``on_error`` fallback runs, then a runtime on the same
file: the fallback runs again, answering the failure the step had, and the step does not run
again (it ran again, succeeded the second time, and the run completed as if the refund that
had gone out never happened: conform h39 F1)."""

from __future__ import annotations

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

"""A report that could not be applied (``engine/report_failure.py``): user code's error is
recorded in a transaction of its own; a copy found stale records nothing (the PostgreSQL crash
tester's F4: a stale copy recorded another process's conflict as the run's failure, and ran its
on_failure hook, on a run whose steps would have succeeded)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.engine import report_failure
from cronflow_actors.errors import RevisionConflictError
from cronflow_actors.kernel import ManualClock
from cronflow_actors.messages.engine import TimerFired
from tests.engine.helpers import build


class Actor:
    """What ``record`` uses of a ``WorkflowActor``: its state's jobs, its transactions, and
    whether a conflict found it stale."""

    def __init__(self, *, stale: bool, conflicts: bool) -> None:
        self._stale = stale
        self.conflicts = conflicts
        self.root = "r"
        self.state = type("State", (), {"jobs": {"t1": object()}, "work_items": {}})()
        self.transactions: list[Any] = []

    async def _transact_with(self, body: Any) -> None:
        self.transactions.append(body.func.__name__)
        if self.conflicts:  # another process moved the instance on: this copy is stale now
            self._stale = True
            raise RevisionConflictError("store", "r", "process p2 owns it now")

    def __repr__(self) -> str:
        return "<actor r>"


def conflict() -> RevisionConflictError:
    return RevisionConflictError("store", "r", "process p2 owns it now")


async def test_a_stale_copy_records_nothing() -> None:
    actor = Actor(stale=True, conflicts=False)
    await report_failure.record(actor, TimerFired(timer_id="t1"), conflict())
    assert actor.transactions == []


async def test_a_copy_found_stale_while_recording_does_not_fail_the_run() -> None:
    actor = Actor(stale=False, conflicts=True)
    await report_failure.record(actor, TimerFired(timer_id="t1"), ValueError("user code"))
    assert actor.transactions == ["drop_job"]  # not fail_run: the copy is stale


async def test_user_codes_error_is_still_recorded() -> None:
    actor = Actor(stale=False, conflicts=False)
    await report_failure.record(actor, TimerFired(timer_id="t1"), ValueError("user code"))
    assert actor.transactions == ["drop_job"]


async def test_a_jobs_failure_in_a_net_nobody_started_fails_its_run(tmp_path: Path) -> None:
    """A job that started the first work item of a net still ``initialized`` (whose
    ``on_started`` raised) could not fail the run: ``initialized`` cannot become ``failed``.
    The run waited for good, and every start fired the job again (conform h36 F2)."""

    def boom(ctx: Any) -> None:
        raise RuntimeError("on_started broke")

    item = net.work_item("t").activities(
        on_initialized=lambda ctx: ctx.register_scheduled(
            5, net.jobs.start_work_item(ctx.work_item.id)
        ),
        on_started=boom,
    )
    flows = [("start", "T"), ("T", "end")]
    spec = build("fresh", {"T": net.task(item)}, flows, actions={"initialize": net.action()})
    clock = ManualClock()
    async with cf.Runtime(db=tmp_path / "f.db", workflows=[spec], clock=clock) as rt:
        workflow_id = await rt.start_workflow("fresh")
        assert (await rt.workflow(workflow_id)).state == "initialized"
        clock.advance(6)
        done = await asyncio.wait_for(rt.wait_workflow(workflow_id), 5)
        assert (done.state, done.error) == ("failed", "RuntimeError: on_started broke")
    async with cf.Runtime(db=tmp_path / "f.db", workflows=[spec], clock=clock) as rt:
        await rt.wait_idle()
        assert (await rt.workflow(workflow_id)).state == "failed"  # the job fires no more

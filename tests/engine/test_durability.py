"""Durability: a stopped or killed runtime's instances finish on the next one, the same way."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.kernel import ManualClock
from tests.engine import crash_worker
from tests.engine.helpers import build, open_item, states

ROOT = Path(__file__).resolve().parents[2]


def mixed_spec(
    gate: asyncio.Event, runs: list[str], running: asyncio.Event | None = None
) -> net.NetSpec:
    async def slow(ctx: Any) -> str:
        runs.append(ctx.work_item.id)
        if running is not None:
            running.set()
        await gate.wait()
        return f"slow:{ctx.payload['n']}"

    def remind(ctx: Any) -> None:
        ctx.register_scheduled(60, net.jobs.complete_work_item(ctx.work_item.id, "by timer"))

    tasks = {
        "s": net.dummy_task(),
        "slow": net.task(slow),
        "review": net.task(net.work_item("review").activities(on_started=remind)),
        "approve": net.task(),
        "j": net.task(
            lambda ctx: [ctx.outputs["slow"], ctx.outputs["review"], ctx.outputs["approve"]]
        ),
    }
    flows = [("start", "s"), ("s", "slow"), ("s", "review"), ("s", "approve")]
    flows += [("slow", "j"), ("review", "j"), ("approve", "j"), ("j", "end")]
    return build("mixed", tasks, flows)


async def test_a_stopped_runtime_resumes_on_the_next_one(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "resume.db"
    gate, running, runs = asyncio.Event(), asyncio.Event(), []
    async with cf.Runtime(db=db, clock=clock, workflows=[mixed_spec(gate, runs, running)]) as first:
        wid = await first.start_workflow("mixed", {"n": 1})
        review = await open_item(first, wid, "review")
        await first.start_work_item(review.id)  # arms a 60 s timer
        approve = await open_item(first, wid, "approve")
        await first.start_work_item(approve.id)
        await running.wait()  # the slow handler started and waits on the gate
        clock.advance(30)
    # the first runtime is gone mid-flight: slow running, review waiting for its timer
    gate.set()
    caplog.set_level(logging.INFO, logger="cronflow_actors.runtime.runtime")
    async with cf.Runtime(db=db, clock=clock, workflows=[mixed_spec(gate, runs)]) as second:
        assert second.recovered == 1
        assert "recovered 1 run(s) with work to run" in caplog.text  # the operator is told
        await second.wait_idle()
        assert len(runs) == 2  # started but unrecorded work runs again
        assert (await states(second, wid))["slow"] == "completed"
        assert (await states(second, wid))["review"] == "started"
        await second.complete_work_item(approve.id, "yes")
        clock.advance(30)  # the re-armed timer completes review
        info = await second.wait_workflow(wid)
        assert info.state == "completed"
        assert info.output == ["slow:1", "by timer", "yes"]
        assert len(runs) == 2


def worker(db: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engine.crash_worker", str(db), str(count)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.4])
async def test_sigkill_mid_flight_loses_nothing_and_recomputes_nothing(
    tmp_path: Path, delay: float
) -> None:
    db = tmp_path / "crash.db"
    count = 300
    process = worker(db, count)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        await asyncio.sleep(delay)  # let it get part of the way
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    # what the killed process had recorded
    from cronflow_actors.store import SQLiteStore

    store = SQLiteStore(db)
    await store.open()
    snapshots = await store.list_snapshots()
    recorded = {
        (e.instance_id, e.step_id)
        for s in snapshots
        for e in await store.load_journal(s.instance_id)
    }
    await store.close()
    assert len(snapshots) == count  # every accepted instance is there
    finished_before = sum(1 for s in snapshots if s.terminal)
    assert len(recorded) < 3 * count, "the worker finished before the kill"
    print(f"killed with {len(recorded)} steps recorded, {finished_before} of {count} runs finished")
    crash_worker.RUNS.clear()
    # The killed runtime's lease outlives it by up to half a second: this one waits for it.
    async with cf.Runtime(db=db, workflows=[crash_worker.SPEC], wait_for_lease=True) as rt:
        assert rt.recovered == count - finished_before
        results = {}
        for snapshot in snapshots:
            info = await rt.wait_workflow(snapshot.instance_id)
            results[snapshot.instance_id] = info
        for snapshot in snapshots:
            info = results[snapshot.instance_id]
            assert info.state == "completed"
            assert info.output["total"] == crash_worker.expected(info.payload["n"])
        assert not recorded & set(crash_worker.RUNS), "a recorded step ran again"
        for snapshot in snapshots:  # exactly one recorded outcome per step
            journal = await rt.store.load_journal(snapshot.instance_id)
            assert sorted(e.step_id for e in journal) == ["t1", "t2", "t3"]


async def test_registering_on_a_running_runtime_recovers_that_workflow(tmp_path: Path) -> None:
    db = tmp_path / "late.db"
    spec = build("late", {"a": net.task()}, [("start", "a"), ("a", "end")])
    async with cf.Runtime(db=db, workflows=[spec]) as first:
        wid = await first.start_workflow("late")
        item = await open_item(first, wid, "a")
        await first.start_work_item(item.id)
    async with cf.Runtime(db=db) as second:
        assert second.recovered == 0
        second.register(spec)
        await second.complete_work_item(item.id, "late but done")  # waits for the recovery
        # the instance only waited for a call, so nothing was loaded: the call activated it
        assert second.recovered == 0
        info = await second.wait_workflow(wid)
        assert (info.state, info.output) == ("completed", "late but done")

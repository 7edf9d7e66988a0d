"""Random interleavings of starts, resumes, cancels, events and timeouts on a few run ids, with
restarts between batches, keep every ownership invariant: an id is started once, a step runs at
most once per run, a pause is resumed at most once, nothing stays in memory while runs wait, and
what the store holds agrees with what was answered."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cronflow_actors as cf
from cronflow_actors.errors import CronflowError, InstanceExistsError
from cronflow_actors.kernel import ManualClock

IDS = ["r1", "r2", "r3"]

operation = st.tuples(
    st.sampled_from(["start", "resume", "cancel", "event", "timeout"]), st.sampled_from(IDS)
)
batches = st.lists(
    st.tuples(st.lists(operation, min_size=1, max_size=8), st.booleans()),
    min_size=1,
    max_size=5,
)


def flow(counts: Counter[tuple[str, str]]) -> cf.Flow:
    async def first(ctx: Any) -> Any:
        counts[(ctx.run.id, "a")] += 1
        await asyncio.sleep(0)
        return ctx.payload

    async def last(ctx: Any) -> str:
        counts[(ctx.run.id, "b")] += 1
        return "done"

    return (
        cf.define("prop")
        .step("a", first)
        .human_in_the_loop("approve", description="go?", timeout="1h")
        .wait_for_event("paid", "paid", filter=lambda event, ctx: event["run"] == ctx.run.id)
        .step("b", last)
    )


class Model:
    """What the test was answered: the runs it started and the pauses it resumed."""

    def __init__(self) -> None:
        self.started: Counter[str] = Counter()
        self.resumed: Counter[str] = Counter()


async def apply(rt: cf.Runtime, clock: ManualClock, model: Model, op: tuple[str, str]) -> None:
    kind, run_id = op
    try:
        if kind == "start":
            assert await rt.trigger("prop", run_id, instance_id=run_id) == run_id
            model.started[run_id] += 1
        elif kind == "resume":
            for paused in await rt.list_paused():
                if paused.run_id == run_id:
                    await rt.resume(paused.token, {"approved": True})
                    model.resumed[paused.token] += 1
        elif kind == "cancel":
            await rt.cancel(run_id)
        elif kind == "event":
            await rt.publish_event("paid", {"run": run_id})
        else:
            clock.advance(3601)  # every pause still open times out
    except InstanceExistsError:
        assert model.started[run_id] >= 1 or kind != "start"
    except CronflowError:
        pass  # refused (not started yet, already over, ...): allowed, and changes nothing


async def check(rt: cf.Runtime, db: Path, model: Model, counts: Counter[tuple[str, str]]) -> None:
    await rt.wait_idle()
    assert all(n == 1 for n in model.started.values())
    assert all(n == 1 for n in model.resumed.values())
    assert all(n == 1 for n in counts.values()), counts
    assert len(rt.instances) == 0  # every run waits or is over: none is in memory
    stored = {run.id: run for run in await rt.list_runs(limit=100)}
    assert set(stored) == set(model.started)
    for run_id, run in stored.items():
        assert run.status in ("waiting", "completed", "canceled")
        if run.status == "completed":
            assert counts[(run_id, "a")] == counts[(run_id, "b")] == 1
            assert run.output == "done"
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT instance_id, step_id, COUNT(*) FROM journal WHERE outcome = 'completed' "
            "GROUP BY instance_id, step_id"
        ).fetchall()
    assert all(count == 1 for _run, _step, count in rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_interleavings_keep_one_owner_per_run(plan: list[tuple[list[Any], bool]]) -> None:
    async def run() -> None:
        counts: Counter[tuple[str, str]] = Counter()
        model = Model()
        clock = ManualClock()
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "prop.db"
            rt = cf.Runtime(db=db, clock=clock, workflows=[flow(counts)])
            await rt.start()
            try:
                for operations, restart in plan:
                    await asyncio.gather(*(apply(rt, clock, model, op) for op in operations))
                    await check(rt, db, model, counts)
                    if restart:
                        await rt.stop()
                        rt = cf.Runtime(db=db, clock=clock, workflows=[flow(counts)])
                        await rt.start()
                        await check(rt, db, model, counts)
            finally:
                await rt.stop()

    asyncio.run(run())

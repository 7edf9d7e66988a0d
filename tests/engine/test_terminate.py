"""A terminate ends an instance without its code (``cancel(..., terminate=True)``): no activity
and no ``cancel`` callback runs, and the trace says so. An instance whose teardown activity
raises refused every cancel and migration, and an operator had no way out but a deploy of
mended code (h42 net F7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.kernel import ManualClock
from tests.engine.helpers import open_item

CALLED: list[str] = []


def boom(ctx: Any) -> None:
    CALLED.append("on_canceled")
    raise RuntimeError("on_canceled bug")


def teardown_raises(cancel: Any = None) -> net.NetSpec:
    item = net.work_item("a").activities(on_canceled=boom)
    builder = (
        net.workflow("rt")
        .start_condition("start")
        .end_condition("end")
        .task("A", net.task(item))
        .connect_condition("start", "A")
        .connect_task("A", "end")
    )
    if cancel is not None:
        builder.actions(cancel=cancel)
    return builder.build()


async def test_a_terminate_ends_an_instance_whose_teardown_raises(rt: cf.Runtime) -> None:
    CALLED.clear()
    rt.register(teardown_raises())
    wid = await rt.start_workflow("rt")
    item = await open_item(rt, wid, "A")
    await rt.start_work_item(item.id)
    for cancel in (rt.cancel_workflow, rt.cancel):  # refused, nothing changed
        with pytest.raises(RuntimeError, match="on_canceled bug"):
            await cancel(wid)
        assert await rt.workflow_state(wid) == "started"
    CALLED.clear()
    await rt.cancel(wid, reason="its teardown is broken", terminate=True)
    assert CALLED == []  # none of its code ran
    assert await rt.workflow_state(wid) == "canceled"
    [ended] = await rt.work_items(wid, "A")
    assert ended.state == "canceled"
    trace = (await rt.trace(wid)).render()
    assert "terminated=True" in trace
    assert "Activity.on_canceled" not in trace.split("terminated=True")[1]  # none ran (review F7)


async def test_an_outside_caller_s_terminate_still_passes_the_cancel_policy(
    rt: cf.Runtime,
) -> None:
    CALLED.clear()
    callbacks: list[str] = []
    cancel = net.action(
        policy=net.require_scope("rt:cancel"), callback=lambda ctx, payload: callbacks.append("x")
    )
    rt.register(teardown_raises(cancel))
    wid = await rt.start_workflow("rt")
    before = await rt.workflow_state(wid)
    outsider = cf.Principal(id="eve")
    with pytest.raises(cf.errors.ActionDeniedError):
        await rt.cancel(wid, principal=outsider, terminate=True)
    assert await rt.workflow_state(wid) == before
    admitted = cf.Principal(id="ops", scopes=frozenset({"rt:cancel"}))
    await rt.cancel(wid, principal=admitted, terminate=True)
    assert (await rt.workflow_state(wid), callbacks, CALLED) == ("canceled", [], [])


def held_flow(ended: list[str], *, changed: bool = False) -> cf.Flow:
    """A flow that waits for a person, with an end hook; ``changed``: its definition edited
    under the same version (a run of the first is then held, ``blocked``)."""
    flow = cf.define("held", hooks=cf.Hooks(on_complete=lambda ctx: ended.append("ended")))
    flow = flow.human_in_the_loop("approve", description="ok?")
    return flow.step("after" if not changed else "edited", lambda ctx: 1)


async def test_a_terminate_calls_no_end_hook_of_a_flow_run_running_or_held(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A terminated flow run's on_complete hook ran, and a held run's trace did not say it was
    terminated (retest2 h42 N1, N2)."""
    ended: list[str] = []
    db = tmp_path / "t.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[held_flow(ended)]) as rt:
        running, held = await rt.trigger("held"), await rt.trigger("held")
        await rt.wait_idle()
        await rt.cancel(running, terminate=True)
        assert (await rt.wait(running, timeout=5)).status == "canceled"
        await rt.wait_idle()
        assert ended == []
    async with cf.Runtime(db=db, clock=clock, workflows=[held_flow(ended, changed=True)]) as rt:
        assert (await rt.inspect(held)).status == "blocked"
        await rt.cancel(held, terminate=True)
        await rt.wait_idle()
        assert (await rt.inspect(held)).status == "canceled"
        assert "terminated=True" in (await rt.trace(held)).render()
        assert ended == []
        await rt.cancel(await rt.trigger("held"))  # a plain cancel calls it, as before
        await rt.wait_idle()
        assert len(ended) == 1


async def test_a_terminate_of_a_child_workflow_is_refused(rt: cf.Runtime) -> None:
    """It skipped its parent's code too (the composite task's on_completed, the next task's
    on_enabled): the next task was enabled with no work item, for ever (review h42 F3)."""
    child = net.workflow("inner").start_condition("s").end_condition("e").task("T", net.task())
    child = child.connect_condition("s", "T").connect_task("T", "e")
    outer = (
        net.workflow("outer")
        .start_condition("start")
        .end_condition("end")
        .composite_task("C", net.composite_task(child))
        .connect_condition("start", "C")
        .connect_task("C", "end")
        .build()
    )
    rt.register(outer)
    wid = await rt.start_workflow("outer")
    [kid] = await rt.child_workflows(wid, "C")
    with pytest.raises(cf.errors.ConfigurationError, match="terminate its run"):
        await rt.cancel_workflow(kid.id, terminate=True)
    await rt.cancel_workflow(kid.id)  # plainly: as before
    await rt.cancel_workflow(wid, terminate=True)
    assert await rt.workflow_state(wid) == "canceled"


async def test_a_terminate_of_a_queued_run_calls_no_end_hook(rt: cf.Runtime) -> None:
    """A run waiting in its flow's queue, terminated, called its on_complete (retest3 h42 N3)."""
    ended: list[str] = []
    hooks = cf.Hooks(on_complete=lambda ctx: ended.append("ended"))
    flow = cf.define("lined", concurrency=1, hooks=hooks)
    rt.register(flow.human_in_the_loop("approve", description="ok?").step("s", lambda ctx: 1))
    holding, queued, other = [await rt.trigger("lined") for _ in range(3)]
    await rt.wait_idle()
    await rt.cancel(queued, terminate=True)
    assert (await rt.inspect(queued)).status == "canceled"
    assert "terminated=True" in (await rt.trace(queued)).render()
    await rt.wait_idle()
    assert ended == []
    await rt.cancel(other)  # a plain cancel of a queued run calls it, as before
    await rt.wait_idle()
    assert ended == ["ended"]
    assert (await rt.inspect(holding)).status == "waiting"

"""Code that runs inside an instance's transaction (an activity, here) and calls the runtime's
API on that same instance is refused at once with ``ReentrantCallError``, changing nothing: the
call waited for the transaction it ran in, for ever, every later call queued behind it, and the
runtime's stop hung (h42 net F5). A task the activity starts, calling once the turn is over,
is served."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import ReentrantCallError
from tests.engine.helpers import build, open_item, states

RT: dict[str, cf.Runtime] = {}


async def adds_through_the_api(ctx: Any) -> None:
    ctx.work_item.initialize()
    await RT["rt"].initialize_work_item(ctx.parent.id, "B")  # its own instance: refused


def net_calling(on_enabled: Any) -> net.NetSpec:
    return build(
        "re",
        {"A": net.task(), "B": net.task().activities(on_enabled=on_enabled)},
        [("start", "A"), ("A", "B"), ("B", "end")],
    )


async def test_an_activity_calling_its_own_instance_is_refused_and_nothing_changes(
    rt: cf.Runtime,
) -> None:
    RT["rt"] = rt
    rt.register(net_calling(adds_through_the_api))
    wid = await rt.start_workflow("re")
    item = await open_item(rt, wid, "A")
    await rt.start_work_item(item.id)
    with pytest.raises(ReentrantCallError) as refused:
        await asyncio.wait_for(rt.complete_work_item(item.id), 10)
    said = str(refused.value)
    assert f"initialize a work item of task 'B' of instance {wid!r}" in said
    assert "Change the instance through ctx" in said
    assert await states(rt, wid) == {"A": "started", "B": "disabled"}  # rolled back
    await asyncio.wait_for(rt.cancel_workflow(wid), 10)  # the instance still answers
    assert await rt.workflow_state(wid) == "canceled"


async def test_a_task_the_activity_starts_is_served_once_its_turn_is_over(
    rt: cf.Runtime,
) -> None:
    RT["rt"] = rt
    later: list[asyncio.Task[Any]] = []

    async def adds_later(ctx: Any) -> None:
        ctx.work_item.initialize()
        later.append(
            asyncio.get_running_loop().create_task(
                RT["rt"].initialize_work_item(ctx.parent.id, "B")
            )
        )

    rt.register(net_calling(adds_later))
    wid = await rt.start_workflow("re")
    item = await open_item(rt, wid, "A")
    await rt.start_work_item(item.id)
    await asyncio.wait_for(rt.complete_work_item(item.id), 10)
    await asyncio.wait_for(later[0], 10)
    assert len(await rt.work_items(wid, "B")) == 2  # the activity's own, and the task's


async def two_started(
    rt: cf.Runtime, ids: dict[str, str], y_enabled: Any, x_enabled: Any
) -> cf.WorkItemInfo:
    """Instances of ``y`` and ``x`` (A, then B whose ``on_enabled`` is given), each's A started
    (``ids``: their ids and Y's A item's); X's A item, to complete."""
    line = [("start", "A"), ("A", "B"), ("B", "end")]
    for name, enabled in (("y", y_enabled), ("x", x_enabled)):
        rt.register(
            build(name, {"A": net.task(), "B": net.task().activities(on_enabled=enabled)}, line)
        )
        ids[name] = await rt.start_workflow(name)
    y_item = await open_item(rt, ids["y"], "A")
    await rt.start_work_item(y_item.id)
    ids["y_item"] = y_item.id
    x_item = await open_item(rt, ids["x"], "A")
    await rt.start_work_item(x_item.id)
    return x_item


async def test_two_instances_whose_code_calls_each_other_are_refused_not_stuck(
    rt: cf.Runtime,
) -> None:
    """X's activity completes Y's item; Y's activity, in that call's transaction, calls X: each
    waited for the other for ever, and the runtime's stop hung (retest h42 N1)."""
    ids: dict[str, str] = {}

    async def y_calls_x(ctx: Any) -> None:
        ctx.work_item.initialize()
        await rt.initialize_work_item(ids["x"], "B")

    async def x_calls_y(ctx: Any) -> None:
        ctx.work_item.initialize()
        await rt.complete_work_item(ids["y_item"])

    x_item = await two_started(rt, ids, y_calls_x, x_calls_y)
    with pytest.raises(ReentrantCallError) as refused:
        await asyncio.wait_for(rt.complete_work_item(x_item.id), 10)
    assert f"which that call would wait for ({ids['x']!r} -> {ids['y']!r})" in str(refused.value)
    # neither changed, and both still answer
    assert await states(rt, ids["x"]) == {"A": "started", "B": "disabled"}
    assert await states(rt, ids["y"]) == {"A": "started", "B": "disabled"}
    await asyncio.wait_for(rt.cancel_workflow(ids["x"]), 10)
    await asyncio.wait_for(rt.cancel_workflow(ids["y"]), 10)


async def test_a_call_from_a_task_an_activity_started_does_not_make_its_instance_wait(
    rt: cf.Runtime,
) -> None:
    """X's activity starts a task (not awaited) that calls Y; Y's activity calls X back once X's
    transaction is over: served. It was refused, X counted as waiting on Y for as long as the
    task's call went on (retest2 h42 N3)."""
    ids: dict[str, str] = {}
    started: list[asyncio.Task[Any]] = []

    async def y_calls_x(ctx: Any) -> None:
        ctx.work_item.initialize()
        await rt.initialize_work_item(ids["x"], "B")

    async def x_starts_a_call_of_y(ctx: Any) -> None:
        ctx.work_item.initialize()
        call = rt.complete_work_item(ids["y_item"])
        started.append(asyncio.get_running_loop().create_task(call))
        await asyncio.sleep(0.05)  # Y's activity calls X meanwhile: it waits for this body

    x_item = await two_started(rt, ids, y_calls_x, x_starts_a_call_of_y)
    await asyncio.wait_for(rt.complete_work_item(x_item.id), 10)
    await asyncio.wait_for(started[0], 10)
    assert len(await rt.work_items(ids["x"], "B")) == 2  # its own, and Y's
    assert await states(rt, ids["y"]) == {"A": "completed", "B": "enabled"}

"""Internal transitions go through the element's action (spec sections 1.2 and 5.3): the payload
is checked against the action's schema and the callback runs, without authentication or policy.
That holds for auto-triggers, for work items and child workflows an activity creates, and for a
task's default work item; a payload the schema refuses rolls the whole call back."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import InvalidPayloadError
from tests.engine.helpers import open_item, states


class Amount(msgspec.Struct):
    amount: int


def deny(_ctx: Any, _payload: Any) -> bool:
    raise AssertionError("an internal call never asks the policy")


async def test_an_item_an_activity_initializes_runs_its_initialize_action(rt: cf.Runtime) -> None:
    calls: list[Any] = []
    item = net.work_item("w").actions(
        initialize=net.action(callback=lambda ctx, p: calls.append(p))
    )
    spec = (
        net.workflow("a")
        .start_condition("start")
        .end_condition("end")
        .task(
            "t1",
            net.task(item).activities(on_enabled=lambda ctx: ctx.work_item.initialize({"x": 1})),
        )
        .connect_condition("start", "t1")
        .connect_task("t1", "end")
        .build()
    )
    rt.register(spec)
    wid = await rt.start_workflow("a")
    assert calls == [{"x": 1}]
    assert [i.payload for i in await rt.work_items(wid, "t1")] == [{"x": 1}]


async def test_a_default_item_runs_its_initialize_action_too(rt: cf.Runtime) -> None:
    calls: list[Any] = []
    item = net.work_item("w").actions(
        initialize=net.action(callback=lambda ctx, p: calls.append(p))
    )
    spec = (
        net.workflow("d")
        .start_condition("start")
        .end_condition("end")
        .task("t1", net.task(item))
        .connect_condition("start", "t1")
        .connect_task("t1", "end")
        .build()
    )
    rt.register(spec)
    await rt.start_workflow("d")
    assert calls == [None]


def auto_completing(complete_with: Any, calls: list[Any]) -> net.NetSpec:
    def record(ctx: Any, payload: Any) -> None:
        calls.append((ctx.is_internal, payload))

    item = (
        net.work_item("w")
        .actions(complete=net.action(Amount, policy=deny, callback=record))
        .activities(
            on_initialized=lambda ctx: ctx.work_item.start(),
            on_started=lambda ctx: ctx.work_item.complete(complete_with),
        )
    )
    return (
        net.workflow("auto")
        .start_condition("start")
        .end_condition("end")
        .task("gate", net.task())
        .task("t1", net.task(item))
        .connect_condition("start", "gate")
        .connect_task("gate", "t1")
        .connect_task("t1", "end")
        .build()
    )


async def test_an_auto_trigger_runs_the_action_as_an_internal_call(rt: cf.Runtime) -> None:
    calls: list[Any] = []
    rt.register(auto_completing({"amount": 5}, calls))
    wid = await rt.start_workflow("auto")
    gate = await open_item(rt, wid, "gate")
    await rt.start_work_item(gate.id)
    await rt.complete_work_item(gate.id)
    assert calls == [(True, Amount(amount=5))]
    [item] = await rt.work_items(wid, "t1")
    assert (item.state, item.output) == ("completed", {"amount": 5})
    assert await rt.workflow_state(wid) == "completed"


async def test_an_auto_trigger_with_a_payload_the_schema_refuses_changes_nothing(
    rt: cf.Runtime,
) -> None:
    calls: list[Any] = []
    rt.register(auto_completing({"amount": "five"}, calls))
    wid = await rt.start_workflow("auto")
    gate = await open_item(rt, wid, "gate")
    await rt.start_work_item(gate.id)
    with pytest.raises(InvalidPayloadError, match="complete"):
        await rt.complete_work_item(gate.id)
    assert calls == []
    assert (await rt.work_item(gate.id)).state == "started"
    assert await states(rt, wid) == {"gate": "started", "t1": "disabled"}


async def test_a_child_workflow_an_activity_creates_runs_its_initialize_action(
    rt: cf.Runtime,
) -> None:
    calls: list[Any] = []
    child = (
        net.workflow("child")
        .start_condition("start")
        .end_condition("end")
        .task("c1", net.task())
        .connect_condition("start", "c1")
        .connect_task("c1", "end")
        .actions(
            initialize=net.action(
                Amount, policy=deny, callback=lambda ctx, p: calls.append((ctx.is_internal, p))
            )
        )
        .build()
    )

    def start_children(ctx: Any) -> None:
        ctx.workflow.initialize({"amount": 3})

    parent = (
        net.workflow("parent")
        .start_condition("start")
        .end_condition("end")
        .composite_task("sub", net.composite_task(child).activities(on_enabled=start_children))
        .connect_condition("start", "sub")
        .connect_task("sub", "end")
        .build()
    )
    rt.register(parent)
    wid = await rt.start_workflow("parent")
    assert calls == [(True, Amount(amount=3))]
    [info] = await rt.child_workflows(wid, "sub")
    assert info.payload == {"amount": 3}

    bad = (
        net.workflow("bad-parent")
        .start_condition("start")
        .end_condition("end")
        .composite_task(
            "sub",
            net.composite_task(child).activities(
                on_enabled=lambda ctx: ctx.workflow.initialize({"amount": "x"})
            ),
        )
        .connect_condition("start", "sub")
        .connect_task("sub", "end")
        .build()
    )
    rt.register(bad)
    with pytest.raises(InvalidPayloadError, match="initialize"):
        await rt.start_workflow("bad-parent")
    assert calls == [(True, Amount(amount=3))]

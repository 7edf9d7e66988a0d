"""A net instance that can never move again says so (newcomer h28 F5)."""

from __future__ import annotations

from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net


def automated(name: str) -> net.TaskBuilder:
    """A task whose one work item starts and completes on its own once it is enabled."""
    item = net.work_item(name, handler=lambda ctx: name).activities(
        on_initialized=lambda ctx: ctx.work_item.start()
    )
    return net.task(item).activities(on_enabled=lambda ctx: ctx.work_item.initialize())


def checks(*, choice: bool) -> net.NetSpec:
    """Two checks, then an AND-join: after one condition (``choice``), a deferred choice
    withdraws one of them and the join waits for ever; after a task, both run."""
    builder = net.workflow("checks" if choice else "checks-ok").start_condition("start")
    builder.end_condition("end").task("criminal", automated("criminal"))
    builder.task("references", automated("references"))
    builder.task("done", automated("done").join("and"))
    if choice:
        builder.connect_condition("start", "criminal", "references")
    else:
        builder.task("split", automated("split").split("and"))
        builder.connect_condition("start", "split").connect_task("split", "criminal", "references")
    builder.connect_task("criminal", "done").connect_task("references", "done")
    return builder.connect_task("done", "end").build()


async def test_a_net_that_can_never_finish_is_said_stuck(
    rt: cf.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    rt.register(checks(choice=True))
    rt.register(checks(choice=False))
    stuck = await rt.start_workflow("checks")
    await rt.wait_idle()
    assert (await rt.inspect(stuck)).status == "waiting"
    [said] = [r.getMessage() for r in caplog.records if "can never move again" in r.getMessage()]
    assert "workflow 'checks'" in said
    assert "tokens are in criminal__to__done" in said  # where its token sits
    caplog.clear()
    fine = await rt.start_workflow("checks-ok")
    info: Any = await rt.wait_workflow(fine)
    assert info.state == "completed"
    assert "can never move again" not in caplog.text


def beside_a_timer() -> net.NetSpec:
    """The stuck ``checks`` as a composite task's child, beside another child whose pause has
    a timer of its own pending when ``checks`` gets stuck."""
    stuck = net.workflow("stuck-child").start_condition("start").end_condition("end")
    stuck.task("criminal", automated("criminal")).task("references", automated("references"))
    stuck.task("done", automated("done").join("and"))
    stuck.connect_condition("start", "criminal", "references")
    stuck.connect_task("criminal", "done").connect_task("references", "done")
    stuck.connect_task("done", "end")

    def timed(ctx: Any) -> None:
        ctx.register_scheduled(3600, net.jobs.complete_work_item(ctx.work_item.id, {}))

    item = net.work_item("p", wait=net.WaitSpec(kind="pause")).activities(
        on_initialized=lambda ctx: ctx.work_item.start(), on_started=timed
    )
    timer = net.workflow("timer").start_condition("s").end_condition("e")
    timer.task("p", net.task(item).activities(on_enabled=lambda ctx: ctx.work_item.initialize()))
    timer.connect_condition("s", "p").connect_task("p", "e")
    parent = net.workflow("parent").start_condition("start").end_condition("end")
    parent.task("split", automated("split").split("and"))
    parent.composite_task("a", net.composite_task(stuck))
    parent.composite_task("b", net.composite_task(timer))
    parent.task("join", automated("join").join("and"))
    parent.connect_condition("start", "split").connect_task("split", "a", "b")
    return (
        parent.connect_task("a", "join")
        .connect_task("b", "join")
        .connect_task("join", "end")
        .build()
    )


async def test_a_stuck_child_is_said_though_a_sibling_has_a_timer_out(
    rt: cf.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A timer of another child hid the stuck one: the check skipped every run with a timer
    out, and looked at the stuck child only when the commit touched it (the second verifier's
    h28). A timer, an action or a kept event holds up only its own workflow."""
    rt.register(beside_a_timer())
    await rt.start_workflow("parent")
    await rt.wait_idle()
    said = [r.getMessage() for r in caplog.records if "can never move again" in r.getMessage()]
    assert len(said) == 1
    assert "workflow 'stuck-child'" in said[0]

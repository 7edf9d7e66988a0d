"""Composite tasks, failure and cancellation propagation, policies, reset."""

from __future__ import annotations

from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import (
    ConfigurationError,
    InvalidPolicyResultError,
    InvalidStateTransitionError,
    NotFoundError,
)
from cronflow_actors.kernel import ManualClock
from tests.engine.helpers import (
    build,
    enabled,
    manual,
    open_item,
    refused_completion,
    run,
    states,
)


def child_spec(name: str = "child") -> net.NetSpec:
    return build(name, manual("x"), [("start", "x"), ("x", "end")])


def parent_spec(child: net.NetSpec, *, sibling: bool = False) -> net.NetSpec:
    tasks = {"comp": net.composite_task(child)}
    flows = [("start", "comp"), ("comp", "end")]
    if sibling:
        tasks = {"s": net.dummy_task(), **tasks, "y": net.task()}
        flows = [("start", "s"), ("s", "comp"), ("s", "y"), ("comp", "j"), ("y", "j"), ("j", "end")]
        tasks["j"] = net.task()
    return build("parent", tasks, flows)


async def test_composite_task_runs_a_child_workflow(rt: cf.Runtime) -> None:
    rt.register(parent_spec(child_spec()))
    wid = await rt.start_workflow("parent")
    [child] = await rt.child_workflows(wid, "comp")
    assert child.state == "initialized"
    assert child.parent_id == wid
    assert (await states(rt, wid))["comp"] == "enabled"  # stays enabled until the child starts
    assert (await rt.task_stats(wid, "comp")).initialized == 1
    item = await open_item(rt, child.id, "x")
    await rt.start_work_item(item.id)
    assert (await states(rt, wid))["comp"] == "started"
    assert await rt.workflow_state(child.id) == "started"
    assert await rt.workflow_state(wid) == "started"
    await rt.complete_work_item(item.id, {"child": "done"})
    assert await rt.workflow_state(child.id) == "completed"
    info = await rt.workflow(wid)
    assert info.state == "completed"
    assert info.output == {"child": "done"}
    stats = await rt.task_stats(wid, "comp")
    assert (stats.total, stats.completed) == (1, 1)


async def test_failure_cancels_siblings_and_fails_the_workflow(rt: cf.Runtime) -> None:
    tasks = manual("a", "b", "c") | {"s": net.dummy_task(), "j": net.task()}
    flows = [
        ("start", "s"),
        ("s", "a"),
        ("s", "b"),
        ("s", "c"),
        ("a", "j"),
        ("b", "j"),
        ("c", "j"),
        ("j", "end"),
    ]
    rt.register(build("flat", tasks, flows))
    wid = await rt.start_workflow("flat")
    b = await open_item(rt, wid, "b")
    await rt.start_work_item(b.id)
    a = await open_item(rt, wid, "a")
    await rt.start_work_item(a.id)
    await rt.fail_work_item(a.id, {"reason": "card declined"})
    info = await rt.workflow(wid)
    assert info.state == "failed"
    assert "card declined" in (info.error or "")
    assert await states(rt, wid) == {
        "a": "failed",
        "b": "canceled",
        "c": "disabled",
        "s": "completed",
        "j": "disabled",
    }
    assert (await rt.work_item(b.id)).state == "canceled"
    assert (await rt.work_item(a.id)).state == "failed"
    assert [i.state for i in await rt.work_items(wid, "c")] == ["canceled"]


async def test_nested_failure_climbs_to_the_root(rt: cf.Runtime) -> None:
    rt.register(parent_spec(child_spec(), sibling=True))
    wid = await rt.start_workflow("parent")
    y = await open_item(rt, wid, "y")
    await rt.start_work_item(y.id)
    [child] = await rt.child_workflows(wid, "comp")
    x = await open_item(rt, child.id, "x")
    await rt.start_work_item(x.id)
    await rt.fail_work_item(x.id, "boom")
    assert await rt.workflow_state(child.id) == "failed"
    assert (await states(rt, wid))["comp"] == "failed"
    assert (await states(rt, wid))["y"] == "canceled"
    assert await rt.workflow_state(wid) == "failed"
    assert "boom" in ((await rt.workflow(wid)).error or "")


async def test_a_policy_can_contain_a_failure(rt: cf.Runtime) -> None:
    decisions: list[tuple[str, int, int]] = []

    def tolerant(ctx: object) -> str:
        stats = ctx.stats  # type: ignore[attr-defined]
        decisions.append((ctx.transition.next_state, stats.completed, stats.failed))  # type: ignore[attr-defined]
        finished = stats.completed + stats.failed + stats.canceled
        return "complete" if finished == stats.total and stats.completed else "continue"

    def two_items(ctx: object) -> None:
        ctx.work_item.initialize("one")  # type: ignore[attr-defined]
        ctx.work_item.initialize("two")  # type: ignore[attr-defined]

    tasks = {"a": net.task().policy(tolerant).activities(on_enabled=two_items)}
    rt.register(build("tolerant", tasks, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("tolerant")
    one, two = await rt.work_items(wid, "a")
    assert (one.payload, two.payload) == ("one", "two")
    await rt.start_work_item(one.id)
    await rt.start_work_item(two.id)
    await rt.fail_work_item(one.id)
    assert (await states(rt, wid))["a"] == "started"
    assert await rt.workflow_state(wid) == "started"
    await rt.complete_work_item(two.id)
    assert await rt.workflow_state(wid) == "completed"
    assert decisions[-2:] == [("failed", 0, 1), ("completed", 1, 1)]


async def test_a_policy_must_answer_complete_fail_or_continue(rt: cf.Runtime) -> None:
    rt.register(
        build("bad", {"a": net.task().policy(lambda ctx: "done")}, [("start", "a"), ("a", "end")])
    )
    wid = await rt.start_workflow("bad")
    item = await open_item(rt, wid, "a")
    with pytest.raises(InvalidPolicyResultError, match="'done'"):
        await rt.start_work_item(item.id)
    assert (await rt.work_item(item.id)).state == "initialized"  # rolled back


async def test_bottom_up_cancel_asks_the_policy(rt: cf.Runtime) -> None:
    def two_items(ctx: object) -> None:
        ctx.work_item.initialize()  # type: ignore[attr-defined]
        ctx.work_item.initialize()  # type: ignore[attr-defined]

    rt.register(
        build(
            "bu", {"a": net.task().activities(on_enabled=two_items)}, [("start", "a"), ("a", "end")]
        )
    )
    wid = await rt.start_workflow("bu")
    one, two = await rt.work_items(wid, "a")
    await rt.start_work_item(one.id)
    await rt.start_work_item(two.id)
    await rt.cancel_work_item(one.id)
    assert (await states(rt, wid))["a"] == "started"  # not all finalized: continue
    await rt.complete_work_item(two.id)
    assert (await states(rt, wid))["a"] == "completed"
    assert await rt.workflow_state(wid) == "completed"


async def test_top_down_cancel_bypasses_policies(rt: cf.Runtime) -> None:
    calls: list[str] = []

    def policy(ctx: object) -> str:
        calls.append(ctx.task.name)  # type: ignore[attr-defined]
        return "continue"

    child = build("child", {"x": net.task().policy(policy)}, [("start", "x"), ("x", "end")])
    tasks = {
        "s": net.dummy_task(),
        "comp": net.composite_task(child).policy(policy),
        "y": net.task().policy(policy),
    }
    tasks["j"] = net.task()
    flows = [("start", "s"), ("s", "comp"), ("s", "y"), ("comp", "j"), ("y", "j"), ("j", "end")]
    rt.register(build("parent", tasks, flows))
    wid = await rt.start_workflow("parent")
    [sub] = await rt.child_workflows(wid, "comp")
    x = await open_item(rt, sub.id, "x")
    await rt.start_work_item(x.id)
    calls.clear()  # the start-time policy call
    y = await open_item(rt, wid, "y")
    await rt.cancel_workflow(wid)
    assert calls == []
    assert await rt.workflow_state(wid) == "canceled"
    assert await rt.workflow_state(sub.id) == "canceled"
    assert await states(rt, wid) == {
        "s": "completed",
        "comp": "canceled",
        "y": "disabled",
        "j": "disabled",
    }
    assert (await rt.work_item(x.id)).state == "canceled"
    assert (await rt.work_item(y.id)).state == "canceled"
    with pytest.raises(InvalidStateTransitionError, match="canceled"):
        await rt.cancel_workflow(wid)


async def test_cancelling_a_child_workflow_asks_the_composite_policy(rt: cf.Runtime) -> None:
    def two_children(ctx: object) -> None:
        ctx.workflow.initialize({"n": 1})  # type: ignore[attr-defined]
        ctx.workflow.initialize({"n": 2})  # type: ignore[attr-defined]

    tasks = {"comp": net.composite_task(child_spec()).activities(on_enabled=two_children)}
    rt.register(build("multi", tasks, [("start", "comp"), ("comp", "end")]))
    wid = await rt.start_workflow("multi")
    first, second = await rt.child_workflows(wid, "comp")
    assert (first.payload, second.payload) == ({"n": 1}, {"n": 2})
    await run(rt, first.id, "x")
    assert (await states(rt, wid))["comp"] == "started"
    await rt.cancel_workflow(second.id)
    assert await rt.workflow_state(second.id) == "canceled"
    assert (await states(rt, wid))["comp"] == "completed"  # default: all finalized -> complete
    assert await rt.workflow_state(wid) == "completed"


async def test_a_composite_task_whose_only_child_was_canceled_gets_another(
    rt: cf.Runtime,
) -> None:
    """The only child of a composite task that has not started was canceled: the task stays
    enabled with no live child, and no call could give it one, so its workflow was stuck for
    good (h24's conformance audit H2). ``initialize_workflow`` (spec 5.7's
    ``initializeWorkflow``) adds one, as ``initialize_work_item`` does to a task."""
    rt.register(parent_spec(child_spec()))
    wid = await rt.start_workflow("parent")
    [first] = await rt.child_workflows(wid, "comp")
    await rt.cancel_workflow(first.id)
    assert (await states(rt, wid))["comp"] == "enabled"
    second = await rt.initialize_workflow(wid, "comp", {"again": True})
    [canceled, child] = await rt.child_workflows(wid, "comp")
    assert (canceled.id, canceled.state) == (first.id, "canceled")
    assert (child.id, child.payload, child.state) == (second, {"again": True}, "initialized")
    await run(rt, second, "x")
    assert await rt.workflow_state(wid) == "completed"
    # a task's children are work items, a composite task's workflows: each call says so
    rt.register(build("plain", manual("a"), [("start", "a"), ("a", "end")]))
    plain = await rt.start_workflow("plain")
    with pytest.raises(NotFoundError, match="'a' is a task: initialize_work_item adds to it"):
        await rt.initialize_workflow(plain, "a")
    with pytest.raises(
        NotFoundError, match="'comp' is a composite task: its children are workflows"
    ):
        await rt.initialize_work_item(wid, "comp")
    # its workflow has completed: the task takes children only while enabled or started (it
    # said "from 'completed' it can become ['enabled', 'started']": conform h26 L2)
    with pytest.raises(
        InvalidStateTransitionError,
        match="is 'completed' and cannot initialize a child workflow: it does that only while "
        "'enabled' or 'started'",
    ):
        await rt.initialize_workflow(wid, "comp")
    await run(rt, plain, "a")
    with pytest.raises(
        InvalidStateTransitionError,
        match="'plain/a' is 'completed' and cannot initialize a work item: it does that only",
    ):
        await rt.initialize_work_item(plain, "a")


async def test_reset_returns_a_work_item_to_initialized(rt: cf.Runtime) -> None:
    rt.register(build("reset", manual("a"), [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("reset")
    item = await open_item(rt, wid, "a")
    await rt.start_work_item(item.id)
    await rt.reset_work_item(item.id)
    info = await rt.work_item(item.id)
    assert (info.state, info.attempt) == ("initialized", 1)
    assert (await states(rt, wid))["a"] == "started"  # the task stays started
    stats = await rt.task_stats(wid, "a")
    assert (stats.initialized, stats.started) == (1, 0)
    with pytest.raises(InvalidStateTransitionError, match="initialized"):
        await rt.reset_work_item(item.id)
    await rt.start_work_item(item.id)
    assert (await rt.work_item(item.id)).attempt == 2
    await rt.complete_work_item(item.id)
    assert await rt.workflow_state(wid) == "completed"


async def test_dynamic_composite_task_picks_its_children(rt: cf.Runtime) -> None:
    a_wf = child_spec("wf_a")
    b_wf = child_spec("wf_b")

    def pick(ctx: object) -> None:
        ctx.workflow.initialize("wf_b", {"pick": "b"})  # type: ignore[attr-defined]
        ctx.workflow.initialize("wf_a")  # type: ignore[attr-defined]

    tasks = {"dyn": net.dynamic_composite_task([a_wf, b_wf]).activities(on_enabled=pick)}
    rt.register(build("dyn", tasks, [("start", "dyn"), ("dyn", "end")]))
    wid = await rt.start_workflow("dyn")
    children = await rt.child_workflows(wid, "dyn")
    assert [c.name for c in children] == ["wf_b", "wf_a"]
    with pytest.raises(NotFoundError, match="no child workflow 'wf_c'"):
        await rt.initialize_workflow(wid, "dyn", workflow="wf_c")
    # no type named is refused, never the first guessed (conform h38 F1), and adds nothing
    with pytest.raises(ConfigurationError, match=r"name the child type to start, one of \['wf_a'"):
        await rt.initialize_workflow(wid, "dyn", {"pick": "?"})
    with pytest.raises(ConfigurationError, match="--workflow on the command line"):
        await rt.initialize_workflow(wid, "dyn", workflow="")  # an empty ?workflow= too
    with pytest.raises(NotFoundError, match=r"name one of its child types: \['wf_a', 'wf_b'\]$"):
        await rt.initialize_workflow(wid, "dyn", workflow="wf_c")  # (no "check the id")
    third = await rt.initialize_workflow(wid, "dyn", {"pick": "a"}, workflow="wf_a")
    assert [c.name for c in await rt.child_workflows(wid, "dyn")] == ["wf_b", "wf_a", "wf_a"]
    for child in children:
        await run(rt, child.id, "x")
    assert await rt.workflow_state(wid) == "started"  # the third child runs still
    await run(rt, third, "x")
    assert await rt.workflow_state(wid) == "completed"


async def test_a_job_that_names_no_child_type_starts_the_first_as_before(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """Only a call of the runtime's must name a dynamic composite task's child type: a job
    stored without one (``net.jobs.initialize_workflow``'s default) failed its run when it
    fired, where it had started the first type (review h38 F1)."""

    def later(ctx: Any) -> None:
        ctx.register_scheduled(1, net.jobs.initialize_workflow(ctx.parent.id, ctx.task.name))

    dynamic = net.dynamic_composite_task([child_spec("wf_a"), child_spec("wf_b")])
    rt.register(
        build(
            "dj", {"dyn": dynamic.activities(on_enabled=later)}, [("start", "dyn"), ("dyn", "end")]
        )
    )
    wid = await rt.start_workflow("dj")
    await rt.wait_idle()
    clock.advance(2)
    await rt.wait_idle()
    assert [c.name for c in await rt.child_workflows(wid, "dyn")] == ["wf_a"]
    assert await rt.workflow_state(wid) == "initialized"  # not failed: it waits for wf_a


async def test_an_activity_that_raises_changes_nothing(rt: cf.Runtime) -> None:
    def broken(ctx: object) -> None:
        raise RuntimeError("activity bug")

    tasks = {"a": net.task(), "b": net.task().activities(on_enabled=broken)}
    rt.register(build("broken", tasks, [("start", "a"), ("a", "b"), ("b", "end")]))
    wid = await rt.start_workflow("broken")
    await refused_completion(rt, wid, "a", RuntimeError, "activity bug")
    assert await enabled(rt, wid) == set()
    assert (await states(rt, wid))["a"] == "started"


async def test_an_activity_that_adds_a_work_item_to_an_ended_task_is_told_where_it_must_be(
    rt: cf.Runtime,
) -> None:
    """A task's activity that replaced a canceled item as the task failed was told "'failed'
    ... can become ['enabled', 'started']", where spec 1.1 moves a failed task to enabled only
    (net h44 F4): the call is something a task does while enabled or started."""
    said: list[str] = []

    def replace_canceled(ctx: Any) -> None:
        if ctx.work_item.next_state == "canceled":
            try:
                ctx.work_item.initialize()
            except InvalidStateTransitionError as refused:
                said.append(str(refused))

    def three(ctx: Any) -> None:
        for _ in range(3):
            ctx.work_item.initialize()

    activities = net.task().activities(
        on_enabled=three, on_work_item_state_changed=replace_canceled
    )
    spec = (
        net.workflow("replacing").start_condition("start").end_condition("end")
        .task("M", activities).connect_condition("start", "M").connect_task("M", "end")
        .build()
    )  # fmt: skip
    rt.register(spec)
    wid = await rt.start_workflow("replacing")
    items = await rt.work_items(wid, "M")
    for item in items:
        await rt.start_work_item(item.id)
    await rt.fail_work_item(items[0].id)  # the default policy fails M: its siblings canceled
    refusal = (
        "task 'replacing/M' is 'failed' and cannot initialize a work item: it does that only "
        "while 'enabled' or 'started'"
    )
    assert said == [refusal, refusal]

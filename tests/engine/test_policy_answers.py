"""What a completion policy's answer reaches: one generation of a task only (spec sections 7.7
and 14: when an activity's chain ends the generation it was asked about and starts the next, the
answer about the old one's work item or child workflow decides nothing of the new one); and the
first answer, as the task starts, ends a composite task as it ends a plain one (spec 1.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import RuntimeNotRunningError
from cronflow_actors.kernel import ManualClock
from tests.engine.helpers import build, open_item, states


def _net(name: str, task: Any, *, composite: bool = False) -> net.NetSpec:
    """Two tasks put two tokens in ``c``, so ``T`` runs twice (generations 1 and 2)."""
    builder = (
        net.workflow(name)
        .start_condition("start")
        .end_condition("end")
        .condition("c")
        .condition("d")
        .dummy_task("S")
        .task("P1", net.task())
        .task("P2", net.task())
        .task("U", net.task())
    )
    if composite:
        builder.composite_task("T", task)
    else:
        builder.task("T", task)
    return (
        builder.connect_condition("start", "S")
        .connect_task("S", "P1", "P2")
        .connect_task("P1", "c")
        .connect_task("P2", "c")
        .connect_condition("c", "T")
        .connect_task("T", "d")
        .connect_condition("d", "U")
        .connect_task("U", "end")
        .build()
    )


async def _two_tokens_in_c(rt: cf.Runtime, wid: str) -> None:
    for task in ("P1", "P2"):
        item = await open_item(rt, wid, task)
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id)


async def test_a_policy_about_an_ended_generation_decides_nothing_of_the_next(
    rt: cf.Runtime,
) -> None:
    asked: list[tuple[int, str]] = []

    def initialized(ctx: Any) -> None:
        if (ctx.work_item.payload or {}).get("start"):
            ctx.work_item.start()

    def started(ctx: Any) -> None:
        if (ctx.work_item.payload or {}).get("complete"):
            ctx.work_item.complete({"compensated": True})

    def enabled(ctx: Any) -> None:  # generation 2's item starts at once, and runs on
        ctx.work_item.initialize({} if ctx.task.generation == 1 else {"start": True})

    def changed(ctx: Any) -> None:  # a failure is compensated by an item that completes at once
        if ctx.work_item.next_state == "failed":
            ctx.work_item.initialize({"start": True, "complete": True})

    def policy(ctx: Any) -> str:
        asked.append((ctx.task.generation, str(ctx.transition.next_state)))
        if ctx.transition.next_state == "failed":
            return "fail"
        stats = ctx.stats
        done = stats.completed + stats.failed + stats.canceled == stats.total
        return "complete" if done else "continue"

    item = net.work_item("w").activities(on_initialized=initialized, on_started=started)
    task = (
        net.task(item)
        .policy(policy)
        .activities(on_enabled=enabled, on_work_item_state_changed=changed)
    )
    rt.register(_net("generations", task))
    wid = await rt.start_workflow("generations")
    await _two_tokens_in_c(rt, wid)
    first = await open_item(rt, wid, "T")
    await rt.start_work_item(first.id)

    await rt.fail_work_item(first.id, "broke")

    # generation 1 was completed by the compensation (its token is in d); generation 2 runs
    assert await rt.workflow_state(wid) == "started"
    assert (await states(rt, wid))["T"] == "started"
    assert await rt.task_generation(wid, "T") == 2
    [second] = await rt.work_items(wid, "T")
    assert second.state == "started"
    assert (await rt.marking(wid))["d"] == 1
    # the compensation's completion decided generation 1; the failure was asked of nobody later
    assert (1, "completed") in asked
    assert (2, "failed") not in asked


async def test_a_composite_policy_about_an_ended_generation_decides_nothing_of_the_next(
    rt: cf.Runtime,
) -> None:
    def route(ctx: Any) -> Any:  # "quick": the child completes at once; "manual": it waits
        if ctx.payload["mode"] == "quick":
            return ctx.route.to_condition("end")
        return ctx.route.to_task("M")

    child = (
        net.workflow("kid")
        .start_condition("start")
        .end_condition("end")
        .dummy_task("D", net.dummy_task().split("xor").route(route))
        .task("M", net.task())
        .connect_condition("start", "D")
        .connect_task("D", "end", "M")
        .connect_task("M", "end")
    )

    def enabled(ctx: Any) -> None:
        ctx.workflow.initialize({"mode": "manual"})

    def changed(ctx: Any) -> None:  # a failed child is compensated by one that completes at once
        if ctx.workflow.next_state == "failed":
            ctx.workflow.initialize({"mode": "quick"})

    task = net.composite_task(child).activities(
        on_enabled=enabled, on_workflow_state_changed=changed
    )
    rt.register(_net("composite-generations", task, composite=True))
    wid = await rt.start_workflow("composite-generations")
    await _two_tokens_in_c(rt, wid)
    [first] = await rt.child_workflows(wid, "T")
    item = await open_item(rt, first.id, "M")
    await rt.start_work_item(item.id)

    await rt.fail_work_item(item.id, "broke")

    info = await rt.workflow(wid)
    assert (info.state, info.error) == ("started", None)
    assert await rt.task_generation(wid, "T") == 2
    assert (await rt.marking(wid))["d"] == 1
    assert [c.state for c in await rt.child_workflows(wid, "T")] == ["started"]  # (M waits)


@pytest.mark.parametrize(("answer", "ends"), [("complete", "started"), ("fail", "failed")])
@pytest.mark.parametrize("composite", [False, True])
async def test_the_answer_as_the_task_starts_ends_it_with_the_item_that_started_it(
    rt: cf.Runtime, answer: str, ends: str, composite: bool
) -> None:
    def policy(ctx: Any) -> str:  # asked once as the task starts (nothing has ended yet)
        return answer if ctx.stats.started == 0 else "continue"

    child = build("kid", {"k": net.task()}, [("start", "k"), ("k", "end")])
    task = (net.composite_task(child) if composite else net.task()).policy(policy)
    rt.register(
        build(
            "first-answer", {"T": task, "U": net.task()}, [("start", "T"), ("T", "U"), ("U", "end")]
        )
    )
    wid = await rt.start_workflow("first-answer")
    where = (await rt.child_workflows(wid, "T"))[0].id if composite else wid
    item = await open_item(rt, where, "k" if composite else "T")

    await rt.start_work_item(item.id)  # the start stands; the item it started is torn down

    assert (await rt.work_item(item.id)).state == "canceled"
    assert await rt.workflow_state(wid) == ends
    assert (await states(rt, wid))["T"] == ("completed" if answer == "complete" else "failed")
    if composite:
        assert await rt.workflow_state(where) == "canceled"


@pytest.mark.parametrize("catch", [False, True])
async def test_an_on_enabled_that_raises_as_a_handler_result_is_applied_fails_its_task(
    rt: cf.Runtime, catch: bool
) -> None:
    # the handler's result is a report (nobody can be refused it): it stands, A completed,
    # and B fails with its activity's error (a catching B completes with the failure)
    async def handler(ctx: Any) -> int:
        return 1

    def enabled(ctx: Any) -> None:
        raise KeyError("lines")

    b = net.task().activities(on_enabled=enabled)
    rt.register(
        build(
            "entry",
            {"A": net.task(handler), "B": b.catch() if catch else b},
            [("start", "A"), ("A", "B"), ("B", "end")],
        )
    )
    wid = await rt.start_workflow("entry")
    await rt.wait_idle()

    info = await rt.workflow(wid)
    [a] = await rt.work_items(wid, "A")
    assert (a.state, a.output) == ("completed", 1)
    assert await rt.work_items(wid, "B") == []
    if catch:
        assert info.state == "completed"
        assert (await states(rt, wid))["B"] == "completed"
    else:
        assert (info.state, info.error) == ("failed", "on_enabled of task 'B': KeyError: 'lines'")
        assert (await states(rt, wid))["B"] == "failed"


async def test_an_on_enabled_that_raises_in_a_call_refuses_the_call(rt: cf.Runtime) -> None:
    def enabled(ctx: Any) -> None:
        raise KeyError("lines")

    rt.register(
        build(
            "called",
            {"A": net.task(), "B": net.task().activities(on_enabled=enabled)},
            [("start", "A"), ("A", "B"), ("B", "end")],
        )
    )
    wid = await rt.start_workflow("called")
    a = await open_item(rt, wid, "A")
    await rt.start_work_item(a.id)
    with pytest.raises(KeyError, match="lines"):
        await rt.complete_work_item(a.id)
    assert (await rt.work_item(a.id)).state == "started"  # nothing of the call changed
    assert (await states(rt, wid))["B"] == "disabled"


async def test_a_task_whose_name_begins_another_s_keeps_its_own_jobs(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    # task "a" completing drops its own jobs, not those of task "a/b" (a name may hold "/")
    def enabled(ctx: Any) -> None:
        item = ctx.work_item.initialize()
        ctx.register_scheduled(30, net.jobs.cancel_work_item(item))  # a deadline of "a/b"

    tasks = {
        "S": net.dummy_task(),
        "a": net.task(),
        "a/b": net.task().activities(on_enabled=enabled),
    }
    flows = [("start", "S"), ("S", "a"), ("S", "a/b"), ("a", "J"), ("a/b", "J"), ("J", "end")]
    rt.register(build("prefixes", tasks | {"J": net.dummy_task()}, flows))
    wid = await rt.start_workflow("prefixes")
    a = await open_item(rt, wid, "a")
    await rt.start_work_item(a.id)
    await rt.complete_work_item(a.id)

    clock.advance(31)
    await rt.wait_idle()
    assert [i.state for i in await rt.work_items(wid, "a/b")] == ["canceled"]


async def test_a_timer_whose_job_raises_fails_the_run_rather_than_leave_it_waiting(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    # the job (complete the item at 10 s) cannot be applied: its task's policy raises; the
    # job was dropped and the run waited for good for what it was to do
    def started(ctx: Any) -> None:
        ctx.register_scheduled(10, net.jobs.complete_work_item(ctx.work_item.id))

    def policy(ctx: Any) -> str:
        if ctx.stats.completed:
            raise RuntimeError("policy bug")
        return "continue"

    item = net.work_item("w").activities(on_started=started)
    rt.register(
        build("timed", {"t": net.task(item).policy(policy)}, [("start", "t"), ("t", "end")])
    )
    wid = await rt.start_workflow("timed")
    await rt.start_work_item((await open_item(rt, wid, "t")).id)

    clock.advance(11)
    await rt.wait_idle()

    info = await rt.workflow(wid)
    assert (info.state, info.error) == ("failed", "policy of task 't': RuntimeError: policy bug")
    assert await rt.store.load_timers() == []


async def test_the_runtimes_own_trouble_in_a_report_records_no_failure(tmp_path: Path) -> None:
    # an on_enabled whose state read finds the runtime stopping: not user code's failure, so
    # nothing is recorded (it was the run's failure, for good); the next start applies it again
    troubles = [RuntimeNotRunningError("read the state", "stopping")]

    async def handler(ctx: Any) -> int:
        return 1

    def enabled(ctx: Any) -> None:
        if troubles:
            raise troubles.pop()
        ctx.work_item.initialize()

    spec = build(
        "troubled",
        {"A": net.task(handler), "B": net.task().activities(on_enabled=enabled)},
        [("start", "A"), ("A", "B"), ("B", "end")],
    )
    db = tmp_path / "troubled.db"
    async with cf.Runtime(db=db, workflows=[spec]) as rt:
        wid = await rt.start_workflow("troubled")
        await rt.wait_idle()
        assert (await rt.workflow(wid)).state == "started"
        assert [i.state for i in await rt.work_items(wid, "A")] == ["started"]
    async with cf.Runtime(db=db, workflows=[spec]) as rt:
        await rt.wait_idle()  # recovery ran A's handler again; B began this time
        assert [i.state for i in await rt.work_items(wid, "A")] == ["completed"]
        assert (await states(rt, wid))["B"] == "enabled"


async def test_a_timer_whose_job_finds_its_target_moved_on_is_dropped_alone(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    # the job (start the item at 10 s, the task's) finds the item canceled meanwhile: the
    # engine refuses it, which is no failure of the run
    def enabled(ctx: Any) -> None:
        item = ctx.work_item.initialize()
        ctx.register_scheduled(10, net.jobs.start_work_item(item))

    task = net.task().policy(lambda ctx: "continue").activities(on_enabled=enabled)
    rt.register(build("moved", {"t": task}, [("start", "t"), ("t", "end")]))
    wid = await rt.start_workflow("moved")
    item = await open_item(rt, wid, "t")
    await rt.cancel_work_item(item.id)

    clock.advance(11)
    await rt.wait_idle()

    info = await rt.workflow(wid)
    assert (info.state, info.error) == ("initialized", None)  # as it was: nothing started it
    assert await rt.store.load_timers() == []


async def test_a_catching_tasks_router_reads_the_failure_with_net_caught(rt: cf.Runtime) -> None:
    """``catch()`` said ``failure_of(output)`` reads the failure a catching task completes with,
    and there was no such helper (conform h26 L3): ``net.caught`` reads it."""
    seen: list[Any] = []

    def charge(ctx: Any) -> None:
        raise ConnectionError("card declined")

    def route(ctx: Any) -> Any:
        failure = net.caught(ctx.output)
        seen.append(failure)
        return ctx.route.to_task("fallback" if failure is not None else "ship")

    tasks = {
        "charge": net.task(charge).catch().split("xor").route(route),
        "fallback": net.task(lambda ctx: "invoiced"),
        "ship": net.task(lambda ctx: "shipped"),
    }
    arcs = [("start", "charge"), ("charge", "fallback"), ("charge", "ship")]
    rt.register(build("pay", tasks, [*arcs, ("fallback", "end"), ("ship", "end")]))
    wid = await rt.start_workflow("pay")
    await rt.wait_idle()
    assert (await rt.workflow(wid)).state == "completed"
    [failure] = seen
    assert isinstance(failure, net.CaughtFailure)
    assert "ConnectionError: card declined" in failure.error
    assert failure.error_type == "builtins.ConnectionError"
    assert (await states(rt, wid))["ship"] == "disabled"


async def test_a_policy_tells_the_call_as_its_task_starts_from_a_child_s_change(
    rt: cf.Runtime,
) -> None:
    """The call as the task starts (a synthetic started -> completed) read as a completion: a
    "first completion wins" policy completed the task at its first start and canceled every
    item (h42 net F1). ``ctx.transition.child_id`` names the child that changed, None there."""
    seen: list[tuple[Any, ...]] = []

    def first_completion_wins(ctx: Any) -> str:
        changed = ctx.transition
        seen.append((changed.prev_state, changed.next_state, changed.child_id))
        done = changed.child_id is not None and changed.next_state == "completed"
        return "complete" if done else "continue"

    def three(ctx: Any) -> None:
        for n in range(3):
            ctx.work_item.initialize({"n": n})

    ask = net.task().activities(on_enabled=three).policy(first_completion_wins)
    rt.register(build("panel", {"ask": ask}, [("start", "ask"), ("ask", "end")]))
    wid = await rt.start_workflow("panel")
    first, second, _third = await rt.work_items(wid, "ask")
    await rt.start_work_item(first.id)
    await rt.start_work_item(second.id)  # the task is still started: nothing was canceled
    assert seen == [("started", "completed", None)]
    await rt.complete_work_item(second.id, "yes")
    assert seen[-1] == ("started", "completed", second.id)
    assert await rt.workflow_state(wid) == "completed"


async def test_a_policy_that_fails_its_task_on_a_completion_says_so(rt: cf.Runtime) -> None:
    """A policy answering "fail" as an item completed (a rejection) made the run's error say
    the item "failed", while it read completed (net h44 F3)."""

    def reject(ctx: Any) -> str:
        completed = ctx.transition.child_id and ctx.transition.next_state == "completed"
        return "fail" if completed else "continue"

    tasks = {"review": net.task().policy(reject)}
    rt.register(build("review", tasks, [("start", "review"), ("review", "end")]))
    wid = await rt.start_workflow("review")
    item = await open_item(rt, wid, "review")
    await rt.start_work_item(item.id)
    await rt.complete_work_item(item.id)
    assert await rt.workflow_state(wid) == "failed"
    assert (await rt.work_item(item.id)).state == "completed"
    info = await rt.inspect(wid)
    assert info.error == (
        f"task 'review': work item {item.id!r}: its task's policy answered 'fail' as it completed"
    )


async def test_a_policy_that_raises_on_a_handlers_result_fails_its_task_naming_it(
    rt: cf.Runtime,
) -> None:
    """It went through the report's last resort: the policy was asked again, and the run
    failed (rather than stall) with the item that succeeded and its task read canceled, its
    error naming neither (net h44 F2). In a call (a caller's complete) the call is refused,
    nothing changed."""
    asked: list[str] = []

    def broken(ctx: Any) -> str:
        if ctx.transition.child_id is None:
            return "continue"  # (asked as the task starts)
        asked.append(ctx.transition.next_state)
        raise RuntimeError("policy bug")

    tasks = {"A": net.task(lambda ctx: 1).policy(broken), "B": net.task()}
    rt.register(build("auto", tasks, [("start", "A"), ("A", "B"), ("B", "end")]))
    wid = await rt.start_workflow("auto")
    await rt.wait_idle()
    assert await rt.workflow_state(wid) == "failed"
    assert await states(rt, wid) == {"A": "failed", "B": "disabled"}
    [item] = await rt.work_items(wid, "A")
    assert (item.state, asked) == ("completed", ["completed"])  # its handler's result stands
    assert (await rt.inspect(wid)).error == "policy of task 'A': RuntimeError: policy bug"

    manual = {"A": net.task().policy(broken), "B": net.task()}
    rt.register(build("by-hand", manual, [("start", "A"), ("A", "B"), ("B", "end")]))
    wid = await rt.start_workflow("by-hand")
    item = await open_item(rt, wid, "A")
    await rt.start_work_item(item.id)
    with pytest.raises(RuntimeError, match="policy bug"):
        await rt.complete_work_item(item.id)
    assert (await rt.work_item(item.id)).state == "started"
    assert await rt.workflow_state(wid) == "started"


async def test_a_catching_task_whose_policy_raises_completes_with_the_failure(
    rt: cf.Runtime,
) -> None:
    """A raising policy failed the run past a catch(), which a raising on_enabled, a deadline
    and a "fail" answer all respect (review h44 F3)."""

    def broken(ctx: Any) -> str:
        if ctx.transition.child_id is None:
            return "continue"
        raise RuntimeError("policy bug")

    tasks = {"A": net.task(lambda ctx: 1).policy(broken).catch(), "B": net.task(lambda ctx: 2)}
    rt.register(build("caught", tasks, [("start", "A"), ("A", "B"), ("B", "end")]))
    wid = await rt.start_workflow("caught")
    await rt.wait_idle()
    assert await states(rt, wid) == {"A": "completed", "B": "completed"}
    assert await rt.workflow_state(wid) == "completed"

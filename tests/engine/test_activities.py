"""Activities, the auto-trigger queue, and registerScheduled jobs on durable timers."""

from __future__ import annotations

from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import AutoTriggerAlreadySetError, SchedulingNotAllowedError
from cronflow_actors.kernel import ManualClock
from tests.engine.helpers import build, open_item, refused_completion, states


class Log:
    """Records activity calls as 'element.activity' strings (with transitions where given)."""

    def __init__(self) -> None:
        self.entries: list[str] = []

    def __call__(self, label: str) -> Any:
        def record(ctx: Any) -> None:
            changed = getattr(ctx.work_item, "next_state", None) or getattr(
                ctx.workflow, "next_state", None
            )
            if changed is not None and "state_changed" in label:
                prev = (
                    ctx.work_item.prev_state
                    if ctx.work_item is not None
                    else ctx.workflow.prev_state
                )
                self.entries.append(f"{label}[{prev}->{changed}]")
            else:
                self.entries.append(label)

        return record

    def activities(self, element: str, names: list[str]) -> dict[str, Any]:
        found = {name: self(f"{element}.{name}") for name in names}
        if "on_enabled" in found:  # an on_enabled activity decides what to initialize
            record = found["on_enabled"]

            def on_enabled(ctx: Any) -> None:
                record(ctx)
                (ctx.work_item or ctx.workflow).initialize()

            found["on_enabled"] = on_enabled
        return found

    def index(self, entry: str) -> int:
        return self.entries.index(entry)


WF = ["on_initialized", "on_started", "on_completed", "on_failed", "on_canceled"]
TASK = ["on_enabled", "on_started", "on_completed", "on_failed", "on_canceled", "on_disabled"]
ITEM = ["on_initialized", "on_started", "on_completed", "on_failed", "on_canceled"]


def nested(log: Log) -> net.NetSpec:
    """Tasquencer's activities-order net: start -> primary -> review (child: child_task) -> end."""
    child = (
        net.workflow("child")
        .start_condition("start")
        .end_condition("end")
        .task(
            "child_task",
            net.task(
                net.work_item("child_item").activities(**log.activities("child_item", ITEM))
            ).activities(
                **log.activities("child_task", TASK),
                on_work_item_state_changed=log("child_task.on_work_item_state_changed"),
            ),
        )
        .connect_condition("start", "child_task")
        .connect_task("child_task", "end")
        .activities(**log.activities("child_wf", WF))
    )
    return (
        net.workflow("root")
        .start_condition("start")
        .end_condition("end")
        .task(
            "primary",
            net.task(
                net.work_item("primary_item").activities(**log.activities("primary_item", ITEM))
            ).activities(
                **log.activities("primary", TASK),
                on_work_item_state_changed=log("primary.on_work_item_state_changed"),
            ),
        )
        .composite_task(
            "review",
            net.composite_task(child).activities(
                **log.activities("review", TASK),
                on_workflow_state_changed=log("review.on_workflow_state_changed"),
            ),
        )
        .connect_condition("start", "primary")
        .connect_task("primary", "review")
        .connect_task("review", "end")
        .activities(**log.activities("root", WF))
        .build()
    )


async def drive_to_child(rt: cf.Runtime) -> tuple[str, str, str]:
    wid = await rt.start_workflow("root")
    primary = await open_item(rt, wid, "primary")
    await rt.start_work_item(primary.id)
    await rt.complete_work_item(primary.id)
    [child] = await rt.child_workflows(wid, "review")
    item = await open_item(rt, child.id, "child_task")
    await rt.start_work_item(item.id)
    return wid, child.id, item.id


async def test_activity_order_on_the_success_path(rt: cf.Runtime) -> None:
    log = Log()
    rt.register(nested(log))
    wid, _child, item = await drive_to_child(rt)
    await rt.complete_work_item(item)
    assert await rt.workflow_state(wid) == "completed"
    e = log.entries
    assert [x for x in e if x.startswith("primary.")] == [
        "primary.on_enabled",
        "primary.on_started",
        "primary.on_work_item_state_changed[initialized->started]",
        "primary.on_work_item_state_changed[started->completed]",
        "primary.on_completed",
    ]
    assert [x for x in e if x.startswith("review.")] == [
        "review.on_enabled",
        "review.on_started",
        "review.on_workflow_state_changed[initialized->started]",
        "review.on_workflow_state_changed[started->completed]",
        "review.on_completed",
    ]
    assert [x for x in e if x.startswith("root.")] == [
        "root.on_initialized",
        "root.on_started",
        "root.on_completed",
    ]
    assert [x for x in e if x.startswith("primary_item.")] == [
        "primary_item.on_initialized",
        "primary_item.on_started",
        "primary_item.on_completed",
    ]
    assert log.index("primary.on_enabled") < log.index("root.on_initialized")
    assert log.index("root.on_started") < log.index("primary.on_started")
    assert log.index("primary.on_completed") < log.index("review.on_enabled")
    assert log.index("review.on_workflow_state_changed[started->completed]") < log.index(
        "review.on_completed"
    )
    assert log.index("review.on_completed") < log.index("root.on_completed")


async def test_activity_order_for_a_nested_cancel(rt: cf.Runtime) -> None:
    log = Log()
    rt.register(nested(log))
    wid, _child, _item = await drive_to_child(rt)
    log.entries.clear()
    await rt.cancel_workflow(wid)
    assert log.entries == [
        "child_item.on_canceled",
        "child_task.on_work_item_state_changed[started->canceled]",
        "child_task.on_canceled",
        "child_wf.on_canceled",
        "review.on_workflow_state_changed[started->canceled]",
        "review.on_canceled",
        "root.on_canceled",
    ]


async def test_activity_order_for_a_nested_failure(rt: cf.Runtime) -> None:
    log = Log()
    rt.register(nested(log))
    wid, _child, item = await drive_to_child(rt)
    log.entries.clear()
    await rt.fail_work_item(item, "no")
    assert log.entries == [
        "child_item.on_failed",
        "child_task.on_work_item_state_changed[started->failed]",
        "child_task.on_failed",
        "child_wf.on_failed",
        "review.on_workflow_state_changed[started->failed]",
        "review.on_failed",
        "root.on_failed",
    ]
    assert await rt.workflow_state(wid) == "failed"


async def test_auto_triggers_are_queued_and_drained_in_order(rt: cf.Runtime) -> None:
    log: list[str] = []

    def on_enabled(ctx: Any) -> None:
        for n in range(3):
            ctx.work_item.initialize(n)
        log.append("on_enabled done")

    def on_initialized(ctx: Any) -> None:
        log.append(f"initialized {ctx.work_item.payload}")
        ctx.work_item.start()

    def on_started(ctx: Any) -> None:
        log.append(f"started {ctx.work_item.payload}")
        ctx.work_item.complete({"n": ctx.work_item.payload})

    def changed(ctx: Any) -> None:
        log.append(f"task heard {ctx.work_item.prev_state}->{ctx.work_item.next_state}")

    item = net.work_item("auto").activities(
        on_initialized=on_initialized,
        on_started=on_started,
        on_completed=lambda ctx: log.append("completed"),
    )
    tasks = {
        "a": net.task(item).activities(on_enabled=on_enabled, on_work_item_state_changed=changed)
    }
    rt.register(build("auto", tasks, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("auto")
    assert await rt.workflow_state(wid) == "completed"
    assert log[:4] == ["on_enabled done", "initialized 0", "initialized 1", "initialized 2"]
    assert log[4:] == [
        "started 0",
        "task heard initialized->started",
        "completed",
        "task heard started->completed",
        "started 1",
        "task heard initialized->started",
        "completed",
        "task heard started->completed",
        "started 2",
        "task heard initialized->started",
        "completed",
        "task heard started->completed",
    ]
    assert [i.output for i in await rt.work_items(wid, "a")] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_work_items_added_from_on_work_item_state_changed(rt: cf.Runtime) -> None:
    def more(ctx: Any) -> None:
        if ctx.work_item.next_state == "completed" and len(ctx.work_item.ids()) < 3:
            ctx.work_item.initialize(len(ctx.work_item.ids()))

    item = net.work_item("step").activities(
        on_initialized=lambda ctx: ctx.work_item.start(),
        on_started=lambda ctx: ctx.work_item.complete(ctx.work_item.payload),
    )
    tasks = {"a": net.task(item).activities(on_work_item_state_changed=more)}
    rt.register(build("more", tasks, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("more")
    items = await rt.work_items(wid, "a")
    assert [i.payload for i in items] == [None, 1, 2]
    assert all(i.state == "completed" for i in items)
    assert (await rt.task_stats(wid, "a")).completed == 3
    assert await rt.workflow_state(wid) == "completed"


async def test_a_second_auto_trigger_is_an_error(rt: cf.Runtime) -> None:
    def twice(ctx: Any) -> None:
        ctx.work_item.complete()
        ctx.work_item.fail()

    tasks = {"a": net.task(net.work_item("a").activities(on_started=twice))}
    rt.register(build("twice", tasks, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("twice")
    item = await open_item(rt, wid, "a")
    with pytest.raises(AutoTriggerAlreadySetError, match="'complete'"):
        await rt.start_work_item(item.id)
    assert (await rt.work_item(item.id)).state == "initialized"


async def test_automated_work_items_run_their_handler(rt: cf.Runtime) -> None:
    async def double(ctx: Any) -> dict[str, int]:
        return {"n": ctx.payload["n"] * 2, "attempt": ctx.attempt, "key": ctx.idempotency_key}

    def blocking(ctx: Any) -> int:  # a plain def runs on the thread pool
        return ctx.outputs["double"]["n"] + 1

    async def broken(ctx: Any) -> None:
        raise ValueError("no stock")

    rt.register(
        build(
            "auto",
            {"double": net.task(double), "plus": net.task(blocking)},
            [("start", "double"), ("double", "plus"), ("plus", "end")],
        )
    )
    rt.register(build("broken", {"b": net.task(broken)}, [("start", "b"), ("b", "end")]))
    wid = await rt.start_workflow("auto", {"n": 21})
    info = await rt.wait_workflow(wid)
    assert (info.state, info.output) == ("completed", 43)
    [item] = await rt.work_items(wid, "double")
    assert item.output == {"n": 42, "attempt": 1, "key": item.id}
    bad = await rt.start_workflow("broken")
    info = await rt.wait_workflow(bad)
    assert info.state == "failed"
    assert "ValueError: no stock" in (info.error or "")
    journal = await rt.store.load_journal(wid)
    assert [(e.step_id, e.outcome) for e in journal] == [
        ("double", "completed"),
        ("plus", "completed"),
    ]


def scheduled_net(delay: float, job_kind: str) -> net.NetSpec:
    def on_started(ctx: Any) -> None:
        job = getattr(net.jobs, f"{job_kind}_work_item")(ctx.work_item.id, {"by": "timer"})
        ctx.register_scheduled(delay, job)

    tasks = {"a": net.task(net.work_item("a").activities(on_started=on_started)), "b": net.task()}
    return build("sched", tasks, [("start", "a"), ("a", "b"), ("b", "end")])


async def test_a_scheduled_job_runs_when_due(rt: cf.Runtime, clock: ManualClock) -> None:
    rt.register(scheduled_net(30, "fail"))
    wid = await rt.start_workflow("sched")
    item = await open_item(rt, wid, "a")
    await rt.start_work_item(item.id)
    assert len(await rt.store.load_timers()) == 1
    clock.advance(29)
    await rt.wait_idle()
    assert (await rt.work_item(item.id)).state == "started"
    clock.advance(1)
    await rt.wait_idle()
    assert (await rt.work_item(item.id)).state == "failed"
    assert await rt.workflow_state(wid) == "failed"
    assert await rt.store.load_timers() == []


@pytest.mark.parametrize("finish", ["complete", "fail", "cancel", "reset"])
async def test_scheduled_jobs_are_canceled_with_their_work_item(
    rt: cf.Runtime, clock: ManualClock, finish: str
) -> None:
    rt.register(scheduled_net(30, "complete"))
    wid = await rt.start_workflow("sched")
    item = await open_item(rt, wid, "a")
    await rt.start_work_item(item.id)
    await getattr(rt, f"{finish}_work_item")(item.id)
    assert await rt.store.load_timers() == []
    before = await rt.work_item(item.id)
    clock.advance(60)
    await rt.wait_idle()
    assert await rt.work_item(item.id) == before


async def test_scheduled_task_jobs_are_canceled_on_cancel_and_on_failure(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    def on_enabled(ctx: Any) -> None:
        ctx.work_item.initialize()
        ctx.register_scheduled(
            10, net.jobs.initialize_work_item(ctx.parent.id, ctx.task.name, "late")
        )

    tasks = {
        "s": net.dummy_task(),
        "a": net.task().activities(on_enabled=on_enabled),
        "b": net.task(),
        "j": net.task(),
    }
    flows = [("start", "s"), ("s", "a"), ("s", "b"), ("a", "j"), ("b", "j"), ("j", "end")]
    rt.register(build("tj", tasks, flows))
    # failure of a sibling fails the workflow: a is disabled and its job dropped
    wid = await rt.start_workflow("tj")
    assert len(await rt.store.load_timers(instance_id=wid)) == 1
    b = await open_item(rt, wid, "b")
    await rt.start_work_item(b.id)
    await rt.fail_work_item(b.id)
    assert await rt.store.load_timers(instance_id=wid) == []
    # top-down cancel drops it too
    other = await rt.start_workflow("tj")
    await rt.cancel_workflow(other)
    assert await rt.store.load_timers(instance_id=other) == []
    clock.advance(60)
    await rt.wait_idle()
    assert len(await rt.work_items(other, "a")) == 1
    # and when nothing stops it, it fires: a second work item appears
    third = await rt.start_workflow("tj")
    clock.advance(10)
    await rt.wait_idle()
    assert [i.payload for i in await rt.work_items(third, "a")] == [None, "late"]
    assert (await states(rt, third))["a"] == "enabled"


async def test_register_scheduled_is_refused_in_teardown_activities(rt: cf.Runtime) -> None:
    def on_completed(ctx: Any) -> None:
        ctx.register_scheduled(1, net.jobs.cancel_workflow(ctx.parent.id))

    tasks = {"a": net.task(net.work_item("a").activities(on_completed=on_completed))}
    rt.register(build("teardown", tasks, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("teardown")
    await refused_completion(rt, wid, "a", SchedulingNotAllowedError, "on_completed")


@pytest.mark.parametrize("delay", [float("nan"), float("inf")])
async def test_a_job_is_scheduled_only_a_finite_delay_away(rt: cf.Runtime, delay: float) -> None:
    """A NaN delay became a timer the store could not keep, and the start that registered it
    failed with a NOT NULL constraint (conform h26 M1); an infinite one never fires. Refused in
    the activity's words, nothing started."""

    def on_enabled(ctx: Any) -> None:
        ctx.work_item.initialize()
        ctx.register_scheduled(delay, net.jobs.fail_workflow(ctx.parent.id, "late"))

    rt.register(
        build(
            "nj",
            {"a": net.task().activities(on_enabled=on_enabled)},
            [("start", "a"), ("a", "end")],
        )
    )
    with pytest.raises(ValueError, match="register_scheduled's delay must be a finite number"):
        await rt.start_workflow("nj")
    assert await rt.store.load_timers() == []


async def test_an_action_callback_may_ask_for_its_own_move_and_no_other(rt: cf.Runtime) -> None:
    """Tasquencer hands an action's callback its transition function, idempotent, which the
    engine calls after the callback anyway: a ported callback calling ``complete()`` was refused
    with a word about register_scheduled, which it never called (conform h26 L4). Its own move
    is no more than that; another is refused, saying why."""
    log: list[str] = []

    def completing(ctx: Any, payload: Any) -> None:
        ctx.work_item.complete()
        ctx.work_item.complete()

    def starting(ctx: Any, payload: Any) -> None:
        if payload == "and complete":
            ctx.work_item.complete()

    item = net.work_item("w").actions(
        start=net.action(callback=starting), complete=net.action(callback=completing)
    )
    item = item.activities(on_completed=lambda ctx: log.append("completed"))
    rt.register(build("cb", {"a": net.task(item)}, [("start", "a"), ("a", "end")]))
    wid = await rt.start_workflow("cb")
    [work] = await rt.work_items(wid, "a")
    principal = cf.Principal("ada")
    with pytest.raises(
        SchedulingNotAllowedError, match=r"complete\(\) cannot be asked from the start"
    ):
        await rt.start_work_item(work.id, "and complete", principal=principal)
    assert (await rt.work_item(work.id)).state == "initialized"
    await rt.start_work_item(work.id, principal=principal)
    await rt.complete_work_item(work.id, principal=principal)
    assert log == ["completed"]
    assert await rt.workflow_state(wid) == "completed"

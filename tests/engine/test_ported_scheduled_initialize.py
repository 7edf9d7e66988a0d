"""Tasquencer's scheduled-initialize test, ported to the net API.

Source: tiborkr/tasquencer,
packages/tasquencer/convex/tasquencer/__tests__/scheduled-initialize.test.ts
(top-level scenarios and describe "scheduled cleanup"), plus the internal-caller rule of
spec/tasquencer-semantics.md section 5.3 for work items that a task activity initializes.

Translation:
- ``registerScheduled(mutationCtx.scheduler.runAfter(ms, internal.testing.tasquencer.X, ...))``
  is ``ctx.register_scheduled(seconds, net.jobs.x(...))``; milliseconds become seconds
  (200 ms -> 0.2 s) on the runtime's ``ManualClock``; ``vi.advanceTimersByTimeAsync`` +
  ``finishInProgressScheduledFunctions`` is ``clock.advance`` + ``rt.wait_idle()``.
- Tasquencer's ``tasquencerScheduledInitializations`` rows are our pending job timers
  (``rt.store.load_timers(instance_id=...)``). Their owner keys (``workflow/<id>``,
  ``task/<id>/<generation>``, ``workItem/<id>``) are not exposed, so each test records the timer
  id that ``register_scheduled`` returns, per owner, and compares the pending timers with them.
- Difference in bookkeeping: Tasquencer keeps a job's index row after the job has run (the row
  is only deleted when its owner finishes, and a fired function is no longer cancelled). Here a
  job that has run is consumed: its timer is gone. Where Tasquencer asserts "the entry is still
  there, same scheduledFunctionId", these tests assert that the job ran exactly once and left
  no pending timer behind.
- ``Builder.noOpTask`` with an ``onEnabled`` activity is ``net.task()`` with ``on_enabled``: as in
  Tasquencer, that activity decides which work items to create (here: none, a job does it).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import InvalidPayloadError
from cronflow_actors.kernel import ManualClock
from tests.engine.helpers import open_item, states

LATER = 60.0  # the cleanup scenarios' SCHEDULE_DELAY (60 s): never reached in those tests


async def pending(rt: cf.Runtime, workflow_id: str) -> set[str]:
    """Ids of the job timers still pending for the instance of ``workflow_id``."""
    return {t.timer_id for t in await rt.store.load_timers(instance_id=workflow_id)}


def one_task_net(name: str, task: net.TaskBuilder, **activities: Any) -> net.NetSpec:
    builder = (
        net.workflow(name)
        .start_condition("start")
        .end_condition("end")
        .task("task", task)
        .connect_condition("start", "task")
        .connect_task("task", "end")
    )
    if activities:
        builder.activities(**activities)
    return builder.build()


# -- scheduled initialization of work items and child workflows -----------------------------------


def scheduled_work_item_net(delays: list[float], registered: list[str]) -> net.NetSpec:
    """``delayed_task``'s on_enabled creates no work item; it schedules one initialization per
    delay (Tasquencer's "scheduled-work-item" and "scheduled-work-item-replaces" nets)."""

    def on_enabled(ctx: Any) -> None:
        assert ctx.task.generation == 1
        for delay in delays:
            job = net.jobs.initialize_work_item(ctx.parent.id, ctx.task.name)
            registered.append(ctx.register_scheduled(delay, job))

    return (
        net.workflow("scheduled-work-item")
        .start_condition("start")
        .end_condition("end")
        .task("delayed_task", net.task().activities(on_enabled=on_enabled))
        .connect_condition("start", "delayed_task")
        .connect_task("delayed_task", "end")
        .build()
    )


# Tasquencer: it("initializes work items when scheduleInitialize triggers")
async def test_a_scheduled_job_initializes_a_work_item(rt: cf.Runtime, clock: ManualClock) -> None:
    registered: list[str] = []
    rt.register(scheduled_work_item_net([0.2], registered))
    wid = await rt.start_workflow("scheduled-work-item")

    assert await rt.work_items(wid, "delayed_task") == []
    assert len(registered) == 1
    assert await pending(rt, wid) == set(registered)
    assert (await states(rt, wid))["delayed_task"] == "enabled"

    clock.advance(0.2)
    await rt.wait_idle()

    [item] = await rt.work_items(wid, "delayed_task")
    assert (item.state, item.payload, item.generation) == ("initialized", None, 1)
    # Tasquencer keeps the index row after the job ran; here the job is consumed (see module doc)
    assert await pending(rt, wid) == set()
    assert (await states(rt, wid))["delayed_task"] == "enabled"


# Tasquencer: it("cancels scheduled initializations when the task is canceled")
async def test_scheduled_initializations_are_dropped_when_the_workflow_is_canceled(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    registered: list[str] = []
    rt.register(scheduled_work_item_net([0.2], registered))
    wid = await rt.start_workflow("scheduled-work-item")
    clock.advance(0.05)
    await rt.wait_idle()
    assert await pending(rt, wid) == set(registered)

    await rt.cancel_workflow(wid)
    # the shutdown of an enabled task disables it (as in Tasquencer), dropping its jobs
    assert (await states(rt, wid))["delayed_task"] == "disabled"
    assert await pending(rt, wid) == set()

    clock.advance(0.5)
    await rt.wait_idle()
    assert await rt.work_items(wid, "delayed_task") == []
    assert await rt.workflow_state(wid) == "canceled"


# Tasquencer: it("keeps multiple scheduled initializations when registerScheduled runs again")
async def test_every_registered_job_is_kept_and_runs(rt: cf.Runtime, clock: ManualClock) -> None:
    registered: list[str] = []
    rt.register(scheduled_work_item_net([0.05, 0.2], registered))
    wid = await rt.start_workflow("scheduled-work-item")

    assert len(registered) == 2
    assert len(set(registered)) == 2  # a second registration does not replace the first
    assert await pending(rt, wid) == set(registered)

    clock.advance(0.075)
    await rt.wait_idle()
    assert len(await rt.work_items(wid, "delayed_task")) == 1
    assert await pending(rt, wid) == {registered[1]}

    clock.advance(0.2)
    await rt.wait_idle()
    items = await rt.work_items(wid, "delayed_task")
    assert [i.state for i in items] == ["initialized", "initialized"]
    assert await pending(rt, wid) == set()


# Tasquencer: it("initializes composite workflows when scheduled")
async def test_a_scheduled_job_initializes_a_child_workflow(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    registered: list[str] = []
    child = (
        net.workflow("scheduled-child-workflow")
        .start_condition("start")
        .end_condition("end")
        .task(
            "child_task", net.task().activities(on_enabled=lambda ctx: ctx.work_item.initialize({}))
        )
        .connect_condition("start", "child_task")
        .connect_task("child_task", "end")
    )

    def on_enabled(ctx: Any) -> None:
        job = net.jobs.initialize_workflow(ctx.parent.id, ctx.task.name)
        registered.append(ctx.register_scheduled(0.2, job))

    rt.register(
        net.workflow("scheduled-composite-workflow")
        .start_condition("start")
        .end_condition("end")
        .composite_task(
            "delayed_composite", net.composite_task(child).activities(on_enabled=on_enabled)
        )
        .connect_condition("start", "delayed_composite")
        .connect_task("delayed_composite", "end")
        .build()
    )
    wid = await rt.start_workflow("scheduled-composite-workflow")

    assert await rt.child_workflows(wid, "delayed_composite") == []
    assert await pending(rt, wid) == set(registered)
    assert len(registered) == 1

    clock.advance(0.2)
    await rt.wait_idle()

    [child_workflow] = await rt.child_workflows(wid, "delayed_composite")
    assert child_workflow.state == "initialized"
    assert [(i.state, i.payload) for i in await rt.work_items(child_workflow.id, "child_task")] == [
        ("initialized", {})
    ]
    assert (await states(rt, wid))["delayed_composite"] == "enabled"
    assert await pending(rt, wid) == set()


# -- scheduled cleanup ---------------------------------------------------------------------------

# Where a work item's own job is registered: Tasquencer registers it in the work item's custom
# ``initialize`` action (spec section 5.1: the initialize and start actions have
# registerScheduled); its ``on_initialized`` activity can too. Both are checked.
ITEM_JOB_PLACES = ["initialize_action", "on_initialized"]


def item_with_job(
    name: str, where: str, registered: dict[str, str], job: Any, delay: float = LATER
) -> net.WorkItemBuilder:
    """A work item that registers ``job(ctx)`` for itself, from ``where``."""

    def in_action(ctx: Any, payload: Any) -> None:
        registered["work_item"] = ctx.register_scheduled(delay, job(ctx))

    def in_activity(ctx: Any) -> None:
        registered["work_item"] = ctx.register_scheduled(delay, job(ctx))

    item = net.work_item(name)
    if where == "initialize_action":
        return item.actions(initialize=net.action(callback=in_action))
    return item.activities(on_initialized=in_activity)


# Tasquencer: describe("scheduled cleanup") it("cancels work item scheduled jobs after completion")
@pytest.mark.parametrize("where", ITEM_JOB_PLACES)
async def test_a_work_items_jobs_are_dropped_when_it_completes(
    rt: cf.Runtime, clock: ManualClock, where: str
) -> None:
    # Tasquencer's job starts another root workflow ("scheduled-completion-target") and the test
    # checks that none exists. net.jobs cannot start a root workflow, so the job here initializes
    # a second work item of the same task: the task's policy says "continue", so it stays
    # started after the completion and would take that item if the job ever ran.
    registered: dict[str, str] = {}
    item = item_with_job(
        "unit_work",
        where,
        registered,
        lambda ctx: net.jobs.initialize_work_item(ctx.parent.id, "task"),
        delay=0.2,
    )
    task = (
        net.task(item)
        .activities(on_enabled=lambda ctx: ctx.work_item.initialize())
        .policy(lambda ctx: "continue")
    )
    rt.register(one_task_net("scheduled-completion-cancel", task))
    wid = await rt.start_workflow("scheduled-completion-cancel")

    [work] = await rt.work_items(wid, "task")
    assert set(registered) == {"work_item"}
    assert await pending(rt, wid) == {registered["work_item"]}

    await rt.start_work_item(work.id)
    await rt.complete_work_item(work.id)
    assert await pending(rt, wid) == set()

    clock.advance(0.25)
    await rt.wait_idle()
    assert [i.state for i in await rt.work_items(wid, "task")] == ["completed"]
    assert (await states(rt, wid))["task"] == "started"


async def test_an_initialize_action_can_register_a_job_for_its_work_item(rt: cf.Runtime) -> None:
    """An initialize action called through rt.initialize_work_item registers a job owned by the
    work item it creates."""
    registered: dict[str, str] = {}
    item = item_with_job(
        "unit_work",
        "initialize_action",
        registered,
        lambda ctx: net.jobs.cancel_workflow(ctx.parent.id),
    )
    rt.register(one_task_net("action-job", net.task(item).activities(on_enabled=lambda ctx: None)))
    wid = await rt.start_workflow("action-job")

    item_id = await rt.initialize_work_item(wid, "task")
    assert await pending(rt, wid) == {registered["work_item"]}
    await rt.start_work_item(item_id)
    await rt.complete_work_item(item_id)
    assert await pending(rt, wid) == set()  # owned by the work item, dropped with it


def cleanup_net(name: str, where: str, registered: dict[str, str]) -> net.NetSpec:
    """Tasquencer's buildCleanupWorkflow: the workflow (on_initialized), its task (on_enabled)
    and the task's work item each register a job that is never due during the test."""

    def workflow_initialized(ctx: Any) -> None:
        registered["workflow"] = ctx.register_scheduled(
            LATER, net.jobs.cancel_workflow(ctx.workflow.id)
        )

    def task_enabled(ctx: Any) -> None:
        registered["task"] = ctx.register_scheduled(LATER, net.jobs.cancel_workflow(ctx.parent.id))
        ctx.work_item.initialize()

    def item_job(ctx: Any) -> Any:
        # in an initialize action the item has no id to pass on yet: the job's target does not
        # matter here (it is never due), only that the work item owns it
        if where == "initialize_action":
            return net.jobs.cancel_workflow(ctx.parent.id)
        return net.jobs.cancel_work_item(ctx.work_item.id)

    item = item_with_job("unit_work", where, registered, item_job)
    return one_task_net(
        name,
        net.task(item).activities(on_enabled=task_enabled),
        on_initialized=workflow_initialized,
    )


async def started_cleanup_net(rt: cf.Runtime, where: str) -> tuple[str, str, dict[str, str]]:
    """A running cleanup net with its three jobs pending; returns (workflow, work item, jobs)."""
    registered: dict[str, str] = {}
    rt.register(cleanup_net("scheduled-cleanup", where, registered))
    wid = await rt.start_workflow("scheduled-cleanup")
    item = await open_item(rt, wid, "task")
    assert set(registered) == {"workflow", "task", "work_item"}
    assert await pending(rt, wid) == set(registered.values())
    return wid, item.id, registered


# Tasquencer: describe("scheduled cleanup")
#   it("clears workflow, task, and work item scheduled entries when workflow completes")
@pytest.mark.parametrize("where", ITEM_JOB_PLACES)
async def test_all_jobs_are_dropped_when_the_workflow_completes(
    rt: cf.Runtime, clock: ManualClock, where: str
) -> None:
    wid, item, _jobs = await started_cleanup_net(rt, where)
    await rt.start_work_item(item)
    await rt.complete_work_item(item)
    assert await rt.workflow_state(wid) == "completed"
    assert await pending(rt, wid) == set()


# Tasquencer: describe("scheduled cleanup") it("clears scheduled entries when workflow is canceled")
@pytest.mark.parametrize("where", ITEM_JOB_PLACES)
async def test_all_jobs_are_dropped_when_the_workflow_is_canceled(
    rt: cf.Runtime, clock: ManualClock, where: str
) -> None:
    wid, item, _jobs = await started_cleanup_net(rt, where)
    await rt.cancel_workflow(wid)
    assert await rt.workflow_state(wid) == "canceled"
    assert (await rt.work_item(item)).state == "canceled"
    assert await pending(rt, wid) == set()


# Tasquencer: describe("scheduled cleanup") it("clears scheduled entries when workflow fails")
@pytest.mark.parametrize("where", ITEM_JOB_PLACES)
async def test_all_jobs_are_dropped_when_the_workflow_fails(
    rt: cf.Runtime, clock: ManualClock, where: str
) -> None:
    wid, item, _jobs = await started_cleanup_net(rt, where)
    await rt.start_work_item(item)
    await rt.fail_work_item(item, {"reason": "test failure"})
    assert await rt.workflow_state(wid) == "failed"
    failed = await rt.work_item(item)
    assert failed.state == "failed"
    assert "test failure" in (failed.error or "")
    assert await pending(rt, wid) == set()


# Tasquencer: describe("scheduled cleanup")
#   it("clears composite task scheduled entries when child workflow completes")
async def test_a_composite_tasks_jobs_are_dropped_when_its_child_completes(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    registered: dict[str, str] = {}
    child_work = net.work_item("child_work").actions(initialize=net.action())
    # Tasquencer's child task has no onEnabled and so starts with no work item (its test then
    # initializes one through the API); here a task without on_enabled initializes one itself.
    child = (
        net.workflow("scheduled-cleanup-composite-child")
        .start_condition("start")
        .end_condition("end")
        .task("child_task", net.task(child_work))
        .connect_condition("start", "child_task")
        .connect_task("child_task", "end")
    )

    def on_enabled(ctx: Any) -> None:
        registered["composite"] = ctx.register_scheduled(
            LATER, net.jobs.cancel_workflow(ctx.parent.id)
        )
        ctx.workflow.initialize()

    rt.register(
        net.workflow("scheduled-cleanup-composite")
        .start_condition("start")
        .end_condition("end")
        .composite_task("composite", net.composite_task(child).activities(on_enabled=on_enabled))
        .connect_condition("start", "composite")
        .connect_task("composite", "end")
        .build()
    )
    wid = await rt.start_workflow("scheduled-cleanup-composite")
    assert await pending(rt, wid) == {registered["composite"]}

    [child_workflow] = await rt.child_workflows(wid, "composite")
    child_item = await open_item(rt, child_workflow.id, "child_task")
    await rt.start_work_item(child_item.id)
    await rt.complete_work_item(child_item.id)

    assert await rt.workflow_state(child_workflow.id) == "completed"
    assert (await states(rt, wid))["composite"] == "completed"
    assert await rt.workflow_state(wid) == "completed"
    assert await pending(rt, wid) == set()


# -- work items initialized by a task activity are internal calls (spec section 5.3) -------------


class Unit(msgspec.Struct):
    n: int


class InitializeCalls:
    """A work item whose custom initialize action has a schema, a policy that denies everyone
    and a callback; both record what they are given."""

    def __init__(self) -> None:
        self.policy: list[Any] = []
        self.callback: list[tuple[Any, bool, Any]] = []

    def work_item(self) -> net.WorkItemBuilder:
        def deny(ctx: Any, payload: Any) -> bool:
            self.policy.append(payload)
            return False

        def callback(ctx: Any, payload: Any) -> None:
            self.callback.append((payload, ctx.is_internal, ctx.principal))

        return net.work_item("unit").actions(
            initialize=net.action(Unit, policy=deny, callback=callback)
        )


def gated_net(calls: InitializeCalls, payload: Any) -> net.NetSpec:
    """``gate -> task``: completing gate's work item enables ``task``, whose on_enabled
    initializes one work item with ``payload``."""
    return (
        net.workflow("initialize-action")
        .start_condition("start")
        .end_condition("end")
        .task("gate", net.task())
        .task(
            "task",
            net.task(calls.work_item()).activities(
                on_enabled=lambda ctx: ctx.work_item.initialize(payload)
            ),
        )
        .connect_condition("start", "gate")
        .connect_task("gate", "task")
        .connect_task("task", "end")
        .build()
    )


async def pass_gate(rt: cf.Runtime, wid: str) -> None:
    gate = await open_item(rt, wid, "gate")
    await rt.start_work_item(gate.id)
    await rt.complete_work_item(gate.id)


async def test_on_enabled_initialize_runs_the_initialize_action_as_an_internal_call(
    rt: cf.Runtime,
) -> None:
    calls = InitializeCalls()
    rt.register(gated_net(calls, {"n": 1}))
    wid = await rt.start_workflow("initialize-action")
    await pass_gate(rt, wid)

    [item] = await rt.work_items(wid, "task")
    assert (item.state, item.payload) == ("initialized", {"n": 1})
    # converted to the schema, internal caller: no authentication, policy not asked
    assert calls.callback == [(Unit(n=1), True, None)]
    assert calls.policy == []


async def test_on_enabled_initialize_checks_the_initialize_schema(rt: cf.Runtime) -> None:
    calls = InitializeCalls()
    rt.register(gated_net(calls, {"n": "one"}))
    wid = await rt.start_workflow("initialize-action")
    gate = await open_item(rt, wid, "gate")
    await rt.start_work_item(gate.id)

    with pytest.raises(InvalidPayloadError, match=r"\$\.n"):
        await rt.complete_work_item(gate.id)
    # refused as a whole: nothing moved
    assert (await rt.work_item(gate.id)).state == "started"
    assert await states(rt, wid) == {"gate": "started", "task": "disabled"}
    assert await rt.work_items(wid, "task") == []
    assert calls.callback == []


async def test_an_internal_initialize_work_item_call_runs_the_initialize_action(
    rt: cf.Runtime,
) -> None:
    """The control for the two tests above: the same action through rt.initialize_work_item
    (an internal call) is converted, skips the policy and runs the callback."""
    calls = InitializeCalls()
    rt.register(gated_net(calls, {"n": 1}))
    wid = await rt.start_workflow("initialize-action")
    await pass_gate(rt, wid)

    item_id = await rt.initialize_work_item(wid, "task", {"n": 2})
    assert (await rt.work_item(item_id)).payload == {"n": 2}
    assert calls.callback[-1] == (Unit(n=2), True, None)
    assert calls.policy == []
    with pytest.raises(InvalidPayloadError, match=r"\$\.n"):
        await rt.initialize_work_item(wid, "task", {"n": "two"})
    assert len(await rt.work_items(wid, "task")) == 2

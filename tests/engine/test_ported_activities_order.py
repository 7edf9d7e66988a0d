"""Tasquencer's activities-order test, ported to the net API.

Source: tiborkr/tasquencer, packages/tasquencer/convex/tasquencer/__tests__/activities-order.test.ts
(describe "activities order"). The net is ``start -> primary_task -> review_composite -> end``;
the composite task's child workflow is ``start -> child_task -> end``. Every workflow, task,
composite task and work item activity appends to one log, and each scenario checks the sequence
each element heard plus a few orderings across elements.

Names: Tasquencer's ``onWorkItemStateChanged`` / ``onWorkflowStateChanged`` are our
``on_work_item_state_changed`` / ``on_workflow_state_changed``; ``onEnabled`` is ``on_enabled``
and so on. As there, each task's ``on_enabled`` initializes the work item (the composite's
initializes the child workflow), and every work item declares its five actions with no payload.

The documented deviation in ``cronflow_actors/engine/work_items.py`` (a task hears
``initialized -> started`` before ``started -> completed`` when an item completes itself in
``on_started``) does not come into play: no work item here sets an auto-trigger, so both engines
report the two changes in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cronflow_actors as cf
from cronflow_actors import net
from tests.engine.helpers import open_item

WORKFLOW_EVENTS = ("on_initialized", "on_started", "on_completed", "on_failed", "on_canceled")
TASK_EVENTS = (
    "on_enabled",
    "on_started",
    "on_completed",
    "on_failed",
    "on_canceled",
    "on_disabled",
)
ITEM_EVENTS = ("on_initialized", "on_started", "on_completed", "on_failed", "on_canceled")


@dataclass(frozen=True)
class Event:
    kind: str  # "workflow" | "task" | "composite" | "work_item"
    label: str
    name: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        if "next_state" in self.details:
            return f"{self.name}[{self.details['prev_state']}->{self.details['next_state']}]"
        return self.name


class ActivityLog:
    """Every activity call of one net, in the order the engine made them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def sequence(self, kind: str, label: str) -> list[str]:
        return [e.signature for e in self.events if (e.kind, e.label) == (kind, label)]

    def index(self, kind: str, label: str, signature: str) -> int:
        for position, event in enumerate(self.events):
            if (event.kind, event.label, event.signature) == (kind, label, signature):
                return position
        raise AssertionError(f"{kind} {label!r} never heard {signature}")

    def details(self, kind: str, label: str) -> list[dict[str, Any]]:
        return [e.details for e in self.events if (e.kind, e.label) == (kind, label)]

    # -- activities --------------------------------------------------------------------------

    def workflow(self, label: str) -> dict[str, Any]:
        def recorder(name: str) -> Any:
            def record(ctx: Any) -> None:
                self.events.append(Event("workflow", label, name, {"workflow_id": ctx.workflow.id}))

            return record

        return {name: recorder(name) for name in WORKFLOW_EVENTS}

    def work_item(self, label: str) -> dict[str, Any]:
        def recorder(name: str) -> Any:
            def record(ctx: Any) -> None:
                self.events.append(Event("work_item", label, name, {"id": ctx.work_item.id}))

            return record

        return {name: recorder(name) for name in ITEM_EVENTS}

    def task(self, kind: str, label: str) -> dict[str, Any]:
        def recorder(name: str) -> Any:
            def record(ctx: Any) -> None:
                self.events.append(Event(kind, label, name, {"generation": ctx.task.generation}))
                if name == "on_enabled":  # as in Tasquencer, on_enabled creates the child
                    (ctx.work_item if kind == "task" else ctx.workflow).initialize()

            return record

        def changed(ctx: Any) -> None:
            child = ctx.work_item if kind == "task" else ctx.workflow
            name = "on_work_item_state_changed" if kind == "task" else "on_workflow_state_changed"
            self.events.append(
                Event(
                    kind,
                    label,
                    name,
                    {
                        "prev_state": str(child.prev_state),
                        "next_state": str(child.next_state),
                        "id": child.id,
                        "generation": ctx.task.generation,
                    },
                )
            )

        activities = {name: recorder(name) for name in TASK_EVENTS}
        if kind == "task":
            activities["on_work_item_state_changed"] = changed
        else:
            activities["on_workflow_state_changed"] = changed
        return activities


def logged_task(log: ActivityLog, work_item: str, label: str) -> net.TaskBuilder:
    """A task whose work item has all five actions (no payload) and every activity logged."""
    item = (
        net.work_item(work_item)
        .actions(
            initialize=net.action(),
            start=net.action(),
            complete=net.action(),
            fail=net.action(),
            cancel=net.action(),
        )
        .activities(**log.work_item(work_item))
    )
    return net.task(item).activities(**log.task("task", label))


def activities_order_net(log: ActivityLog) -> net.NetSpec:
    child = (
        net.workflow("activities-order-child")
        .start_condition("start")
        .end_condition("end")
        .task("child_task", logged_task(log, "child_work_item", "child_task"))
        .connect_condition("start", "child_task")
        .connect_task("child_task", "end")
        .activities(**log.workflow("child_workflow"))
    )
    return (
        net.workflow("activities-order-root")
        .start_condition("start")
        .end_condition("end")
        .task("primary_task", logged_task(log, "primary_work_item", "primary_task"))
        .composite_task(
            "review_composite",
            net.composite_task(child).activities(**log.task("composite", "review_composite")),
        )
        .connect_condition("start", "primary_task")
        .connect_task("primary_task", "review_composite")
        .connect_task("review_composite", "end")
        .activities(**log.workflow("root_workflow"))
        .build()
    )


async def run_primary_and_start_child(rt: cf.Runtime) -> tuple[str, str, str]:
    """Drive the root to the point every scenario shares: the primary work item started and
    completed, the child workflow's work item started. Returns (root, child, child item)."""
    root = await rt.start_workflow("activities-order-root")
    primary = await open_item(rt, root, "primary_task")
    await rt.start_work_item(primary.id)
    await rt.complete_work_item(primary.id)
    [child] = await rt.child_workflows(root, "review_composite")
    child_item = await open_item(rt, child.id, "child_task")
    await rt.start_work_item(child_item.id)
    return root, child.id, child_item.id


PRIMARY_TASK_SUCCESS = [
    "on_enabled",
    "on_started",
    "on_work_item_state_changed[initialized->started]",
    "on_work_item_state_changed[started->completed]",
    "on_completed",
]
PRIMARY_ITEM_SUCCESS = ["on_initialized", "on_started", "on_completed"]


def assert_primary_branch_completed(log: ActivityLog) -> None:
    """The primary task and its work item ran to completion, in the same order in every
    scenario (the child's fate comes after)."""
    assert log.sequence("task", "primary_task") == PRIMARY_TASK_SUCCESS
    assert log.sequence("work_item", "primary_work_item") == PRIMARY_ITEM_SUCCESS
    assert {d["generation"] for d in log.details("task", "primary_task")} == {1}


# Tasquencer: it("runs success scenario in deterministic activity order")
async def test_success_scenario_runs_activities_in_deterministic_order(rt: cf.Runtime) -> None:
    log = ActivityLog()
    rt.register(activities_order_net(log))
    root, child, child_item = await run_primary_and_start_child(rt)
    await rt.complete_work_item(child_item)

    assert await rt.workflow_state(root) == "completed"
    assert await rt.workflow_state(child) == "completed"
    assert log.sequence("workflow", "root_workflow") == [
        "on_initialized",
        "on_started",
        "on_completed",
    ]
    assert_primary_branch_completed(log)
    assert log.sequence("composite", "review_composite") == [
        "on_enabled",
        "on_started",
        "on_workflow_state_changed[initialized->started]",
        "on_workflow_state_changed[started->completed]",
        "on_completed",
    ]
    assert log.sequence("workflow", "child_workflow") == [
        "on_initialized",
        "on_started",
        "on_completed",
    ]
    assert log.sequence("task", "child_task") == PRIMARY_TASK_SUCCESS
    assert log.sequence("work_item", "child_work_item") == PRIMARY_ITEM_SUCCESS
    # the composite heard of the child workflow this test drove, nothing else
    assert {d["id"] for d in log.details("composite", "review_composite") if "id" in d} == {child}
    assert {d["id"] for d in log.details("task", "child_task") if "id" in d} == {child_item}

    # a workflow's first tasks are enabled before its own on_initialized runs
    assert log.index("task", "primary_task", "on_enabled") < log.index(
        "workflow", "root_workflow", "on_initialized"
    )
    # the workflow starts (on_started) before the task whose start started it
    assert log.index("workflow", "root_workflow", "on_started") < log.index(
        "task", "primary_task", "on_started"
    )
    assert log.index("task", "primary_task", "on_completed") < log.index(
        "composite", "review_composite", "on_enabled"
    )
    assert log.index(
        "composite", "review_composite", "on_workflow_state_changed[started->completed]"
    ) < log.index("composite", "review_composite", "on_completed")
    assert log.index("composite", "review_composite", "on_completed") < log.index(
        "workflow", "root_workflow", "on_completed"
    )


# Tasquencer: it("propagates child work item failure through activities in order")
async def test_child_work_item_failure_propagates_through_activities_in_order(
    rt: cf.Runtime,
) -> None:
    log = ActivityLog()
    rt.register(activities_order_net(log))
    root, child, child_item = await run_primary_and_start_child(rt)
    await rt.fail_work_item(child_item)

    assert await rt.workflow_state(root) == "failed"
    assert await rt.workflow_state(child) == "failed"
    assert (await rt.task_states(root))["review_composite"] == "failed"
    assert log.sequence("workflow", "root_workflow") == [
        "on_initialized",
        "on_started",
        "on_failed",
    ]
    assert_primary_branch_completed(log)
    assert log.sequence("composite", "review_composite") == [
        "on_enabled",
        "on_started",
        "on_workflow_state_changed[initialized->started]",
        "on_workflow_state_changed[started->failed]",
        "on_failed",
    ]
    assert log.sequence("workflow", "child_workflow") == [
        "on_initialized",
        "on_started",
        "on_failed",
    ]
    assert log.sequence("task", "child_task") == [
        "on_enabled",
        "on_started",
        "on_work_item_state_changed[initialized->started]",
        "on_work_item_state_changed[started->failed]",
        "on_failed",
    ]
    assert log.sequence("work_item", "child_work_item") == [
        "on_initialized",
        "on_started",
        "on_failed",
    ]
    assert log.index("work_item", "child_work_item", "on_failed") < log.index(
        "workflow", "root_workflow", "on_failed"
    )


# Tasquencer: it("propagates root workflow cancellation through activities in order")
async def test_root_cancellation_propagates_through_activities_in_order(rt: cf.Runtime) -> None:
    log = ActivityLog()
    rt.register(activities_order_net(log))
    root, child, child_item = await run_primary_and_start_child(rt)
    await rt.cancel_workflow(root)

    assert await rt.workflow_state(root) == "canceled"
    assert await rt.workflow_state(child) == "canceled"
    assert (await rt.work_item(child_item)).state == "canceled"
    assert log.sequence("workflow", "root_workflow") == [
        "on_initialized",
        "on_started",
        "on_canceled",
    ]
    assert_primary_branch_completed(log)
    assert log.sequence("composite", "review_composite") == [
        "on_enabled",
        "on_started",
        "on_workflow_state_changed[initialized->started]",
        "on_workflow_state_changed[started->canceled]",
        "on_canceled",
    ]
    assert log.sequence("workflow", "child_workflow") == [
        "on_initialized",
        "on_started",
        "on_canceled",
    ]
    assert log.sequence("task", "child_task") == [
        "on_enabled",
        "on_started",
        "on_work_item_state_changed[initialized->started]",
        "on_work_item_state_changed[started->canceled]",
        "on_canceled",
    ]
    assert log.sequence("work_item", "child_work_item") == [
        "on_initialized",
        "on_started",
        "on_canceled",
    ]
    assert log.index("work_item", "child_work_item", "on_canceled") < log.index(
        "workflow", "child_workflow", "on_canceled"
    )
    assert log.index("workflow", "child_workflow", "on_canceled") < log.index(
        "composite", "review_composite", "on_canceled"
    )
    assert log.index("composite", "review_composite", "on_canceled") < log.index(
        "workflow", "root_workflow", "on_canceled"
    )

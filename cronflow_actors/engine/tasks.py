"""The task element: enable, start, complete, fail, cancel, disable (spec sections 1.3, 2, 3, 7).

A task hears from its children through ``WorkItemStateChanged`` (work items) and
``WorkflowStateChanged`` (child workflows of composite tasks): it keeps their stats, runs its
``on_*_state_changed`` activity, drains the auto-trigger queue, and then, for a terminal change
that is not a teardown, asks its completion policy whether to complete, fail or continue.
Its own changes go to its workflow as ``TaskStateChanged``.

Differences from Tasquencer, on purpose (spec section 14):
- a task completes only from ``started``: a policy that says "complete" for a task that never
  started (its only work item was canceled before starting) leaves it enabled;
- a policy that says "fail" when the task starts fails the workflow too, as it does later on;
- a composite task that completes cancels its child workflows that are still running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from cronflow_actors.engine import work_items, workflows
from cronflow_actors.engine.context import (
    ChildWorkflows,
    Context,
    Transition,
    WorkItems,
)
from cronflow_actors.engine.states import TaskState, check_move, is_final
from cronflow_actors.engine.transaction import Transaction, call_user, task_owner
from cronflow_actors.engine.transaction import normalize as tx_normalize
from cronflow_actors.errors import (
    InvalidPolicyResultError,
    InvalidStateTransitionError,
    NotFoundError,
)
from cronflow_actors.messages.engine import (
    Stats,
    TaskRecord,
    TaskStateChanged,
    WorkflowRecord,
    WorkflowStateChanged,
    WorkItemStateChanged,
)
from cronflow_actors.net.marking import (
    after_cancellation,
    after_production,
    after_start,
    enable_candidates,
    is_join_satisfied,
    resolve_routes,
    tasks_to_disable,
)
from cronflow_actors.net.spec import CaughtFailure, NetSpec, SplitType, TaskKind

__all__ = [
    "cancel",
    "child_workflow_changed",
    "complete",
    "disable",
    "enable",
    "ensure_started",
    "fail",
    "work_item_changed",
]

_ENABLEABLE = frozenset(
    {TaskState.DISABLED, TaskState.COMPLETED, TaskState.CANCELED, TaskState.FAILED}
)
_ACTIVE = frozenset({TaskState.ENABLED, TaskState.STARTED})
_WORKFLOW_DONE = frozenset({"completed", "failed", "canceled"})
_POLICY_RESULTS = frozenset({"complete", "fail", "continue"})


async def enable(tx: Transaction, workflow: WorkflowRecord, name: str) -> None:
    """Enable the task if its join is satisfied and its state allows it (a new generation).
    With no ``on_enabled`` activity it initializes one work item (composite: one child workflow);
    a dummy task runs straight through to completion."""
    record = workflow.tasks[name]
    if record.state not in _ENABLEABLE or workflow.state in _WORKFLOW_DONE:
        return
    spec = tx.spec(workflow)
    if not is_join_satisfied(spec, name, workflow.marking, _started(workflow)):
        return
    record.generation += 1
    _move(tx, workflow, record, TaskState.ENABLED)
    record.children = []
    record.stats = Stats()
    definition = spec.tasks[name]
    if definition.kind is TaskKind.DUMMY:
        await _activity(tx, workflow, name, "on_enabled")
        await ensure_started(tx, workflow, name)
        return
    await _activity(tx, workflow, name, "on_enabled", default_child=True)


async def ensure_started(tx: Transaction, workflow: WorkflowRecord, name: str) -> None:
    """``enabled`` -> ``started`` on the first start of a work item or child workflow: take one
    token from every input condition, disable the competitors that lost their token (deferred
    choice), run ``on_started``, then ask the policy once (a dummy task just completes)."""
    record = workflow.tasks[name]
    if record.state == TaskState.STARTED:
        return
    check_move("task", _ident(workflow, name), record.state, TaskState.STARTED)
    await workflows.ensure_started(tx, workflow)
    spec = tx.spec(workflow)
    _move(tx, workflow, record, TaskState.STARTED)
    marking, emptied = after_start(spec, name, workflow.marking)
    workflow.marking = marking
    if emptied:
        enabled = [t for t, r in workflow.tasks.items() if r.state == TaskState.ENABLED]
        for loser in tasks_to_disable(spec, marking, emptied, enabled, _started(workflow)):
            await disable(tx, workflow, loser)
    await _activity(tx, workflow, name, "on_started")
    if spec.tasks[name].kind is TaskKind.DUMMY:
        await complete(tx, workflow, name)
        return
    if record.state == TaskState.STARTED:
        decision = await _decide(
            tx, workflow, name, Transition(prev_state="started", next_state="completed")
        )
        await _carry_out(tx, workflow, name, decision, f"task {name!r} failed when it started")


async def complete(
    tx: Transaction, workflow: WorkflowRecord, name: str, *, caught: CaughtFailure | None = None
) -> None:
    """``started`` -> ``completed``: tear down open children, run ``on_completed``, apply the
    cancellation region, produce tokens per the split, enable what follows (and the task itself
    if its join is still satisfied), and let the workflow check its end condition. ``caught``:
    a catching task's failure, its output instead of one reduced from its items."""
    record = workflow.tasks[name]
    if record.state != TaskState.STARTED or workflow.state in _WORKFLOW_DONE:
        return
    spec = tx.spec(workflow)
    definition = spec.tasks[name]
    if caught is not None:
        workflow.outputs[name] = caught.record()
    elif definition.reduce is not None:
        # the work items of its generation, or its child workflows (a composite task)
        items: list[Any] = [
            tx.work_item_info(tx.state.work_items[i])
            if definition.kind is TaskKind.TASK
            else tx.workflow_info(tx.state.workflows[i])
            for i in record.children
        ]
        output = tx_normalize(await call_user(definition.reduce, items))
        workflow.outputs[name] = output
        workflow.last = output
    change = await _leave(tx, workflow, name, TaskState.COMPLETED, "on_completed")
    await _cancellation_region(tx, workflow, spec, name)
    routed = None
    if definition.split is not SplitType.AND:
        ctx = tx.context(
            workflow,
            f"router of task {name!r}",
            task=tx.task_info(workflow, name),
            output=workflow.outputs.get(name),
        )
        routed = resolve_routes(spec, name, await call_user(definition.router, ctx))
    workflow.marking, _marked = after_production(spec, name, workflow.marking, routed)
    for candidate in enable_candidates(spec, name):
        if workflow.state in _WORKFLOW_DONE:
            break
        await enable(tx, workflow, candidate)
    await workflows.receive(tx, workflow, change)


async def fail(
    tx: Transaction,
    workflow: WorkflowRecord,
    name: str,
    error: str,
    *,
    fail_workflow: bool = True,
    cause: str | None = None,
) -> None:
    """``started`` -> ``failed``: open children are canceled (no policies), ``on_failed`` runs,
    and the workflow fails (which cancels the other active tasks). ``cause``: the work item
    whose failure this is."""
    record = workflow.tasks[name]
    if record.state != TaskState.STARTED:
        return
    change = await _leave(tx, workflow, name, TaskState.FAILED, "on_failed")
    await workflows.receive(tx, workflow, change)
    if fail_workflow:
        await workflows.fail(tx, workflow, error, cause=cause)


async def fail_started(tx: Transaction, workflow: WorkflowRecord, name: str, error: str) -> None:
    """A job's failure of a task (a deadline): as if its policy said so, so a catching task
    completes with the failure instead; nothing if the task is no longer started."""
    if workflow.tasks[name].state == TaskState.STARTED:
        await _carry_out(tx, workflow, name, "fail", f"task {name!r}: {error}")


async def cancel(tx: Transaction, workflow: WorkflowRecord, name: str, *, teardown: bool) -> None:
    """An enabled or started task is canceled (by its workflow's shutdown or a cancellation
    region): its open children are canceled without policies, then ``on_canceled``."""
    record = workflow.tasks[name]
    if record.state not in _ACTIVE:
        if teardown:
            return
        check_move("task", _ident(workflow, name), record.state, TaskState.CANCELED)
    change = await _leave(tx, workflow, name, TaskState.CANCELED, "on_canceled")
    await workflows.receive(tx, workflow, change)


async def disable(tx: Transaction, workflow: WorkflowRecord, name: str) -> None:
    """An enabled task whose join no longer holds (or whose workflow shuts down)."""
    record = workflow.tasks[name]
    if record.state != TaskState.ENABLED:
        return
    change = await _leave(tx, workflow, name, TaskState.DISABLED, "on_disabled")
    await workflows.receive(tx, workflow, change)


async def work_item_changed(
    tx: Transaction, workflow: WorkflowRecord, name: str, message: WorkItemStateChanged
) -> None:
    """The ``on_work_item_state_changed`` analogue: stats, activity (its auto-trigger queue
    drained first), then the policy for a terminal change that is not a teardown."""
    record = workflow.tasks[name]
    _count(record.stats, message.prev, message.next)
    if message.prev is None:
        return
    await _activity(tx, workflow, name, "on_work_item_state_changed", changed=message)
    if message.call_policy and is_final(message.next) and record.state == TaskState.STARTED:
        transition = Transition(prev_state=message.prev, next_state=message.next)
        decision = await _decide(tx, workflow, name, transition)
        error = tx.state.work_items[message.work_item_id].error or "failed"
        await _carry_out(
            tx,
            workflow,
            name,
            decision,
            f"task {name!r}: work item {message.work_item_id!r}: {error}",
            cause=message.work_item_id,
        )


async def child_workflow_changed(
    tx: Transaction, workflow: WorkflowRecord, name: str, message: WorkflowStateChanged
) -> None:
    """A child workflow of this composite task changed state (``on_workflow_state_changed``)."""
    record = workflow.tasks[name]
    _count(record.stats, message.prev, message.next)
    if message.prev is None:
        return
    child = tx.state.workflows[message.workflow_id]
    if message.next == "completed":
        workflow.outputs[name] = child.output
        workflow.last = child.output
    await _activity(tx, workflow, name, "on_workflow_state_changed", changed=message)
    if not is_final(message.next):
        return
    tx.cancel_jobs(task_owner(workflow.id, name))
    if message.call_policy and record.state == TaskState.STARTED:
        transition = Transition(prev_state=message.prev, next_state=message.next)
        decision = await _decide(tx, workflow, name, transition)
        error = child.error or message.next
        await _carry_out(
            tx,
            workflow,
            name,
            decision,
            f"task {name!r}: child workflow {child.id!r}: {error}",
            cause=child.error_cause,
        )


# -- internals -------------------------------------------------------------------------------------


def _ident(workflow: WorkflowRecord, name: str) -> str:
    return f"{workflow.name}/{name}"


def _started(workflow: WorkflowRecord) -> list[str]:
    return [t for t, r in workflow.tasks.items() if r.state == TaskState.STARTED]


def _move(
    tx: Transaction, workflow: WorkflowRecord, record: TaskRecord, target: TaskState
) -> TaskStateChanged:
    previous = record.state
    check_move("task", _ident(workflow, record.name), previous, target)
    record.state = target
    change = TaskStateChanged(
        workflow_id=workflow.id,
        task=record.name,
        generation=record.generation,
        prev=previous,
        next=target,
    )
    tx.changes.append(change)
    return change


def _count(stats: Stats, prev: str | None, next_state: str) -> None:
    if prev is None:
        stats.total += 1
    else:
        setattr(stats, prev, getattr(stats, prev) - 1)
    setattr(stats, next_state, getattr(stats, next_state) + 1)


async def _leave(
    tx: Transaction, workflow: WorkflowRecord, name: str, target: TaskState, activity: str
) -> TaskStateChanged:
    """Leave the active states: move, cancel open children (no policies) and the task's
    scheduled jobs, then run the activity for the new state."""
    change = _move(tx, workflow, workflow.tasks[name], target)
    await _teardown(tx, workflow, name)
    tx.cancel_jobs(task_owner(workflow.id, name))
    await _activity(tx, workflow, name, activity)
    return change


async def _teardown(tx: Transaction, workflow: WorkflowRecord, name: str) -> None:
    """Cancel the open children of the task's current generation, policies bypassed."""
    for child_id in list(workflow.tasks[name].children):
        item = tx.state.work_items.get(child_id)
        if item is not None:
            if not is_final(item.state):
                await work_items.cancel(tx, item, teardown=True)
            continue
        child = tx.state.workflows[child_id]
        if not is_final(child.state):
            await workflows.cancel(tx, child, teardown=True)


async def _cancellation_region(
    tx: Transaction, workflow: WorkflowRecord, spec: NetSpec, name: str
) -> None:
    definition = spec.tasks[name]
    for other in spec.tasks:
        if other in definition.cancel_tasks and workflow.tasks[other].state in _ACTIVE:
            await cancel(tx, workflow, other, teardown=True)
    if not definition.cancel_conditions:
        return
    emptied = [c for c in definition.cancel_conditions if workflow.marking.get(c, 0) > 0]
    workflow.marking = after_cancellation(spec, name, workflow.marking)
    enabled = [t for t, r in workflow.tasks.items() if r.state == TaskState.ENABLED]
    for loser in tasks_to_disable(spec, workflow.marking, emptied, enabled, _started(workflow)):
        await disable(tx, workflow, loser)


def _default_decision(kind: TaskKind, stats: Stats, transition: Transition) -> str:
    finalized = stats.completed + stats.failed + stats.canceled == stats.total
    if kind is not TaskKind.TASK:
        finalized = finalized and stats.total > 0
    if transition.next_state == "failed":
        return "fail"
    if transition.next_state in ("completed", "canceled"):
        return "complete" if finalized else "continue"
    return "continue"


async def _decide(
    tx: Transaction, workflow: WorkflowRecord, name: str, transition: Transition
) -> str:
    spec = tx.spec(workflow)
    definition = spec.tasks[name]
    record = workflow.tasks[name]
    if definition.policy is None:
        return _default_decision(definition.kind, record.stats, transition)
    ctx = _context(tx, workflow, name, "policy", None, None)
    ctx.transition = transition
    ctx.stats = msgspec.structs.replace(record.stats)  # a copy: policies cannot change stats
    decision = await call_user(definition.policy, ctx)
    if decision not in _POLICY_RESULTS:
        raise InvalidPolicyResultError(workflow.name, name, decision)
    return str(decision)


async def _carry_out(
    tx: Transaction,
    workflow: WorkflowRecord,
    name: str,
    decision: str,
    error: str,
    *,
    cause: str | None = None,
) -> None:
    if decision == "complete":
        await complete(tx, workflow, name)
    elif decision == "fail" and tx.spec(workflow).tasks[name].catch:
        item = tx.state.work_items.get(cause) if cause else None
        failure = CaughtFailure(
            error=error,
            error_type=item.error_type if item is not None else None,
            error_data=item.error_data if item is not None else None,
        )
        await complete(tx, workflow, name, caught=failure)
    elif decision == "fail":
        await fail(tx, workflow, name, error, cause=cause)


_SCHEDULING = frozenset(
    {"on_enabled", "on_started", "on_work_item_state_changed", "on_workflow_state_changed"}
)


def _context(  # noqa: PLR0917 - internal, called from three places
    tx: Transaction,
    workflow: WorkflowRecord,
    name: str,
    where: str,
    pending: list[tuple[str, str | None, Any]] | None,
    changed: WorkItemStateChanged | WorkflowStateChanged | None,
) -> Context:
    """The ctx of a task's activity, policy or router; ``pending`` collects the children an
    activity initializes (None: it may not)."""
    definition = tx.spec(workflow).tasks[name]
    record = workflow.tasks[name]

    def ids() -> list[str]:
        return [*record.children, *(p[0] for p in pending or ())]

    ctx = tx.context(
        workflow,
        f"task {name!r} {where}",
        scheduler=tx.scheduler(task_owner(workflow.id, name, record.generation))
        if where in _SCHEDULING
        else None,
        task=tx.task_info(workflow, name),
    )
    if definition.kind is TaskKind.TASK:
        initialize: Callable[[Any], str] | None = None
        if pending is not None:

            def initialize(payload: Any) -> str:
                _check_can_add(workflow, name, "initialize a work item")
                ident = tx.new_id("w")
                pending.append((ident, None, payload))
                return ident

        item = changed if isinstance(changed, WorkItemStateChanged) else None
        ctx.work_item = WorkItems(
            initialize,
            ids,
            id=item.work_item_id if item else None,
            prev_state=item.prev if item else None,
            next_state=item.next if item else None,
            info=tx.work_item_info(tx.state.work_items[item.work_item_id]) if item else None,
        )
    elif definition.kind is not TaskKind.DUMMY:
        dynamic = definition.kind is TaskKind.DYNAMIC_COMPOSITE
        names = [child.name for child in definition.subworkflows]
        start_child: Callable[[str | None, Any], str] | None = None
        if pending is not None:

            def start_child(child_name: str | None, payload: Any) -> str:
                _check_can_add(workflow, name, "initialize a child workflow")
                if child_name is not None and child_name not in names:
                    raise NotFoundError(
                        "child workflow", child_name, f"task {name!r} (it has {names})"
                    )
                ident = tx.new_id("f")
                pending.append((ident, child_name, payload))
                return ident

        flow = changed if isinstance(changed, WorkflowStateChanged) else None
        ctx.workflow = ChildWorkflows(
            start_child,
            ids,
            dynamic=dynamic,
            id=flow.workflow_id if flow else None,
            name=flow.workflow if flow else None,
            prev_state=flow.prev if flow else None,
            next_state=flow.next if flow else None,
            info=tx.workflow_info(tx.state.workflows[flow.workflow_id]) if flow else None,
        )
    return ctx


def _check_can_add(workflow: WorkflowRecord, name: str, what: str) -> None:
    state = workflow.tasks[name].state
    if state not in _ACTIVE:
        raise InvalidStateTransitionError(
            "task", _ident(workflow, name), state, what, ["enabled", "started"]
        )


async def _activity(
    tx: Transaction,
    workflow: WorkflowRecord,
    name: str,
    activity: str,
    *,
    changed: WorkItemStateChanged | WorkflowStateChanged | None = None,
    default_child: bool = False,
) -> None:
    """Run a task activity, then initialize the children it asked for and drain their
    auto-triggers in order. ``default_child``: with no activity, initialize one child."""
    definition = tx.spec(workflow).tasks[name]
    fn = definition.activities.get(activity)
    may_add = activity in _SCHEDULING and definition.kind is not TaskKind.DUMMY
    if fn is None and not default_child:
        return
    pending: list[tuple[str, str | None, Any]] = []
    if fn is not None:
        ctx = _context(tx, workflow, name, activity, pending if may_add else None, changed)
        await call_user(fn, ctx)
    elif definition.kind is TaskKind.TASK:
        pending.append((tx.new_id("w"), None, None))
    elif definition.kind is TaskKind.COMPOSITE:
        pending.append((tx.new_id("f"), None, None))
    if not pending:
        return
    queue: list[tuple[str, str, Any]] = []
    for ident, child_name, payload in pending:
        # Internal calls: each child is created through its initialize action (spec 5.3).
        if definition.kind is TaskKind.TASK:
            await work_items.create(tx, workflow, name, payload, item_id=ident, queue=queue)
        else:
            child_spec = definition.child(child_name)
            assert child_spec is not None  # names are checked when an activity asks for them
            _check_can_add(workflow, name, "initialize a child workflow")
            await workflows.initialize_child(
                tx,
                child_spec,
                payload=payload,
                workflow_id=ident,
                parent=workflow,
                parent_task=name,
            )
    for item_id, action, payload in queue:
        await work_items.run_trigger(tx, tx.state.work_items[item_id], action, payload)

"""The workflow element: initialize, start, complete, fail, cancel (spec section 1.4).

A child workflow reports each of its state changes to the composite task that owns it as a
``WorkflowStateChanged`` message; the task runs its activity and, for a terminal change that is
not a teardown, its policy.
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.engine import tasks
from cronflow_actors.engine.actions import pass_boundary
from cronflow_actors.engine.states import TaskState, WorkflowState, check_move
from cronflow_actors.engine.transaction import (
    Transaction,
    call_user,
    task_owner,
    workflow_owner,
)
from cronflow_actors.messages.engine import (
    TaskRecord,
    TaskStateChanged,
    WorkflowRecord,
    WorkflowStateChanged,
)
from cronflow_actors.net.spec import NetSpec

__all__ = [
    "cancel",
    "complete",
    "ensure_started",
    "fail",
    "initialize",
    "initialize_child",
    "receive",
]

_SCHEDULING_ACTIVITIES = frozenset({"on_initialized", "on_started"})


async def initialize(
    tx: Transaction,
    spec: NetSpec,
    *,
    payload: Any = None,
    workflow_id: str | None = None,
    parent: WorkflowRecord | None = None,
    parent_task: str | None = None,
    trigger: str = "",
) -> WorkflowRecord:
    """Create a workflow (the root, or a child of ``parent``'s composite ``parent_task``), put a
    token in its start condition, enable the tasks after it, then run ``on_initialized``.
    ``trigger`` says what started a root workflow (for observers)."""
    if parent is not None and parent_task is not None:
        record = parent.tasks[parent_task]
        path = (*parent.path, parent_task, spec.name)
        ident = workflow_id or tx.new_id("f")
        generation = record.generation
    else:
        path, ident, generation = (), workflow_id or tx.state.id, 0
    marking = dict.fromkeys(spec.conditions, 0)
    marking[spec.start] = 1
    workflow = WorkflowRecord(
        id=ident,
        name=spec.name,
        version=spec.version,
        path=path,
        payload=payload,
        parent_id=parent.id if parent is not None else None,
        parent_task=parent_task,
        parent_generation=generation,
        marking=marking,
        tasks={name: TaskRecord(name=name) for name in spec.tasks},
        created_at=tx.now,
    )
    tx.state.workflows[ident] = workflow
    change = WorkflowStateChanged(
        workflow_id=ident,
        workflow=spec.name,
        prev=None,
        next=WorkflowState.INITIALIZED,
        created_at=tx.now,
        trigger=trigger,
    )
    tx.changes.append(change)
    if parent is not None and parent_task is not None:
        parent.tasks[parent_task].children.append(ident)
        await tasks.child_workflow_changed(tx, parent, parent_task, change)
    for name in spec.conditions[spec.start].outputs:
        if workflow.state in _DONE:
            break
        await tasks.enable(tx, workflow, name)
    await _activity(tx, workflow, "on_initialized")
    return workflow


async def initialize_child(
    tx: Transaction,
    spec: NetSpec,
    *,
    payload: Any,
    parent: WorkflowRecord,
    parent_task: str,
    workflow_id: str | None = None,
) -> WorkflowRecord:
    """A child workflow of composite ``parent_task``, through the child's ``initialize`` action
    as an internal call (its schema and callback; spec section 5.3), then ``initialize``."""
    ident = workflow_id or tx.new_id("f")
    stored = await pass_boundary(
        actions=spec.actions,
        action="initialize",
        payload=payload,
        principal=None,
        element=f"workflow {spec.name!r} (a child of task {parent_task!r})",
        context=lambda: tx.context(
            parent,
            f"workflow {spec.name!r} initialize action",
            scheduler=tx.scheduler(workflow_owner(ident)),
            task=tx.task_info(parent, parent_task),
            payload=payload,
        ),
    )
    return await initialize(
        tx, spec, payload=stored, workflow_id=ident, parent=parent, parent_task=parent_task
    )


async def ensure_started(tx: Transaction, workflow: WorkflowRecord) -> None:
    """``initialized`` -> ``started`` when its first task starts (a child workflow first starts
    its composite task, which starts the parent workflow)."""
    if workflow.state != WorkflowState.INITIALIZED:
        return
    parent = _parent(tx, workflow)
    if parent is not None and workflow.parent_task is not None:
        await tasks.ensure_started(tx, parent, workflow.parent_task)
    await _move(tx, workflow, WorkflowState.STARTED, activity="on_started", call_policy=False)


async def receive(tx: Transaction, workflow: WorkflowRecord, message: TaskStateChanged) -> None:
    """A task of this workflow changed state. A completed task may have marked the end
    condition: then the workflow completes (whatever else is still active is shut down)."""
    if (
        message.next == TaskState.COMPLETED
        and workflow.state == WorkflowState.STARTED
        and workflow.marking.get(tx.spec(workflow).end, 0) > 0
    ):
        spec = tx.spec(workflow)
        last = spec.output == "last"
        workflow.output = workflow.last if last else workflow.outputs.get(message.task)
        await complete(tx, workflow)


async def complete(tx: Transaction, workflow: WorkflowRecord) -> None:
    if workflow.state != WorkflowState.STARTED:
        return
    await _shutdown(tx, workflow)
    await _move(tx, workflow, WorkflowState.COMPLETED, activity="on_completed", call_policy=True)


async def fail(
    tx: Transaction, workflow: WorkflowRecord, error: str, *, cause: str | None = None
) -> None:
    """A task failed and its policy said ``fail``: the other started tasks are canceled, the
    enabled ones disabled (policies bypassed), then the workflow fails and tells its parent.
    ``cause``: the work item whose failure this is, if one is."""
    if workflow.state in _DONE:
        return
    workflow.error = error
    workflow.error_cause = cause
    await _shutdown(tx, workflow)
    await _move(tx, workflow, WorkflowState.FAILED, activity="on_failed", call_policy=True)


async def cancel(tx: Transaction, workflow: WorkflowRecord, *, teardown: bool) -> None:
    """Top-down cancel: shut every active task down without policies, then ``canceled``.
    The parent composite task hears of it; its policy runs unless this is its own teardown."""
    if workflow.state in _DONE:
        return
    check_move("workflow", workflow.id, workflow.state, WorkflowState.CANCELED)
    await _shutdown(tx, workflow)
    await _move(
        tx, workflow, WorkflowState.CANCELED, activity="on_canceled", call_policy=not teardown
    )


# -- internals -------------------------------------------------------------------------------------

_DONE = frozenset({WorkflowState.COMPLETED, WorkflowState.FAILED, WorkflowState.CANCELED})


def _parent(tx: Transaction, workflow: WorkflowRecord) -> WorkflowRecord | None:
    return tx.state.workflows[workflow.parent_id] if workflow.parent_id is not None else None


async def _shutdown(tx: Transaction, workflow: WorkflowRecord) -> None:
    for name, record in workflow.tasks.items():
        if record.state == TaskState.STARTED:
            await tasks.cancel(tx, workflow, name, teardown=True)
        elif record.state == TaskState.ENABLED:
            await tasks.disable(tx, workflow, name)


async def _move(
    tx: Transaction,
    workflow: WorkflowRecord,
    target: WorkflowState,
    *,
    activity: str,
    call_policy: bool,
) -> None:
    previous = workflow.state
    check_move("workflow", workflow.id, previous, target)
    workflow.state = target
    final = target in _DONE
    if final:
        workflow.finished_at = tx.now
        tx.cancel_jobs(workflow_owner(workflow.id))
        if workflow.parent_id is not None and workflow.parent_task is not None:
            tx.cancel_jobs(task_owner(workflow.parent_id, workflow.parent_task))
    change = WorkflowStateChanged(
        workflow_id=workflow.id,
        workflow=workflow.name,
        prev=previous,
        next=target,
        call_policy=call_policy,
        created_at=workflow.created_at,
    )
    tx.changes.append(change)
    await _activity(tx, workflow, activity)
    parent = _parent(tx, workflow)
    if parent is not None and workflow.parent_task is not None:
        await tasks.child_workflow_changed(tx, parent, workflow.parent_task, change)


async def _activity(tx: Transaction, workflow: WorkflowRecord, name: str) -> None:
    fn = tx.spec(workflow).activities.get(name)
    if fn is None:
        return
    parent = _parent(tx, workflow)
    ctx = tx.context(
        workflow,
        f"workflow {workflow.name!r} {name}",
        scheduler=tx.scheduler(workflow_owner(workflow.id))
        if name in _SCHEDULING_ACTIVITIES
        else None,
        workflow=tx.workflow_info(workflow),
        parent=tx.workflow_info(parent) if parent is not None else None,
        parent_task=tx.task_info(parent, workflow.parent_task)
        if parent is not None and workflow.parent_task is not None
        else None,
    )
    await call_user(fn, ctx)

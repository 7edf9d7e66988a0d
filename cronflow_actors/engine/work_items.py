"""The work item element: initialize, start, complete, fail, cancel, reset (spec section 1.2).

Each change runs the item's own activity and is then reported to its task as a
``WorkItemStateChanged`` message. Auto-triggers set in ``on_initialized`` (start) and
``on_started`` (complete, fail, cancel) run as internal calls once the activity returns: the
start ones through the queue of the task activity that created the item, if there is one.
An automated item (one with a handler) starts by itself, and its handler runs in a
``WorkItemActor`` once the start is durable.

Order of the task's notifications for an item that completes itself in ``on_started``:
``initialized -> started`` first, then ``started -> completed`` (Tasquencer reports them the
other way round, spec section 6; a task here never hears of a state before the one preceding it).
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.engine import detached, tasks
from cronflow_actors.engine.actions import pass_boundary, storable
from cronflow_actors.engine.context import WorkItemHandle, WorkItemInfo
from cronflow_actors.engine.states import WorkItemState, check_move
from cronflow_actors.engine.transaction import Transaction, call_user, work_item_owner
from cronflow_actors.errors import InvalidStateTransitionError
from cronflow_actors.messages import JournalEntry, WaitRecord, encode, json_encode
from cronflow_actors.messages.engine import (
    Principal,
    StartWorkItemJob,
    WorkflowRecord,
    WorkItemRecord,
    WorkItemStateChanged,
)
from cronflow_actors.net.spec import TaskKind, WaitSpec

__all__ = [
    "ACTIONS",
    "act",
    "cancel",
    "complete",
    "create",
    "fail",
    "initialize",
    "record_outcome",
    "reset",
    "run_trigger",
    "start",
]

_TASK_ACTIVE = frozenset({"enabled", "started"})

ACTIONS = {
    "start": WorkItemState.STARTED,
    "complete": WorkItemState.COMPLETED,
    "fail": WorkItemState.FAILED,
    "cancel": WorkItemState.CANCELED,
    "reset": WorkItemState.INITIALIZED,
}
"""The work item actions and the state each one moves an item to."""


# -- through the actions (spec section 5): every transition asked for, internal or external ------


async def create(
    tx: Transaction,
    workflow: WorkflowRecord,
    task: str,
    payload: Any = None,
    *,
    principal: Principal | None = None,
    item_id: str | None = None,
    queue: list[tuple[str, str, Any]] | None = None,
) -> WorkItemRecord:
    """A new work item of ``task``, through its ``initialize`` action: an internal call
    (``principal=None``: an activity's ``ctx.work_item.initialize``, a task's default item, a
    job) has its payload checked against the action's schema and its callback run, an external
    one also authentication and the policy. Then ``initialize``."""
    definition = tx.spec(workflow).tasks[task]
    state = workflow.tasks[task].state
    if definition.kind is not TaskKind.TASK or state not in _TASK_ACTIVE:
        raise InvalidStateTransitionError(
            "task",
            f"{workflow.name}/{task}",
            state if definition.kind is TaskKind.TASK else f"a {definition.kind.value} task",
            "initialize a work item",
            ["enabled", "started"],
        )
    ident = item_id or tx.new_id("w")
    name = definition.work_item.name
    element = f"work item {name!r} of task {task!r}"
    if principal is None and "initialize" not in definition.work_item.actions:
        # an internal call of the default action: nothing to check, nothing to call
        stored = storable(payload, element=element, action="initialize")
        return await initialize(tx, workflow, task, stored, item_id=ident, queue=queue)

    def context() -> Any:
        upcoming = WorkItemInfo(
            id=ident,
            name=name,
            task=task,
            generation=workflow.tasks[task].generation,
            workflow_id=workflow.id,
            state=WorkItemState.INITIALIZED,
            payload=payload,
        )
        return tx.context(
            workflow,
            f"work item {name!r} initialize action",
            scheduler=tx.scheduler(work_item_owner(ident)),
            task=tx.task_info(workflow, task),
            work_item=WorkItemHandle(upcoming),
        )

    stored = await pass_boundary(
        actions=definition.work_item.actions,
        action="initialize",
        payload=payload,
        principal=principal,
        element=element,
        context=context,
    )
    return await initialize(tx, workflow, task, stored, item_id=ident, queue=queue)


async def act(
    tx: Transaction,
    item: WorkItemRecord,
    action: str,
    payload: Any = None,
    *,
    principal: Principal | None = None,
) -> None:
    """``start``, ``complete``, ``fail``, ``cancel`` or ``reset`` ``item`` through its action:
    state check, schema, (for an external caller) authentication and policy, callback, then the
    transition. Auto-triggers and jobs are internal calls (``principal=None``)."""
    target = ACTIONS.get(action)
    if target is None:
        raise ValueError(f"unknown work item action {action!r}; actions: {sorted(ACTIONS)}")
    check_move("work item", item.id, item.state, target)
    workflow = tx.workflow(item.workflow_id)
    if action == "start":
        task_state = workflow.tasks[item.task].state
        if task_state not in _TASK_ACTIVE:
            raise InvalidStateTransitionError(
                "task", f"{workflow.name}/{item.task}", task_state, "started", sorted(_TASK_ACTIVE)
            )
    definition = tx.spec(workflow).tasks[item.task].work_item
    element = f"work item {item.name!r} ({item.id})"
    if principal is None and action not in definition.actions:
        # an internal call of the default action: nothing to check, nothing to call
        await _transition(tx, item, action, storable(payload, element=element, action=action))
        return

    def context() -> Any:
        return tx.item_context(
            workflow,
            item,
            f"{action} action",
            scheduler=tx.scheduler(work_item_owner(item.id)) if action == "start" else None,
            work_item=WorkItemHandle(tx.work_item_info(item)),
        )

    stored = await pass_boundary(
        actions=definition.actions,
        action=action,
        payload=payload,
        principal=principal,
        element=element,
        context=context,
    )
    await _transition(tx, item, action, stored)


async def _transition(tx: Transaction, item: WorkItemRecord, action: str, payload: Any) -> None:
    if action == "start":
        await start(tx, item, payload)
    elif action == "complete":
        await complete(tx, item, payload)
    elif action == "fail":
        await fail(tx, item, payload)
    elif action == "cancel":
        await cancel(tx, item, teardown=False)
    else:
        await reset(tx, item)


# -- the transitions ------------------------------------------------------------------------------


async def initialize(
    tx: Transaction,
    workflow: WorkflowRecord,
    task: str,
    payload: Any = None,
    *,
    item_id: str | None = None,
    queue: list[tuple[str, str, Any]] | None = None,
) -> WorkItemRecord:
    """A new work item of ``task``'s current generation (the task must be enabled or started)."""
    record = workflow.tasks[task]
    definition = tx.spec(workflow).tasks[task]
    if record.state not in _TASK_ACTIVE or workflow.state not in ("initialized", "started"):
        raise InvalidStateTransitionError(
            "task",
            f"{workflow.name}/{task}",
            record.state,
            "initialize a work item",
            ["enabled", "started"],
        )
    if definition.kind is not TaskKind.TASK:
        raise InvalidStateTransitionError(
            "task", f"{workflow.name}/{task}", definition.kind.value, "initialize a work item", []
        )
    item = WorkItemRecord(
        id=item_id or tx.new_id("w"),
        name=definition.work_item.name,
        workflow_id=workflow.id,
        task=task,
        generation=record.generation,
        payload=payload,
        created_at=tx.now,
        kind=definition.work_item.kind,
    )
    tx.state.work_items[item.id] = item
    record.children.append(item.id)
    change = WorkItemStateChanged(
        workflow_id=workflow.id,
        task=task,
        work_item_id=item.id,
        prev=None,
        next=WorkItemState.INITIALIZED,
        workflow=workflow.name,
        kind=definition.work_item.kind,
    )
    tx.changes.append(change)
    await tasks.work_item_changed(tx, workflow, task, change)
    handle = await _activity(tx, workflow, item, "on_initialized", frozenset({"start"}))
    trigger = handle.trigger if handle is not None else None
    if trigger is None and definition.work_item.handler is not None:
        trigger = ("start", None)
    if trigger is not None:
        if queue is not None:
            queue.append((item.id, *trigger))
        else:
            await run_trigger(tx, item, *trigger)
    return item


async def run_trigger(tx: Transaction, item: WorkItemRecord, action: str, payload: Any) -> None:
    """Carry out an auto-trigger through the item's action, as an internal call (schema and
    callback, no authentication or policy), unless something else moved the item meanwhile."""
    expected = WorkItemState.INITIALIZED if action == "start" else WorkItemState.STARTED
    if item.state == expected:
        await act(tx, item, action, payload)


async def start(tx: Transaction, item: WorkItemRecord, payload: Any = None) -> None:
    """``initialized`` -> ``started``; starts the task first if this is its first start."""
    check_move("work item", item.id, item.state, WorkItemState.STARTED)
    workflow = tx.workflow(item.workflow_id)
    await tasks.ensure_started(tx, workflow, item.task)
    if item.state != WorkItemState.INITIALIZED:
        return  # the task's start (its policy) already finished this item
    item.attempt += 1
    item.started_at = tx.now
    item.began_at = None
    change = _move(tx, workflow, item, WorkItemState.STARTED, call_policy=False)
    wait = tx.spec(workflow).tasks[item.task].work_item.wait
    if wait is not None:
        await _open_wait(tx, workflow, item, wait)
    handle = await _activity(
        tx, workflow, item, "on_started", frozenset({"complete", "fail", "cancel"})
    )
    await tasks.work_item_changed(tx, workflow, item.task, change)
    if item.state != WorkItemState.STARTED:
        return
    definition = tx.spec(workflow).tasks[item.task].work_item
    if handle is not None and handle.trigger is not None:
        await run_trigger(tx, item, *handle.trigger)
    elif definition.detached:
        detached.dispatch(tx, workflow, item, definition.durable)
        await complete(tx, item, None)
    elif definition.handler is not None:
        tx.handlers.append((item.id, item.attempt))


async def complete(tx: Transaction, item: WorkItemRecord, output: Any = None) -> None:
    check_move("work item", item.id, item.state, WorkItemState.COMPLETED)
    workflow = tx.workflow(item.workflow_id)
    change = _move(tx, workflow, item, WorkItemState.COMPLETED)
    item.output = output
    item.finished_at = tx.now
    workflow.outputs[item.task] = output
    definition = tx.spec(workflow).tasks[item.task].work_item
    if definition.records_as is not None:
        workflow.outputs[definition.records_as] = output
    if definition.sets_last:
        workflow.last = output
    tx.cancel_jobs(work_item_owner(item.id))
    await _activity(tx, workflow, item, "on_completed")
    await tasks.work_item_changed(tx, workflow, item.task, change)


async def fail(tx: Transaction, item: WorkItemRecord, payload: Any = None) -> None:
    check_move("work item", item.id, item.state, WorkItemState.FAILED)
    workflow = tx.workflow(item.workflow_id)
    change = _move(tx, workflow, item, WorkItemState.FAILED)
    item.error = _error_text(payload)
    item.finished_at = tx.now
    tx.cancel_jobs(work_item_owner(item.id))
    await _activity(tx, workflow, item, "on_failed")
    await tasks.work_item_changed(tx, workflow, item.task, change)


async def cancel(tx: Transaction, item: WorkItemRecord, *, teardown: bool) -> None:
    """From ``initialized`` or ``started``. A teardown (the task itself is finishing) does not
    call the task's policy; an explicit cancel does."""
    check_move("work item", item.id, item.state, WorkItemState.CANCELED)
    workflow = tx.workflow(item.workflow_id)
    change = _move(tx, workflow, item, WorkItemState.CANCELED, call_policy=not teardown)
    item.finished_at = tx.now
    tx.cancel_jobs(work_item_owner(item.id))
    await _activity(tx, workflow, item, "on_canceled")
    await tasks.work_item_changed(tx, workflow, item.task, change)


async def reset(tx: Transaction, item: WorkItemRecord) -> None:
    """``started`` -> ``initialized``: the task stays started; the item can be started again."""
    check_move("work item", item.id, item.state, WorkItemState.INITIALIZED)
    workflow = tx.workflow(item.workflow_id)
    change = _move(tx, workflow, item, WorkItemState.INITIALIZED, call_policy=False)
    tx.cancel_jobs(work_item_owner(item.id))
    await _activity(tx, workflow, item, "on_reset")
    await tasks.work_item_changed(tx, workflow, item.task, change)


async def record_outcome(
    tx: Transaction,
    item: WorkItemRecord,
    *,
    attempt: int,
    ok: bool,
    output: Any,
    error: str | None,
    retry_after: float | None = None,
    error_type: str | None = None,
    error_data: dict[str, Any] | None = None,
    began_at: float | None = None,
) -> bool:
    """Apply a handler's result, journaled under (instance, item, attempt). A result for an
    attempt that is no longer current (the item was canceled, reset or finished) is dropped.
    ``began_at``: when the handler began to run."""
    if item.state != WorkItemState.STARTED or item.attempt != attempt:
        return False
    item.began_at = began_at
    tx.journal.append(
        JournalEntry(
            instance_id=tx.state.id,
            work_item_id=item.id,
            attempt=attempt,
            step_id=item.task,
            outcome="completed" if ok else ("retry" if retry_after is not None else "failed"),
            output=encode(output) if ok else None,
            error=error,
            recorded_at=tx.now,
        )
    )
    if ok:
        # an earlier attempt's error stays in the journal, not on the item that succeeded
        item.error = item.error_type = item.error_data = None
        await complete(tx, item, output)
    elif retry_after is not None:
        item.error = error
        await reset(tx, item)
        tx.schedule(work_item_owner(item.id), retry_after, StartWorkItemJob(work_item_id=item.id))
    else:
        item.error_type, item.error_data = error_type, error_data
        await fail(tx, item, error)
    return True


# -- internals -------------------------------------------------------------------------------------


def _error_text(payload: Any) -> str:
    if payload is None:
        return "failed"
    if isinstance(payload, str):
        return payload
    return json_encode(payload).decode()


def _move(
    tx: Transaction,
    workflow: WorkflowRecord,
    item: WorkItemRecord,
    target: WorkItemState,
    *,
    call_policy: bool = True,
) -> WorkItemStateChanged:
    previous = item.state
    item.state = target
    definition = tx.spec(workflow).tasks[item.task].work_item
    if previous == WorkItemState.STARTED and definition.wait is not None:
        tx.end_wait(item.id)
    change = WorkItemStateChanged(
        workflow_id=workflow.id,
        task=item.task,
        work_item_id=item.id,
        prev=previous,
        next=target,
        call_policy=call_policy,
        workflow=workflow.name,
        kind=definition.kind,
        started_at=item.started_at,
        began_at=item.began_at,
        detached=definition.detached,
    )
    tx.changes.append(change)
    return change


async def _open_wait(
    tx: Transaction, workflow: WorkflowRecord, item: WorkItemRecord, wait: WaitSpec
) -> None:
    """The durable wake-up row of an item that starts waiting (a pause draws a new token)."""
    if wait.kind == "pause":
        item.token = tx.new_token()
        key = item.token
    else:
        key = wait.event
    details: Any = None
    if wait.details is not None:
        details = await call_user(wait.details, tx.item_context(workflow, item, "wait details"))
    tx.open_wait(
        WaitRecord(
            wait_id=item.id,
            instance_id=tx.state.id,
            kind=wait.kind,
            key=key,
            workflow=workflow.name,
            step=item.task,
            created_at=tx.now,
            expires_at=tx.now + wait.timeout if wait.timeout is not None else None,
            data=encode({"details": details, "last": workflow.last}),
        )
    )


async def _activity(
    tx: Transaction,
    workflow: WorkflowRecord,
    item: WorkItemRecord,
    activity: str,
    triggers: frozenset[str] = frozenset(),
) -> WorkItemHandle | None:
    definition = tx.spec(workflow).tasks[item.task].work_item
    fn = definition.activities.get(activity)
    if fn is None:
        return None
    handle = WorkItemHandle(tx.work_item_info(item), triggers)
    ctx = tx.item_context(
        workflow,
        item,
        activity,
        scheduler=tx.scheduler(work_item_owner(item.id)) if triggers else None,
        work_item=handle,
    )
    await call_user(fn, ctx)
    return handle

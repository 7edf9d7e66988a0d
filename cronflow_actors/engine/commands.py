"""What a ``WorkflowActor`` does with each command: one transaction, one result.

The state checks and the action boundary come first, so a refused call raises before any
element moves; the element operations then run the cascade depth-first, in the order
Tasquencer's single database transaction runs it.
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.engine import detached, tasks, work_items, workflows
from cronflow_actors.engine.actions import pass_boundary
from cronflow_actors.engine.context import Context
from cronflow_actors.engine.states import WorkItemState, check_move
from cronflow_actors.engine.transaction import Transaction, call_user, workflow_owner
from cronflow_actors.errors import InvalidStateTransitionError, NotFoundError, ResumeError
from cronflow_actors.messages.engine import (
    ActionFinished,
    CancelWorkflow,
    CancelWorkflowJob,
    CancelWorkItemJob,
    CompleteWorkItemJob,
    DeliverEvent,
    FailTaskJob,
    FailWorkflowJob,
    FailWorkItemJob,
    InitializeWorkflowJob,
    InitializeWorkItem,
    InitializeWorkItemJob,
    Job,
    Principal,
    RedispatchActions,
    ResetWorkItemJob,
    StartWorkflow,
    StartWorkItemJob,
    TimerFired,
    WorkflowCommand,
    WorkflowRecord,
    WorkItemAction,
    WorkItemFinished,
    WorkItemRecord,
)
from cronflow_actors.net.spec import NetSpec, TaskKind

__all__ = ["WORK_ITEM_ACTIONS", "apply", "run_job"]

WORK_ITEM_ACTIONS = work_items.ACTIONS


async def apply(tx: Transaction, command: WorkflowCommand, root: NetSpec) -> Any:
    """Carry out ``command``; returns what the caller gets (an id, True/False, or None)."""
    match command:
        case StartWorkflow(
            payload=payload, principal=principal, dequeued=dequeued, trigger=trigger
        ):
            if dequeued:
                tx.dequeued.append(tx.state.id)
            payload = await pass_boundary(
                actions=root.actions,
                action="initialize",
                payload=payload,
                principal=principal,
                element=f"workflow {root.name!r}",
                context=lambda: Context(
                    where=f"workflow {root.name!r} initialize action",
                    scheduler=tx.scheduler(workflow_owner(tx.state.id)),
                    principal=principal,
                    is_internal=principal is None,
                    payload=payload,
                ),
            )
            await workflows.initialize(
                tx, root, payload=payload, workflow_id=tx.state.id, trigger=trigger
            )
            return tx.state.id
        case InitializeWorkItem(workflow_id=workflow_id, task=task, payload=payload):
            return await _initialize_work_item(tx, workflow_id, task, payload)
        case WorkItemAction(action=action, work_item_id=item_id, payload=payload, token=token):
            target = tx.work_item(item_id)
            if token is not None:
                _check_pause(target, token)
            await work_items.act(tx, target, action, payload, principal=tx.principal)
            return None
        case DeliverEvent(work_item_id=item_id, event=event, payload=payload):
            return await _deliver_event(tx, item_id, event, payload)
        case CancelWorkflow(workflow_id=workflow_id, principal=principal):
            await _cancel_workflow(tx, tx.workflow(workflow_id), principal)
            return None
        case WorkItemFinished(work_item_id=item_id) as finished:
            item = tx.state.work_items.get(item_id)
            if item is None:
                return False
            return await work_items.record_outcome(
                tx,
                item,
                attempt=finished.attempt,
                ok=finished.ok,
                output=finished.output,
                error=finished.error,
                retry_after=finished.retry_after,
                error_type=finished.error_type,
                error_data=finished.error_data,
                began_at=finished.began_at,
            )
        case ActionFinished() as report:
            return detached.finish(tx, report)
        case RedispatchActions():
            return detached.redispatch(tx)
        case TimerFired(timer_id=timer_id):
            job = tx.state.jobs.get(timer_id)
            if job is None:
                tx.timers_cancel.append(timer_id)
                return False
            tx.drop_job(timer_id)
            await run_job(tx, job.job)
            return True
    raise TypeError(f"a WorkflowActor cannot carry out {command!r}")


async def run_job(tx: Transaction, job: Job) -> None:
    """A scheduled job, as an internal call."""
    match job:
        case InitializeWorkItemJob(workflow_id=workflow_id, task=task, payload=payload):
            await _initialize_work_item(tx, workflow_id, task, payload)
        case InitializeWorkflowJob(
            workflow_id=workflow_id, task=task, workflow=name, payload=payload
        ):
            parent = tx.workflow(workflow_id)
            definition = _task_definition(tx, parent, task)
            names = [child.name for child in definition.subworkflows]
            child = definition.child(name)
            if (
                definition.kind not in (TaskKind.COMPOSITE, TaskKind.DYNAMIC_COMPOSITE)
                or child is None
            ):
                raise NotFoundError("child workflow", str(name), f"task {task!r} (it has {names})")
            state = parent.tasks[task].state
            if state not in ("enabled", "started"):
                raise InvalidStateTransitionError(
                    "task",
                    f"{parent.name}/{task}",
                    state,
                    "initialize a child workflow",
                    ["enabled", "started"],
                )
            await workflows.initialize_child(
                tx, child, payload=payload, parent=parent, parent_task=task
            )
        case CancelWorkflowJob(workflow_id=workflow_id):
            await _cancel_workflow(tx, tx.workflow(workflow_id), None)
        case FailWorkflowJob(workflow_id=workflow_id, error=error):
            await workflows.fail(tx, tx.workflow(workflow_id), error)
        case FailTaskJob(workflow_id=workflow_id, task=task, error=error):
            await tasks.fail_started(tx, tx.workflow(workflow_id), task, error)
        case (
            StartWorkItemJob()
            | CompleteWorkItemJob()
            | FailWorkItemJob()
            | CancelWorkItemJob()
            | ResetWorkItemJob()
        ):
            action = type(job).__name__.removesuffix("WorkItemJob").lower()
            await work_items.act(tx, tx.work_item(job.work_item_id), action, job.payload)


async def _cancel_workflow(
    tx: Transaction, workflow: WorkflowRecord, principal: Principal | None
) -> None:
    """An explicit cancel (a call or a job), through the workflow's ``cancel`` action."""
    check_move("workflow", workflow.id, workflow.state, "canceled")
    await pass_boundary(
        actions=tx.spec(workflow).actions,
        action="cancel",
        payload=None,
        principal=principal,
        element=f"workflow {workflow.name!r} ({workflow.id})",
        context=lambda: _workflow_context(tx, workflow, "cancel action"),
    )
    await workflows.cancel(tx, workflow, teardown=False)


def _check_pause(item: WorkItemRecord, token: str) -> None:
    """A resume names the pause by its token: the item must still wait in that pause."""
    if item.state != WorkItemState.STARTED or item.token != token:
        state = item.state if item.state != WorkItemState.STARTED else "paused again"
        raise ResumeError(token, f"the pause has already ended ({state})", ended=True)


async def _deliver_event(tx: Transaction, item_id: str, event: str, payload: Any) -> bool:
    """Complete a work item waiting for ``event`` if it still waits and its filter accepts."""
    item = tx.state.work_items.get(item_id)
    if item is None or item.state != WorkItemState.STARTED:
        return False
    workflow = tx.workflow(item.workflow_id)
    wait = tx.spec(workflow).tasks[item.task].work_item.wait
    if wait is None or wait.kind != "event" or wait.event != event:
        return False
    if wait.accept is not None:
        ctx = tx.item_context(workflow, item, "event filter")
        if not await call_user(wait.accept, ctx, payload):
            return False
    if wait.check is not None:
        verdict = await call_user(
            wait.check, tx.item_context(workflow, item, "event check"), payload
        )
        if verdict is not True:
            await work_items.fail(tx, item, f"event {event!r} refused: {verdict}")
            return True
    await work_items.complete(tx, item, payload)
    return True


async def _initialize_work_item(tx: Transaction, workflow_id: str, task: str, payload: Any) -> str:
    workflow = tx.workflow(workflow_id)
    _task_definition(tx, workflow, task)
    item = await work_items.create(tx, workflow, task, payload, principal=tx.principal)
    return item.id


def _task_definition(tx: Transaction, workflow: WorkflowRecord, task: str) -> Any:
    spec = tx.spec(workflow)
    if task not in spec.tasks:
        raise NotFoundError(
            "task", task, f"workflow {workflow.name!r} (tasks: {sorted(spec.tasks)})"
        )
    return spec.tasks[task]


def _workflow_context(tx: Transaction, workflow: WorkflowRecord, where: str) -> Context:
    return tx.context(
        workflow, f"workflow {workflow.name!r} {where}", workflow=tx.workflow_info(workflow)
    )

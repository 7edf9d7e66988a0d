"""What a ``WorkflowActor`` does with each command: one transaction, one result.

A command becomes messages to the elements it is for (``WorkItemAction`` to a work item,
``CancelWorkflow`` to a workflow, a scheduled job to the element it names), delivered by the
instance's ``Cascade``. The state checks and the action boundary come first in each element, so
a refused call raises before anything moves; the elements then run the cascade depth-first, in
the order Tasquencer's single database transaction runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import msgspec

from cronflow_actors.engine import detached, endings, heard, kept, notices
from cronflow_actors.engine.cascade import Cascade
from cronflow_actors.engine.fast_forward import take_key
from cronflow_actors.engine.states import VERB_TARGETS, TaskState, WorkflowState, WorkItemState
from cronflow_actors.engine.transaction import Send, Transaction
from cronflow_actors.engine.workflows import child_boundary
from cronflow_actors.errors import (
    ConfigurationError,
    InvalidStateTransitionError,
    NotFoundError,
    WorkItemLimitError,
)
from cronflow_actors.messages.elements import (
    CreateWorkItem,
    EnsureWorkflowStarted,
    FailWorkflow,
    InitializeWorkflow,
)
from cronflow_actors.messages.engine import (
    ActionFinished,
    CancelWorkflow,
    CancelWorkflowJob,
    CancelWorkItemJob,
    CompleteWorkItemJob,
    DeliverEvent,
    DeliverKept,
    EndHooksDone,
    FailTaskJob,
    FailWorkflowJob,
    FailWorkItemJob,
    GiveUpMigration,
    InitializeChildWorkflow,
    InitializeWorkflowJob,
    InitializeWorkItem,
    InitializeWorkItemJob,
    InstanceState,
    Job,
    JobRecord,
    NoticeDone,
    Principal,
    RedispatchActions,
    RerunStarted,
    ResetWorkItemJob,
    StartWorkflow,
    StartWorkItemJob,
    TimerFired,
    WorkflowCommand,
    WorkflowRecord,
    WorkItemAction,
    WorkItemFinished,
    WorkItemRerun,
)
from cronflow_actors.net.spec import NetSpec, TaskKind

__all__ = [
    "WORK_ITEM_ACTIONS",
    "apply",
    "drop_job",
    "fail_run",
    "owed_at_start",
    "postpone",
    "run_job",
]

logger = logging.getLogger(__name__)

WORK_ITEM_ACTIONS = VERB_TARGETS
"""The work item verbs and the state each one moves an item to."""

_TASK_ACTIVE = frozenset({TaskState.ENABLED, TaskState.STARTED})
_COMPOSITE = frozenset({TaskKind.COMPOSITE, TaskKind.DYNAMIC_COMPOSITE})
_KINDS = {
    TaskKind.TASK: "a task",
    TaskKind.COMPOSITE: "a composite task",
    TaskKind.DYNAMIC_COMPOSITE: "a dynamic composite task",
    TaskKind.DUMMY: "a dummy task",
}
"""A task's kind in a refusal's words."""
_REFUSALS = (InvalidStateTransitionError, NotFoundError)
"""What a job raises when its target moved on: not a failure of the run."""


async def apply(command: WorkflowCommand, root: NetSpec, tx: Transaction) -> Any:
    """Carry out ``command`` in ``tx``; returns what the caller gets (an id, True/False, or
    None). The transaction last: a partial binds the others by position (keywords would make
    it build and merge a dict on every call)."""
    cascade = Cascade(tx, root)
    try:
        result = await _carry_out(tx, command, cascade.send)
    finally:
        cascade.close()
    migration = tx.state.migration
    if migration is not None and migration.passing:  # a hop the migration goes on from
        tx.handlers.clear()
        tx.actions = tx.notices = tx.after_commit = ()
    return result


async def drop_job(tx: Transaction, *, root: NetSpec, job: str, error: Exception) -> None:
    """A timer's ``job`` could not run: it is dropped (it would raise again). Refused by the
    engine (its target moved on meanwhile: an item canceled, say), that is all; raised by user
    code, the run fails with it, rather than wait for good for what the job was to do."""
    if isinstance(error, _REFUSALS):
        tx.drop_job(job)
        return
    await fail_run(tx, root=root, error=f"{type(error).__name__}: {error}", job=job)


async def fail_run(tx: Transaction, *, root: NetSpec, error: str, job: str | None = None) -> None:
    """The run (its root workflow) fails with ``error``, policies bypassed: the last resort when
    a report could not be applied nor its work item failed (the same user code raised again),
    or a timer's ``job`` could not run (it is dropped: it would raise again). A root nobody
    started yet is started first, silently (``initialized`` cannot fail: the failure could not
    be recorded, and the run waited for good, the job firing again at every start: conform h36
    F2)."""
    if job is not None:
        tx.drop_job(job)
    cascade = Cascade(tx, root)
    try:
        ident = tx.state.id
        if tx.state.workflows[ident].state == WorkflowState.INITIALIZED:
            await cascade.send(EnsureWorkflowStarted(workflow_id=ident, silent=True))
        await cascade.send(FailWorkflow(workflow_id=ident, error=error))
    finally:
        cascade.close()


async def _carry_out(tx: Transaction, command: WorkflowCommand, send: Send) -> Any:
    # a step's report first: three a run of (a), where a start is one; by its type, before
    # the ``match`` (a class pattern is an isinstance through the class's metaclass: ~600
    # instructions for each one passed over, ~800 for the one that matches)
    if type(command) is WorkItemFinished:
        if command.work_item_id not in tx.state.work_items:
            return False
        return await send(command)
    match command:
        case StartWorkflow(
            payload=payload, principal=principal, dequeued=dequeued, trigger=trigger
        ):
            if dequeued:
                tx.dequeue(tx.state.id)
            _begin(tx, command)
            root = tx.state.id
            canceled, tx.terminating = command.canceled, command.terminated
            await send(
                InitializeWorkflow(
                    workflow_id=root,
                    payload=payload,
                    principal=principal,
                    trigger=trigger,
                    by=command.by,
                    empty=canceled,
                )
            )
            if canceled:
                by, ended = command.canceled_by, command.terminated
                await send(
                    CancelWorkflow(workflow_id=root, reason=command.reason, by=by, terminate=ended)
                )
            return root
        case InitializeChildWorkflow(workflow_id=workflow_id, task=task, child=child):
            payload, principal = command.payload, command.principal
            return await _initialize_child(
                tx, workflow_id, task, child, payload, principal=principal, named=True
            )
        case InitializeWorkItem(workflow_id=workflow_id, task=task, payload=payload):
            return await _initialize_work_item(tx, workflow_id, task, payload)
        case WorkItemAction():
            await send(command)
            return None
        case DeliverEvent(work_item_id=item_id):
            if item_id not in tx.state.work_items:
                return False
            if command.publish is None:
                return await send(command)
            if not heard.admits(tx, command):
                return False  # a keyed publish sent again: this step began waiting since
            others = heard.waiting(tx, command)
            took = await send(command)
            if took:
                heard.record(tx, command, others)
            return took
        case CancelWorkflow(terminate=terminate):
            tx.terminating = terminate  # (no code of the instance runs: transaction.py)
            await send(command)
            return None
        case ActionFinished() as report:
            return detached.finish(tx, report)
        case RedispatchActions():
            return detached.redispatch(tx)
        case RerunStarted(items=items):
            _rerun(tx, items)
            return None
        case NoticeDone():
            notices.done(tx, command)
            return None
        case EndHooksDone():
            endings.done(tx)
            return None
        case GiveUpMigration():
            return endings.given_up(tx, command)
        case DeliverKept(drop=drop):
            if tx.state.migration is not None and tx.state.migration.passing:
                return _keep_for_next_hop(tx)
            return await _deliver_kept(tx, send, drop=drop)
        case TimerFired(timer_id=timer_id):
            job = tx.state.jobs.get(timer_id)
            if job is None:
                tx.cancel_timer(timer_id)
                return False
            tx.drop_job(timer_id)
            await run_job(tx, job.job)
            return True
    raise TypeError(f"a WorkflowActor cannot carry out {command!r}")


def owed_at_start(
    state: InstanceState, busy: Collection[str], now: float
) -> tuple[list[TimerFired], RerunStarted]:
    """What a recovered instance owes itself as it starts: its jobs past due at ``now`` (a
    run's timeout, a group's deadline; each timer's own firing, later, finds its job done), to
    carry out first, and the rerun of its steps found started unrecorded (``busy``), to carry
    out after the message that woke it too (a cancel sent to the process that took it over).
    The steps ran again first, a plain ``def`` one to its end, in a run that was then recorded
    failed or canceled (chaos h34 F1); one no longer started by then is not run again."""
    due = sorted((j for j in state.jobs.values() if j.due_at <= now), key=_due_at)
    items = state.work_items
    rerun = tuple((i, items[i].attempt) for i in items if i in busy)
    return [TimerFired(timer_id=j.timer_id) for j in due], RerunStarted(items=rerun)


def postpone(state: InstanceState, handlers: list[tuple[str, int]]) -> None:
    """The items whose ``handlers`` a draining process begins none of: the next start runs
    each, its first run, not counted as a run again (``WorkItemRecord.postponed``)."""
    for item_id, _attempt in handlers:
        state.work_items[item_id].postponed = True


def _due_at(job: JobRecord) -> float:
    return job.due_at


def _rerun(tx: Transaction, items: tuple[tuple[str, int], ...]) -> None:
    """Steps a restart found started and unreported: each still so is counted as run again,
    and its handler starts once that is durable (``tx.handlers``)."""
    work_items = tx.state.work_items
    for item_id, attempt in items:
        item = work_items.get(item_id)
        if item is None or item.state != WorkItemState.STARTED or item.attempt != attempt:
            continue
        tx.rewritten = True  # the count is durable before the handler runs again
        tx.handlers.append((item_id, attempt))
        if item.kept_key is None and tx.state.migration is not None:  # started by an older
            # version, which kept no key on the item: the one it keeps (the reviewer's h27 H2)
            item.kept_key = take_key(tx.state, tx.state.workflows[item.workflow_id], item)
        if item.postponed:  # started as its process drained: it runs for the first time,
            item.postponed = False  # from now (retest h34 F5: it read as taking the restart)
            item.started_at = tx.now
            continue
        item.redispatches += 1
        workflow = tx.state.workflows.get(item.workflow_id)
        name = workflow.name if workflow is not None else ""
        tx.changes.append(
            WorkItemRerun(
                workflow_id=item.workflow_id,
                task=item.task,
                work_item_id=item_id,
                workflow=name,
                kind=item.kind,
            )
        )
        if tx.audit is not None:
            tx.audit.rerun(item)


async def run_job(tx: Transaction, job: Job) -> None:
    """A scheduled job, as an internal call (the transaction's dispatcher delivers it)."""
    match job:
        case InitializeWorkItemJob(workflow_id=workflow_id, task=task, payload=payload):
            await _initialize_work_item(tx, workflow_id, task, payload)
        case InitializeWorkflowJob(
            workflow_id=workflow_id, task=task, workflow=name, payload=payload
        ):
            await _initialize_child(tx, workflow_id, task, name, payload)
        case CancelWorkflowJob(workflow_id=workflow_id, reason=reason):
            await tx.send(CancelWorkflow(workflow_id=workflow_id, reason=reason))
        case FailWorkflowJob(workflow_id=workflow_id, error=error):
            await tx.send(FailWorkflow(workflow_id=workflow_id, error=error))
        case FailTaskJob():
            await tx.send(job)
        case (
            StartWorkItemJob()
            | CompleteWorkItemJob()
            | FailWorkItemJob()
            | CancelWorkItemJob()
            | ResetWorkItemJob()
        ):
            action = WorkItemAction(
                action=job.verb,
                work_item_id=job.work_item_id,
                payload=job.payload,
                timed_out=job.timed_out,
            )
            await tx.send(action)


def _begin(tx: Transaction, command: StartWorkflow) -> None:
    """What a new instance's first transaction records of how it began."""
    state = tx.state
    if command.migration is not None:  # the root starts fast-forwarded (section 9)
        state.migration = command.migration
    if command.kept:  # events its predecessor kept while held, for its waiting steps
        state.kept = list(command.kept)
    if command.net:  # (a net's instance, whatever its payload looks like)
        state.net = True


async def _deliver_kept(tx: Transaction, send: Send, *, drop: bool) -> bool:
    """The first event kept for the instance while it was held, delivered to the step it was
    kept for (``drop``: to none) and no longer kept, in this transaction, whether the step still
    waits for it or not; whether the step took it. One carried from the run this one replaced
    (no step named yet) is carried for the steps it was kept for, and an offer of it to one of
    them delivered if that step is still one it is for (``engine/kept.py``)."""
    state = tx.state
    if not state.kept:
        return False
    first, *rest = state.kept
    state.kept = rest or msgspec.UNSET
    tx.rewritten = True
    if not first.work_item_id:
        if not drop:
            kept.arrived(tx, first)
        return False
    if first.carried and kept.offered(state, first) is None:
        return False  # taken by another step, or this step has had it
    if drop or first.work_item_id not in state.work_items:
        if first.carried:
            kept.settle(tx, first, taken=False)
        return False
    others = state.heard.get(first.publish) if first.carried and first.publish else None
    if others is not None and first.work_item_id not in others:  # offered to this step too:
        others.append(first.work_item_id)  # the run heard the publish, not yet by this step
    delivery = DeliverEvent(
        work_item_id=first.work_item_id,
        event=first.event,
        payload=first.payload,
        publish=first.publish or None,
        principal=first.principal,
    )
    taken = bool(await _carry_out(tx, delivery, send))
    if first.carried:
        kept.settle(tx, first, taken=taken)
    return taken


def _keep_for_next_hop(tx: Transaction) -> bool:
    """A hop in between hears no kept event: they are carried on (``carried_events``)."""
    state = tx.state
    fresh = [e for e in state.kept or () if not e.carried]  # (an offer: its carried event's)
    state.carried = [*(state.carried or ()), *fresh] or msgspec.UNSET
    state.kept = msgspec.UNSET
    tx.rewritten = True
    return False


async def _initialize_work_item(tx: Transaction, workflow_id: str, task: str, payload: Any) -> str:
    workflow = tx.workflow(workflow_id)
    definition = _task_definition(tx, workflow, task)
    if definition.kind is not TaskKind.TASK:  # (it said "is 'a composite task' and cannot...")
        children = (
            "its children are workflows: initialize one with initialize_workflow "
            "(POST /workflows/{id}/tasks/{task}/children)"
            if definition.kind in _COMPOSITE
            else "it completes as soon as it is enabled"
        )
        raise NotFoundError(
            "task with work items",
            task,
            f"workflow {workflow.name!r}",
            advice=f"{task!r} is {_KINDS[definition.kind]}: {children}",
        )
    ident = tx.new_id("w")
    message = CreateWorkItem(
        workflow_id=workflow_id,
        task=task,
        work_item_id=ident,
        payload=payload,
        principal=tx.principal,
    )
    await tx.send(message)
    return ident


async def _initialize_child(
    tx: Transaction,
    workflow_id: str,
    task: str,
    name: str | None,
    payload: Any,
    *,
    principal: Principal | None = None,
    named: bool = False,
) -> str:
    """A child workflow of composite ``task`` (``name``: a dynamic one's child type), by a job
    or an outside call (``principal``: its caller, whom the child's ``initialize`` admits).
    ``named``: a call of the runtime's, which names a dynamic composite task's child type (a
    job without one starts the first type, as jobs stored before did)."""
    parent = tx.workflow(workflow_id)
    definition = _task_definition(tx, parent, task)
    if definition.kind not in _COMPOSITE:
        raise NotFoundError(
            "composite task",
            task,
            f"workflow {parent.name!r}",
            advice=f"{task!r} is {_KINDS[definition.kind]}: initialize_work_item adds to it",
        )
    names = [child.name for child in definition.subworkflows]
    if named and not name and definition.kind is TaskKind.DYNAMIC_COMPOSITE:  # not guessed
        raise ConfigurationError(  # (conform h38 F1)
            "workflow",
            None,
            f"one of {names}",
            said=f"task {task!r} of {parent.name!r} is a dynamic composite task: name the child "
            f"type to start, one of {names} (workflow=; ?workflow= over HTTP, --workflow on the "
            "command line)",
        )
    child = definition.child(name)
    if child is None:
        advice = f"name one of its child types: {names}"  # (no id: retest h38 R8)
        raise NotFoundError("child workflow", str(name), f"task {task!r}", advice=advice)
    ident = tx.new_id("f")
    if principal is not None:  # who may not initialize hears so, not the task's state or bound
        await child_boundary(
            tx,
            child,
            parent=parent,
            task=task,
            ident=ident,
            payload=payload,
            principal=principal,
            stage="admit",
        )
    state = parent.tasks[task].state
    if state not in _TASK_ACTIVE:
        raise InvalidStateTransitionError(
            "task",
            f"{parent.name}/{task}",
            str(state),
            "initialize a child workflow",
            ["enabled", "started"],
            only_while=True,
        )
    most = definition.max_work_items  # an outside caller's: bounded, as its work items are
    if principal is not None and (has := len(parent.tasks[task].children)) >= most:
        raise WorkItemLimitError(parent.name, task, most, composite=True, has=has)  # (h38 F3)
    message = InitializeWorkflow(
        workflow_id=ident,
        payload=payload,
        principal=principal,
        parent_id=parent.id,
        parent_task=task,
        child=name,
        admitted=principal is not None,
    )
    await tx.send(message)
    return ident


def _task_definition(tx: Transaction, workflow: WorkflowRecord, task: str) -> Any:
    spec = tx.specs[workflow.path]
    if task not in spec.tasks:
        raise NotFoundError(
            "task", task, f"workflow {workflow.name!r} (tasks: {sorted(spec.tasks)})"
        )
    return spec.tasks[task]

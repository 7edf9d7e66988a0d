"""The workflow element: initialize, start, complete, fail, cancel (spec section 1.4).

A ``Workflow`` is an actor on its instance's turn: its record is its state (the marking of its
net, its tasks' records, its outputs), and ``receive`` (a ``match`` over ``WorkflowMessage``)
is its one way in. ``initialize`` answers ``InitializeWorkflow``, the request for a workflow
that does not exist yet (the root of an instance, or a child of a composite task). A child
workflow reports each of its state changes to the composite task that owns it as a
``WorkflowStateChanged``; the task runs its activity and, for a terminal change that is not a
teardown, its policy. What it asks of its tasks (enable, cancel, disable) and of its parent task
(start) goes through ``tx.send``: this module knows no other element.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

from cronflow_actors.calls import call_user
from cronflow_actors.engine.actions import Stage, admit_caller, pass_boundary
from cronflow_actors.engine.context import Context
from cronflow_actors.engine.owners import workflow_owner
from cronflow_actors.engine.states import (
    FINAL_STATES,
    WORKFLOW_TRANSITIONS,
    TaskState,
    WorkflowState,
    check_move,
    refuse_move,
)
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.elements import (
    CancelTask,
    DisableTask,
    EnableTask,
    EnsureTaskStarted,
    EnsureWorkflowStarted,
    FailWorkflow,
    InitializeWorkflow,
    TearDownWorkflow,
    WorkflowMessage,
)
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    Principal,
    TaskRecord,
    TaskStateChanged,
    WorkflowRecord,
    WorkflowStateChanged,
)
from cronflow_actors.net.migration import refused
from cronflow_actors.net.spec import NetSpec

__all__ = ["Workflow", "child_boundary", "initialize"]

_SCHEDULING_ACTIVITIES = frozenset({"on_initialized", "on_migrated", "on_started"})
_TASK_STARTED: Final = TaskState.STARTED
_TASK_ENABLED: Final = TaskState.ENABLED
_TASK_COMPLETED: Final = TaskState.COMPLETED
_STARTED: Final = WorkflowState.STARTED
"""Read for every task as a workflow ends, or as a task changes: ``Final`` constants, where an
enum member's read goes through ``EnumType.__getattr__``'s hook (CPython 3.11)."""


async def child_boundary(
    tx: Transaction,
    spec: NetSpec,
    *,
    parent: WorkflowRecord,
    task: str,
    ident: str,
    payload: Any,
    principal: Principal | None,
    stage: Stage = "all",
) -> Any:
    """``payload`` through the ``initialize`` action of ``spec``, child workflow ``ident`` of
    composite task ``task`` (its ``stage``): the payload as stored, or None for ``admit``."""
    return await pass_boundary(
        actions=spec.actions,
        action="initialize",
        payload=payload,
        principal=principal,
        element=f"workflow {spec.name!r} (a child of task {task!r})",
        context=lambda: tx.context(
            parent,
            f"workflow {spec.name!r} initialize action",
            scheduler=tx.scheduler(workflow_owner(ident)),
            task=tx.task_info(parent, task),
            payload=payload,
        ),
        stage=stage,
    )


async def initialize(tx: Transaction, spec: NetSpec, message: InitializeWorkflow) -> None:
    """Create workflow ``spec`` through its ``initialize`` action (its caller is
    ``message.principal``: a child's is internal, spec section 5.3, unless an outside caller
    asked for it, ``Runtime.initialize_workflow``), put a token in its start
    condition, enable the tasks after it, then run ``on_initialized``. The composite task that
    owns a child hears of it first."""
    ident, payload = message.workflow_id, message.payload
    parent_id, parent_task = message.parent_id, message.parent_task
    parent = tx.state.workflows[parent_id] if parent_id is not None else None
    started_by = None
    if parent is not None and parent_task is not None:
        stored = await child_boundary(
            tx,
            spec,
            parent=parent,
            task=parent_task,
            ident=ident,
            payload=payload,
            principal=message.principal,
            stage="after" if message.admitted else "all",
        )
        path = (*parent.path, parent_task, spec.name)
        generation = parent.tasks[parent_task].generation
    elif tx.state.migration is not None and ident == tx.state.id:
        stored, path, generation = payload, (), 0  # fast-forwarded: no initialize action
    else:
        principal = message.principal
        stored = await pass_boundary(
            actions=spec.actions,
            action="initialize",
            payload=payload,
            principal=principal,
            element=f"workflow {spec.name!r}",
            context=lambda: Context(
                where=f"workflow {spec.name!r} initialize action",
                scheduler=tx.scheduler(workflow_owner(ident)),
                principal=principal,
                is_internal=principal is None,
                payload=payload,
            ),
        )
        path, generation = (), 0
        started_by = principal.id if principal is not None else None
    migrated = tx.state.migration is not None and ident == tx.state.id
    marking = dict.fromkeys(spec.conditions, 0)
    marking[spec.start] = 1
    record = WorkflowRecord(
        id=ident,
        name=spec.name,
        version=spec.version,
        path=path,
        payload=stored,
        parent_id=parent_id if parent is not None else None,
        parent_task=parent_task,
        parent_generation=generation,
        marking=marking,
        tasks={name: TaskRecord(name=name) for name in spec.tasks},
        caught=[],  # (kept from the start: a workflow recorded without it tells by shape)
        created_at=tx.now,
        started_by=started_by,
    )
    tx.state.workflows[ident] = record
    change = WorkflowStateChanged(
        workflow_id=ident,
        workflow=spec.name,
        prev=None,
        next=WorkflowState.INITIALIZED,
        created_at=tx.now,
        trigger=message.trigger,
    )
    tx.changes.append(change)
    if tx.audit is not None:
        tx.audit.workflow_moved(change)
    if parent is not None and parent_task is not None:
        await tx.send(change)
    if message.empty:
        return  # a queued run canceled before it started: its cancel follows
    if migrated:  # the migration's initializer, before the first tasks are enabled
        await Workflow(tx, record)._migration_hook("initializer")
    activity = "on_migrated" if migrated else "on_initialized"
    if activity not in spec.activities:
        activity = ""
    first = spec.conditions[spec.start].outputs
    for n, name in enumerate(first, 1):
        if record.state in FINAL_STATES:
            break
        last = n == len(first) and not activity  # the last act: nothing follows its answer
        await (tx.send_last if last else tx.send)(EnableTask(workflow_id=ident, task=name))
    if activity:
        await Workflow(tx, record)._activity(activity)


class Workflow:
    """One workflow (the root or a child) of an instance, for one message."""

    __slots__ = ("record", "tx")

    def __init__(self, tx: Transaction, record: WorkflowRecord) -> None:
        self.tx = tx
        self.record = record

    def receive(self, message: WorkflowMessage) -> Awaitable[None]:
        """What the workflow does with ``message`` (awaiting it carries it out)."""
        # by ``type(message) is``, the most frequent first (as ``Task.receive``)
        kind = type(message)
        sent: Any = message  # (read as ``kind`` says)
        if kind is TaskStateChanged:
            return self._task_changed(sent)
        if kind is EnsureWorkflowStarted:
            return self._ensure_started(silent=sent.silent)
        if kind is FailWorkflow:
            return self._fail(sent.error, cause=sent.cause, error_type=sent.error_type)
        if kind is CancelWorkflow:
            if isinstance(sent.migrated_to, str):
                return self._cancel_for_migration(sent.migrated_to, sent.principal)
            return self._cancel_through_action(sent.principal, sent.reason)
        if kind is TearDownWorkflow:
            return self._cancel(teardown=True)
        raise TypeError(f"a workflow does not receive {message!r}")

    async def _task_changed(self, message: TaskStateChanged) -> None:
        """A task of this workflow changed state. A completed task may have marked the end
        condition: then the workflow completes (whatever else is still active is shut down)."""
        tx, workflow = self.tx, self.record
        if (
            message.next == _TASK_COMPLETED
            and workflow.state == _STARTED
            and workflow.marking.get(tx.specs[workflow.path].end, 0) > 0
        ):
            spec = tx.specs[workflow.path]
            last = spec.output == "last"
            workflow.output = workflow.last if last else workflow.outputs.get(message.task)
            await self._complete()

    async def _ensure_started(self, *, silent: bool = False) -> None:
        """``initialized`` -> ``started`` when its first task starts (a child workflow first
        starts its composite task, which starts the parent workflow). ``silent``: a
        fast-forwarded task starts it, so ``on_started`` does not run."""
        workflow = self.record
        if workflow.state != WorkflowState.INITIALIZED:
            return
        if workflow.parent_id is not None and workflow.parent_task is not None:
            await self.tx.send(
                EnsureTaskStarted(
                    workflow_id=workflow.parent_id, task=workflow.parent_task, silent=silent
                )
            )
            if workflow.state != WorkflowState.INITIALIZED:
                return  # its composite's start ended it (the policy's first answer: spec 1.3)
        activity = "" if silent else "on_started"
        await self._move(WorkflowState.STARTED, activity=activity, call_policy=False)

    async def _complete(self) -> None:
        if self.record.state != WorkflowState.STARTED:
            return
        await self._shutdown()
        await self._move(WorkflowState.COMPLETED, activity="on_completed", call_policy=True)

    async def _fail(
        self, error: str, *, cause: str | None = None, error_type: str | None = None
    ) -> None:
        """A task failed and its policy said ``fail`` (or a job failed the workflow): the other
        started tasks are canceled, the enabled ones disabled (policies bypassed), then the
        workflow fails and tells its parent. ``cause``: the work item whose failure this is."""
        workflow = self.record
        if workflow.state in FINAL_STATES:
            return
        workflow.error = error
        workflow.error_cause = cause
        workflow.error_type = error_type if cause is None else None
        await self._shutdown()
        await self._move(WorkflowState.FAILED, activity="on_failed", call_policy=True)

    async def _cancel_through_action(self, principal: Principal | None, reason: str) -> None:
        """An explicit cancel (a call or a job), through the workflow's ``cancel`` action;
        ``reason``, if any, is recorded as the workflow's error."""
        tx, workflow = self.tx, self.record

        def through(stage: Stage) -> Awaitable[Any]:
            return pass_boundary(
                actions=tx.specs[workflow.path].actions,
                action="cancel",
                payload=None,
                principal=principal,
                element=f"workflow {workflow.name!r} ({workflow.id})",
                context=self._cancel_context,
                stage=stage,
            )

        if principal is not None:  # who may not cancel hears so, not how the workflow stands
            await through("admit")  # (review h38 F3, the rest)
        check_move("workflow", workflow.id, workflow.state, WorkflowState.CANCELED)
        if not tx.terminating:  # (a terminate calls no callback: its policy was asked)
            await through("all" if principal is None else "after")
        if reason:
            workflow.error = reason
        await self._cancel(teardown=False)

    async def _cancel_for_migration(self, migrated_to: str, principal: Principal | None) -> None:
        """A migration replaces this root (spec section 9): canceled without its ``cancel``
        action, its activities run, and the instance records the root that replaces it. An
        outside caller's migration must be one the ``cancel`` action admits (its policy asked,
        its callback not run): a migration ends the instance as a cancel does."""
        tx, workflow = self.tx, self.record
        if workflow.parent_id is not None:
            raise refused(
                f"workflow {workflow.id!r}", "it is a child workflow", "migrate its root instance"
            )
        if principal is not None:  # (admitted before the state is said, as a cancel is)
            await admit_caller(
                custom=tx.specs[workflow.path].actions.get("cancel"),
                action="cancel",
                payload=None,
                principal=principal,
                element=f"workflow {workflow.name!r} ({workflow.id}), which its migration cancels",
                context=self._cancel_context,
            )
        check_move("workflow", workflow.id, workflow.state, WorkflowState.CANCELED)
        tx.state.migrated_to = migrated_to
        await self._cancel(teardown=False)

    def _cancel_context(self) -> Context:
        """The context of the ``cancel`` action's policy and callback."""
        tx, workflow = self.tx, self.record
        where = f"workflow {workflow.name!r} cancel action"
        return tx.context(workflow, where, workflow=tx.workflow_info(workflow))

    async def _cancel(self, *, teardown: bool) -> None:
        """Top-down cancel: shut every active task down without policies, then ``canceled``.
        The parent composite task hears of it; its policy runs unless this is its own
        teardown."""
        workflow = self.record
        if workflow.state in FINAL_STATES:
            return
        check_move("workflow", workflow.id, workflow.state, WorkflowState.CANCELED)
        await self._shutdown()
        await self._move(WorkflowState.CANCELED, activity="on_canceled", call_policy=not teardown)

    # -- internals ---------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        workflow, send = self.record, self.tx.send
        for name, record in workflow.tasks.items():
            if record.state == _TASK_STARTED:
                await send(CancelTask(workflow_id=workflow.id, task=name, teardown=True))
            elif record.state == _TASK_ENABLED:
                await send(DisableTask(workflow_id=workflow.id, task=name))

    async def _move(self, target: WorkflowState, *, activity: str, call_policy: bool) -> None:
        tx, workflow = self.tx, self.record
        previous = workflow.state
        if target not in WORKFLOW_TRANSITIONS[previous]:
            refuse_move("workflow", workflow.id, previous, target)
        workflow.state = target
        if target in FINAL_STATES:
            workflow.finished_at = tx.now
            tx.cancel_workflow_jobs(workflow.id)
            if workflow.parent_id is not None and workflow.parent_task is not None:
                tx.cancel_task_jobs(workflow.parent_id, workflow.parent_task)
        change = WorkflowStateChanged(
            workflow_id=workflow.id,
            workflow=workflow.name,
            prev=previous,
            next=target,
            call_policy=call_policy,
            created_at=workflow.created_at,
            migrated=target is WorkflowState.CANCELED
            and tx.state.migrated_to is not None
            and workflow.id == tx.state.id,
        )
        tx.changes.append(change)
        if tx.audit is not None:
            tx.audit.workflow_moved(change)
        if activity in self.tx.specs[workflow.path].activities:
            await self._activity(activity)
        if target in FINAL_STATES and workflow.id == tx.state.id and tx.state.migration is not None:
            await self._migration_hook("finalizer")  # the migrated root ended
        if workflow.parent_id is not None and workflow.parent_task is not None:
            await tx.send_last(change)

    async def _migration_hook(self, hook: str) -> None:
        """The ``initializer`` or ``finalizer`` of the migration that started this instance,
        with ``ctx.workflow`` (this root) and ``ctx.migrating_from``."""
        tx, workflow = self.tx, self.record
        fn = getattr(tx.migration, hook, None) if tx.migration is not None else None
        if fn is None:
            return
        ctx = tx.context(
            workflow,
            f"migration {hook} of workflow {workflow.name!r}",
            scheduler=tx.scheduler(workflow_owner(workflow.id)) if hook == "initializer" else None,
            workflow=tx.workflow_info(workflow),
        )
        await call_user(fn, ctx)

    async def _activity(self, name: str) -> None:
        tx, workflow = self.tx, self.record
        fn = tx.specs[workflow.path].activities.get(name)
        if fn is None:
            return
        parent = tx.state.workflows[workflow.parent_id] if workflow.parent_id is not None else None
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
        where = f"{name} of workflow {workflow.name!r}"
        await tx.activity(fn, ctx, name, "workflow", workflow.id, workflow.id, refusing=where)

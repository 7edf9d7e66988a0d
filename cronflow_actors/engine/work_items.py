"""The work item element: initialize, start, complete, fail, cancel, reset (spec section 1.2).

A ``WorkItem`` is an actor on its instance's turn: its record is its state, and ``receive`` (a
``match`` over ``WorkItemMessage``) is its one way in; ``initialize`` makes a new one (once
``work_item_create`` has passed its initialize action). Each change runs the item's own activity
and is then sent to its task as a ``WorkItemStateChanged``; the start of an item first asks its
task to start (``EnsureTaskStarted``). This module knows no other element: it talks to them only
through ``tx.send``.

Auto-triggers set in ``on_initialized`` (start) and ``on_started`` (complete, fail, cancel)
run as internal calls once the activity returns; the start ones of items a task activity made
are answered to that task, which runs them once all its new items exist. An automated item (one
with a handler) starts by itself, and its handler runs in a ``WorkItemActor`` once the start is
durable.

Order of the task's notifications for an item that completes itself in ``on_started``:
``initialized -> started`` first, then ``started -> completed`` (Tasquencer reports them the
other way round, spec section 6; a task here never hears of a state before the one preceding it).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

from cronflow_actors.engine import detached, kept
from cronflow_actors.engine.actions import storable
from cronflow_actors.engine.context import WorkItemHandle
from cronflow_actors.engine.event_waits import deliver_event
from cronflow_actors.engine.fast_forward import recorded_item
from cronflow_actors.engine.handlers import journal_outcome
from cronflow_actors.engine.item_boundary import through_boundary
from cronflow_actors.engine.owners import work_item_owner
from cronflow_actors.engine.states import (
    FINAL_STATES,
    VERB_TARGETS,
    WORK_ITEM_TRANSITIONS,
    TaskState,
    WorkflowState,
    WorkItemState,
    WorkItemVerb,
    check_move,
    refuse_move,
)
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import (
    DEADLINE_TYPE,
    INFRASTRUCTURE,
    InvalidStateTransitionError,
    ResumeError,
    class_name,
    described,
    refuse_call,
)
from cronflow_actors.messages import JournalEntry, encode, json_encode
from cronflow_actors.messages.elements import (
    EnsureTaskStarted,
    RunTrigger,
    TearDownWorkItem,
    WorkItemMessage,
)
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    DeliverEvent,
    Principal,
    StartWorkItemJob,
    WorkflowRecord,
    WorkItemAction,
    WorkItemFinished,
    WorkItemRecord,
    WorkItemStateChanged,
)
from cronflow_actors.net.spec import TaskKind, item_kind

__all__ = ["ACTIONS", "Trigger", "WorkItem", "initialize"]

_TASK_ACTIVE = frozenset({TaskState.ENABLED, TaskState.STARTED})
# Enum members read on every step's path, as ``Final`` constants: on CPython 3.11 an Enum class's
# attribute is read through ``EnumType.__getattr__`` (~900 instructions), a constant (a C static).
_ITEM_INITIALIZED: Final = WorkItemState.INITIALIZED
_ITEM_STARTED: Final = WorkItemState.STARTED
_ITEM_COMPLETED: Final = WorkItemState.COMPLETED
_ITEM_CANCELED: Final = WorkItemState.CANCELED
_TASK_STARTED: Final = TaskState.STARTED
_START: Final = WorkItemVerb.START
_NO: Final = (False, None)
_TASK: Final = TaskKind.TASK
_WORKFLOW_OPEN = frozenset({WorkflowState.INITIALIZED, WorkflowState.STARTED})

ACTIONS = VERB_TARGETS
"""The work item verbs and the state each one moves an item to."""

Trigger = tuple[WorkItemVerb, Any]
"""An auto-trigger: the verb and its payload."""

_ON_INITIALIZED_TRIGGERS = frozenset({WorkItemVerb.START})
_ON_STARTED_TRIGGERS = frozenset({WorkItemVerb.COMPLETE, WorkItemVerb.FAIL, WorkItemVerb.CANCEL})


async def initialize(
    tx: Transaction, workflow: WorkflowRecord, task: str, payload: Any, ident: str, *, defer: bool
) -> Trigger | None:
    """A new work item of ``task``'s current generation (the task must be enabled or started);
    its task hears of it, then its ``on_initialized`` runs."""
    record = workflow.tasks[task]
    definition = tx.specs[workflow.path].tasks[task]
    if record.state not in _TASK_ACTIVE or workflow.state not in _WORKFLOW_OPEN:
        raise InvalidStateTransitionError(
            "task",
            f"{workflow.name}/{task}",
            str(record.state),
            "initialize a work item",
            ["enabled", "started"],
            only_while=True,  # (something it does while so, not a state: net h44 F4)
        )
    if definition.kind is not _TASK:
        raise InvalidStateTransitionError(
            "task", f"{workflow.name}/{task}", definition.kind.value, "initialize a work item", []
        )
    item = WorkItemRecord(
        id=ident,
        name=definition.work_item.name,
        workflow_id=workflow.id,
        task=task,
        generation=record.generation,
        payload=payload,
        created_at=tx.now,
        kind=definition.work_item.kind,  # as declared: a flow's are told by theirs (flow_runs)
    )
    tx.state.work_items[item.id] = item
    change = WorkItemStateChanged(
        workflow_id=workflow.id,
        task=task,
        work_item_id=item.id,
        prev=None,
        next=_ITEM_INITIALIZED,
        workflow=workflow.name,
        kind=item_kind(definition.work_item),
    )
    tx.changes.append(change)
    if tx.audit is not None:
        tx.audit.item_moved(change, item.generation)
    await tx.send(change)
    element = WorkItem(tx, item)
    trigger = None
    if "on_initialized" in definition.work_item.activities:
        handle = await element._activity("on_initialized", _ON_INITIALIZED_TRIGGERS)
        trigger = handle.trigger if handle is not None else None
    if trigger is None and definition.work_item.handler is not None:
        trigger = (_START, None)
    if trigger is None:
        return None
    if defer:
        return trigger
    await element._run_trigger(*trigger)
    return None


class WorkItem:
    """One work item of an instance, for one message: its record is its state."""

    __slots__ = ("definition", "record", "tx", "workflow")

    def __init__(self, tx: Transaction, record: WorkItemRecord) -> None:
        self.tx = tx
        self.record = record
        self.workflow = workflow = tx.state.workflows[record.workflow_id]
        self.definition = tx.specs[workflow.path].tasks[record.task].work_item

    def receive(self, message: WorkItemMessage) -> Awaitable[Any]:
        """What it does with ``message`` (awaited); a report or an event: whether it moved."""
        kind = type(message)  # by its type, as ``Task.receive``
        sent: Any = message
        if kind is RunTrigger:
            return self._run_trigger(sent.verb, sent.payload)
        if kind is WorkItemFinished:
            return self._record_outcome(sent)
        if kind is WorkItemAction:
            if sent.token is not None:
                self._check_pause(sent.token)
            return self._act(sent.action, sent.payload, sent.principal, sent.timed_out)
        if kind is TearDownWorkItem:
            return self._tear_down()
        if kind is DeliverEvent:
            return deliver_event(self, sent.event, sent.payload, sent.principal)
        raise TypeError(f"a work item does not receive {message!r}")

    # -- through the actions (spec section 5): every transition asked for, internal or external --

    async def _act(
        self,
        verb: WorkItemVerb,
        payload: Any,
        principal: Principal | None,
        timed_out: bool = False,
    ) -> None:
        """``verb`` through the item's action of that name: (for an external caller) schema,
        authentication and policy, then the state check, schema, callback and the transition
        (``item_boundary``). Auto-triggers and jobs are internal calls (``principal=None``);
        ``timed_out``: a job that ends the item's wait as its deadline passed."""
        item, workflow = self.record, self.workflow
        target = ACTIONS.get(verb)
        if target is None:
            known = sorted(map(str, ACTIONS))
            raise ValueError(f"unknown work item action {verb!r}; actions: {known}")
        action = str(verb)
        if principal is not None:  # who may not act hears so, not how the item stands (a 409
            await through_boundary(self, verb, payload, principal, "admit")  # to wait out)
        if target not in WORK_ITEM_TRANSITIONS[item.state]:
            refuse_move("work item", item.id, item.state, target)
        if verb == _START:
            task_state = workflow.tasks[item.task].state
            if task_state not in _TASK_ACTIVE:
                raise InvalidStateTransitionError(
                    "task",
                    f"{workflow.name}/{item.task}",
                    str(task_state),
                    "started",
                    ["enabled", "started"],
                )
        if principal is None and action not in self.definition.actions:
            # an internal call of the default action: nothing to check, nothing to call (and
            # None, an auto-start's payload, nothing to copy, nor the item's name to format)
            element = None if payload is None else self._element()
            stored = None if element is None else storable(payload, element=element, action=action)
        else:
            admitted = principal is not None  # (above: its policy is not asked again)
            stored = await through_boundary(
                self, verb, payload, principal, "after" if admitted else "all"
            )
        await self._transition(verb, stored, timed_out)

    def _element(self) -> str:
        return f"work item {self.record.name!r} ({self.record.id})"

    def _transition(
        self, verb: WorkItemVerb, payload: Any, timed_out: bool = False
    ) -> Awaitable[Any]:
        # the move's own coroutine (no coroutine of this between); every step's start before
        # the match, whose value patterns read the enum class; ``_act`` checked the verb
        if verb == _START:
            return self._start(payload)
        match verb:
            case WorkItemVerb.COMPLETE:
                return self._complete(payload, timed_out=timed_out)
            case WorkItemVerb.FAIL:
                return self._fail(payload, timed_out=timed_out)
            case WorkItemVerb.CANCEL:
                return self._cancel(teardown=False)
        return self._reset()

    async def _run_trigger(self, verb: WorkItemVerb, payload: Any) -> None:
        """An auto-trigger through the item's action, as an internal call (schema and callback,
        no authentication or policy), unless something else moved the item meanwhile."""
        expected = _ITEM_INITIALIZED if verb == _START else _ITEM_STARTED
        if self.record.state == expected:
            await self._act(verb, payload, None)

    def _check_pause(self, token: str) -> None:
        """A resume names the pause by its token: the item must still wait in that pause."""
        item = self.record
        if item.state != WorkItemState.STARTED or item.token != token:
            state = item.state if item.state != WorkItemState.STARTED else "paused again"
            raise ResumeError(token, f"the pause has already ended ({state})", ended=True)

    # -- the transitions ---------------------------------------------------------------------------

    async def _start(self, payload: Any = None) -> None:
        """``initialized`` -> ``started``; starts the task first if this is its first start."""
        tx, item, workflow = self.tx, self.record, self.workflow
        if _ITEM_STARTED not in WORK_ITEM_TRANSITIONS[item.state]:
            refuse_move("work item", item.id, item.state, _ITEM_STARTED)
        if workflow.tasks[item.task].state != _TASK_STARTED:
            await tx.send(EnsureTaskStarted(workflow_id=workflow.id, task=item.task))
        if item.state != _ITEM_INITIALIZED:
            return  # the task's start (its policy) already finished this item
        item.attempt += 1
        item.started_at = tx.now
        item.began_at = None
        item.postponed = False  # (a drain's, for an earlier start: review h34 F5)
        change = self._move(_ITEM_STARTED, call_policy=False)
        definition = self.definition
        if definition.wait is not None:
            try:
                await tx.start_waiting(workflow, item)
            except Exception as error:  # its details (user code: a pause's description)
                if not tx.reported:  # a call: refused, and nothing of it changes
                    refuse_call(error, f"details of the wait of task {item.task!r}")
                    raise
                if isinstance(error, INFRASTRUCTURE):
                    raise  # not user code's
                await tx.send(change)  # a report stands: the item fails with the error
                item.error_type = class_name(error)
                await self._fail(described(error))  # (with its notes: the callback's name)
                return
            if tx.state.carried:  # an event a migration carried over for it, kept
                kept.carried_to(tx, item.id, definition.wait)
        handle = None
        if "on_started" in definition.activities:
            handle = await self._activity("on_started", _ON_STARTED_TRIGGERS)
        done, output = _NO  # the run gone on from completed it (half a parallel): not again
        if tx.state.migration is not None and definition.handler is not None:
            done, output = recorded_item(tx, workflow, item)
        # the report is the last act unless a trigger or a completion follows
        last = (handle is None or handle.trigger is None) and not definition.detached and not done
        await (tx.send_last if last else tx.send)(change)
        if not self._still(_ITEM_STARTED):  # its task's policy may have ended it
            return
        if handle is not None and handle.trigger is not None:
            await self._run_trigger(*handle.trigger)
        elif definition.detached:
            detached.dispatch(tx, workflow, item, definition.durable)
            await self._complete(None)
        elif done:
            await self._complete(output)
        elif definition.handler is not None:
            tx.handlers.append((item.id, item.attempt))

    async def _complete(
        self, output: Any = None, *, answered: bool = False, timed_out: bool = False
    ) -> None:
        tx, item, workflow = self.tx, self.record, self.workflow
        if _ITEM_COMPLETED not in WORK_ITEM_TRANSITIONS[item.state]:
            refuse_move("work item", item.id, item.state, _ITEM_COMPLETED)
        change = self._move(_ITEM_COMPLETED, answered=answered, timed_out=timed_out)
        item.output = output
        item.finished_at = tx.now
        workflow.set_output(item.task, output)
        definition = self.definition
        if definition.records_as is not None:
            workflow.set_output(definition.records_as, output)
        if definition.sets_last:
            workflow.last = output
        tx.cancel_item_jobs(item.id)
        if "on_completed" in definition.activities:
            await self._activity("on_completed")
        await tx.send_last(change)

    async def _fail(self, payload: Any = None, *, timed_out: bool = False) -> None:
        tx, item = self.tx, self.record
        check_move("work item", item.id, item.state, WorkItemState.FAILED)
        change = self._move(WorkItemState.FAILED, timed_out=timed_out)
        item.error = _error_text(payload)
        item.error_type = DEADLINE_TYPE if timed_out else item.error_type  # (conform h35 F2)
        item.finished_at = tx.now
        tx.cancel_item_jobs(item.id)
        await self._activity("on_failed")
        await tx.send_last(change)

    async def _cancel(self, *, teardown: bool) -> None:
        """From ``initialized`` or ``started``. A teardown (the task itself is finishing) does
        not call the task's policy; an explicit cancel does."""
        tx, item = self.tx, self.record
        check_move("work item", item.id, item.state, WorkItemState.CANCELED)
        change = self._move(WorkItemState.CANCELED, call_policy=not teardown)
        item.finished_at = tx.now
        tx.cancel_item_jobs(item.id)
        await self._activity("on_canceled")
        await tx.send_last(change)

    async def _tear_down(self) -> None:
        """Its task is finishing: canceled if still open, the task's policy bypassed."""
        if self.record.state not in FINAL_STATES:
            await self._cancel(teardown=True)

    async def _reset(self) -> None:
        """``started`` -> ``initialized``: the task stays started; the item can start again."""
        tx, item = self.tx, self.record
        check_move("work item", item.id, item.state, WorkItemState.INITIALIZED)
        change = self._move(WorkItemState.INITIALIZED, call_policy=False)
        item.token = None  # its pause ended: the next start draws one (hostile h28 L1)
        tx.cancel_item_jobs(item.id)
        await self._activity("on_reset")
        await tx.send_last(change)

    async def _record_outcome(self, finished: WorkItemFinished) -> bool:
        """Apply a handler's result, journaled under (instance, item, attempt). A result for an
        attempt that is no longer current (the item was canceled, reset or finished) is
        dropped."""
        tx, item, attempt = self.tx, self.record, finished.attempt
        if item.state != _ITEM_STARTED or item.attempt != attempt:
            return False
        ok, error, retry_after = finished.ok, finished.error, finished.retry_after
        item.began_at = finished.began_at
        tx.journal.append(
            JournalEntry(
                instance_id=tx.state.id,
                work_item_id=item.id,
                attempt=attempt,
                step_id=item.task,
                outcome=journal_outcome(finished),
                output=encode(finished.output) if ok else None,
                error=error,
                recorded_at=tx.now,
            )
        )
        if ok:
            # an earlier attempt's error stays in the journal; one an on_error answered is kept
            item.error, item.error_type, item.error_data = error, finished.error_type, None
            if error is not None and tx.audit is not None:  # on the completion's span
                tx.audit.attempt_failed(item.id)
            await self._complete(finished.output, answered=error is not None)
        elif finished.cancel_run is not None:  # its handler ends the run (its root) as canceled
            item.error = finished.cancel_run or "canceled by its step"
            await tx.send(CancelWorkflow(workflow_id=tx.state.id, reason=finished.cancel_run))
        elif retry_after is not None:
            item.error = error
            await self._reset()
            if tx.audit is not None:  # the failed attempt's error, on its reset's span
                tx.audit.attempt_failed(item.id)
            tx.schedule(
                work_item_owner(item.id), retry_after, StartWorkItemJob(work_item_id=item.id)
            )
        else:
            item.error_type, item.error_data = finished.error_type, finished.error_data
            await self._fail(error)
        return True

    # -- internals ---------------------------------------------------------------------------------

    def _still(self, state: WorkItemState) -> bool:
        """Whether the item is (still) in ``state``, after something that may have moved it."""
        return self.record.state == state

    def _move(
        self,
        target: WorkItemState,
        *,
        call_policy: bool = True,
        answered: bool = False,
        timed_out: bool = False,
    ) -> WorkItemStateChanged:
        tx, item, workflow = self.tx, self.record, self.workflow
        previous = item.state
        item.state = target
        definition = self.definition
        if previous == _ITEM_STARTED and definition.wait is not None:
            tx.end_wait(item.id)
        change = WorkItemStateChanged(
            workflow_id=workflow.id,
            task=item.task,
            work_item_id=item.id,
            prev=previous,
            next=target,
            call_policy=call_policy,
            workflow=workflow.name,
            kind=definition.kind if definition.wait is None else item_kind(definition),
            started_at=item.started_at,
            began_at=item.began_at,
            detached=definition.detached,
            created_at=item.created_at,
            answered=answered,
            timed_out=timed_out,
            migrated=target is _ITEM_CANCELED and tx.state.migrated_to is not None,
        )
        tx.changes.append(change)
        if tx.audit is not None:
            tx.audit.item_moved(change, 0)
        return change

    async def _activity(
        self, activity: str, triggers: frozenset[str] = frozenset()
    ) -> WorkItemHandle | None:
        tx, item, workflow = self.tx, self.record, self.workflow
        fn = self.definition.activities.get(activity)
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
        where = f"{activity} of work item {item.name!r} in {workflow.name!r}"
        await tx.activity(fn, ctx, activity, "work_item", workflow.id, item.id, refusing=where)
        return handle


def _error_text(payload: Any) -> str:
    if payload is None:
        return "failed"
    return payload if isinstance(payload, str) else json_encode(payload).decode()

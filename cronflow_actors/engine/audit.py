"""The audit trail of one transaction: a span per engine operation, under the run's trace.

An ``AuditRecorder`` lives for one transaction of one instance (the runtime makes none when the
audit is off, and then nothing here runs). It hears of the operations from four places:

- the dispatcher (``Cascade``) frames every message it delivers (``begin_turn`` and a
  ``LEAVE`` around the first message of a turn, ``ENTER`` and ``EXIT`` in ``events`` around
  what that sets off): a message's delivery is a frame, and the operations that happen
  inside it are caused by it, so they nest under the operation open when it began. An
  element's last act on a message (``Transaction.send_last``, most often its report to its
  parent) needs no frame: the sender's frame ends right after, with the same spans, so it is
  delivered as it is (a frame is a coroutine around the delivery, the recording's largest
  cost per message; the tests check each such send, ``check_last_sends``). The first message
  of a turn that calls an action (``WorkItemAction``, ``CreateWorkItem``, the root's
  ``InitializeWorkflow``, ``CancelWorkflow``, ``GiveUpMigration``, from a call or a job) is an
  ``Action.<name>`` span with the caller;
- the elements report each move as they make it (``task_moved``, ``item_moved``,
  ``workflow_moved``, beside appending the change to ``Transaction.changes``):
  ``Workflow.*``, ``Task.*`` and ``WorkItem.*`` spans, open until the frame they happened in
  ends, so what they set off nests under them;
- ``Transaction.mark``, through which every marking is replaced: a ``Condition.mark`` per
  changed condition (old and new token counts) under the innermost open span; a completion's
  new tokens are its routing decision (the outputs on its ``Task.complete``, and a
  ``Task.route`` span for a split that is not AND);
- ``Transaction.activity`` wraps each activity call in an ``Activity.<name>`` span.

What it records is the transaction's events, in order, in one list (``SpanRows.row``, the
``EVENTS`` layout of ``messages/audit.py``): a frame's beginning and end, each move with its
states, each marking change, each reading of the clock. That list is what the store packs, and
the spans (numbered in the order they began, ``"<revision>.<n>"``, with their parents and
times) are rebuilt from it when someone reads them: on the instance's turn the audit costs a
few appends per operation, not a span each. Times: the turn's first span starts at the turn's
time (its snapshot's ``updated_at``); the clock is read again only around activities (user
code) and at the commit, where what is still open ends; a span starts at the last time read:
engine operations take microseconds, an activity's span measures the activity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, ClassVar, Final, TypeVar

from cronflow_actors.kernel import Clock
from cronflow_actors.messages.audit import (
    ENTER,
    ERROR,
    EVENTS,
    EXIT,
    ITEM,
    LEAVE,
    MARK,
    OPEN,
    ROUTE,
    TASK,
    TIME,
    WORKFLOW,
    SpanRows,
)
from cronflow_actors.messages.elements import CreateWorkItem, InitializeWorkflow
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    GiveUpMigration,
    InstanceState,
    TaskStateChanged,
    WorkflowStateChanged,
    WorkItemAction,
    WorkItemRecord,
    WorkItemStateChanged,
)
from cronflow_actors.messages.states import WorkflowState, WorkItemState
from cronflow_actors.net.spec import SplitType

__all__ = ["AuditRecorder", "AuditTrail", "SpanSink"]

T = TypeVar("T")
_ITEM_FAILED: Final = WorkItemState.FAILED
_WORKFLOW_FAILED: Final = WorkflowState.FAILED
_WORKFLOW_CANCELED: Final = WorkflowState.CANCELED
"""Read on every move: ``Final`` constants, where an enum member's read goes through
``EnumType.__getattr__``'s hook (CPython 3.11: ~900 instructions)."""

SpanSink = Callable[[SpanRows], None]
"""Hears of the spans of each transaction once they are durable (the runtime's ``on_spans``)."""


class AuditTrail:
    """A runtime's audit: its clock, and where the spans of each durable transaction go
    (``sink``; None: nowhere but the store); ``EngineServices.audit`` (None: nothing is
    recorded)."""

    __slots__ = ("clock", "sink")

    def __init__(self, clock: Clock, sink: SpanSink | None = None) -> None:
        self.clock = clock
        self.sink = sink

    def recorder(self, state: InstanceState, now: float) -> AuditRecorder:
        """The recorder of one transaction of ``state``, which runs at ``now``."""
        return AuditRecorder(state, now, self)  # (keywords to a class: a dict each call)


class AuditRecorder:
    """The events of one transaction of the instance ``state``, which runs at ``now`` and, if
    it writes, commits the next revision, for ``trail``: the row the store packs
    (``SpanRows.row``), from which the spans are rebuilt when they are read."""

    __slots__ = (
        "_committed",
        "_failed",
        "_lasts",
        "_mono",
        "_now",
        "_revision",
        "_state",
        "_trace",
        "_trail",
        "events",
        "route",
    )

    def __init__(self, state: InstanceState, now: float, trail: AuditTrail) -> None:
        self._state = state
        self._trace = state.id
        self._trail = trail
        self._committed: SpanRows | None = None
        self._revision = state.revision + 1
        self._now = now
        self._mono = trail.clock.monotonic()
        self.events: list[Any] = [EVENTS, TIME, now]
        """The transaction's events (``SpanRows.row``); the dispatcher appends each delivery's
        frame (``ENTER`` ... ``EXIT``) itself, around the delivery."""
        self._failed: tuple[str, ...] = ()
        """Work items that failed in the transaction: their errors are recorded at the end."""
        self.route: Callable[[Any], Awaitable[Any]] | None = None
        """The dispatcher's delivery of a message (``Cascade``, for the turn)."""
        self._lasts: list[tuple[int, Any]] | None = None
        """With ``check_last_sends``: where each ``send_last`` delivery ended, and its message."""

    check_last_sends: ClassVar[bool] = False
    """Check every ``Transaction.send_last`` (the test suite sets it): a message an element sends
    as its last act is delivered without a frame, which gives the same spans only if nothing is
    recorded after it before the sender's own frame ends; with this on, each such delivery is
    watched and a commit where something was raises ``AssertionError`` naming the message. Off,
    nothing is watched (the watching costs what leaving out the frame saves)."""

    # -- what the dispatcher, the markings and the activities report ----------------------------

    def begin_turn(self, message: Any) -> None:
        """``message``, the first of a turn, is about to be delivered (an action's, if it
        calls one: its ``Action.<name>`` span): the turn's frame begins."""
        self.events.append(ENTER)
        self._action(message)

    def end_turn(self) -> None:
        """The turn's frame ends: the spans still open end with the transaction, at the
        clock's time when it commits (``LEAVE``)."""
        self.events.append(LEAVE)

    def enter(self) -> None:
        """A frame begins that is no delivery (an offline cancel's, ``runtime/offline.py``):
        the spans that open in it end with it (``exit``)."""
        self.events.append(ENTER)

    def exit(self) -> None:
        """The frame ``enter`` began ends."""
        self.events.append(EXIT)

    async def send(self, message: Any) -> Any:
        """Deliver ``message``, sent inside the turn, through ``route`` as one frame: the
        spans that open in it end with it. (The dispatcher frames its deliveries the same way
        itself, ``Cascade._framed``, with no coroutine of this between.)"""
        events = self.events
        events.append(ENTER)
        try:
            return await self.route(message)  # type: ignore[misc]
        finally:
            events.append(EXIT)

    async def send_last(self, message: Any) -> Any:
        """With ``check_last_sends`` (tests), ``Transaction.send_last``: ``message`` delivered
        without a frame, as always, and where its delivery ended kept for the commit, which
        checks that the sender's frame ended there (``spans``)."""
        answer = await self.route(message)  # type: ignore[misc]
        if self._lasts is None:
            self._lasts = []
        self._lasts.append((len(self.events), message))
        return answer

    async def activity(
        self, call: Awaitable[T], name: str, instance_id: str, element: str, kind: str
    ) -> T:
        """Carry out ``call`` (user code: activity ``name`` of ``element``, a ``kind``) in an
        ``Activity.<name>`` span."""
        events = self.events
        events += (TIME, self._read_clock(), ENTER)
        self._open(f"Activity.{name}", instance_id, element, {"kind": kind})
        try:
            return await call
        finally:
            events += (TIME, self._read_clock(), EXIT)

    def marked(  # noqa: PLR0917 - Transaction.mark passes its own arguments on
        self,
        workflow_id: str,
        before: dict[str, int],
        after: dict[str, int],
        conditions: Collection[str],
        produced_by: str | None = None,
        split: SplitType | None = None,
    ) -> None:
        """Workflow ``workflow_id``'s marking is replaced (only ``conditions`` may have
        changed): a ``Condition.mark`` per changed condition, under the innermost open span.
        ``produced_by``: the task (its ``Task.complete`` the innermost span) whose ``split``
        produced the new tokens: its routing decision (the outputs on its completion, and a
        ``Task.route`` unless AND)."""
        events = self.events
        instance = None if workflow_id == self._trace else workflow_id
        if produced_by is not None and split is not None:
            # production only adds tokens: ``conditions`` are the ones that gained one
            outputs = tuple(conditions)
            if outputs:
                events += (ROUTE, instance, produced_by, split, outputs)
        for condition in conditions:
            was, now = before.get(condition, 0), after.get(condition, 0)
            if was != now:
                events += (MARK, instance, condition, was, now)

    # -- the moves, as the elements make them (the audit's hottest path: a few references) --------

    def task_moved(self, change: TaskStateChanged) -> None:
        """A task moved (its ``Task.<op>`` span opens)."""
        workflow_id = change.workflow_id
        self.events += (
            TASK,
            None if workflow_id == self._trace else workflow_id,
            change.task,
            change.generation,
            change.prev,
            change.next,
        )

    def item_moved(self, change: WorkItemStateChanged, generation: int) -> None:
        """A work item moved; ``generation``: its task's, for one just initialized (0 for a
        later move, which the replay knows from the item's first)."""
        workflow_id, target = change.workflow_id, change.next
        self.events += (
            ITEM,
            None if workflow_id == self._trace else workflow_id,
            change.work_item_id,
            change.task,
            generation,
            change.prev,
            target,
        )
        if target is _ITEM_FAILED:  # its error is known once it has moved
            self._failed = (*self._failed, change.work_item_id)

    def attempt_failed(self, item_id: str) -> None:
        """An attempt of a work item failed, and it was reset for another one (its error is
        recorded on ``WorkItem.reset``), or an ``on_error`` answered (on ``WorkItem.complete``),
        as a failure's is on ``WorkItem.fail``."""
        self._failed = (*self._failed, item_id)

    def workflow_moved(self, change: WorkflowStateChanged) -> None:
        """A workflow moved; a new one (``prev`` None) also records its definition's tasks and
        conditions and its first marking."""
        workflow_id, target, prev = change.workflow_id, change.next, change.prev
        workflow = self._state.workflows[workflow_id]
        instance = None if workflow_id == self._trace else workflow_id
        if prev is not None:
            ended_with = target is _WORKFLOW_FAILED or target is _WORKFLOW_CANCELED
            more = {"error": workflow.error} if ended_with and workflow.error else None
            self.events += (WORKFLOW, instance, prev, target, more)
            return
        attributes: dict[str, Any] = {
            "name": workflow.name,
            "version": workflow.version,
            "tasks": list(workflow.tasks),
            "conditions": list(workflow.marking),
        }
        if workflow.parent_id is not None:
            attributes["parent_id"] = workflow.parent_id
            attributes["parent_task"] = workflow.parent_task
        self.events += (WORKFLOW, instance, None, target, attributes)
        marking = workflow.marking  # a new workflow: every token it holds is new
        self.marked(workflow_id, {}, marking, marking)

    def rerun(self, item: WorkItemRecord) -> None:
        """A restart runs ``item``'s handler again (its end was not recorded): a
        ``WorkItem.rerun`` span."""
        attributes = {"task": item.task, "attempt": item.attempt, "redispatches": item.redispatches}
        self.events.append(ENTER)
        self._open("WorkItem.rerun", item.workflow_id, item.id, attributes)
        self.events.append(EXIT)

    def heard(self, item: WorkItemRecord, event: str, principal: Any) -> None:
        """``item``, waiting for ``event``, takes a publish of it (its filter accepted it): a
        ``WorkItem.event`` span naming the event and who published it (None: the process)."""
        attributes = {"event": event, "principal": principal.id if principal else None}
        self.events.append(ENTER)
        self._open("WorkItem.event", item.workflow_id, item.id, attributes)
        self.events.append(EXIT)

    def carried(self, item: WorkItemRecord, from_run: str) -> None:
        """``item`` completes with the output run ``from_run`` recorded for its step and
        payload, its handler not called (a migration's or a resume's): a ``WorkItem.carried``
        span."""
        self.events.append(ENTER)
        self._open("WorkItem.carried", item.workflow_id, item.id, {"from_run": from_run})
        self.events.append(EXIT)

    def carried_task(self, workflow_id: str, task: str, from_run: str) -> None:
        """``task`` completes whole with the output run ``from_run`` recorded for it, none of
        its work run (a migration's or a resume's): a ``Task.carried`` span, as a work item
        carried has its ``WorkItem.carried`` (devx h40 F8: a step carried whole left no mark)."""
        self.events.append(ENTER)
        self._open("Task.carried", workflow_id, task, {"from_run": from_run})
        self.events.append(EXIT)

    # -- the commit -------------------------------------------------------------------------------

    def spans(self, revision: int) -> SpanRows:
        """The transaction's events, to commit with snapshot ``revision`` (the one after the
        snapshot the transaction began from). A transaction that writes without moving anything
        (a dropped job's timer, an action's report) has a row with no spans: cheaper than
        knowing, on every operation, whether one began."""
        if revision != self._revision:
            raise AssertionError(f"spans of revision {self._revision} committed as {revision}")
        events = self.events
        if self._lasts is not None:
            self._check_lasts()
        events += (TIME, self._read_clock())  # what is still open ends now
        work_items = self._state.work_items
        for item_id in self._failed:
            failed = work_items.get(item_id)
            if failed is not None:
                events += (ERROR, item_id, failed.error)
        self._committed = SpanRows(trace_id=self._trace, revision=revision, row=events)
        return self._committed

    def durable(self) -> None:
        """The spans are committed: the trail's sink hears of them (if there are any)."""
        sink = self._trail.sink
        if self._committed is not None and sink is not None:
            sink(self._committed)

    # -- internals --------------------------------------------------------------------------------

    def _check_lasts(self) -> None:
        events = self.events
        for end, message in self._lasts or ():
            if end < len(events) and events[end] not in (EXIT, LEAVE):
                raise AssertionError(
                    f"{message!r} was sent with Transaction.send_last, but its sender recorded "
                    f"more after it (event code {events[end]!r}, EVENTS in messages/audit.py): "
                    "nothing may follow a send_last in its sender's frame; send it with "
                    "Transaction.send"
                )

    def _read_clock(self) -> float:
        return self._now + (self._trail.clock.monotonic() - self._mono)

    def _open(
        self, operation: str, instance_id: str, element: str, attributes: dict[str, Any]
    ) -> None:
        """A span that stays open until the frame it began in ends (an action's, an
        activity's)."""
        trace = self._trace
        self.events += (
            OPEN,
            operation,
            None if instance_id == trace else instance_id,
            None if element == trace else element,
            attributes,
        )

    def _action(self, message: Any) -> None:
        """The first message of a turn: an action called from outside the cascade, if it is
        one (most turns are a handler's result or a timer's, and look up nothing here)."""
        where = _ACTIONS.get(type(message))
        if where is None:
            return
        called = where(self._state, message)
        if called is None:
            return
        operation, instance_id, element = called
        principal = message.principal
        who = principal.id if principal else getattr(message, "by", None)  # (a flow's caller)
        attributes: dict[str, Any] = {"principal": who}
        trigger = getattr(message, "trigger", "")
        if trigger:
            attributes["trigger"] = trigger
        if getattr(message, "token", None):  # a pause's resume (a person's, not the runtime's)
            attributes["via"] = "resume"
        migration = self._state.migration
        if trigger == "migration" and migration is not None:  # the new root of a migration
            attributes.update(
                migrated_from=migration.from_instance, from_version=migration.from_version
            )
        reason = getattr(message, "reason", "")
        if reason:  # a cancel's, as its caller gave it
            attributes["reason"] = reason
        if getattr(message, "terminate", False):  # ended without its code
            attributes["terminated"] = True
        migrated_to = getattr(message, "migrated_to", None)
        if migrated_to:  # a migration's cancel of the old root (its cancel action skipped)
            attributes.update(reason="migration", migrated_to=migrated_to)
        if type(message) is GiveUpMigration:  # a cancel that gave a pending migration up
            attributes.update(migration_given_up=message.given_up, to_version=message.to_version)
        self._open(operation, instance_id, element, attributes)


_Called = tuple[str, str, str] | None
"""An action's span: its operation, instance and element (None: the message calls none)."""


def _item_action(state: InstanceState, message: WorkItemAction) -> _Called:
    item = state.work_items.get(message.work_item_id)
    instance_id = item.workflow_id if item is not None else state.id
    return f"Action.{message.action}", instance_id, message.work_item_id


def _create_action(_state: InstanceState, message: CreateWorkItem) -> _Called:
    return "Action.initialize", message.workflow_id, message.work_item_id


def _initialize_action(_state: InstanceState, message: InitializeWorkflow) -> _Called:
    if message.parent_id is not None:
        return None  # a child workflow: its composite task's doing, not a call
    return "Action.initialize", message.workflow_id, message.workflow_id


def _cancel_action(_state: InstanceState, message: CancelWorkflow) -> _Called:
    return "Action.cancel", message.workflow_id, message.workflow_id


def _give_up_action(state: InstanceState, _message: GiveUpMigration) -> _Called:
    return "Action.cancel", state.id, state.id


_ACTIONS: dict[type, Callable[[InstanceState, Any], _Called]] = {
    WorkItemAction: _item_action,
    CreateWorkItem: _create_action,
    InitializeWorkflow: _initialize_action,
    CancelWorkflow: _cancel_action,
    GiveUpMigration: _give_up_action,
}
"""The messages that call an action when they begin a turn, and what their span is."""

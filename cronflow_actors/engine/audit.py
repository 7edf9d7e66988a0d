"""The audit trail of one transaction: a span per engine operation, under the run's trace.

An ``AuditRecorder`` lives for one transaction of one instance (the runtime makes none when the
audit is off, and then nothing here runs). It hears of the operations from three places:

- the dispatcher (``Cascade``) hands it every message it delivers (``begin_turn`` and
  ``end_turn`` around the first message of a turn, ``send`` for what that sets off): a
  message's delivery is a frame, and the operations that happen inside it are caused by it,
  so they nest under the operation open when it began; the first message of a turn that
  calls an action (``WorkItemAction``, ``CreateWorkItem``, the root's ``InitializeWorkflow``,
  ``CancelWorkflow``, from a call or a job) is an ``Action.<name>`` span with the caller;
- the transaction's list of state changes (``changes``) records each change as it is
  appended: ``Workflow.*``, ``Task.*`` and ``WorkItem.*`` spans, open until the frame they
  happened in ends, so what they set off nests under them;
- ``Transaction.activity`` wraps each activity call in an ``Activity.<name>`` span.

A marking is never changed in place, only replaced, and every replacement goes through
``Transaction.mark``, which tells the recorder (``marked``): a ``Condition.mark`` per changed
condition (old and new token counts) under the innermost open span (a task's start takes
tokens, its completion produces them, a cancellation region removes them; a new workflow's
first tokens are under its ``Workflow.initialize``). A completion's new tokens are its routing
decision: the outputs are added to its ``Task.complete`` span, and a ``Task.route`` span
records it for a split that is not AND.

Each span is ``SPAN_FIELDS`` plain values in one flat list from the moment it begins (the
``SpanRows`` the commit hands over, ``messages/audit.py``), numbered in the order they began
(``"<revision>.<n>"``, the revision the transaction will commit): the shape the store packs,
and no ``AuditSpan`` is built unless something reads them. The commonest attributes (states
as strings, a generation, token counts) are values in the row, not a dict: recording a task's
or work item's move allocates nothing that outlives it but the row's own values. An
open span is given its end (and a failure's error) in place when its frame ends. Times: the
turn's first span starts at the turn's time (its snapshot's ``updated_at``); the clock is read
again only when spans end and around activities (user code), and a span starts at the last
time read: engine operations take microseconds, an activity's span measures the activity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from cronflow_actors.kernel import Clock
from cronflow_actors.messages import Message
from cronflow_actors.messages.audit import FLAT, SPAN_FIELDS, SpanRows
from cronflow_actors.messages.elements import CreateWorkItem, InitializeWorkflow
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    InstanceState,
    TaskStateChanged,
    WorkflowStateChanged,
    WorkItemAction,
    WorkItemStateChanged,
)
from cronflow_actors.messages.states import TaskState, WorkflowState, WorkItemState
from cronflow_actors.net.spec import SplitType

__all__ = ["AuditRecorder", "AuditTrail", "AuditedChanges", "SpanSink"]

T = TypeVar("T")

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
        return AuditRecorder(state, now=now, trail=self)


_WORKFLOW_OPERATIONS = {
    WorkflowState.INITIALIZED: "Workflow.initialize",
    WorkflowState.STARTED: "Workflow.start",
    WorkflowState.COMPLETED: "Workflow.complete",
    WorkflowState.FAILED: "Workflow.fail",
    WorkflowState.CANCELED: "Workflow.cancel",
}
_TASK_OPERATIONS = {
    TaskState.ENABLED: "Task.enable",
    TaskState.STARTED: "Task.start",
    TaskState.COMPLETED: "Task.complete",
    TaskState.DISABLED: "Task.disable",
    TaskState.FAILED: "Task.fail",
    TaskState.CANCELED: "Task.cancel",
}
_WORK_ITEM_OPERATIONS = {
    WorkItemState.INITIALIZED: "WorkItem.reset",  # from started; from nothing: initialize
    WorkItemState.STARTED: "WorkItem.start",
    WorkItemState.COMPLETED: "WorkItem.complete",
    WorkItemState.FAILED: "WorkItem.fail",
    WorkItemState.CANCELED: "WorkItem.cancel",
}


_PLAIN: dict[Any, str] = {
    state: state.value for kind in (TaskState, WorkflowState, WorkItemState) for state in kind
}
"""A state as a plain string: what an attribute holds."""
_SPLITS: dict[Any, str] = {split: split.value for split in SplitType}


class AuditedChanges(list[Message]):
    """A transaction's state changes (a list, as without the audit) that records each one as
    a span when it is appended: the span of the element's operation opens, until the frame
    it happened in ends. The task's and work item's spans (most of a run's) are opened here,
    inline: this is the audit's hottest path."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: AuditRecorder) -> None:
        super().__init__()
        self._recorder = recorder

    def append(self, change: Any) -> None:
        list.append(self, change)
        kind = type(change)
        if kind is TaskStateChanged:
            target = change.next
            operation = _TASK_OPERATIONS[target]
            before, more = _PLAIN[change.prev], change.generation
            element = change.task
        elif kind is WorkItemStateChanged:
            prev, target = change.prev, change.next
            element = change.work_item_id
            if prev is None:
                item = self._recorder._state.work_items[element]
                operation, before = "WorkItem.initialize", None
                more = {"task": change.task, "generation": item.generation}
            else:
                operation, before, more = _WORK_ITEM_OPERATIONS[target], _PLAIN[prev], None
                if target is WorkItemState.FAILED:  # its error is known once it has moved
                    recorder = self._recorder
                    failed = recorder._state.work_items[element]
                    if recorder._failed is None:
                        recorder._failed = {}
                    recorder._failed[recorder._count + 1] = failed
        elif kind is WorkflowStateChanged:
            self._recorder.workflow_moved(change)
            return
        else:
            return
        recorder = self._recorder
        stack, at, workflow_id = recorder._stack, recorder._last, change.workflow_id
        recorder._count = n = recorder._count + 1
        recorder._flat += (
            stack[-1],
            None if workflow_id == recorder._trace else workflow_id,
            operation,
            element,
            at,
            at,
            before,
            _PLAIN[target],
            more,
        )
        stack.append(n)


class AuditRecorder:
    """The spans of one transaction of the instance ``state``, which runs at ``now`` and, if
    it writes, commits the next revision, for ``trail``. The spans go straight into the flat
    row the store packs (``SpanRows.flat``): nothing is converted on the way to the disk."""

    __slots__ = (
        "_committed",
        "_count",
        "_failed",
        "_flat",
        "_last",
        "_mono",
        "_now",
        "_revision",
        "_stack",
        "_state",
        "_trace",
        "_trail",
        "route",
    )

    def __init__(self, state: InstanceState, *, now: float, trail: AuditTrail) -> None:
        self._state = state
        self._trace = state.id
        self._trail = trail
        self._committed: SpanRows | None = None
        self._revision = state.revision + 1
        self._now = self._last = now
        self._mono = trail.clock.monotonic()
        self._flat: list[Any] = [FLAT]
        self._count = 0
        """How many spans began (the last one's n)."""
        self._stack: list[int] = [0]
        """The n of each span open now, innermost last, above a 0 (the parent of a span that
        has none)."""
        self._failed: dict[int, Any] | None = None
        """Open ``WorkItem.fail`` span's n -> the item: its error is set after it moves (None:
        no item failed)."""
        self.route: Callable[[Any], Awaitable[Any]] | None = None
        """The dispatcher's delivery of a message (``Cascade``, for the turn)."""

    # -- what the dispatcher, the markings and the activities report ----------------------------

    def begin_turn(self, message: Any) -> None:
        """``message``, the first of a turn, is about to be delivered (an action's, if it
        calls one: its ``Action.<name>`` span): the turn's frame begins."""
        self._action(message)

    def end_turn(self) -> None:
        """The turn's frame ends: the spans still open end now, at the clock's time."""
        self._end_above(1, self._read_clock())

    async def send(self, message: Any) -> Any:
        """Deliver ``message``, sent inside the turn, through ``route`` as one frame: the
        spans that open in it end with it. They already end where they started, so only a
        frame in which the clock was read (an activity ran) or a work item failed writes
        ends."""
        stack = self._stack
        height = len(stack)
        last = self._last
        try:
            return await self.route(message)  # type: ignore[misc]
        finally:
            if len(stack) > height:
                if self._last is last and not self._failed:
                    del stack[height:]
                else:
                    self._end_above(height, self._last)

    async def activity(
        self, call: Awaitable[T], name: str, instance_id: str, element: str, kind: str
    ) -> T:
        """Carry out ``call`` (user code: activity ``name`` of ``element``, a ``kind``) in an
        ``Activity.<name>`` span."""
        height = len(self._stack)
        self._read_clock()
        self.open(f"Activity.{name}", instance_id, element, None, None, {"kind": kind})
        try:
            return await call
        finally:
            self._end_above(height, self._read_clock())

    def marked(
        self,
        workflow_id: str,
        before: dict[str, int],
        after: dict[str, int],
        conditions: Iterable[str],
        *,
        produced_by: str | None = None,
        split: SplitType | None = None,
    ) -> None:
        """Workflow ``workflow_id``'s marking is replaced (only ``conditions`` may have
        changed): a ``Condition.mark`` per changed condition, under the innermost open span.
        ``produced_by``: the task (its ``Task.complete`` the innermost span) whose ``split``
        produced the new tokens: its routing decision (the outputs on its completion, and a
        ``Task.route`` unless AND)."""
        flat, stack, at = self._flat, self._stack, self._last
        parent = stack[-1]
        instance = None if workflow_id == self._trace else workflow_id
        if produced_by is not None and split is not None and parent:
            # production only adds tokens: the conditions that gained one are its outputs
            added = [c for c in conditions if after.get(c, 0) > before.get(c, 0)]
            if added:
                more = flat[parent * SPAN_FIELDS]  # the completion's
                attributes = {"generation": more} if type(more) is int else dict(more or ())
                attributes["split"] = split_name = _SPLITS[split]
                attributes["outputs"] = added
                flat[parent * SPAN_FIELDS] = attributes
                if split is not SplitType.AND:
                    routing = {"split": split_name, "outputs": added}
                    self._record("Task.route", workflow_id, produced_by, routing)
        count = self._count
        for condition in conditions:
            was, now = before.get(condition, 0), after.get(condition, 0)
            if was != now:
                flat += (parent, instance, "Condition.mark", condition, at, at, was, now, None)
                count += 1
        self._count = count

    # -- the commit -------------------------------------------------------------------------------

    def spans(self, revision: int) -> SpanRows | None:
        """Every span of the transaction, ended, to commit with snapshot ``revision`` (the one
        after the snapshot the transaction began from); None if it recorded none."""
        if revision != self._revision:
            raise AssertionError(f"spans of revision {self._revision} committed as {revision}")
        self._end_above(1, self._read_clock())
        if not self._count:
            return None
        self._committed = SpanRows(trace_id=self._trace, revision=revision, flat=self._flat)
        return self._committed

    def durable(self) -> None:
        """The spans are committed: the trail's sink hears of them (if there are any)."""
        sink = self._trail.sink
        if self._committed is not None and sink is not None:
            sink(self._committed)

    # -- internals --------------------------------------------------------------------------------

    def _read_clock(self) -> float:
        self._last = now = self._now + (self._trail.clock.monotonic() - self._mono)
        return now

    def open(  # noqa: PLR0917 - a span's values, as the row holds them
        self,
        operation: str,
        instance_id: str,
        element: str,
        before: Any,
        after: Any,
        more: Any,
    ) -> int:
        """A span that stays open (innermost) until the frame it began in ends (what opens
        while it is open is under it); its n. ``before``, ``after``, ``more``: its
        attributes, as ``SpanRows.flat`` holds them."""
        stack, trace, at = self._stack, self._trace, self._last
        self._count = n = self._count + 1
        self._flat += (
            stack[-1],
            None if instance_id == trace else instance_id,
            operation,
            None if element == trace else element,
            at,
            at,
            before,
            after,
            more,
        )
        stack.append(n)
        return n

    def _record(
        self, operation: str, instance_id: str, element: str, attributes: dict[str, Any]
    ) -> None:
        """A span under the innermost open one, ended at once, whose operation moves
        nothing (a routing decision)."""
        trace, at = self._trace, self._last
        self._count += 1
        self._flat += (
            self._stack[-1],
            None if instance_id == trace else instance_id,
            operation,
            None if element == trace else element,
            at,
            at,
            None,
            None,
            attributes,
        )

    def _end_above(self, height: int, ended: float) -> None:
        """End the open spans above the first ``height`` at ``ended``."""
        stack = self._stack
        if len(stack) <= height:
            return
        flat, failed = self._flat, self._failed
        for n in stack[height:]:
            at = n * SPAN_FIELDS  # span n's last value (``more``)
            flat[at - 3] = ended
            if failed and n in failed:
                flat[at] = {"error": failed.pop(n).error}  # a work item's move has no more
        del stack[height:]

    def _action(self, message: Any) -> None:
        """The first message of a turn: an action called from outside the cascade."""
        kind = type(message)
        if kind is WorkItemAction:
            item = self._state.work_items.get(message.work_item_id)
            instance_id = item.workflow_id if item is not None else self._state.id
            operation, element = f"Action.{message.action}", message.work_item_id
        elif kind is CreateWorkItem:
            instance_id = message.workflow_id
            operation, element = "Action.initialize", message.work_item_id
        elif kind is InitializeWorkflow and message.parent_id is None:
            instance_id = element = message.workflow_id
            operation = "Action.initialize"
        elif kind is CancelWorkflow:
            instance_id = element = message.workflow_id
            operation = "Action.cancel"
        else:
            return
        principal = message.principal
        attributes: dict[str, Any] = {"principal": principal.id if principal else None}
        trigger = getattr(message, "trigger", "")
        if trigger:
            attributes["trigger"] = trigger
        self.open(operation, instance_id, element, None, None, attributes)

    def workflow_moved(self, change: WorkflowStateChanged) -> None:
        workflow_id, target, prev = change.workflow_id, change.next, change.prev
        workflow = self._state.workflows[workflow_id]
        after = _PLAIN[target]
        if prev is not None:
            more = {"error": workflow.error} if target is WorkflowState.FAILED else None
            operation = _WORKFLOW_OPERATIONS[target]
            self.open(operation, workflow_id, workflow_id, _PLAIN[prev], after, more)
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
        self.open("Workflow.initialize", workflow_id, workflow_id, None, after, attributes)
        marking = workflow.marking  # a new workflow: every token it holds is new
        self.marked(workflow_id, {}, marking, marking)

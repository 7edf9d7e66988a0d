"""The audit trail of one transaction: a span per engine operation, under the run's trace.

An ``AuditRecorder`` lives for one transaction of one instance (the runtime makes none when the
audit is off, and then nothing here runs). It hears of the operations from three places:

- the dispatcher (``Cascade``) hands it every message it delivers (``deliver``): a message's
  delivery is a frame, and the operations that happen inside it are caused by it, so they nest
  under the operation open when it began; the first message of a turn that calls an action
  (``WorkItemAction``, ``CreateWorkItem``, the root's ``InitializeWorkflow``,
  ``CancelWorkflow``, from a call or a job) is an ``Action.<name>`` span with the caller;
- the transaction's list of state changes (``changes``) records each change as it is
  appended: ``Workflow.*``, ``Task.*`` and ``WorkItem.*`` spans, open until the frame they
  happened in ends, so what they set off nests under them;
- ``Transaction.activity`` wraps each activity call in an ``Activity.<name>`` span.

A marking is never changed in place, only replaced (``net.marking``), and it changes only
while an operation of its workflow is the innermost open span (a task's start takes tokens, its
completion produces them, a cancellation region removes them). So a condition's change is seen
by identity, cheaply: before the open spans change (one opens or ends), the recorder compares
the innermost span's workflow's marking with the one it last saw, and records a
``Condition.mark`` per changed condition under that span. Tokens only ever appear by a task's
production (or a workflow's start), so new tokens seen under a ``Task.complete`` are that
task's outputs: its routing decision (``Task.route``, for a split that is not AND; the outputs
are also added to the completion's attributes).

Each span is an ``AuditSpan`` from the moment it begins, numbered in the order they began
(``"<revision>.<n>"``, the revision the transaction will commit); an open span is given its
end (``ended_at``, and a failure's error) in place when its frame ends, before anything but
this recorder has seen it. Times: the turn's first span starts at the turn's time (its
snapshot's ``updated_at``); the clock is read again only when spans end and around activities
(user code), and a span starts at the last time read: engine operations take microseconds, an
activity's span measures the activity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from msgspec.structs import force_setattr

from cronflow_actors.kernel import Clock
from cronflow_actors.messages import Message
from cronflow_actors.messages.audit import AuditSpan
from cronflow_actors.messages.elements import CreateWorkItem, InitializeWorkflow
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    InstanceState,
    TaskStateChanged,
    WorkflowRecord,
    WorkflowStateChanged,
    WorkItemAction,
    WorkItemStateChanged,
)
from cronflow_actors.messages.states import TaskState, WorkflowState, WorkItemState
from cronflow_actors.net.spec import NetSpec, SplitType

__all__ = ["AuditRecorder", "AuditTrail", "AuditedChanges", "SpanSink"]

T = TypeVar("T")

SpanSink = Callable[[tuple[AuditSpan, ...]], None]
"""Hears of the spans of each transaction once they are durable (the runtime's ``on_spans``)."""


class AuditTrail:
    """A runtime's audit: its clock, and where the spans of each durable transaction go
    (``sink``); ``EngineServices.audit`` (None: nothing is recorded)."""

    __slots__ = ("clock", "sink")

    def __init__(self, clock: Clock, sink: SpanSink | None = None) -> None:
        self.clock = clock
        self.sink = sink

    def recorder(
        self, state: InstanceState, now: float, spec_of: Callable[[WorkflowRecord], NetSpec]
    ) -> AuditRecorder:
        """The recorder of one transaction of ``state``, which runs at ``now``."""
        return AuditRecorder(state, now=now, clock=self.clock, spec_of=spec_of, sink=self.sink)


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


class AuditedChanges(list[Message]):
    """A transaction's state changes (a list, as without the audit) that records each one as
    a span when it is appended: the span of the element's operation opens, until the frame
    it happened in ends."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: AuditRecorder) -> None:
        super().__init__()
        self._recorder = recorder

    def append(self, change: Message) -> None:
        list.append(self, change)
        kind = type(change)
        if kind is TaskStateChanged:
            target = change.next  # type: ignore[attr-defined]
            attributes = {
                "before": change.prev,  # type: ignore[attr-defined]
                "after": target,
                "generation": change.generation,  # type: ignore[attr-defined]
            }
            self._recorder.open(
                _TASK_OPERATIONS[target],
                change.workflow_id,  # type: ignore[attr-defined]
                change.task,  # type: ignore[attr-defined]
                attributes,
            )
        elif kind is WorkItemStateChanged:
            self._recorder.work_item_moved(change)  # type: ignore[arg-type]
        elif kind is WorkflowStateChanged:
            self._recorder.workflow_moved(change)  # type: ignore[arg-type]


class AuditRecorder:
    """The spans of one transaction of the instance ``state``, which runs at ``now`` and, if
    it writes, commits the next revision."""

    __slots__ = (
        "_committed",
        "_depth",
        "_failed",
        "_last",
        "_mono",
        "_monotonic",
        "_now",
        "_prefix",
        "_revision",
        "_seen",
        "_sink",
        "_spans",
        "_spec_of",
        "_stack",
        "_state",
        "route",
    )

    def __init__(
        self,
        state: InstanceState,
        *,
        now: float,
        clock: Clock,
        spec_of: Callable[[WorkflowRecord], NetSpec],
        sink: SpanSink | None = None,
    ) -> None:
        self._state = state
        self._sink = sink
        self._committed: tuple[AuditSpan, ...] = ()
        self._revision = state.revision + 1
        self._prefix = f"{self._revision}."
        self._now = self._last = now
        self._monotonic = clock.monotonic
        self._mono = clock.monotonic()
        self._spec_of = spec_of
        self._spans: list[AuditSpan] = []
        self._stack: list[AuditSpan] = []
        """The spans open now, innermost last."""
        self._depth = 0
        """How many deliveries are under way (0: the next one is the turn's first message)."""
        self._seen: dict[str, dict[str, int]] = {}
        """Workflow id -> the marking last compared (the workflows this turn touched)."""
        self._failed: dict[str, Any] = {}
        """Open ``WorkItem.fail`` span id -> the item: its error is set after it moves."""
        self.route: Callable[[Any], Awaitable[Any]] | None = None
        """The dispatcher's delivery of a message (``Cascade``, for the turn; ``send``)."""

    # -- what the dispatcher, the changes and the activities report --------------------------------

    async def send(self, message: Any) -> Any:
        """Deliver ``message`` through ``route`` as one frame: the spans that open in it end
        with it (the dispatcher's ``send`` while the audit is on)."""
        stack = self._stack
        height = len(stack)
        depth = self._depth
        if not depth:
            self._action(message)
        self._depth = depth + 1
        try:
            return await self.route(message)  # type: ignore[misc]
        finally:
            self._depth = depth
            if len(stack) > height:
                self._end_above(height, self._read_clock() if not depth else self._last)

    async def activity(
        self, call: Awaitable[T], name: str, instance_id: str, element: str, kind: str
    ) -> T:
        """Carry out ``call`` (user code: activity ``name`` of ``element``, a ``kind``) in an
        ``Activity.<name>`` span."""
        height = len(self._stack)
        self._read_clock()
        self.open(f"Activity.{name}", instance_id, element, {"kind": kind})
        try:
            return await call
        finally:
            self._end_above(height, self._read_clock())

    # -- the commit -------------------------------------------------------------------------------

    def spans(self, revision: int) -> tuple[AuditSpan, ...]:
        """Every span of the transaction, ended, to commit with snapshot ``revision`` (the one
        after the snapshot the transaction began from)."""
        if revision != self._revision:
            raise AssertionError(f"spans of revision {self._revision} committed as {revision}")
        self._end_above(0, self._read_clock())
        for workflow_id in list(self._seen):
            self._compare(workflow_id)
        self._committed = tuple(self._spans)
        return self._committed

    def durable(self) -> None:
        """The spans are committed: the sink hears of them (if there are any)."""
        if self._committed and self._sink is not None:
            self._sink(self._committed)

    # -- internals --------------------------------------------------------------------------------

    def _read_clock(self) -> float:
        self._last = now = self._now + (self._monotonic() - self._mono)
        return now

    def open(
        self, operation: str, instance_id: str, element: str, attributes: dict[str, Any]
    ) -> AuditSpan:
        """A span that stays open (innermost) until the frame it began in ends (what opens
        while it is open is under it)."""
        stack, seen, workflows, spans = self._stack, self._seen, self._state.workflows, self._spans
        if stack:
            parent = stack[-1]
            above = parent.instance_id
            workflow = workflows.get(above)
            if workflow is not None and seen.get(above) is not workflow.marking:
                self._compare(above)
        if instance_id not in seen:
            workflow = workflows.get(instance_id)
            if workflow is not None:  # as committed (it changes only under this span)
                seen[instance_id] = workflow.marking
        at = self._last
        span = AuditSpan(
            trace_id=self._state.id,
            span_id=f"{self._prefix}{len(spans) + 1}",
            parent_id=parent.span_id if stack else None,
            instance_id=instance_id,
            operation=operation,
            element=element,
            started_at=at,
            ended_at=at,
            revision=self._revision,
            attributes=attributes,
        )
        spans.append(span)
        stack.append(span)
        return span

    def _record(
        self, operation: str, instance_id: str, element: str, attributes: dict[str, Any]
    ) -> None:
        """A span under the innermost open one, ended at once (a marking's change, a
        routing decision)."""
        spans, stack, at = self._spans, self._stack, self._last
        span = AuditSpan(
            trace_id=self._state.id,
            span_id=f"{self._prefix}{len(spans) + 1}",
            parent_id=stack[-1].span_id if stack else None,
            instance_id=instance_id,
            operation=operation,
            element=element,
            started_at=at,
            ended_at=at,
            revision=self._revision,
            attributes=attributes,
        )
        spans.append(span)

    def _end_above(self, height: int, ended: float) -> None:
        """End the open spans above the first ``height`` at ``ended``."""
        stack = self._stack
        if len(stack) <= height:
            return
        above = stack[-1].instance_id
        workflow = self._state.workflows.get(above)
        if workflow is not None and self._seen.get(above) is not workflow.marking:
            self._compare(above)
        failed = self._failed
        for span in stack[height:]:
            # not yet seen by anything but this recorder: it ends in place
            if span.ended_at != ended:
                force_setattr(span, "ended_at", ended)
            if failed and span.span_id in failed:
                span.attributes["error"] = failed.pop(span.span_id).error
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
        self.open(operation, instance_id, element, attributes)

    def work_item_moved(self, change: WorkItemStateChanged) -> None:
        prev, target = change.prev, change.next
        if prev is None:
            item = self._state.work_items[change.work_item_id]
            attributes = {
                "before": prev,
                "after": target,
                "task": change.task,
                "generation": item.generation,
            }
            operation = "WorkItem.initialize"
        else:
            attributes = {"before": prev, "after": target}
            operation = _WORK_ITEM_OPERATIONS[target]
        span = self.open(operation, change.workflow_id, change.work_item_id, attributes)
        if target is WorkItemState.FAILED:
            self._failed[span.span_id] = self._state.work_items[change.work_item_id]

    def workflow_moved(self, change: WorkflowStateChanged) -> None:
        workflow_id, target = change.workflow_id, change.next
        workflow = self._state.workflows[workflow_id]
        attributes: dict[str, Any] = {"before": change.prev, "after": target}
        if change.prev is not None:
            if target is WorkflowState.FAILED:
                attributes["error"] = workflow.error
            self.open(_WORKFLOW_OPERATIONS[target], workflow_id, workflow_id, attributes)
            return
        attributes["name"] = workflow.name
        attributes["version"] = workflow.version
        attributes["tasks"] = list(workflow.tasks)
        attributes["conditions"] = list(workflow.marking)
        if workflow.parent_id is not None:
            attributes["parent_id"] = workflow.parent_id
            attributes["parent_task"] = workflow.parent_task
        self.open("Workflow.initialize", workflow_id, workflow_id, attributes)
        self._seen[workflow_id] = {}  # a new workflow: every token it holds is a change
        self._compare(workflow_id)

    def _compare(self, workflow_id: str) -> None:
        """Record the changes of ``workflow_id``'s marking since it was last compared."""
        workflow = self._state.workflows.get(workflow_id)
        if workflow is None:
            return
        marking = workflow.marking
        seen = self._seen.get(workflow_id)
        if seen is marking:
            return
        self._seen[workflow_id] = marking
        if seen is None:
            return  # first seen this turn: as committed
        changed = [(c, seen.get(c, 0), n) for c, n in marking.items() if n != seen.get(c, 0)]
        added = [condition for condition, before, after in changed if after > before]
        if added:
            self._routed(workflow, added)
        for condition, before, after in changed:
            attributes = {"before": before, "after": after}
            self._record("Condition.mark", workflow_id, condition, attributes)

    def _routed(self, workflow: WorkflowRecord, added: list[str]) -> None:
        """New tokens: if a task of ``workflow`` is completing, they are its outputs."""
        stack = self._stack
        if not stack:
            return
        top = stack[-1]
        if top.operation != "Task.complete" or top.instance_id != workflow.id:
            return
        split = self._spec_of(workflow).tasks[top.element].split
        top.attributes["split"] = split
        top.attributes["outputs"] = added
        if split is not SplitType.AND:
            attributes = {"split": split, "outputs": added}
            self._record("Task.route", workflow.id, top.element, attributes)

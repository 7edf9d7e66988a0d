"""The audit trail's record: one span per engine operation (spec section 10).

Every operation the engine carries out on an instance (a workflow, task or work item moving, a
condition's marking changing, a routing decision, an activity or an action being called) is one
``AuditSpan``, committed with the snapshot it led to (``Mutation.spans``: no extra
transaction). The spans of one run form one trace: its id is the run's (the root instance's)
id, and each span names the span of the operation that caused it.

What a commit carries, and a store keeps as one row, is ``SpanRows``: on the instance's turn the
engine records the transaction's events (``EVENTS``: a few references per operation, no span
built), and the spans are rebuilt from them when someone reads them (``spans_of``); the row is
packed as it is, in one encoder call (``store/_spans.py``). Rows from before the events (one
list per span) still read. Persisted (kept until the run is pruned): the layouts only grow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from cronflow_actors.messages.base import Message

__all__ = [
    "ENTER",
    "ERROR",
    "EVENTS",
    "EXIT",
    "ITEM",
    "LEAVE",
    "MARK",
    "OPEN",
    "ROUTE",
    "TASK",
    "TIME",
    "WORKFLOW",
    "AuditSpan",
    "SpanRows",
    "spans_of",
]


class AuditSpan(Message, frozen=True, kw_only=True, gc=False):
    """One engine operation of one run (not tracked by the garbage collector: its attributes
    are plain values, which refer to nothing that could refer back to it).

    ``operation`` is one of ``Workflow.initialize|start|complete|fail|cancel``,
    ``Task.enable|start|complete|disable|fail|cancel``,
    ``WorkItem.initialize|start|complete|fail|cancel|reset|rerun|carried``, ``Condition.mark``,
    ``Task.route``, ``Activity.<name>`` and ``Action.<name>``. ``instance_id`` is the workflow
    (the root or a child) the element belongs to; ``element`` is the element's id within it:
    the workflow's id, a task's or a condition's name, a work item's id. ``attributes`` hold
    plain values: ``before``/``after`` (states, or a condition's token counts), ``generation``
    (tasks and work items), ``split`` and ``outputs`` (routing), ``principal`` (actions: the
    caller's id, None for an internal call), ``error`` (failures), and for
    ``Workflow.initialize`` the workflow's ``name``, its tasks and its first ``marking``.
    """

    trace_id: str
    """The run's id (its root instance's)."""
    span_id: str
    """``"<revision>.<n>"``: unique within the trace, in the order the spans began."""
    parent_id: str | None
    """The span of the operation that caused this one; None for the first operation of a turn
    (what a call, a handler's result or a timer asked for)."""
    instance_id: str
    operation: str
    element: str
    started_at: float
    """Epoch seconds on the runtime's clock; the first span of a turn starts at the turn's
    time, which is also its snapshot's ``updated_at``."""
    ended_at: float
    revision: int
    """The snapshot revision the span was committed with."""
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


EVENTS = 3
"""The first value of an event row (``SpanRows.row`` as the engine records it): what happened
in the transaction, in order, from which the spans are rebuilt when they are read
(``spans_of``). Each event is a code and its values:

- ``ENTER`` / ``EXIT``: a frame (a message's delivery, an activity's call) begins / ends; the
  spans that began in it end with it, at the clock's last reading; ``LEAVE`` ends a turn's
  frame (its first message's), whose spans end at the row's last reading (the commit);
- ``TIME t``: the clock reads ``t`` (epoch seconds); a span begins at the last reading;
- ``TASK instance task generation before after``: a task moved (``Task.<op>``, open);
- ``ITEM instance item task generation before after``: a work item moved (``WorkItem.<op>``,
  open; ``before`` None: initialized, with its task and generation, which the other moves
  carry too but their span does not show);
- ``WORKFLOW workflow before after more``: a workflow moved (``Workflow.<op>``, open; ``more``:
  None or the attributes beyond ``before`` and ``after``);
- ``MARK instance condition before after``: a condition's marking changed (ended at once);
- ``ROUTE instance task split outputs``: the completing task (its ``Task.complete``, the
  innermost open span) produced ``outputs``; a ``Task.route`` (ended at once) unless AND;
- ``OPEN operation instance element attributes``: any other span (an action, an activity);
- ``ERROR item error``: the error of work item ``item``'s earliest failure (or reset for a
  retry, whose attempt failed, or completion by an ``on_error``) in the row that has none yet.

An instance (or element) that is the run's own id is None. The codes are persisted: never
renumber one.
"""
ENTER = 1
EXIT = 2
TIME = 3
TASK = 4
ITEM = 5
WORKFLOW = 6
MARK = 7
ROUTE = 8
OPEN = 9
ERROR = 10
LEAVE = 11

_ARITY = {
    ENTER: 0,
    EXIT: 0,
    LEAVE: 0,
    TIME: 1,
    TASK: 5,
    ITEM: 6,
    WORKFLOW: 4,
    MARK: 4,
    ROUTE: 4,
    OPEN: 4,
    ERROR: 2,
}
"""How many values follow each event's code."""


class SpanRows(Message, frozen=True, kw_only=True, gc=False):
    """The spans of one commit of run ``trace_id``, which writes snapshot ``revision``: what a
    ``Mutation`` carries and a store keeps as one row. ``row`` is the engine's events
    (``EVENTS`` first) or, for spans given one by one (``of``), the first layout: one
    ``[n, parent, instance, operation, element, started_at, ended_at, attributes]`` list per
    span (``n`` of ``"<revision>.<n>"``, the parent's ``n`` or 0, an instance or element that
    is the run's id as None). Not tracked by the garbage collector: plain values only."""

    trace_id: str
    revision: int
    row: list[Any]

    def spans(self) -> tuple[AuditSpan, ...]:
        """The spans, in the order they began."""
        return spans_of(self.trace_id, self.revision, self.row)

    @classmethod
    def of(cls, spans: Sequence[AuditSpan]) -> SpanRows:
        """The row of ``spans``: one commit's (one trace and one revision, numbered
        ``"<revision>.1"``, ``"<revision>.2"``, ... in order); ``ValueError`` for anything
        else."""
        if not spans:
            raise ValueError("no spans: a commit without spans carries no SpanRows")
        trace_id, revision = spans[0].trace_id, spans[0].revision
        row: list[Any] = []
        for n, span in enumerate(spans, 1):
            if span.trace_id != trace_id or span.revision != revision:
                raise ValueError(
                    f"span {span.span_id!r} is of trace {span.trace_id!r}, revision "
                    f"{span.revision}; the first is of {trace_id!r}, revision {revision}: "
                    "one commit's spans share both"
                )
            if span.span_id != f"{revision}.{n}":
                raise ValueError(f"span {span.span_id!r} is not '{revision}.{n}': out of order")
            parent = 0 if span.parent_id is None else _number(span.parent_id, revision)
            instance = None if span.instance_id == trace_id else span.instance_id
            element = None if span.element == trace_id else span.element
            times = (span.started_at, span.ended_at)
            row.append([n, parent, instance, span.operation, element, *times, span.attributes])
        return cls(trace_id=trace_id, revision=revision, row=row)


def spans_of(trace_id: str, revision: int, row: list[Any]) -> tuple[AuditSpan, ...]:
    """The spans of commit ``revision`` of run ``trace_id`` from its ``row`` (either layout,
    ``SpanRows``); ``ValueError`` for a row that is neither."""
    if row and row[0] == EVENTS:
        where = f"the audit row of run {trace_id!r}, revision {revision}"
        rebuilt = _replay(row, where, trace_id)
        return tuple(_span(trace_id, revision, n, *values) for n, values in enumerate(rebuilt, 1))
    return tuple(
        _span(trace_id, revision, n, parent, instance, operation, element, began, ended, a)
        for n, parent, instance, operation, element, began, ended, a in row
    )


_TASK_OPERATIONS = {
    "enabled": "Task.enable",
    "started": "Task.start",
    "completed": "Task.complete",
    "disabled": "Task.disable",
    "failed": "Task.fail",
    "canceled": "Task.cancel",
}
_ITEM_OPERATIONS = {
    "initialized": "WorkItem.reset",  # from started; from nothing: initialize
    "started": "WorkItem.start",
    "completed": "WorkItem.complete",
    "failed": "WorkItem.fail",
    "canceled": "WorkItem.cancel",
}
_FAILED_AT = frozenset({"WorkItem.fail", "WorkItem.reset", "WorkItem.complete"})
"""The spans an ``ERROR`` event gives its error to (a failure, a reset after a failed attempt, a
completion an ``on_error`` gave after one)."""
_WORKFLOW_OPERATIONS = {
    "initialized": "Workflow.initialize",
    "started": "Workflow.start",
    "completed": "Workflow.complete",
    "failed": "Workflow.fail",
    "canceled": "Workflow.cancel",
}
"""The operation of each move, by the state it moved to (the states' values: an enum member in
memory, its string once stored, look the same up)."""


def _text(state: Any) -> str | None:
    """A state as a plain string (an enum member in memory, a string once stored)."""
    return None if state is None else str(state)


class _Replay:
    """Rebuilds the spans an event row records (``EVENTS``), in the order they began: each
    ``[parent, instance, operation, element, started_at, ended_at, attributes]``."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.spans: list[list[Any]] = []
        self.stack = [0]
        """The n of each open span, innermost last, above a 0."""
        self.frames: list[int] = []
        """The stack's height where each open frame began."""
        self.closing: list[int] = []
        """Spans that end with the row (a turn's)."""
        self.now = 0.0

    def begin(
        self, parent: int, instance: Any, operation: str, element: Any, attributes: Any
    ) -> int:
        self.spans.append([parent, instance, operation, element, self.now, self.now, attributes])
        return len(self.spans)

    def open(self, instance: Any, operation: str, element: Any, attributes: Any) -> None:
        self.stack.append(self.begin(self.stack[-1], instance, operation, element, attributes))

    def end_frame(self, *, with_row: bool) -> None:
        if not self.frames:
            raise ValueError(f"{self.where}: a frame ends that did not begin")
        height = self.frames.pop()
        if with_row:
            self.closing.extend(self.stack[height:])
        else:
            for n in self.stack[height:]:
                self.spans[n - 1][5] = self.now
        del self.stack[height:]

    def route(self, instance: Any, task: str, split: Any, outputs: Sequence[str]) -> None:
        outputs = list(outputs)  # a tuple as recorded, a list once stored
        split = str(split)  # an enum member as recorded, its string once stored
        top = self.stack[-1]
        completion = self.spans[top - 1] if top else None
        own = completion is not None and completion[1:4] == [instance, "Task.complete", task]
        if own:  # the completion shows its outputs
            completion[6]["split"] = split  # type: ignore[index]
            completion[6]["outputs"] = outputs  # type: ignore[index]
        if split != "and" or not own:
            self.begin(top, instance, "Task.route", task, {"split": split, "outputs": outputs})

    def error(self, item: str, error: str | None, trace_id: str) -> None:
        for span in self.spans:
            failed = span[2] in _FAILED_AT and (span[3] or trace_id) == item
            if failed and "error" not in span[6]:
                span[6]["error"] = error
                return

    def finish(self) -> list[list[Any]]:
        for n in self.closing + self.stack[1:]:  # they end at the row's last reading
            self.spans[n - 1][5] = self.now
        return self.spans


def _replay(events: list[Any], where: str, trace_id: str = "") -> list[list[Any]]:
    """The spans of ``events`` (``where`` names the row in errors)."""
    replay = _Replay(where)
    i, end = 1, len(events)
    while i < end:
        code = events[i]
        arity = _ARITY.get(code)
        if arity is None:
            raise ValueError(f"{where}: {code!r} at {i} is no event")
        if i + arity >= end:
            raise ValueError(f"{where}: event {code} at {i} is cut short")
        values = events[i + 1 : i + 1 + arity]
        i += 1 + arity
        if code == ENTER:
            replay.frames.append(len(replay.stack))
        elif code in (EXIT, LEAVE):
            replay.end_frame(with_row=code == LEAVE)
        elif code == TIME:
            replay.now = values[0]
        elif code == TASK:
            instance, task, generation, before, after = values
            after = _text(after)
            attributes = {"before": _text(before), "after": after, "generation": generation}
            replay.open(instance, _TASK_OPERATIONS[after], task, attributes)  # type: ignore[index]
        elif code == ITEM:
            instance, item, task, generation, before, after = values
            after = _text(after)
            if before is None:
                attributes = {"before": None, "after": after, "task": task}
                attributes["generation"] = generation
                replay.open(instance, "WorkItem.initialize", item, attributes)
            else:
                operation = _ITEM_OPERATIONS[after]  # type: ignore[index]
                replay.open(instance, operation, item, {"before": _text(before), "after": after})
        elif code == WORKFLOW:
            instance, before, after, more = values
            after = _text(after)
            attributes = {"before": _text(before), "after": after, **(more or {})}
            operation = _WORKFLOW_OPERATIONS[after]  # type: ignore[index]
            replay.open(instance, operation, instance, attributes)
        elif code == MARK:
            instance, condition, before, after = values
            attributes = {"before": before, "after": after}
            replay.begin(replay.stack[-1], instance, "Condition.mark", condition, attributes)
        elif code == ROUTE:
            replay.route(*values)
        elif code == OPEN:
            operation, instance, element, attributes = values
            replay.open(instance, operation, element, dict(attributes) if attributes else {})
        else:  # ERROR
            replay.error(values[0], values[1], trace_id)
    return replay.finish()


def _span(  # noqa: PLR0917 - one span's row, field by field
    trace_id: str,
    revision: int,
    n: int,
    parent: int,
    instance_id: str | None,
    operation: str,
    element: str | None,
    started_at: float,
    ended_at: float,
    attributes: dict[str, Any],
) -> AuditSpan:
    return AuditSpan(
        trace_id=trace_id,
        span_id=f"{revision}.{n}",
        parent_id=f"{revision}.{parent}" if parent else None,
        instance_id=trace_id if instance_id is None else instance_id,
        operation=operation,
        element=trace_id if element is None else element,
        started_at=started_at,
        ended_at=ended_at,
        revision=revision,
        attributes=attributes,
    )


def _number(span_id: str, revision: int) -> int:
    """``n`` of ``"<revision>.<n>"``; ``ValueError`` for another revision or shape."""
    prefix, dot, n = span_id.partition(".")
    if not (dot and n.isdigit() and prefix == str(revision)):
        raise ValueError(f"span id {span_id!r} is not '<revision>.<n>' of revision {revision}")
    return int(n)

"""The audit trail's record: one span per engine operation (spec section 10).

Every operation the engine carries out on an instance (a workflow, task or work item moving, a
condition's marking changing, a routing decision, an activity or an action being called) is one
``AuditSpan``, recorded on the instance's turn and committed with the snapshot it led to
(``Mutation.spans``: no extra transaction). The spans of one run form one trace: its id is the
run's (the root instance's) id, and each span names the span of the operation that caused it.

The engine records a commit's spans as ``SpanRows``: plain values in one list, in the shape the
stores pack them (``store/_spans.py``), so the hot path builds no ``AuditSpan`` and the writer
encodes them in one call; ``AuditSpan`` objects are made only for whoever reads them (a query,
an ``on_spans`` callback). Persisted (the store keeps them until the run is pruned): the
shape only grows.
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
    "FLAT",
    "ITEM",
    "LEAVE",
    "MARK",
    "OPEN",
    "ROUTE",
    "SPAN_FIELDS",
    "TASK",
    "TIME",
    "WORKFLOW",
    "AuditSpan",
    "SpanRows",
    "has_states",
    "spans_of",
]


class AuditSpan(Message, frozen=True, kw_only=True, gc=False):
    """One engine operation of one run (not tracked by the garbage collector: a span refers
    to no other object that could refer back to it).

    ``operation`` is one of ``Workflow.initialize|start|complete|fail|cancel``,
    ``Task.enable|start|complete|disable|fail|cancel``,
    ``WorkItem.initialize|start|complete|fail|cancel|reset``, ``Condition.mark``,
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


SPAN_FIELDS = 9
"""How many values each span takes in ``SpanRows.flat``: ``parent, instance, operation, element,
started_at, ended_at, before, after, more``."""
FLAT = 2
"""The first value of a flat row (``SpanRows.flat``): what tells it from the first layout, a
list of one list per span (``[n, parent, instance, ...]``), which the stores still read."""

EVENTS = 3
"""The first value of an event row (``SpanRows.flat`` as the engine records it): what happened
in the transaction, in order, from which the spans are rebuilt when they are read
(``spans_of``). Each event is a code and its values:

- ``ENTER`` / ``EXIT``: a frame (a message's delivery, an activity's call) begins / ends; the
  spans that began in it end with it, at the clock's last reading; ``LEAVE`` ends a turn's
  frame (its first message's), whose spans end at the row's last reading (the commit);
- ``TIME t``: the clock reads ``t`` (epoch seconds); a span begins at the last reading;
- ``TASK instance task generation before after``: a task moved (``Task.<op>``, open);
- ``ITEM instance item task generation before after``: a work item moved (``WorkItem.<op>``,
  open; ``before`` None: initialized, with its task and generation);
- ``WORKFLOW workflow before after more``: a workflow moved (``Workflow.<op>``, open; ``more``:
  None or the attributes beyond ``before`` and ``after``);
- ``MARK instance condition before after``: a condition's marking changed (ended at once);
- ``ROUTE instance task split outputs``: the completing task (the innermost open span)
  produced ``outputs``; a ``Task.route`` (ended at once) unless the split is AND;
- ``OPEN operation instance element attributes``: any other span (an action, an activity);
- ``ERROR item error``: the error of work item ``item``'s last failure in the row.

An instance (or element) that is the run's own id is None. Recording an event is appending a
few references to one list (no span is built on the instance's turn), and the store packs the
list as it is."""
ENTER, EXIT, TIME, TASK, ITEM, WORKFLOW, MARK, ROUTE, OPEN, ERROR, LEAVE = range(1, 12)

_CHANGES = ("Workflow.", "Task.", "WorkItem.", "Condition.")
"""The operations whose attributes start with ``before`` and ``after`` (a state or a
condition's token count), apart from ``Task.route``."""


def has_states(operation: str) -> bool:
    """Whether ``operation`` moves an element (its attributes start with ``before``/``after``)."""
    return operation.startswith(_CHANGES) and operation != "Task.route"


class SpanRows(Message, frozen=True, kw_only=True, gc=False):
    """The spans of one commit of run ``trace_id``, which writes snapshot ``revision``: what a
    ``Mutation`` carries and a store keeps as one row.

    ``flat`` holds every span in one list, ``SPAN_FIELDS`` values each after the ``FLAT``
    marker, in the order they began (span ``n`` is the n-th): the parent's ``n`` (0: none), the
    instance (None: the run's own id), the operation, the element (None: the run's own id), the
    start and end, then the attributes: for an operation that moves an element
    (``has_states``), ``before`` and ``after`` and in ``more`` the rest (None: nothing else; an
    int: the ``generation``; else a dict); for the others ``before`` and ``after`` are None
    and ``more`` holds them all (None: none). What the trace and revision already say is left
    out. Plain values, no dict for the commonest attributes: recording a span allocates
    nothing the garbage collector counts, and packing is one encoder call."""

    trace_id: str
    revision: int
    flat: list[Any]

    def spans(self) -> tuple[AuditSpan, ...]:
        """The spans as ``AuditSpan`` objects, in the order they began."""
        return spans_of(self.trace_id, self.revision, self.flat)

    @classmethod
    def of(cls, spans: Sequence[AuditSpan]) -> SpanRows:
        """The rows of ``spans``: one commit's (one trace and one revision, numbered
        ``"<revision>.1"``, ``"<revision>.2"``, ... in order); ``ValueError`` for anything
        else."""
        if not spans:
            raise ValueError("no spans: a commit without spans carries no SpanRows")
        trace_id, revision = spans[0].trace_id, spans[0].revision
        flat: list[Any] = [FLAT]
        for n, span in enumerate(spans, 1):
            if span.trace_id != trace_id or span.revision != revision:
                raise ValueError(
                    f"span {span.span_id!r} is of trace {span.trace_id!r}, revision "
                    f"{span.revision}; the first is of {trace_id!r}, revision {revision}: "
                    "one commit's spans share both"
                )
            if span.span_id != f"{revision}.{n}":
                raise ValueError(f"span {span.span_id!r} is not '{revision}.{n}': out of order")
            more = dict(span.attributes)
            if has_states(span.operation):
                before, after = more.pop("before", None), more.pop("after", None)
            else:
                before = after = None
            flat += (
                0 if span.parent_id is None else _number(span.parent_id, revision),
                None if span.instance_id == trace_id else span.instance_id,
                span.operation,
                None if span.element == trace_id else span.element,
                span.started_at,
                span.ended_at,
                before,
                after,
                more or None,
            )
        return cls(trace_id=trace_id, revision=revision, flat=flat)


def spans_of(trace_id: str, revision: int, rows: list[Any]) -> tuple[AuditSpan, ...]:
    """The spans of commit ``revision`` of run ``trace_id`` from ``rows``: ``SpanRows.flat``
    (events or spans), or the first layout (one ``[n, parent, instance, operation, element,
    started_at, ended_at, attributes]`` list per span)."""
    if rows and rows[0] == EVENTS:
        return tuple(
            _span(trace_id, revision, n, *values)
            for n, values in enumerate(_replay(trace_id, rows), 1)
        )
    if not rows or rows[0] != FLAT:  # the first layout starts with a list
        return tuple(
            _span(trace_id, revision, n, parent, instance, operation, element, began, ended, a)
            for n, parent, instance, operation, element, began, ended, a in rows
        )
    if (len(rows) - 1) % SPAN_FIELDS:
        raise ValueError(f"a flat row of {len(rows)} values: not 1 + {SPAN_FIELDS} per span")
    found = []
    for i in range(1, len(rows), SPAN_FIELDS):
        parent, instance, operation, element, began, ended, before, after, more = rows[
            i : i + SPAN_FIELDS
        ]
        if has_states(operation):
            attributes = {"before": before, "after": after}
            if type(more) is int:
                attributes["generation"] = more
            elif more:
                attributes.update(more)
        else:
            attributes = dict(more) if more else {}
        n = (i - 1) // SPAN_FIELDS + 1
        found.append(
            _span(
                trace_id,
                revision,
                n,
                parent,
                instance,
                operation,
                element,
                began,
                ended,
                attributes,
            )
        )
    return tuple(found)


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
_WORKFLOW_OPERATIONS = {
    "initialized": "Workflow.initialize",
    "started": "Workflow.start",
    "completed": "Workflow.complete",
    "failed": "Workflow.fail",
    "canceled": "Workflow.cancel",
}
_ARITY = {ENTER: 0, EXIT: 0, TIME: 1, TASK: 5, ITEM: 6, WORKFLOW: 4, MARK: 4, ROUTE: 4}
_ARITY.update({OPEN: 4, ERROR: 2, LEAVE: 0})


def _text(state: Any) -> str | None:
    """A state as a plain string (an enum member in memory, a string once stored)."""
    return None if state is None else str(state)


def _replay(trace_id: str, events: list[Any]) -> list[list[Any]]:  # noqa: PLR0915
    """The spans an event row records, in the order they began: ``[parent, instance,
    operation, element, started_at, ended_at, attributes]`` each (``EVENTS``)."""
    spans: list[list[Any]] = []
    stack = [0]  # the n of each open span, innermost last, above a 0
    frames: list[int] = []  # the stack's height where each open frame began
    closing: list[int] = []  # spans that end with the row
    now = 0.0
    i, end = 1, len(events)
    while i < end:
        code = events[i]
        arity = _ARITY.get(code)
        if arity is None or i + arity >= end:
            raise ValueError(f"an event row of {end} values has no event {code!r} at {i}")
        values = events[i + 1 : i + 1 + arity]
        i += 1 + arity
        if code == ENTER:
            frames.append(len(stack))
            continue
        if code in (EXIT, LEAVE):
            height = frames.pop() if frames else 1
            if code == LEAVE:  # a turn's: its spans end with the row
                closing.extend(stack[height:])
            else:
                for n in stack[height:]:
                    spans[n - 1][5] = now
            del stack[height:]
            continue
        if code == TIME:
            now = values[0]
            continue
        if code == ERROR:
            item, error = values
            for span in reversed(spans):
                if span[2] == "WorkItem.fail" and (span[3] or trace_id) == item:
                    span[6]["error"] = error
                    break
            continue
        opened = True
        if code == TASK:
            instance, element, generation, before, after = values
            after = _text(after)
            operation = _TASK_OPERATIONS[after]  # type: ignore[index]
            attributes = {"before": _text(before), "after": after, "generation": generation}
        elif code == ITEM:
            instance, element, task, generation, before, after = values
            after = _text(after)
            if before is None:
                operation = "WorkItem.initialize"
                attributes = {"before": None, "after": after, "task": task}
                attributes["generation"] = generation
            else:
                operation = _ITEM_OPERATIONS[after]  # type: ignore[index]
                attributes = {"before": _text(before), "after": after}
        elif code == WORKFLOW:
            instance, before, after, more = values
            element, after = instance, _text(after)
            operation = _WORKFLOW_OPERATIONS[after]  # type: ignore[index]
            attributes = {"before": _text(before), "after": after}
            if more:
                attributes.update(more)
        elif code == MARK:
            instance, element, before, after = values
            operation, opened = "Condition.mark", False
            attributes = {"before": before, "after": after}
        elif code == ROUTE:
            instance, element, split, outputs = values
            top = stack[-1]
            if not top:
                continue
            spans[top - 1][6]["split"] = split
            spans[top - 1][6]["outputs"] = outputs
            if split == "and":
                continue
            operation, opened = "Task.route", False
            attributes = {"split": split, "outputs": outputs}
        else:  # OPEN
            operation, instance, element, more = values
            attributes = dict(more) if more else {}
        spans.append([stack[-1], instance, operation, element, now, now, attributes])
        if opened:
            stack.append(len(spans))
    for n in closing + stack[1:]:  # they end at the row's last reading
        spans[n - 1][5] = now
    return spans


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

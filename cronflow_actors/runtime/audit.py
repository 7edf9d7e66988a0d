"""The audit trail of runs: a run's spans as a tree, its state at any past moment, and a hook
for the spans each commit makes durable (spec section 10).

Every engine operation of a run is an ``AuditSpan`` committed with the snapshot it led to
(``engine/audit.py`` records them). ``Runtime.trace(run_id)`` reads them back as a tree (each
span under the operation that caused it); ``Runtime.state_at(run_id, at)`` replays them to
rebuild what the run was at a moment: its workflows' states and markings, its tasks' states and
generations, its work items' states, from the spans alone. ``Runtime.on_spans(callback)``
hears of the spans of every commit once they are durable (what an exporter subscribes to).
``Runtime(audit=False)`` records nothing.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from cronflow_actors.engine.audit import AuditTrail, SpanSink
from cronflow_actors.errors import (
    ConfigurationError,
    NoAuditTrailError,
    NotFoundError,
    one_line,
)
from cronflow_actors.messages.audit import AuditSpan, SpanRows
from cronflow_actors.runtime.parts import RuntimeParts

__all__ = [
    "AuditMethods",
    "SpanCallback",
    "StateAt",
    "TaskAt",
    "Trace",
    "TraceNode",
    "WorkItemAt",
    "WorkflowAt",
    "parse_instant",
    "state_from_spans",
    "trace_from_spans",
]

logger = logging.getLogger("cronflow_actors.runtime.runtime")

SpanCallback = Callable[[Sequence[AuditSpan]], None]
"""``callback(spans)``: the spans one commit made durable, in the order they began."""

_PAGE = 1000


class TraceNode(msgspec.Struct, frozen=True, kw_only=True):
    """One span of a trace, with the spans it caused (in the order they began)."""

    span: AuditSpan
    children: list[TraceNode] = []


class Trace(msgspec.Struct, frozen=True, kw_only=True):
    """A run's audit trail as a tree: ``roots`` are the first operation of each turn (a call,
    a handler's result, a timer), each with what it caused. ``spans`` counts them all."""

    run_id: str
    spans: int
    roots: list[TraceNode]

    def render(self) -> str:
        """The tree as text, one span a line, indented under its cause."""
        lines = [f"trace {self.run_id} ({self.spans} spans)"]

        def walk(node: TraceNode, depth: int) -> None:
            lines.append("  " * depth + describe(node.span))
            for child in node.children:
                walk(child, depth + 1)

        for root in self.roots:
            walk(root, 1)
        return "\n".join(lines)


class TaskAt(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    generation: int


class WorkflowAt(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow (the root or a child) as it was: its state, marking and tasks."""

    id: str
    name: str
    state: str
    marking: dict[str, int]
    tasks: dict[str, TaskAt]
    parent_id: str | None = None
    parent_task: str | None = None


class WorkItemAt(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    task: str
    generation: int
    workflow_id: str


class StateAt(msgspec.Struct, frozen=True, kw_only=True):
    """A run as it was at ``at``, rebuilt from its spans: as of snapshot ``revision`` (0 and
    nothing in it: the run did not exist yet)."""

    run_id: str
    at: float
    revision: int
    workflows: dict[str, WorkflowAt]
    work_items: dict[str, WorkItemAt]


_SHOWN = (
    "generation",
    "split",
    "outputs",
    "principal",
    "via",
    "error",
    "trigger",
    "reason",
    "terminated",
    "migrated_from",
    "from_version",
    "migrated_to",
)
"""The attributes a trace's line shows, in this order (the others are on the span)."""


def describe(span: AuditSpan) -> str:
    """One line: the operation, its element, and what changed."""
    attributes = span.attributes
    detail = ""
    if "before" in attributes or "after" in attributes:
        detail = f" {attributes.get('before')} -> {attributes.get('after')}"
    extras = [
        f"{key}={attributes[key]}"
        for key in _SHOWN
        if key in attributes and not (key == "principal" and attributes[key] is None)
    ]
    if span.operation.startswith("Action.") and attributes.get("principal") is None:
        extras.append("internal")  # (a resume too: this process's, or a caller no token names)
    tail = f" ({', '.join(extras)})" if extras else ""
    # one line whatever an error in it holds (a sender's ESC, CR or line break reached the
    # terminal of `cronflow-actors trace`: retest2 h33 F2)
    return one_line(f"{span.operation} {span.element}{detail}{tail}  [{span.span_id}]")


def trace_from_spans(run_id: str, spans: list[AuditSpan]) -> Trace:
    """The tree of ``spans`` (in the order they began): each under its parent."""
    nodes: dict[str, TraceNode] = {}
    roots: list[TraceNode] = []
    for span in spans:
        node = TraceNode(span=span, children=[])
        nodes[span.span_id] = node
        parent = nodes.get(span.parent_id) if span.parent_id is not None else None
        (parent.children if parent is not None else roots).append(node)
    return Trace(run_id=run_id, spans=len(spans), roots=roots)


def state_from_spans(run_id: str, spans: list[AuditSpan], at: float) -> StateAt:
    """Replay ``spans`` (in order) of every turn that happened at or before ``at``; a turn's
    time is its first span's start (its snapshot's ``updated_at``)."""
    workflows: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[str, Any]] = {}
    revision = 0
    for span in spans:
        if span.revision != revision:
            if span.started_at > at:
                break
            revision = span.revision
        _apply(span, workflows, items)
    return StateAt(
        run_id=run_id,
        at=at,
        revision=revision,
        workflows={
            ident: WorkflowAt(
                id=ident,
                name=w["name"],
                state=w["state"],
                marking=w["marking"],
                tasks={name: TaskAt(state=s, generation=g) for name, (s, g) in w["tasks"].items()},
                parent_id=w["parent_id"],
                parent_task=w["parent_task"],
            )
            for ident, w in workflows.items()
        },
        work_items={ident: WorkItemAt(**item) for ident, item in items.items()},
    )


def _apply(
    span: AuditSpan, workflows: dict[str, dict[str, Any]], items: dict[str, dict[str, Any]]
) -> None:
    kind, _, _verb = span.operation.partition(".")
    attributes = span.attributes
    if "after" not in attributes:
        # a span that moves nothing: a restart running a handler again (``WorkItem.rerun``), an
        # event heard, a step carried from an earlier run, a task's activity (conform h38 F4:
        # a rerun made every ``state_at`` of the recovered run a KeyError, a 500 over HTTP)
        return
    if kind == "Workflow":
        if span.operation == "Workflow.initialize":
            workflows[span.instance_id] = {
                "name": attributes.get("name", ""),
                "state": str(attributes["after"]),
                "marking": dict.fromkeys(attributes.get("conditions", ()), 0),
                "tasks": {name: ("disabled", 0) for name in attributes.get("tasks", ())},
                "parent_id": attributes.get("parent_id"),
                "parent_task": attributes.get("parent_task"),
            }
        elif span.instance_id in workflows:
            workflows[span.instance_id]["state"] = str(attributes["after"])
    elif kind == "Task":
        workflow = workflows.get(span.instance_id)
        if workflow is not None:
            state = (str(attributes["after"]), int(attributes["generation"]))
            workflow["tasks"][span.element] = state
    elif kind == "WorkItem":
        if span.operation == "WorkItem.initialize":
            items[span.element] = {
                "state": str(attributes["after"]),
                "task": attributes["task"],
                "generation": int(attributes["generation"]),
                "workflow_id": span.instance_id,
            }
        elif span.element in items:
            items[span.element]["state"] = str(attributes["after"])
    elif kind == "Condition":
        workflow = workflows.get(span.instance_id)
        if workflow is not None:
            workflow["marking"][span.element] = int(attributes["after"])


_SPACED_OFFSET = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")
"""A time of day, then an offset whose '+' a query sent unescaped, read as a space."""


def parse_instant(value: Any, what: str = "at") -> float:
    """A moment as epoch seconds: a number, a numeric string, an ISO 8601 time with a time zone,
    or an aware ``datetime``. ``ConfigurationError`` otherwise."""
    expected = "epoch seconds or an ISO 8601 time with a time zone (2024-05-01T12:00:00Z)"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigurationError(what, value, f"{expected}, not a naive datetime")
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            # a '+' of an offset a query string sent unescaped reads as a space (newcomer h38
            # F6: told the time had no zone when it had one)
            read = _SPACED_OFFSET.sub(r"\1+\2", value)  # (the error quotes what was sent)
            try:
                moment = datetime.fromisoformat(read.replace("Z", "+00:00"))
            except ValueError:
                raise ConfigurationError(what, value, expected) from None
            if moment.tzinfo is None:
                raise ConfigurationError(what, value, f"{expected}: it has none") from None
            return moment.timestamp()
    else:
        raise ConfigurationError(what, value, expected)
    if not math.isfinite(seconds):
        raise ConfigurationError(what, value, expected)
    return seconds


class AuditMethods(RuntimeParts):
    """The audit queries and hook of ``Runtime`` (which inherits them)."""

    _span_callbacks: list[SpanCallback]

    @property
    def audit(self) -> bool:
        """Whether transactions record their audit trail (``Runtime(audit=...)``; may be
        switched at any time: it applies from the next transaction)."""
        return self._services.audit is not None

    @audit.setter
    def audit(self, on: bool) -> None:
        self._services.audit = AuditTrail(self.clock, self._span_sink()) if on else None

    def _span_sink(self) -> SpanSink | None:
        """Where the audit hands the spans of each commit: nowhere while no callback listens
        (no ``AuditSpan`` is built for nobody)."""
        return self._spans_durable if self._span_callbacks else None

    def on_spans(self, callback: SpanCallback) -> Callable[[], None]:
        """Call ``callback(spans)`` after every commit that recorded spans, with those spans
        (a tuple of ``AuditSpan``, in the order they began) once they are durable. It runs on
        the event loop, in the instance's turn, so it must be quick (queue the spans, do not
        wait); an error it raises is logged and changes nothing. Returns a function that
        unsubscribes it."""
        self._span_callbacks.append(callback)
        self._listen()

        def unsubscribe() -> None:
            if callback in self._span_callbacks:
                self._span_callbacks.remove(callback)
                self._listen()

        return unsubscribe

    def _listen(self) -> None:
        if self._services.audit is not None:
            self._services.audit.sink = self._span_sink()

    def _spans_durable(self, rows: SpanRows) -> None:
        try:
            spans = rows.spans()
        except Exception:  # the commit is durable all the same: its spans are only not heard
            logger.exception(
                "the spans of %s revision %d could not be read", rows.trace_id, rows.revision
            )
            return
        for callback in tuple(self._span_callbacks):
            try:
                callback(spans)
            except Exception:
                logger.exception("the span callback %r failed", callback)

    async def spans(self, run_id: str) -> list[AuditSpan]:
        """Every span of a run, in the order they began (empty: recorded with the audit off).
        ``NotFoundError`` for a run that is not stored (never started, or pruned)."""
        found: list[AuditSpan] = []
        after: str | None = None
        while True:
            page = await self.store.read_spans(run_id, after=after, limit=_PAGE)
            found.extend(page)
            if len(page) < _PAGE:
                break
            after = page[-1].span_id
        if not found and not await self.store.instance_exists(run_id):
            raise NotFoundError("run", run_id)
        return found

    async def trace(self, run_id: str) -> Trace:
        """A run's audit trail as a tree of spans, each under the operation that caused it.
        ``NotFoundError`` for a run that is not stored, ``NoAuditTrailError`` (one) for a run
        that recorded no span (the audit off, or a queued run not started yet)."""
        return trace_from_spans(run_id, await self._trail(run_id))

    async def state_at(self, run_id: str, at: float | str | datetime) -> StateAt:
        """What the run was at ``at`` (epoch seconds, an ISO 8601 time with a zone, or an
        aware datetime), rebuilt from its spans only: its workflows' states and markings,
        their tasks' states and generations, its work items' states, as of the last turn at or
        before ``at``. ``ConfigurationError`` for a time it cannot read, ``NotFoundError`` for
        a run that is not stored, ``NoAuditTrailError`` (one) for a run that recorded no span.
        A time before the run began answers its state then: nothing (revision 0)."""
        instant = parse_instant(at)
        return state_from_spans(run_id, await self._trail(run_id), instant)

    async def _trail(self, run_id: str) -> list[AuditSpan]:
        spans = await self.spans(run_id)
        if not spans:  # an empty trail would read as "nothing had happened yet"
            raise NoAuditTrailError(run_id)
        return spans

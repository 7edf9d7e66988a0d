"""What a flow is, for people and tools: its triggers, its steps and their options, as
plain records (``Flow.get_triggers()``, ``get_steps()``, ``get_step(id)``, ``to_json()``,
``Runtime.get_workflows()`` and ``GET /flows``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from cronflow_actors.flow import nodes as n
from cronflow_actors.flow.definition import FlowDefinition, FlowTriggers

__all__ = [
    "FlowTrigger",
    "FlowVersion",
    "RateLimitInfo",
    "StepDescription",
    "WorkflowDescription",
    "describe",
    "kind_of",
    "method_of",
    "steps_of",
    "triggers_of",
]


class FlowTrigger(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One way a flow's runs start: ``kind`` is ``webhook`` (``method``, ``path``),
    ``schedule`` (``cron``, ``timezone``), ``interval`` (``every`` seconds), ``event``
    (``event``) or ``poll`` (``every`` seconds). Every flow can also be started by hand
    (``trigger``, ``POST /runs``)."""

    kind: str
    method: str | None = None
    path: str | None = None
    cron: str | None = None
    timezone: str | None = None
    every: float | None = None
    event: str | None = None


class FlowVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a flow registered on a runtime: whether it is ``deprecated`` (its runs
    go on, new runs take another version), whether new runs take it (``current``), and the
    structural fingerprint of its definition (``net/fingerprint.py``)."""

    version: str
    deprecated: bool = False
    current: bool = False
    fingerprint: str = ""


class RateLimitInfo(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    per_seconds: float


class WorkflowDescription(msgspec.Struct, frozen=True, kw_only=True):
    """A registered flow as ``Runtime.get_workflows()`` and ``GET /flows`` show it."""

    id: str
    name: str
    """Its ``define(name=...)``, or its id."""
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    version: str = ""
    triggers: list[FlowTrigger] = msgspec.field(default_factory=list)
    concurrency: int | None = None
    rate_limit: RateLimitInfo | None = None
    queue: str | None = None
    secrets: list[str] = msgspec.field(default_factory=list)
    """The names of its secrets (never their values)."""
    versions: list[FlowVersion] = msgspec.field(default_factory=list)
    """Every version of it registered on the runtime, in the order they were registered (the
    description is the one of the ``current`` version); empty outside a runtime."""
    awaits: list[str] = msgspec.field(default_factory=list)
    """The events its steps wait for (``wait_for_event``), where a publish reaches its runs
    (one that starts it is a trigger): the console offers them to publish (newcomer h33 F8)."""


def triggers_of(flow: FlowTriggers) -> list[FlowTrigger]:
    triggers = [
        FlowTrigger(kind="webhook", method=hook.method, path=hook.path) for hook in flow.webhooks
    ]
    triggers += [
        FlowTrigger(kind="schedule", cron=s.expression.text, timezone=s.timezone)
        for s in flow.schedules
    ]
    triggers += [FlowTrigger(kind="interval", every=seconds) for seconds in flow.intervals]
    triggers += [FlowTrigger(kind="event", event=name) for name in flow.events]
    triggers += [FlowTrigger(kind="poll", every=poll.interval) for poll in flow.polls]
    return triggers


def describe(flow: FlowDefinition) -> WorkflowDescription:
    triggers = triggers_of(flow.triggers)
    rate = flow.rate_limit
    return WorkflowDescription(
        id=flow.id,
        name=flow.name,
        description=flow.description,
        tags=list(flow.tags),
        version=flow.version,
        triggers=triggers,
        concurrency=flow.concurrency,
        rate_limit=RateLimitInfo(count=rate.count, per_seconds=rate.seconds) if rate else None,
        queue=flow.queue,
        secrets=sorted(flow.secrets),
    )


class StepDescription(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One node of a flow: its ``id``, ``kind`` (step, action, if, while, parallel, race,
    for_each, batch, sleep, delay, event, human, pause, subflow, cancel, log), and its options
    (functions are shown by name). ``branches``: an ``if_``'s branches, each a list of steps."""

    id: str
    kind: str
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    branches: list[list[StepDescription]] = msgspec.field(default_factory=list)


_KINDS = {
    n.StepNode: "step",
    n.ActionNode: "action",
    n.IfNode: "if",
    n.WhileNode: "while",
    n.EventNode: "event",
    n.SubflowNode: "subflow",
    n.CancelNode: "cancel",
    n.LogNode: "log",
}
_HIDDEN = frozenset({"id", "branches", "inner"})


def steps_of(nodes: Sequence[n.Node]) -> list[StepDescription]:
    return [_step(node) for node in nodes]


def kind_of(node: n.Node) -> str:
    """What a node is, as ``StepDescription.kind`` says."""
    if isinstance(node, n.GroupNode):
        return "parallel" if node.mode == "all" else "race"
    if isinstance(node, n.EachNode):
        return "batch" if node.size else "for_each"
    if isinstance(node, n.SleepNode | n.HumanNode):
        return node.kind
    return _KINDS[type(node)]


_METHOD_OF_KIND = {
    "if": "if_",
    "while": "while_",
    "event": "wait_for_event",
    "human": "human_in_the_loop",
}
"""A step kind (``kind_of``) whose chain method is named otherwise."""


def method_of(node: n.Node) -> str:
    """The chain's method that added ``node``, as its user wrote it (``if_``, ``batch``)."""
    kind = kind_of(node)
    return _METHOD_OF_KIND.get(kind, kind)


def _step(node: n.Node) -> StepDescription:
    options = {}
    for field in node.__struct_fields__:
        value = getattr(node, field)
        if field in _HIDDEN or value in (None, (), "", {}) or field in ("mode", "kind"):
            continue
        options[field] = _shown(value)
    branches = [steps_of(b.nodes) for b in getattr(node, "branches", ())]
    return StepDescription(id=node.id, kind=kind_of(node), options=options, branches=branches)


def _shown(value: Any) -> Any:
    if callable(value) and not isinstance(value, type):
        return f"<function {getattr(value, '__qualname__', type(value).__name__)}>"
    if isinstance(value, tuple | list):
        return [_shown(v) for v in value]
    if isinstance(value, msgspec.Struct):
        return {f: _shown(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    return value

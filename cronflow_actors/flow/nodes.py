"""What a ``cf.define(...)`` chain records: one node per step or construct, in order (an ``if_``
holds its branches' nodes). The builder makes them, the compiler turns them into tasks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from cronflow_actors.flow.options import Cache, CircuitBreaker, Retry

__all__ = [
    "ActionNode",
    "Branch",
    "CancelNode",
    "EachNode",
    "EventNode",
    "GroupNode",
    "HumanNode",
    "IfNode",
    "LogNode",
    "Node",
    "SleepNode",
    "StepNode",
    "SubflowNode",
    "WhileNode",
    "walk",
]


class Node(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    id: str
    on_error: tuple[Any, ...] = ()
    """Fallbacks in order: each gets ``ctx.error`` (the error of the one before); the first
    that returns gives the node its output."""


class StepNode(Node, frozen=True, kw_only=True, eq=False):
    handler: Any
    retry: Retry | None = None
    timeout: float | None = None
    delay: float | None = None
    """Seconds to wait (on a durable timer) before the step runs."""
    cache: Cache | None = None
    circuit_breaker: CircuitBreaker | None = None


class ActionNode(Node, frozen=True, kw_only=True, eq=False):
    handler: Any
    durable: bool = True
    retry: Retry | None = None
    timeout: float | None = None


class Branch(msgspec.Struct, kw_only=True, eq=False):
    name: str
    condition: Any  # None for else
    nodes: list[Node] = msgspec.field(default_factory=list)


class IfNode(Node, frozen=True, kw_only=True, eq=False):
    branches: list[Branch]


class GroupNode(Node, frozen=True, kw_only=True, eq=False):
    """``parallel`` (mode "all") and ``race`` (mode "first")."""

    handlers: tuple[Any, ...]
    mode: str
    max_concurrency: int | None = None
    timeout: float | None = None


class WhileNode(Node, frozen=True, kw_only=True, eq=False):
    condition: Any
    handler: Any
    max_iterations: int


class EachNode(Node, frozen=True, kw_only=True, eq=False):
    """``for_each`` (size 0: every item at once) and ``batch`` (chunks of ``size``, in order).
    ``inner``: the handler builds a flow per item (``lambda item, flow: flow.step(...)``)."""

    items: Any
    handler: Any
    size: int = 0
    max_items: int = 1000
    """The most items a run's ``items(ctx)`` may give (more fails the construct)."""
    inner: Any = None
    """The per-item flow (a ``Flow`` built with a placeholder item), when ``handler`` builds
    one; each item then runs it as a child workflow."""


class SleepNode(Node, frozen=True, kw_only=True, eq=False):
    """``sleep`` and ``delay``: ``seconds``, or ``duration(ctx)`` computed when it starts."""

    seconds: float | None = None
    duration: Any = None
    kind: str = "sleep"


class EventNode(Node, frozen=True, kw_only=True, eq=False):
    event: str
    filter: Any = None
    validate: Any = None
    timeout: float | None = None
    retry: Retry | None = None
    """Waits again after a timeout, while attempts remain (each with the full timeout)."""


class HumanNode(Node, frozen=True, kw_only=True, eq=False):
    description: Any = ""
    """A string, or ``description(ctx)``."""
    timeout: float | None = None
    on_pause: Any = None
    on_timeout: Any = None
    metadata: Mapping[str, Any] = msgspec.field(default_factory=dict)
    approval_url: Any = None
    """A string, or ``approval_url(ctx, token)``: where a person approves (in the pause)."""
    kind: str = "human"


class SubflowNode(Node, frozen=True, kw_only=True, eq=False):
    flow: Any
    """A ``Flow``, or the id of a flow registered on the runtime."""
    input: Any = None
    """``input(ctx)``, or a value; by default ``ctx.last``."""


class CancelNode(Node, frozen=True, kw_only=True, eq=False):
    reason: str = ""


class LogNode(Node, frozen=True, kw_only=True, eq=False):
    message: Any
    """A string, or ``message(ctx)``."""
    level: str = "info"


def walk(nodes: Iterable[Node]) -> Iterable[Node]:
    """Every node of a sequence, depth first (the branches of an ``if_`` included)."""
    for node in nodes:
        yield node
        if isinstance(node, IfNode):
            for branch in node.branches:
                yield from walk(branch.nodes)

"""What the compiler checks in a flow's nodes before it compiles them: unique step ids, ids
clear of the compiler's own names, functions where functions go, valid options."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from cronflow_actors.calls import callback_problem
from cronflow_actors.flow import nodes as n
from cronflow_actors.flow.introspect import method_of
from cronflow_actors.flow.options import Cache, CircuitBreaker, Retry
from cronflow_actors.flow.triggers import event_name_problem
from cronflow_actors.net.durations import looks_like_duration

__all__ = ["LOG_LEVELS", "RESERVED", "node_problems", "step_ids"]

RESERVED = (":", "#")
"""Characters the compiler's own task names hold (``if:x``, ``log#3``) and step ids may not."""
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

_OPTIONS: dict[str, type[Retry | Cache | CircuitBreaker]] = {
    "retry": Retry,
    "cache": Cache,
    "circuit_breaker": CircuitBreaker,
}
"""A step's options and what each must be."""


def step_ids(nodes: Iterable[n.Node], problems: list[str]) -> frozenset[str]:
    """The ids of every node (``if_`` branches included); a duplicate id, an id with a
    reserved character or a node's own problem goes to ``problems``."""
    seen: set[str] = set()
    for node in n.walk(nodes):
        if not isinstance(node.id, str):
            continue  # the builder said so as it was added (``chain._add``)
        if node.id in seen:
            problems.append(f"step id {node.id!r} is used twice; step ids must be unique")
        # the ids of cancel and log nodes are the builder's
        named_by_user = not isinstance(node, n.CancelNode | n.LogNode)
        if named_by_user and isinstance(node.id, str) and any(m in node.id for m in RESERVED):
            problems.append(
                f"step id {node.id!r} holds ':' or '#', which are kept for the engine's own "
                "names; use letters, digits, '-', '_' or '.'"
            )
        seen.add(node.id)
        problems.extend(node_problems(node))
    return frozenset(seen)


def node_problems(node: n.Node) -> list[str]:
    """What is wrong with one node's own options (functions, retry, cache, breaker)."""
    found = []
    where = f"{method_of(node)} {node.id!r}"
    for field in ("handler", "condition", "items", "filter", "validate", "on_pause", "on_timeout"):
        value = getattr(node, field, None)
        if value is not None and not callable(value):
            found.append(f"{where}: {field} must be a function, got {value!r}")
    for field in ("message", "description", "approval_url", "duration"):
        value = getattr(node, field, None)
        if value is not None and not (callable(value) or isinstance(value, str)):
            found.append(f"{where}: {field} must be a string or a function, got {value!r}")
    for fallback in node.on_error:
        if not callable(fallback):
            found.append(f"{where}: on_error must be a function, got {fallback!r}")
        elif said := callback_problem(fallback, 1, f"{where}: on_error", "fallback(ctx)"):
            found.append(said)
    found.extend(_arity_problems(node, where))
    for handler in getattr(node, "handlers", ()):
        if not callable(handler):
            found.append(f"{where}: every function must be callable, got {handler!r}")
    for branch in getattr(node, "branches", ()):
        if branch.condition is not None and not callable(branch.condition):
            found.append(f"{where}: the condition of {branch.name!r} must be a function")
    for option, kind in _OPTIONS.items():
        value = getattr(node, option, None)
        if value is None:
            continue
        if isinstance(value, kind):
            found.extend(value.problems(where))
        else:
            found.append(
                f"{where}: {option} must be a cf.{kind.__name__}(...), got "
                f"{type(value).__name__} {value!r}"
            )
    if isinstance(node, n.EventNode) and node.retry is not None and node.timeout is None:
        found.append(f"{where}: retry needs a timeout (it waits again after a wait timed out)")
    if isinstance(node, n.EventNode):
        found.extend(_event_problems(node, where))
    if isinstance(node, n.LogNode) and node.level not in LOG_LEVELS:
        found.append(f"{where}: level must be one of {list(LOG_LEVELS)}, got {node.level!r}")
    return found


def _arity_problems(node: n.Node, where: str) -> list[str]:
    """A node's functions that cannot take what they are called with (written for another
    shape, one fails each run that reaches it, where the flow is built once: devx h40 F3)."""
    found = []
    for fn, arity, what, shape in _calls(node):
        if callable(fn) and (said := callback_problem(fn, arity, f"{where}: {what}", shape)):
            found.append(said)
    return found


def _calls(node: n.Node) -> Iterator[tuple[Any, int, str, str]]:
    """(function, arguments it is called with, what it is, its shape) of ``node``'s functions
    that the README gives a shape for."""
    if isinstance(node, n.StepNode | n.ActionNode):
        yield node.handler, 1, "handler", "handler(ctx)"
        if isinstance(node.retry, Retry) and node.retry.on_retry is not None:
            shape = "on_retry(ctx, error, attempt, delay)"
            yield node.retry.on_retry, 4, "retry on_retry", shape
        cache = getattr(node, "cache", None)
        if isinstance(cache, Cache) and callable(cache.key):
            yield cache.key, 1, "cache key", "key(ctx) -> str"
    elif isinstance(node, n.IfNode):
        for branch in node.branches:
            yield branch.condition, 1, f"the condition of {branch.name!r}", "condition(ctx)"
    elif isinstance(node, n.GroupNode):
        for number, handler in enumerate(node.handlers, 1):
            yield handler, 1, f"function {number}", "fn(ctx)"
    for field, arity, shape in _SHAPES.get(type(node), ()):
        yield getattr(node, field), arity, _NAMED.get(field, field), shape


_SHAPES: dict[type[n.Node], tuple[tuple[str, int, str], ...]] = {
    n.WhileNode: (("condition", 1, "cond(ctx)"), ("handler", 1, "fn(ctx)")),
    n.EachNode: (
        ("items", 1, "items(ctx) -> list"),
        ("handler", 2, "fn(item, ctx), or fn(item, flow) to build a flow"),
    ),
    n.SubflowNode: (("input", 1, "input(ctx)"),),
    n.EventNode: (
        ("filter", 2, "filter(payload, ctx) -> bool"),
        ("validate", 2, "validate(payload, ctx) -> True or a reason"),
    ),
    n.HumanNode: (
        ("description", 1, "description(ctx)"),
        ("approval_url", 2, "approval_url(ctx, token)"),
        ("on_pause", 2, "on_pause(ctx, token)"),
        ("on_timeout", 1, "on_timeout(ctx)"),
    ),
    n.SleepNode: (("duration", 1, "duration(ctx)"),),
    n.LogNode: (("message", 1, "message(ctx)"),),
}
"""The functions of the other nodes, by field: the arguments each is called with, its shape."""
_NAMED = {"handler": "function"}
"""A field as its problem names it (a loop's or a for_each's ``handler`` is its function)."""


def _event_problems(node: n.EventNode, where: str) -> list[str]:
    """An event's name must be a string, and not a duration: Cronflow's
    ``waitForEvent(name, timeout)`` written as ``wait_for_event(name, timeout)`` would wait,
    under the step id ``name``, for an event called '1h' that never comes."""
    event = node.event
    wrong = event_name_problem(event)
    if wrong is not None:
        return [f"{where}: {wrong}"]
    if not looks_like_duration(event):
        return []
    return [
        f"{where}: the event {event!r} reads as a duration: the step's id comes first, then the "
        f"event's name, and the timeout by name: .wait_for_event({node.id!r}, 'payment.done', "
        f"timeout={event!r})"
    ]

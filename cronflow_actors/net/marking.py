"""Pure token semantics: joins, consumption on start, production per split, cancellation regions.

A marking maps condition names to token counts. Every function returns a new marking and never
changes the one it was given; the engine's WorkflowActor carries out what they compute.

Where this differs from Tasquencer (spec/tasquencer-semantics.md section 14), on purpose:
- When a condition drops to zero, only the enabled tasks after it whose join is *no longer
  satisfied* are disabled; an XOR- or OR-join task with another marked input stays enabled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

import msgspec
from mypy_extensions import mypyc_attr

from cronflow_actors.errors import InvalidRouteError
from cronflow_actors.messages.states import TaskState
from cronflow_actors.net.orjoin import is_or_join_enabled
from cronflow_actors.net.spec import (
    JoinType,
    NetSpec,
    SplitType,
    TaskSpec,
    implicit_condition_name,
)

__all__ = [
    "IDLE_STATES",
    "Route",
    "after_cancellation",
    "after_production",
    "after_start",
    "asked_after",
    "cancellation_counts",
    "enable_candidates",
    "has_or_join",
    "is_join_satisfied",
    "or_join_reads_others",
    "or_joins_to_ask",
    "production_counts",
    "resolve_routes",
    "start_counts",
    "tasks_to_disable",
]

_AND_JOIN: Final = JoinType.AND
_OR_JOIN: Final = JoinType.OR
_AND_SPLIT: Final = SplitType.AND
"""Read as every task may be enabled or completes: ``Final`` constants, where an enum member's
read goes through ``EnumType.__getattr__``'s hook (CPython 3.11: ~900 instructions)."""

Marking = Mapping[str, int]


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class Route(msgspec.Struct, frozen=True):
    """Where a router sends a token: to a successor task (through the implicit condition) or to
    a condition. Made by ``ctx.route.to_task(name)`` and ``ctx.route.to_condition(name)``."""

    kind: str  # "task" or "condition"
    name: str


def is_join_satisfied(
    spec: NetSpec,
    task: str,
    marking: Marking,
    started: Iterable[str] = (),
    idle: Iterable[str] = (),
) -> bool:
    """Whether ``task``'s join allows it to be enabled at ``marking`` (an OR-join's reads the
    ``started`` tasks and the ``idle`` ones: ``orjoin.is_or_join_enabled``)."""
    definition = spec.tasks[task]
    # loops, not all()/any() over a generator: asked as every task may be enabled, and a
    # generator is a call for each condition it yields and one more to end
    if definition.join is _AND_JOIN:
        for condition in definition.inputs:
            if marking.get(condition, 0) <= 0:
                return False
        return bool(definition.inputs)
    if definition.join is JoinType.XOR:
        for condition in definition.inputs:  # noqa: SIM110 - any() over a generator: see above
            if marking.get(condition, 0) > 0:
                return True
        return False
    return is_or_join_enabled(spec, task, marking, started, idle)


def or_join_reads_others(definition: TaskSpec, marking: Marking) -> bool:
    """Whether ``definition``'s join needs the started and idle tasks to decide at ``marking``:
    an OR-join with a marked input and an empty one (with none marked it is not enabled, with
    all marked it is). Worked out for every OR-join every completion asks, they cost a scan of
    the workflow's tasks each: a chain of 2,000 OR-joins 1 s (retest h36 R1)."""
    if definition.join is not _OR_JOIN:
        return False
    marked = sum(1 for condition in definition.inputs if marking.get(condition, 0) > 0)
    return 0 < marked < len(definition.inputs)


def after_start(spec: NetSpec, task: str, marking: Marking) -> tuple[dict[str, int], list[str]]:
    """Starting ``task`` takes one token from every input condition (clamped at zero), whatever
    its join type. Returns the new marking and the conditions that became empty."""
    counts, emptied = start_counts(spec, task, marking)
    return {**marking, **counts}, emptied


def start_counts(spec: NetSpec, task: str, marking: Marking) -> tuple[dict[str, int], list[str]]:
    """``after_start``'s change alone: the new counts of the conditions it takes a token from,
    and those it empties. The engine changes a workflow's marking by them in place
    (``Transaction.mark``): a new marking a step copied every condition the workflow ever
    marked, and a chain of n tasks cost n^2 (19,000: 3.7 s of a 6 s start)."""
    counts: dict[str, int] = {}
    emptied = []
    for condition in spec.tasks[task].inputs:
        count = counts[condition] if condition in counts else marking.get(condition, 0)
        if count > 0:
            counts[condition] = count - 1
            if count == 1:
                emptied.append(condition)
    return counts, emptied


def tasks_to_disable(
    spec: NetSpec,
    marking: Marking,
    emptied: Iterable[str],
    enabled: Iterable[str],
    *,
    started: Iterable[str] = (),
    idle: Iterable[str] = (),
) -> list[str]:
    """Enabled tasks after the emptied conditions whose join is no longer satisfied (deferred
    choice: the competitors of the task that took the shared token), in declaration order."""
    enabled_set = set(enabled)
    candidates = {t for c in emptied for t in spec.conditions[c].outputs if t in enabled_set}
    running, waiting = list(started), list(idle)
    return [
        t
        for t in spec.tasks
        if t in candidates and not is_join_satisfied(spec, t, marking, running, waiting)
    ]


def resolve_routes(spec: NetSpec, task: str, chosen: object) -> list[str]:
    """The output conditions a router's answer names, checked against the task's split type.

    XOR: exactly one ``Route``; OR: a non-empty list (or tuple) of them (none would put no
    token anywhere: the workflow would wait for good, with nothing enabled). Raises
    ``InvalidRouteError`` for anything else or for a route that is not a successor of the task.
    """
    definition = spec.tasks[task]
    if definition.split is SplitType.XOR:
        if not isinstance(chosen, Route):
            raise InvalidRouteError(spec.name, task, chosen, "an xor split takes exactly one route")
        routes: Sequence[object] = [chosen]
    else:
        if not isinstance(chosen, list | tuple):
            raise InvalidRouteError(spec.name, task, chosen, "an or split takes a list of routes")
        if not chosen:  # Tasquencer produces no token, silently: a dead end (conform h26 H2)
            raise InvalidRouteError(
                spec.name,
                task,
                chosen,
                "an or split takes at least one route (none: no task would run next)",
            )
        routes = chosen
    conditions: list[str] = []
    for route in routes:
        if not isinstance(route, Route):
            raise InvalidRouteError(
                spec.name, task, route, "use ctx.route.to_task() or ctx.route.to_condition()"
            )
        condition = (
            implicit_condition_name(task, route.name) if route.kind == "task" else route.name
        )
        if condition not in definition.outputs:
            successors = sorted(_successors(spec, task))
            raise InvalidRouteError(
                spec.name, task, route, f"not a successor of {task!r}; successors: {successors}"
            )
        if condition not in conditions:
            conditions.append(condition)
    return conditions


def _successors(spec: NetSpec, task: str) -> set[str]:
    names: set[str] = set()
    for condition in spec.tasks[task].outputs:
        definition = spec.conditions[condition]
        names.update(definition.outputs if definition.implicit else [condition])
    return names


def after_production(
    spec: NetSpec, task: str, marking: Marking, routed: Sequence[str] | None = None
) -> tuple[dict[str, int], list[str]]:
    """A completing task puts one token on each output (AND) or on the routed conditions
    (XOR/OR, from ``resolve_routes``). Returns the new marking and the conditions marked."""
    counts, targets = production_counts(spec, task, marking, routed)
    return {**marking, **counts}, targets


def production_counts(
    spec: NetSpec, task: str, marking: Marking, routed: Sequence[str] | None = None
) -> tuple[dict[str, int], list[str]]:
    """``after_production``'s change alone (as ``start_counts``): the new counts of the
    conditions marked, and those conditions."""
    definition = spec.tasks[task]
    targets = list(definition.outputs) if definition.split is _AND_SPLIT else list(routed or ())
    counts: dict[str, int] = {}
    for condition in targets:
        count = counts[condition] if condition in counts else marking.get(condition, 0)
        counts[condition] = count + 1
    return counts, targets


def after_cancellation(spec: NetSpec, task: str, marking: Marking) -> dict[str, int]:
    """The marking after ``task``'s cancellation region empties its conditions. The region's
    tasks are cancelled by the engine (``spec.tasks[task].cancel_tasks``)."""
    return {**marking, **cancellation_counts(spec, task)}


def cancellation_counts(spec: NetSpec, task: str) -> dict[str, int]:
    """``after_cancellation``'s change alone (as ``start_counts``)."""
    return dict.fromkeys(spec.tasks[task].cancel_conditions, 0)


@lru_cache(maxsize=1024)
def has_or_join(spec: NetSpec) -> bool:
    """Whether ``spec`` has an OR-join (what it asks of the others is only then needed)."""
    return any(t.join is JoinType.OR for t in spec.tasks.values())


def enable_candidates(
    spec: NetSpec,
    task: str,
    marking: Marking | None = None,
    records: Mapping[str, Any] | None = None,
) -> tuple[str, ...]:
    """The tasks to try to enable after ``task`` completed: every task after any of its output
    conditions, in declaration order, then the net's other OR-joins, then ``task`` itself (it
    re-fires if its join is still satisfied). All outputs, not only those that got a token (spec
    section 1.3 step 5): an XOR or OR split that routed elsewhere may be what an OR-join after an
    unmarked output waited for. Every OR-join, because any completion may be the one after
    which no token can reach it any more: asked only after a task feeding it (Tasquencer's and
    YAWL's rule, spec 7.4), it waited for good once the last task that could have fed it
    completed elsewhere (a task that takes its inputs' tokens as it starts, say). Not those of
    one input (only a completion before one can enable it, as an XOR-join), and with the
    ``marking`` after the completion, only those with a marked input (no other can be enabled;
    a completion that marks one asks it as a task after it). With the workflow's task
    ``records``, not those canceled or failed: as any task, such a one waits for a completion
    before it (a region that canceled one was undone by its own completion, which enabled it
    again at once: conform h37 F3)."""
    candidates = _enable_candidates(spec)
    ordered = candidates.after[task]
    if not candidates.feeds:
        return ordered
    joins = [j for j in or_joins_to_ask(spec, marking, records) if j not in ordered]
    return (*ordered[:-1], *joins, task) if joins else ordered


def or_joins_to_ask(
    spec: NetSpec, marking: Marking | None, records: Mapping[str, Any] | None = None
) -> list[str]:
    """The net's OR-joins of two or more inputs that have a marked input at ``marking`` (None:
    all of them), in declaration order, less those canceled or failed in ``records`` (the
    workflow's tasks, if given): what a completion (``enable_candidates``) or a start that
    withdrew a task (``withdrawal.disable_losers``) asks besides the tasks after it."""
    candidates = _enable_candidates(spec)
    feeds = candidates.feeds
    if not feeds:
        return []
    if marking is None:
        joins = set(candidates.position)
    elif len(marking) < len(feeds):  # (the marking keeps each condition it ever marked)
        joins = {j for c, n in marking.items() if n > 0 and c in feeds for j in feeds[c]}
    else:
        joins = {j for c, fed in feeds.items() if marking.get(c, 0) > 0 for j in fed}
    if records is not None:
        joins = {j for j in joins if j not in records or records[j].state not in IDLE_STATES}
    return sorted(joins, key=candidates.position.__getitem__)


IDLE_STATES = frozenset({TaskState.CANCELED, TaskState.FAILED})
"""A task's states in which it cannot start on the tokens it holds: it waits for a completion
before it (``withdrawal.idle_tasks``, and the OR-joins a completion asks)."""


def asked_after(spec: NetSpec, task: str) -> tuple[str, ...]:
    """The tasks ``task``'s completion asks whatever the marking: those after it, and itself
    (``enable_candidates`` less the other OR-joins). What tells an idle task about to be asked
    (``withdrawal.idle_tasks``): an idle OR-join is asked only by a completion before it."""
    return _enable_candidates(spec).after[task]


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class _Candidates(msgspec.Struct, frozen=True):
    after: dict[str, tuple[str, ...]]
    """Each task's: the tasks after it in declaration order, then itself."""
    feeds: dict[str, tuple[str, ...]]
    """The OR-joins after each condition before one."""
    position: dict[str, int]
    """The net's OR-joins, each with its place in the declaration order."""


@lru_cache(maxsize=1024)
def _enable_candidates(spec: NetSpec) -> _Candidates:
    # Every completion asks, and the answer depends on the (immutable) definition alone, so it
    # is made for every task of a net at once, by the net (a NetSpec hashes by identity). Made
    # a (net, task) pair at a time, each scanning the net's tasks, a net of n tasks in a row
    # cost n^2 steps, and past the pairs' cache (4,096) every start paid them again: 5,000
    # tasks held the loop 3 s a start and cost a PostgreSQL process its lease (hostile h36 F1).
    # The OR-joins are kept apart, not copied into each task's tuple: a net of n of them took
    # n^2 names (4,000: 16 million, 0.6 s to build; retest h36 R1).
    position = {name: index for index, name in enumerate(spec.tasks)}
    candidates: dict[str, tuple[str, ...]] = {}
    for task, definition in spec.tasks.items():
        after = {t for c in definition.outputs for t in spec.conditions[c].outputs}
        after.discard(task)
        candidates[task] = (*sorted(after, key=position.__getitem__), task)
    # one input: as an XOR-join, which only a completion before it (and its own) can enable
    or_joins = [n for n, t in spec.tasks.items() if t.join is _OR_JOIN and len(t.inputs) > 1]
    feeds: dict[str, tuple[str, ...]] = {}
    for name in or_joins:
        for condition in spec.tasks[name].inputs:
            feeds[condition] = (*feeds.get(condition, ()), name)
    return _Candidates(candidates, feeds, {name: position[name] for name in or_joins})

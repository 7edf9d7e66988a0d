"""The rules a net definition must satisfy, checked by ``WorkflowBuilder.build()``.

Each check adds a readable problem to a list and goes on, so ``build()`` reports every problem
of a definition in one ``InvalidWorkflowError``: names declared once and flows between declared
elements, one start and one end condition that nothing flows into or out of (``wiring.py``),
cancellation regions of declared elements, splits and joins that
exist and routers where a split needs one, activities and actions each element has, callables
where functions are expected, and every element on a path from the start to the end.

The checks work on what the builders recorded (names, flows, values); they never build specs
and never call the user's functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from cronflow_actors.calls import callback_problem
from cronflow_actors.messages.states import WorkItemVerb
from cronflow_actors.net.spec import (
    ActionSpec,
    ConditionSpec,
    JoinType,
    SplitType,
    TaskKind,
    WaitSpec,
)
from cronflow_actors.net.wiring import Wiring, check_boundaries, declare_names, what, wire_flows

__all__ = [
    "TASK_ACTIVITIES",
    "WORKFLOW_ACTIONS",
    "WORKFLOW_ACTIVITIES",
    "WORK_ITEM_ACTIONS",
    "WORK_ITEM_ACTIVITIES",
    "Wiring",
    "check_action",
    "check_activities",
    "check_boundaries",
    "check_callable",
    "check_reachability",
    "check_task",
    "check_task_children",
    "check_work_item",
    "check_workflow_actions",
    "declare_names",
    "reach",
    "regions_by_task",
    "schema_problem",
    "single",
    "wire_flows",
]

WORKFLOW_ACTIVITIES = frozenset(
    {"on_initialized", "on_migrated", "on_started", "on_completed", "on_failed", "on_canceled"}
)
"""``on_migrated`` is ours: a migrated root's start runs it where ``on_initialized`` would run
(spec section 9 runs no ``on_initialized`` there); what an instance must have from its start in
every version (a deadline of its own) it registers again."""
_TASK_COMMON = frozenset(
    {"on_enabled", "on_started", "on_completed", "on_failed", "on_canceled", "on_disabled"}
)
TASK_ACTIVITIES: Mapping[TaskKind, frozenset[str]] = {
    TaskKind.TASK: _TASK_COMMON | {"on_work_item_state_changed"},
    TaskKind.COMPOSITE: _TASK_COMMON | {"on_workflow_state_changed"},
    TaskKind.DYNAMIC_COMPOSITE: _TASK_COMMON | {"on_workflow_state_changed"},
    TaskKind.DUMMY: _TASK_COMMON,
}
WORK_ITEM_ACTIVITIES = frozenset(
    {"on_initialized", "on_started", "on_completed", "on_failed", "on_canceled", "on_reset"}
)
WORK_ITEM_ACTIONS = frozenset({"initialize", *(str(verb) for verb in WorkItemVerb)})
WORKFLOW_ACTIONS = frozenset({"initialize", "cancel"})

_BUILT_AS = {
    TaskKind.TASK: "net.task(work_item or handler)",
    TaskKind.COMPOSITE: "net.composite_task(child_net)",
    TaskKind.DYNAMIC_COMPOSITE: "net.dynamic_composite_task([nets])",
    TaskKind.DUMMY: "net.dummy_task() (its .split(...), .join(...) as net.task()'s)",
}
"""How a task of each kind is built, with what it needs (``net.task()`` alone waits for a
caller: no one may start it without an action)."""

_KIND_METHOD = {
    TaskKind.TASK: "task",
    TaskKind.COMPOSITE: "composite_task",
    TaskKind.DYNAMIC_COMPOSITE: "dynamic_composite_task",
    TaskKind.DUMMY: "dummy_task",
}


def check_callable(
    value: Any, what: str, problems: list[str], shape: str = "fn(ctx)", arity: int = 1
) -> None:
    """``value`` (if given) must be a function that takes ``arity`` arguments, as in ``shape``:
    one written for another shape failed each run that reached it (devx h40 F3, F4)."""
    if value is None:
        return
    if not callable(value):
        problems.append(f"{what} must be a function or coroutine function, got {value!r}")
    elif (said := callback_problem(value, arity, what, shape)) is not None:
        problems.append(said)


def check_activities(
    owner: str, given: Mapping[str, Any], allowed: frozenset[str], problems: list[str]
) -> None:
    for name, fn in given.items():
        if name not in allowed:
            problems.append(f"{owner} has no activity {name!r}; activities: {sorted(allowed)}")
        else:
            check_callable(fn, f"{owner} activity {name!r}", problems, f"{name}(ctx)")


# -- work items and workflows' own parts ---------------------------------------------------------


def check_work_item(
    name: Any,
    *,
    handler: Any,
    actions: Mapping[str, Any],
    activities: Mapping[str, Any],
    wait: Any,
    detached: bool,
    problems: list[str],
) -> None:
    """A work item type: its name, handler, actions, activities and what it waits for."""
    owner = f"work item {name!r}"
    if not isinstance(name, str) or not name:
        problems.append(f"a work item needs a non-empty name, got {name!r}")
    check_callable(handler, f"{owner} handler", problems, "handler(ctx)")
    for action, spec in actions.items():
        if action not in WORK_ITEM_ACTIONS:
            problems.append(
                f"{owner} has no action {action!r}; actions: {sorted(WORK_ITEM_ACTIONS)}"
            )
        elif not isinstance(spec, ActionSpec):
            problems.append(f"{owner} action {action!r} must be declared with net.action(...)")
        else:
            check_action(spec, f"{owner} action {action!r}", problems)
    check_activities(owner, activities, WORK_ITEM_ACTIVITIES, problems)
    if wait is None:
        return
    if not isinstance(wait, WaitSpec) or wait.kind not in ("event", "pause"):
        problems.append(f"{owner} wait must be a WaitSpec of kind 'event' or 'pause'")
    elif wait.kind == "event" and not wait.event:
        problems.append(f"{owner} waits for an event but names none")
    else:
        check_callable(wait.accept, f"{owner} event filter", problems, "accept(ctx, payload)", 2)
        check_callable(wait.check, f"{owner} event check", problems, "check(ctx, payload)", 2)
        check_callable(wait.details, f"{owner} wait details", problems)
    if handler is not None or detached:
        problems.append(f"{owner} has a handler, so it cannot also wait")


def check_workflow_actions(workflow: str, actions: Mapping[str, Any], problems: list[str]) -> None:
    for name, spec in actions.items():
        if name not in WORKFLOW_ACTIONS:
            problems.append(
                f"workflow {workflow!r} has no action {name!r}; actions: {sorted(WORKFLOW_ACTIONS)}"
            )
        elif not isinstance(spec, ActionSpec):
            problems.append(f"workflow action {name!r} must be declared with net.action(...)")
        else:
            check_action(spec, f"workflow {workflow!r} action {name!r}", problems)


def check_action(spec: ActionSpec, where: str, problems: list[str]) -> None:
    """A custom action's schema (one msgspec converts a payload to, and the API document
    shows), policy and callback (each called ``(ctx, payload)``). A dict as the schema was
    taken, and every call then raised msgspec's bare TypeError (devx h40 F5)."""
    if spec.schema is not None and (said := schema_problem(spec.schema, where)) is not None:
        problems.append(said)
    check_callable(spec.policy, f"{where} policy", problems, "policy(ctx, payload)", 2)
    check_callable(spec.callback, f"{where} callback", problems, "callback(ctx, payload)", 2)


def schema_problem(schema: Any, where: str) -> str | None:
    """What is wrong with ``schema`` as a payload schema (something msgspec converts JSON to:
    a ``msgspec.Struct``, a dataclass, a TypedDict, ``dict[str, int]``...), or None."""
    try:
        msgspec.json.schema(schema)
    except (TypeError, ValueError) as error:
        reason = str(error).strip().splitlines()[-1]  # msgspec's first lines are hints
        return (
            f"{where}: schema {schema!r} cannot check JSON ({reason}); use a msgspec.Struct, "
            "a dataclass, a TypedDict or a type such as dict[str, int]"
        )
    return None


# -- names and flows -----------------------------------------------------------------------------


def single(what: str, names: list[str], method: str, problems: list[str]) -> str | None:
    """The one start (or end) condition: None when there is none."""
    if not names:
        problems.append(f"the workflow has no {what}; declare one with .{method}(name)")
        return None
    if len(names) > 1:
        problems.append(f"the workflow declares {len(names)} {what}s {names}; it needs one")
    return names[-1]


def regions_by_task(
    regions: Iterable[tuple[str, tuple[str, ...], tuple[str, ...]]],
    declared: Mapping[str, str],
    conditions: set[str],
    *,
    start: str | None,
    end: str | None,
    problems: list[str],
) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Each cancellation region's tasks and conditions, by the task whose completion cancels
    them."""
    found: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for trigger, tasks, region_conditions in regions:
        where = f"cancellation_region({trigger!r})"
        if declared.get(trigger) != "task":
            problems.append(f"{where}: {trigger!r} is {what(declared.get(trigger))}")
            continue
        if trigger in found:
            problems.append(f"{where} is declared twice; give all its elements in one call")
            continue
        for name in tasks:
            if declared.get(name) != "task":
                problems.append(f"{where}: {name!r} is not a declared task")
            elif name == trigger:
                problems.append(f"{where}: a task cannot be in its own cancellation region")
        for name in region_conditions:
            if name not in conditions:
                problems.append(f"{where}: {name!r} is not a condition of the workflow")
            elif name in (start, end):
                problems.append(f"{where}: the start and end conditions cannot be cancelled")
        found[trigger] = (
            frozenset(t for t in tasks if t != trigger),
            frozenset(region_conditions),
        )
    return found


# -- tasks ---------------------------------------------------------------------------------------


def check_task(
    name: str,
    *,
    kind: TaskKind,
    declared_as: TaskKind,
    split: Any,
    join: Any,
    router: Any,
    policy: Any,
    reduce: Any,
    activities: Mapping[str, Any],
    wiring: Wiring,
    problems: list[str],
) -> tuple[SplitType | None, JoinType | None]:
    """A task's shape: its kind, split and join (returned, None when unknown), router, policy,
    reducer, activities and flows."""
    where = f"task {name!r}"
    if kind is not declared_as:
        declared, built = _KIND_METHOD[declared_as], _KIND_METHOD[kind]
        # A dummy written on either side is the one meant: .dummy_task() with net.task(), or
        # .task() with net.dummy_task().join(): the other way built a task nobody starts, the
        # instance stuck (newcomer h33 F1, review h33 F9, retest h33 F8)
        mend = f"build it with {_BUILT_AS[declared_as]}"
        declare = f"declare it with .{built}()"
        first, then = (declare, mend) if kind is TaskKind.DUMMY else (mend, declare)
        problems.append(
            f"{where} is declared with .{declared}() but built with net.{built}(): {first}, or "
            f"{then}"
        )
    split_type = _enum(SplitType, split, f"{where} split", problems)
    join_type = _enum(JoinType, join, f"{where} join", problems)
    if split_type in (SplitType.XOR, SplitType.OR) and router is None:
        problems.append(f"{where} has a {split_type.value} split but no router; add .route(fn)")
    if split_type is SplitType.AND and router is not None:
        problems.append(f"{where} has a router but an and split; routers serve xor and or")
    check_callable(router, f"{where} router", problems, "route(ctx)")
    check_callable(policy, f"{where} policy", problems, "policy(ctx)")
    check_callable(reduce, f"{where} output reducer", problems, "reduce(children)")
    check_activities(where, activities, TASK_ACTIVITIES[kind], problems)
    if not wiring.inputs.get(name):
        problems.append(f"{where} has no incoming flow; connect a condition or task to it")
    if not wiring.outputs.get(name):
        problems.append(f"{where} has no outgoing flow; connect it with .connect_task()")
    return split_type, join_type


def check_task_children(
    where: str,
    *,
    kind: TaskKind,
    names: list[str],
    given: int,
    activities: Mapping[str, Any],
    problems: list[str],
) -> None:
    """A dynamic composite task's child workflows: at least one, each name once, and an
    ``on_enabled`` activity to pick them."""
    if kind is not TaskKind.DYNAMIC_COMPOSITE:
        return
    if not given:
        problems.append(f"{where}: a dynamic composite task needs at least one workflow")
    if len(set(names)) != len(names):
        problems.append(f"{where}: child workflow names must be unique, got {names}")
    if "on_enabled" not in activities:
        problems.append(
            f"{where}: a dynamic composite task needs an on_enabled activity that picks "
            "its child workflows with ctx.workflow.initialize(name, payload)"
        )


def _enum(
    kind: type[SplitType] | type[JoinType], value: Any, what: str, problems: list[str]
) -> Any:
    try:
        return kind(value)
    except ValueError:
        problems.append(f"{what} is {value!r}; use one of {[m.value for m in kind]}")
        return None


# -- the whole net -------------------------------------------------------------------------------


def check_reachability(
    start: str,
    end: str,
    conditions: Mapping[str, ConditionSpec],
    wiring: Wiring,
    problems: list[str],
) -> None:
    """Every task and declared condition lies on a path from the start to the end condition
    (a task without an incoming or an outgoing flow is said so already: not again here)."""
    forward: dict[str, list[str]] = {c: list(conditions[c].outputs) for c in conditions}
    backward: dict[str, list[str]] = {c: list(conditions[c].inputs) for c in conditions}
    for name in wiring.outputs:
        forward[name] = list(wiring.outputs[name])
        backward[name] = list(wiring.inputs[name])
    from_start = reach(start, forward)
    to_end = reach(end, backward)
    for name in [*wiring.outputs, *(c for c in conditions if not conditions[c].implicit)]:
        task = name in wiring.outputs  # (one with no flow in, or out, is said so already)
        if name not in from_start:
            if not task or wiring.inputs.get(name):
                problems.append(f"{name!r} cannot be reached from the start condition {start!r}")
        elif name not in to_end and (not task or wiring.outputs[name]):
            problems.append(f"{name!r} cannot reach the end condition {end!r}")


def reach(origin: str, edges: Mapping[str, list[str]]) -> set[str]:
    """The nodes ``edges`` lead to from ``origin``, ``origin`` among them."""
    found = {origin}
    todo = [origin]
    while todo:
        for following in edges.get(todo.pop(), ()):
            if following not in found:
                found.add(following)
                todo.append(following)
    return found

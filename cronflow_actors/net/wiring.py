"""How a net definition's flows become each task's input and output conditions, as
``WorkflowBuilder.build()`` checks them (``validation.py`` has the other rules): each name
declared once; condition -> task, task -> task (through an implicit condition named
``{from}__to__{to}``, which must name no other condition: a declared one or another flow's) and
task -> condition flows between declared elements; nothing into the start condition or out of
the end one. Each problem is added to a list, as ``validation.py``'s are."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from cronflow_actors.net.spec import ConditionSpec, implicit_condition_name

__all__ = ["Wiring", "check_boundaries", "declare_names", "what", "wire_flows"]


def declare_names(
    conditions: Iterable[Any], tasks: Iterable[Any], problems: list[str]
) -> dict[str, str]:
    """Each declared name and what it names (``"condition"`` or ``"task"``), each once."""
    declared: dict[str, str] = {}
    for kind, names in (("condition", conditions), ("task", tasks)):
        for name in names:
            if not isinstance(name, str) or not name:
                problems.append(f"a {kind} needs a non-empty name, got {name!r}")
            elif name in declared:
                problems.append(
                    f"the name {name!r} is declared twice (as {declared[name]} and {kind})"
                )
            else:
                declared[name] = kind
    return declared


def what(kind: str | None) -> str:
    """A name's kind as a problem says it: ``"a task"``, ``"not declared"``."""
    return "not declared" if kind is None else f"a {kind}"


class Wiring(msgspec.Struct, kw_only=True):
    """The flows of a definition resolved into each task's input and output conditions."""

    inputs: dict[str, list[str]]
    outputs: dict[str, list[str]]
    implicit: list[str] = msgspec.field(default_factory=list)
    """The conditions that task -> task flows create, in the order of the flows."""

    def conditions(self, declared: Mapping[str, str]) -> dict[str, ConditionSpec]:
        """Every condition, declared then implicit, with the tasks on either side of it."""
        names = [n for n, k in declared.items() if k == "condition"] + self.implicit
        # each condition's tasks in task order, from one pass over the flows (a scan of every
        # task per condition made a net of 4,000 tasks take 2 s to build: retest h36 R1)
        feeding, fed = _by_condition(self.outputs), _by_condition(self.inputs)
        implicit = set(self.implicit)
        return {
            c: ConditionSpec(
                name=c,
                implicit=c in implicit,
                inputs=tuple(feeding.get(c, ())),
                outputs=tuple(fed.get(c, ())),
            )
            for c in names
        }


def _by_condition(flows: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The tasks of ``flows`` (task -> conditions) by condition, each task once, in task order."""
    tasks: dict[str, list[str]] = {}
    for task, conditions in flows.items():
        for condition in dict.fromkeys(conditions):
            tasks.setdefault(condition, []).append(task)
    return tasks


def wire_flows(
    flows: Iterable[tuple[str, str, str]],
    declared: Mapping[str, str],
    tasks: Iterable[Any],
    problems: list[str],
) -> Wiring:
    """Check each ``(method, source, target)`` flow and wire it: condition -> task, task -> task
    (through an implicit condition), task -> condition."""
    wiring = Wiring(inputs={t: [] for t in tasks}, outputs={t: [] for t in tasks})
    seen: set[tuple[str, str]] = set()
    made: dict[str, tuple[str, str]] = {}  # implicit condition -> its flow (h42 net F2)
    for method, source, target in flows:
        if not target:
            problems.append(f"{method}({source!r}) names no target")
            continue
        if (source, target) in seen:
            problems.append(f"the flow {source!r} -> {target!r} is declared twice")
            continue
        seen.add((source, target))
        source_kind, target_kind = declared.get(source), declared.get(target)
        if method == "connect_condition":
            _wire_condition(wiring, source, target, declared, problems)
        elif source_kind != "task":
            problems.append(
                f"{method}({source!r}, ...) needs a task, but {source!r} is {what(source_kind)}"
            )
        elif target_kind == "task":
            condition = implicit_condition_name(source, target)
            if condition in declared:
                problems.append(
                    f"the flow {source!r} -> {target!r} needs the implicit condition "
                    f"{condition!r}, but that name is already declared"
                )
                continue
            if condition in made:  # (wired all the same: refused once, not as unconnected)
                problems.append(
                    "the flows {!r} -> {!r} and ".format(*made[condition])
                    + f"{source!r} -> {target!r} both need the implicit condition "
                    f"{condition!r}: rename a task, or route one through a condition of its own"
                )
            else:
                made[condition] = (source, target)
                wiring.implicit.append(condition)
            wiring.outputs[source].append(condition)
            wiring.inputs[target].append(condition)
        elif target_kind == "condition":
            wiring.outputs[source].append(target)
        else:
            problems.append(
                f"connect_task({source!r}, ...) names {target!r}, which is {what(target_kind)}"
            )
    return wiring


def _wire_condition(
    wiring: Wiring, source: str, target: str, declared: Mapping[str, str], problems: list[str]
) -> None:
    source_kind, target_kind = declared.get(source), declared.get(target)
    if source_kind != "condition":
        problems.append(
            f"connect_condition({source!r}, ...) needs a condition, but {source!r} is "
            f"{what(source_kind)}"
        )
    if target_kind != "task":
        problems.append(
            f"connect_condition({source!r}, ...) names {target!r}, "
            f"which is {what(target_kind)}; a condition flows into tasks"
        )
    if source_kind == "condition" and target_kind == "task":
        wiring.inputs[target].append(source)


def check_boundaries(
    start: str | None, end: str | None, wiring: Wiring, conditions: set[str], problems: list[str]
) -> None:
    """Nothing flows into the start condition, nor out of the end condition."""
    if start is not None and start in conditions:
        for name, targets in wiring.outputs.items():
            if start in targets:
                problems.append(f"task {name!r} flows into the start condition {start!r}")
    if end is not None and end in conditions:
        for name, sources in wiring.inputs.items():
            if end in sources:
                problems.append(f"the end condition {end!r} flows into task {name!r}")

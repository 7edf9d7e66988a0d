"""Compact net descriptions for tests of the pure net layer (the builder has its own tests)."""

from __future__ import annotations

from collections import defaultdict

from cronflow_actors.net.spec import (
    ConditionSpec,
    JoinType,
    NetSpec,
    SplitType,
    TaskSpec,
    implicit_condition_name,
)


def make_net(
    tasks: dict[str, str],
    flows: list[tuple[str, str]],
    *,
    conditions: tuple[str, ...] = (),
    start: str = "start",
    end: str = "end",
    cancel: dict[str, tuple[str, ...]] | None = None,
) -> NetSpec:
    """``tasks`` maps a name to "join/split" (e.g. "or/and"); ``flows`` are (from, to) pairs
    between tasks and conditions; task -> task flows get implicit conditions."""
    condition_names = {start, end, *conditions}
    inputs: dict[str, list[str]] = defaultdict(list)
    outputs: dict[str, list[str]] = defaultdict(list)
    implicit: set[str] = set()
    for source, target in flows:
        if source in tasks and target in tasks:
            c = implicit_condition_name(source, target)
            implicit.add(c)
            outputs[source].append(c)
            inputs[target].append(c)
        elif source in tasks:
            outputs[source].append(target)
        else:
            inputs[target].append(source)
    condition_names |= implicit
    regions = cancel or {}
    task_specs = {}
    for name, gates in tasks.items():
        join, split = gates.split("/")
        region = regions.get(name, ())
        task_specs[name] = TaskSpec(
            name=name,
            join=JoinType(join),
            split=SplitType(split),
            inputs=tuple(inputs[name]),
            outputs=tuple(outputs[name]),
            cancel_tasks=frozenset(r for r in region if r in tasks),
            cancel_conditions=frozenset(r for r in region if r not in tasks),
        )
    condition_specs = {
        c: ConditionSpec(
            name=c,
            implicit=c in implicit,
            inputs=tuple(t for t in tasks if c in outputs[t]),
            outputs=tuple(t for t in tasks if c in inputs[t]),
        )
        for c in sorted(condition_names)
    }
    return NetSpec(name="test", start=start, end=end, conditions=condition_specs, tasks=task_specs)


def loop_net(*, with_region: bool = True) -> NetSpec:
    """Tasquencer's or-join-loop-cancellation-region net (optionally without C's region)."""
    return make_net(
        {"A": "and/and", "B": "and/and", "C": "and/and", "D": "and/and", "E": "or/and"},
        [
            ("start", "A"),
            ("A", "c1"),
            ("c1", "B"),
            ("B", "c2"),
            ("c2", "C"),
            ("c2", "E"),
            ("C", "c3"),
            ("c3", "D"),
            ("c3", "E"),
            ("D", "c1"),
            ("D", "c2"),
            ("E", "end"),
        ],
        conditions=("c1", "c2", "c3"),
        cancel={"C": ("B", "c1", "c2")} if with_region else None,
    )

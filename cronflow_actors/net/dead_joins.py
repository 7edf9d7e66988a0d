"""A task that can never start: an AND-join with an input that only its own completion can
mark (a loop back to it), which left its net ``initialized`` for good with nothing said
(newcomer h36 F3). Checked by ``WorkflowBuilder.build`` beside ``validation``'s checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cronflow_actors.net.spec import ConditionSpec, JoinType
from cronflow_actors.net.validation import reach

__all__ = ["check_and_joins"]


def check_and_joins(
    start: str,
    conditions: Mapping[str, ConditionSpec],
    tasks: Mapping[str, Any],
    problems: list[str],
) -> None:
    """Every input of an AND-join can be marked before the task first starts: one marked only
    by the task's own completion (a loop back to it) leaves it waiting for good, the net
    ``initialized`` with nothing said (newcomer h36 F3). Reached as if every other task could
    start, so what is said is never startable, whatever runs."""
    edges: dict[str, list[str]] = {c: list(conditions[c].outputs) for c in conditions}
    edges.update({t: list(task.outputs) for t, task in tasks.items()})
    loops = _components(edges)  # (an input marked only after the task is on a loop with it:
    for name, task in tasks.items():  # the others are not searched, review h36 F5)
        if task.join is not JoinType.AND or len(task.inputs) < 2:
            continue  # (an only input marked after it: cannot be reached, said above)
        if all(loops.get(c) != loops.get(name) for c in task.inputs):
            continue
        reached = reach(start, {**edges, name: []})
        late = [c for c in task.inputs if c not in reached]
        if late:
            problems.append(
                f"task {name!r} joins its inputs with AND (the default), and "
                f"{', '.join(map(repr, late))} is marked only once {name!r} itself has "
                f"completed: it can never start. Give it .join('xor') (any input starts it) or "
                ".join('or')"
            )


def _components(edges: Mapping[str, list[str]]) -> dict[str, int]:
    """The strongly connected component of each node of ``edges`` (Tarjan's, without
    recursion: a net may have thousands of tasks in a row)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, following = work[-1]
            for target in following:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    work.append((target, iter(edges.get(target, ()))))
                    break
                if target not in component:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    while True:
                        member = stack.pop()
                        component[member] = index[node]  # (its root's index names it)
                        if member == node:
                            break
    return component

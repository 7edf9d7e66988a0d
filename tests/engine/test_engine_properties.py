"""Random actions on random small nets: the engine's invariants hold at every step.

- no condition ever holds a negative number of tokens;
- every state change reported moves along its element's transition table;
- a task's stats match the states of its work items;
- a finished workflow has no enabled or started task and no open work item.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.engine.states import (
    TASK_TRANSITIONS,
    WORK_ITEM_TRANSITIONS,
    WORKFLOW_TRANSITIONS,
)
from cronflow_actors.messages.engine import (
    TaskStateChanged,
    WorkflowStateChanged,
    WorkItemStateChanged,
)

GATES = ["and", "xor", "or"]


@st.composite
def random_nets(draw: st.DrawFn) -> net.NetSpec:
    """A net of 2-6 tasks where each task takes input from the start or earlier tasks and
    gives output to later tasks or the end, with random join and split types."""
    count = draw(st.integers(2, 6))
    names = [f"t{i}" for i in range(count)]
    builder = net.workflow("random").start_condition("start").end_condition("end")
    outputs: dict[str, list[str]] = {n: [] for n in names}
    inputs: dict[str, list[str]] = {n: [] for n in names}
    for index, name in enumerate(names):
        sources = ["start", *names[:index]]
        chosen = draw(st.lists(st.sampled_from(sources), min_size=1, max_size=2, unique=True))
        for source in chosen:
            inputs[name].append(source)
            if source != "start":
                outputs[source].append(name)
    for name in names:
        if not outputs[name] or draw(st.booleans()):
            outputs[name].append("end")
    for name in names:
        join = draw(st.sampled_from(GATES)) if len(inputs[name]) > 1 else "and"
        split = draw(st.sampled_from(GATES)) if len(outputs[name]) > 1 else "and"
        task = net.task().join(join).split(split)
        targets = outputs[name]
        if split != "and":
            pick = draw(st.integers(0, 10))

            def router(
                ctx: Any, targets: list[str] = targets, pick: int = pick, split: str = split
            ) -> Any:
                routes = [
                    ctx.route.to_condition(t) if t == "end" else ctx.route.to_task(t)
                    for t in targets
                ]
                choice = (pick + ctx.task.generation) % len(routes)
                return routes[choice] if split == "xor" else routes[: choice + 1]

            task = task.route(router)
        builder.task(name, task)
    for name in names:
        for source in inputs[name]:
            if source == "start":
                builder.connect_condition("start", name)
        builder.connect_task(name, *outputs[name])
    return builder.build()


ACTIONS = ["start", "complete", "fail", "cancel", "reset"]


def check_changes(changes: list[Any]) -> None:
    for change in changes:
        if isinstance(change, WorkItemStateChanged):
            table = WORK_ITEM_TRANSITIONS
        elif isinstance(change, TaskStateChanged):
            table = TASK_TRANSITIONS
        else:
            assert isinstance(change, WorkflowStateChanged)
            table = WORKFLOW_TRANSITIONS
        if change.prev is None:
            assert change.next == "initialized", change
        else:
            assert change.next in table[change.prev], change


async def check_invariants(rt: cf.Runtime, wid: str) -> None:
    marking = await rt.marking(wid)
    assert all(tokens >= 0 for tokens in marking.values()), marking
    tasks = await rt.task_states(wid)
    items_by_task = {task: await rt.work_items(wid, task) for task in tasks}
    for task, items in items_by_task.items():
        stats = await rt.task_stats(wid, task)
        assert stats.total == len(items)
        for state in ("initialized", "started", "completed", "failed", "canceled"):
            assert getattr(stats, state) == sum(1 for i in items if i.state == state), (task, stats)
    if (await rt.workflow_state(wid)) in ("completed", "failed", "canceled"):
        assert not [t for t, s in tasks.items() if s in ("enabled", "started")], tasks
        assert all(
            i.state in ("completed", "failed", "canceled")
            for items in items_by_task.values()
            for i in items
        )


async def drive(spec: net.NetSpec, choices: list[tuple[int, int]]) -> None:
    changes: list[Any] = []
    async with cf.Runtime(db=":memory:", workflows=[spec]) as rt:
        rt.observe(changes.extend)
        wid = await rt.start_workflow("random")
        for pick, action_index in choices:
            check_changes(changes)
            changes.clear()
            await check_invariants(rt, wid)
            if (await rt.workflow_state(wid)) not in ("initialized", "started"):
                break
            open_items = [
                item
                for task in (await rt.task_states(wid))
                for item in await rt.work_items(wid, task)
                if item.state in ("initialized", "started")
            ]
            if not open_items:
                break
            item = open_items[pick % len(open_items)]
            action = ACTIONS[action_index % len(ACTIONS)]
            if item.state == "initialized":
                action = "cancel" if action == "cancel" else "start"
            elif action == "start":
                action = "complete"
            await getattr(rt, f"{action}_work_item")(item.id)
        check_changes(changes)
        await check_invariants(rt, wid)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=random_nets(),
    choices=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=25),
)
def test_random_actions_keep_the_engine_invariants(
    spec: net.NetSpec, choices: list[tuple[int, int]]
) -> None:
    asyncio.run(drive(spec, choices))

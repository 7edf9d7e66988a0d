"""Building nets and driving work items in engine tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.net.builder import TaskBuilder


def build(
    name: str,
    tasks: Mapping[str, TaskBuilder],
    flows: Iterable[tuple[str, str]],
    *,
    conditions: Iterable[str] = (),
    regions: Mapping[str, Iterable[str]] | None = None,
    version: str = "v1",
    activities: Mapping[str, Any] | None = None,
    actions: Mapping[str, Any] | None = None,
) -> net.NetSpec:
    """A net from ``tasks`` and ``(source, target)`` flows; a source that is not a task is a
    condition. ``regions`` maps a task to the tasks and conditions its completion cancels."""
    condition_names = list(conditions)
    builder = net.workflow(name, version=version).start_condition("start").end_condition("end")
    for condition in condition_names:
        builder.condition(condition)
    for task_name, task_builder in tasks.items():
        if task_builder.kind is net.TaskKind.COMPOSITE:
            builder.composite_task(task_name, task_builder)
        elif task_builder.kind is net.TaskKind.DYNAMIC_COMPOSITE:
            builder.dynamic_composite_task(task_name, task_builder)
        elif task_builder.kind is net.TaskKind.DUMMY:
            builder.dummy_task(task_name, task_builder)
        else:
            builder.task(task_name, task_builder)
    for source, target in flows:
        if source in tasks:
            builder.connect_task(source, target)
        else:
            builder.connect_condition(source, target)
    for trigger, region in (regions or {}).items():
        members = list(region)
        builder.cancellation_region(
            trigger,
            tasks=[m for m in members if m in tasks],
            conditions=[m for m in members if m not in tasks],
        )
    if activities:
        builder.activities(**activities)
    if actions:
        builder.actions(**actions)
    return builder.build()


def manual(*names: str) -> dict[str, TaskBuilder]:
    return {n: net.task() for n in names}


async def states(rt: cf.Runtime, workflow_id: str) -> dict[str, str]:
    return {task: str(state) for task, state in (await rt.task_states(workflow_id)).items()}


async def enabled(rt: cf.Runtime, workflow_id: str) -> set[str]:
    return {t for t, s in (await states(rt, workflow_id)).items() if s == "enabled"}


async def open_item(rt: cf.Runtime, workflow_id: str, task: str) -> cf.WorkItemInfo:
    """The one open work item of ``task``'s latest generation."""
    items = [
        i for i in await rt.work_items(workflow_id, task) if i.state in ("initialized", "started")
    ]
    assert len(items) == 1, items
    return items[0]


async def run(rt: cf.Runtime, workflow_id: str, task: str, output: Any = None) -> str:
    """Start (if needed) and complete the open work item of ``task``."""
    item = await open_item(rt, workflow_id, task)
    if item.state == "initialized":
        await rt.start_work_item(item.id)
    await rt.complete_work_item(item.id, output)
    return item.id


async def refused_completion(
    rt: cf.Runtime, workflow_id: str, task: str, error: type[Exception], match: str
) -> str:
    """Start the open work item of ``task`` and check its completion is refused with ``error``
    (matching ``match``) and leaves it started: what a refusal changes is nothing."""
    item = await open_item(rt, workflow_id, task)
    await rt.start_work_item(item.id)
    with pytest.raises(error, match=match):
        await rt.complete_work_item(item.id)
    assert (await rt.work_item(item.id)).state == "started"
    return item.id

"""A net instance that can never move again: a started workflow of it with no task enabled or
started, no timer or action of its own out, its tokens in conditions that enable nothing (an
AND-join one of whose inputs a deferred choice withdrew, say). Nothing in the engine can end it
but a cancel or a migration; it read ``waiting`` like a healthy run (newcomer h28 F5). The
commit that leaves it so says so, once, with where its tokens are."""

from __future__ import annotations

import logging
from typing import Any

from cronflow_actors.messages.engine import (
    TaskStateChanged,
    WorkflowStateChanged,
    WorkItemStateChanged,
)
from cronflow_actors.messages.instance_state import InstanceState
from cronflow_actors.messages.states import TaskState, WorkflowState

__all__ = ["warn_if_stuck"]

logger = logging.getLogger("cronflow_actors.engine.workflow_actor")

_MOVING = frozenset({TaskState.ENABLED, TaskState.STARTED})
_CHANGES = (WorkflowStateChanged, TaskStateChanged, WorkItemStateChanged)


def warn_if_stuck(actor: Any, state: InstanceState, changes: list[Any]) -> None:
    """Log a WARNING when a started workflow of ``state`` (committed as waiting) that this
    commit changed (``changes``: a workflow's own, or its tasks' or items') can never move
    again: one that became so is changed by the commit that left it so, and is said once; one
    the commit did not touch is not looked at (a fan-out of a thousand item flows is not walked
    at each commit: the reviewer's h28 M3). The first task enabled or started ends the look."""
    touched = {change.workflow_id for change in changes if isinstance(change, _CHANGES)}
    for workflow_id in touched:
        workflow = state.workflows.get(workflow_id)
        if workflow is None or workflow.state != WorkflowState.STARTED:
            continue
        if any(task.state in _MOVING for task in workflow.tasks.values()):
            continue
        if _held_up(state, workflow_id):  # a timer, an action or a kept event may move it
            continue
        tokens = sorted(name for name, count in workflow.marking.items() if count)
        logger.warning(
            "%s: workflow %r (%s) can never move again: none of its tasks is enabled or "
            "started, and its tokens are in %s, which enable nothing; check its net (a join "
            "waiting for a branch a deferred choice withdrew or a region canceled, or two "
            "OR-joins waiting for each other?), then cancel or migrate the run",
            actor,
            workflow.name,
            workflow.id,
            ", ".join(tokens) or "no condition",
        )
        return


def _held_up(state: InstanceState, workflow_id: str) -> bool:
    """Whether something still out may move workflow ``workflow_id``: a timer of its own (of
    it, a task of it or an item of it), an action of an item of it, an event kept for it. The
    run's others' do not (the second verifier's h28: a sibling's timer hid a stuck child)."""
    items = state.work_items
    for job in state.jobs.values():
        kind, _, rest = job.owner.partition("/")  # (``engine/owners.py``: "kind/id/...")
        element = rest.split("/", 1)[0]
        item = items.get(element) if kind == "work_item" else None
        owner = item.workflow_id if item is not None else element
        if owner == workflow_id:
            return True
    for action in state.actions.values():
        item = items.get(action.work_item_id)
        if item is None or item.workflow_id == workflow_id:
            return True
    for event in state.kept or ():
        item = items.get(event.work_item_id)
        if item is None or item.workflow_id == workflow_id:
            return True
    return False

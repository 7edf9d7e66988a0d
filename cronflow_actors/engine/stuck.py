"""A net instance that can never move again: a started workflow of it with no task enabled or
started, no timer or action out, its tokens in conditions that enable nothing (an AND-join one
of whose inputs a deferred choice withdrew, say). Nothing in the engine can end it but a cancel
or a migration; it read ``waiting`` like a healthy run (newcomer h28 F5). The commit that leaves
it so says so, once, with where its tokens are."""

from __future__ import annotations

import logging
from typing import Any

from cronflow_actors.messages.instance_state import InstanceState
from cronflow_actors.messages.states import TaskState, WorkflowState

__all__ = ["warn_if_stuck"]

logger = logging.getLogger("cronflow_actors.engine.workflow_actor")

_MOVING = frozenset({TaskState.ENABLED, TaskState.STARTED})


def warn_if_stuck(actor: Any, state: InstanceState) -> None:
    """Log a WARNING when a started workflow of ``state`` (committed as waiting) can never move
    again. Cheap for a run that can: the first task enabled or started ends the look."""
    if state.jobs or state.actions or state.kept:
        return  # a timer, an action or a kept event may move it
    for workflow in state.workflows.values():
        if workflow.state != WorkflowState.STARTED:
            continue
        if any(task.state in _MOVING for task in workflow.tasks.values()):
            continue
        tokens = sorted(name for name, count in workflow.marking.items() if count)
        logger.warning(
            "%s: workflow %r (%s) can never move again: none of its tasks is enabled or "
            "started, and its tokens are in %s, which enable nothing; check its net (a join "
            "waiting for a branch a deferred choice withdrew?), then cancel or migrate the run",
            actor,
            workflow.name,
            workflow.id,
            ", ".join(tokens) or "no condition",
        )
        return

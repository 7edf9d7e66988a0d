"""What a run's successor keeps of it: the outputs of the steps it completed, by step (a
migration's new run of a flow, a resume of a failed or canceled run)."""

from __future__ import annotations

from typing import Any

from cronflow_actors.engine.states import TaskState
from cronflow_actors.flow.compile import is_user_step
from cronflow_actors.messages.engine import InstanceState
from cronflow_actors.runtime.catalog import FlowCatalog

__all__ = ["completed_outputs", "completed_steps"]


def completed_outputs(
    catalog: FlowCatalog, workflow: str, version: str, state: InstanceState
) -> dict[str, Any]:
    """A flow's steps that completed in the run ``state``, with their recorded outputs (the
    steps of ``version`` only); nothing for a net."""
    steps = catalog.user_steps(workflow, version)
    if steps is None:
        return {}
    return {k: v for k, v in completed_steps(state).items() if k in steps}


def completed_steps(state: InstanceState) -> dict[str, Any]:
    """The outputs a flow's run ``state`` recorded for the root tasks it completed (its steps,
    by the compiler's naming, whatever version is registered)."""
    root = state.workflows[state.id]
    return {
        name: output
        for name, output in root.outputs.items()
        if is_user_step(name)
        and name in root.tasks
        and root.tasks[name].state == TaskState.COMPLETED
    }

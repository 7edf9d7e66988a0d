"""Ending an instance in its snapshot, offline: without its actor and without any of its
definition's code (its definition is not registered here, or the instance is held ``blocked``
because its definition changed). A migration cancels its old root this way
(``runtime/migrations.py``), and an operator's cancel of a held instance
(``runtime/pinning.py``)."""

from __future__ import annotations

from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemState, is_final
from cronflow_actors.messages.engine import InstanceState

__all__ = ["cancel_offline"]

_OPEN_ITEMS = frozenset({WorkItemState.INITIALIZED, WorkItemState.STARTED})


def cancel_offline(
    state: InstanceState, now: float, new_id: str | None = None
) -> tuple[list[str], list[str]]:
    """Cancel every open element of ``state`` in place, without running user code (started
    tasks canceled, enabled ones disabled, open work items and workflows canceled, jobs and
    detached actions dropped), record ``new_id`` as its successor (a migration's; None for a
    plain cancel) and bump its revision.
    Returns the timers to cancel and the waits to end."""
    timers = list(state.jobs)
    state.jobs.clear()
    state.actions.clear()
    waits = []
    for item in state.work_items.values():
        if item.state in _OPEN_ITEMS:
            if item.state == WorkItemState.STARTED:
                waits.append(item.id)
            item.state = WorkItemState.CANCELED
            item.finished_at = now
    for workflow in state.workflows.values():
        for task in workflow.tasks.values():
            if task.state == TaskState.STARTED:
                task.state = TaskState.CANCELED
            elif task.state == TaskState.ENABLED:
                task.state = TaskState.DISABLED
        if not is_final(workflow.state):
            workflow.state = WorkflowState.CANCELED
            workflow.finished_at = now
    state.migrated_to = new_id
    state.revision += 1
    return timers, waits

"""What a task withdraws from the rest of its net: the enabled tasks that lose their join when
the conditions a task took tokens from become empty (deferred choice, spec section 7.4), and a
completing task's cancellation region (spec section 7.5): the active tasks in it are canceled
and its conditions emptied. The task element's part that only sends messages to its siblings:
``engine/tasks.py`` and ``engine/fast_forward.py`` call it."""

from __future__ import annotations

from cronflow_actors.engine.states import TaskState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.elements import CancelTask, DisableTask
from cronflow_actors.messages.engine import WorkflowRecord
from cronflow_actors.net.marking import after_cancellation, tasks_to_disable
from cronflow_actors.net.spec import NetSpec, TaskSpec

__all__ = ["cancel_region", "disable_losers", "none_can_lose", "started_tasks"]

_ACTIVE = frozenset({TaskState.ENABLED, TaskState.STARTED})


async def disable_losers(
    tx: Transaction, workflow: WorkflowRecord, spec: NetSpec, name: str, emptied: list[str]
) -> None:
    """Disable the enabled tasks of ``workflow`` after the ``emptied`` conditions whose join no
    longer holds (deferred choice). ``name``: the task that emptied them, which is not enabled
    (it has just started or completed)."""
    if none_can_lose(spec, name, emptied):
        return
    enabled = [t for t, r in workflow.tasks.items() if r.state == TaskState.ENABLED]
    if not enabled:
        return  # only an enabled task can lose
    started = started_tasks(workflow)
    for loser in tasks_to_disable(spec, workflow.marking, emptied, enabled, started):
        await tx.send(DisableTask(workflow_id=workflow.id, task=loser))


def none_can_lose(spec: NetSpec, name: str, emptied: list[str]) -> bool:
    """Whether no task can lose by task ``name`` emptying the ``emptied`` conditions: none
    emptied, or only ``name`` takes from them (every start of a chain). Its callers ask first,
    and make ``disable_losers``'s coroutine only when some task may lose."""
    for condition in emptied:  # noqa: SIM110 - all() over a generator: a call per condition
        if spec.conditions[condition].outputs != (name,):
            return False
    return True


async def cancel_region(
    tx: Transaction, workflow: WorkflowRecord, spec: NetSpec, name: str, definition: TaskSpec
) -> None:
    """Task ``name`` (``definition``) completed: cancel the active tasks of its cancellation
    region, empty its conditions and disable the tasks that lose by it."""
    for other in spec.tasks:
        if other in definition.cancel_tasks and workflow.tasks[other].state in _ACTIVE:
            await tx.send(CancelTask(workflow_id=workflow.id, task=other, teardown=True))
    if not definition.cancel_conditions:
        return
    emptied = [c for c in definition.cancel_conditions if workflow.marking.get(c, 0) > 0]
    marking = after_cancellation(spec, name, workflow.marking)
    tx.mark(workflow, marking, definition.cancel_conditions)
    await disable_losers(tx, workflow, spec, name, emptied)


def started_tasks(workflow: WorkflowRecord) -> list[str]:
    """The tasks of ``workflow`` that are started (what an OR join reads)."""
    return [t for t, r in workflow.tasks.items() if r.state == TaskState.STARTED]

"""What a task withdraws from the rest of its net: the enabled tasks that lose their join when
the conditions a task took tokens from become empty (deferred choice, spec section 7.4), and a
completing task's cancellation region (spec section 7.5): the active tasks in it are canceled
and its conditions emptied; what an OR-join reads of the other tasks (the started, the idle and
the completions under way) and what a router's error does. The task element's part that only
sends messages to its siblings: ``engine/tasks.py`` and ``engine/fast_forward.py`` call it."""

from __future__ import annotations

import logging

from cronflow_actors.engine.chains import Note
from cronflow_actors.engine.states import FINAL_STATES, TaskState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import CancelRunRequested, class_name
from cronflow_actors.messages.elements import CancelTask, DisableTask, EnableTask, FailWorkflow
from cronflow_actors.messages.engine import CancelWorkflow, WorkflowRecord
from cronflow_actors.net.marking import (
    IDLE_STATES,
    asked_after,
    cancellation_counts,
    has_or_join,
    or_joins_to_ask,
    tasks_to_disable,
)
from cronflow_actors.net.spec import NetSpec, TaskSpec

__all__ = [
    "asking",
    "cancel_region",
    "disable_losers",
    "failed_by",
    "idle_tasks",
    "none_can_lose",
    "started_tasks",
]

_ACTIVE = frozenset({TaskState.ENABLED, TaskState.STARTED})


async def disable_losers(  # noqa: PLR0917 - its callers' own names, in their order
    tx: Transaction,
    workflow: WorkflowRecord,
    spec: NetSpec,
    name: str,
    emptied: list[str],
    starting: bool = False,
) -> None:
    """Disable the enabled tasks of ``workflow`` after the ``emptied`` conditions whose join no
    longer holds (deferred choice). ``name``: the task that emptied them, which is not enabled
    (it has just started or completed). ``starting``: as it started; the net's OR-joins are
    then asked again, as a loser may have been the last task that could feed one, which waited
    until some task completed, for good if none did (conform h35 F3). A completion asks them
    itself, once it has produced its tokens."""
    if none_can_lose(spec, name, emptied):
        return
    or_joins = has_or_join(spec)
    enabled = [t for t, r in workflow.tasks.items() if r.state == TaskState.ENABLED]
    if enabled:  # (only an enabled task can lose)
        started = started_tasks(workflow)
        if not starting:  # a completion whose region emptied them: its tokens are still to
            started.append(name)  # come, as a running task's (an OR-join took them for none
        # and fired, then ran again on them: conform h37 F2)
        idle = idle_tasks(tx, workflow, spec) if or_joins else ()  # (only an OR-join's)
        marking = workflow.marking
        lost = tasks_to_disable(spec, marking, emptied, enabled, started=started, idle=idle)
        for loser in lost:
            await tx.send(DisableTask(workflow_id=workflow.id, task=loser))
    if or_joins and starting:  # (a loser need not have been enabled: conform h37 F4)
        for task in or_joins_to_ask(spec, workflow.marking, workflow.tasks):
            if task != name and workflow.state not in FINAL_STATES:
                await tx.send(EnableTask(workflow_id=workflow.id, task=task))


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
    tx.mark(workflow, cancellation_counts(spec, name), definition.cancel_conditions)
    await disable_losers(tx, workflow, spec, name, emptied)


def started_tasks(workflow: WorkflowRecord) -> list[str]:
    """The tasks of ``workflow`` that are started (what an OR join reads)."""
    return [t for t, r in workflow.tasks.items() if r.state == TaskState.STARTED]


def idle_tasks(tx: Transaction, workflow: WorkflowRecord, spec: NetSpec) -> list[str]:
    """The tasks of ``workflow`` that cannot start on the tokens they hold (what an OR-join
    reads): canceled or failed, and not about to be asked by a completion under way
    (``Transaction.completing``): only a completion of a task before one asks it again."""
    idle = [t for t, r in workflow.tasks.items() if r.state in IDLE_STATES]
    if idle and tx.completing:
        asked = {
            candidate
            for workflow_id, task in tx.completing
            if workflow_id == workflow.id
            for candidate in asked_after(spec, task)
        }
        idle = [t for t in idle if t not in asked]
    return idle


def asking(tx: Transaction, workflow: WorkflowRecord, spec: NetSpec, task: str) -> Note | None:
    """``task`` of ``workflow`` completes and will ask the tasks after it to enable: an OR-join
    asked meanwhile does not take those for idle (``idle_tasks``). The note it made (if its
    net has an OR-join), which ``chains.asked`` drops once they were asked. A failure
    meanwhile discards the transaction, and the note with it."""
    if not has_or_join(spec):
        return None
    note = (workflow.id, task)
    tx.completing = (*tx.completing, note)
    return note


def failed_by(
    error: Exception, workflow_id: str, where: str, tx: Transaction
) -> FailWorkflow | CancelWorkflow:
    """What a router's ``error`` in a report does: its workflow fails with it, or, for
    ``ctx.cancel()``, the run is canceled with its reason."""
    if isinstance(error, CancelRunRequested):
        return CancelWorkflow(workflow_id=tx.state.id, reason=error.reason)
    # the run's failure is one WARNING line; where in the user's code: at DEBUG
    logging.getLogger(__name__).debug("%s of run %s raised", where, tx.state.id, exc_info=error)
    said = f"{where}: {type(error).__name__}: {error}"
    return FailWorkflow(workflow_id=workflow_id, error=said, error_type=class_name(error))

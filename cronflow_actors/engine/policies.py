"""What a task's completion policy may answer, and what the default policy answers (spec
section 2): a task asks after each terminal change of a child of its current generation (and
once as it starts, with a synthetic ``started -> completed``) whether to complete, fail or
continue."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from cronflow_actors.calls import call_user
from cronflow_actors.engine.context import Transition
from cronflow_actors.engine.states import WorkItemState
from cronflow_actors.errors import (
    INFRASTRUCTURE,
    CancelRunRequested,
    InvalidPolicyResultError,
    class_name,
    refuse_call,
)
from cronflow_actors.messages.engine import CancelWorkflow, Stats
from cronflow_actors.net.spec import TaskKind

__all__ = ["checked_answer", "decision_of", "default_answer"]

_ANSWERS = frozenset({"complete", "fail", "continue"})
_CHILD_ENDED_WELL = frozenset({WorkItemState.COMPLETED, WorkItemState.CANCELED})
_FAILED: Final = WorkItemState.FAILED
_TASK: Final = TaskKind.TASK
"""Read at every answer: ``Final`` constants, where an enum member's read goes through
``EnumType.__getattr__``'s hook (CPython 3.11: ~900 instructions)."""


def default_answer(kind: TaskKind, stats: Stats, transition: Transition) -> str:
    """Fail on a child's failure; complete once every child has ended (a composite task: and
    it has one); otherwise continue."""
    finalized = stats.completed + stats.failed + stats.canceled == stats.total
    if kind is not _TASK:
        finalized = finalized and stats.total > 0
    # a child's transition: a work item's, or a child workflow's (the same names)
    if transition.next_state == _FAILED:
        return "fail"
    if transition.next_state in _CHILD_ENDED_WELL:
        return "complete" if finalized else "continue"
    return "continue"


def checked_answer(answer: Any, workflow: str, task: str) -> str:
    """A user policy's ``answer``, or ``InvalidPolicyResultError`` naming the task."""
    if answer not in _ANSWERS:
        raise InvalidPolicyResultError(workflow, task, answer)
    return str(answer)


async def decision_of(task: Any, transition: Transition) -> str:
    """The answer of ``task``'s policy (a ``Task``'s: its default's without one) about
    ``transition``. A policy that raises, or answers no answer, while a report is applied (a
    handler's result, a timer) fails its task with that error, said of the policy, and the
    answer is "continue" (nothing more to do): the report stands, as a raising router's does.
    It went through the report's last resort, which asked the policy again and failed the run
    with the item that succeeded and its task read canceled, naming neither (net h44 F2). In a
    call the call is refused, as any user code's raise refuses it."""
    definition, record = task.definition, task.record
    if definition.policy is None:
        return default_answer(definition.kind, record.stats, transition)
    ctx = task._context("policy", None, None)
    ctx.transition = transition
    ctx.stats = msgspec.structs.replace(record.stats)  # a copy: policies cannot change stats
    try:
        answer = await call_user(definition.policy, ctx)
        return checked_answer(answer, task.workflow.name, task.name)
    except Exception as error:
        where = f"policy of task {task.name!r}"
        if not task.tx.reported:  # a call: refused, and nothing of it changes
            refuse_call(error, f"{where} in {task.workflow.name!r}")
            raise
        if isinstance(error, INFRASTRUCTURE):
            raise  # the runtime's own: the report is applied again at the next start
        if isinstance(error, CancelRunRequested):  # ctx.cancel(): the run ends so
            await task.tx.send(CancelWorkflow(workflow_id=task.tx.state.id, reason=error.reason))
        else:  # as an answer "fail" (a catching task completes with it: review h44 F3)
            said = f"{where}: {type(error).__name__}: {error}"
            await task._carry_out("fail", said, error_type=class_name(error))
        return "continue"

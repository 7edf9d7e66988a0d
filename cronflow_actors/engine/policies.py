"""What a task's completion policy may answer, and what the default policy answers (spec
section 2): a task asks after each terminal change of a child of its current generation (and
once as it starts, with a synthetic ``started -> completed``) whether to complete, fail or
continue."""

from __future__ import annotations

from typing import Any, Final

from cronflow_actors.engine.context import Transition
from cronflow_actors.engine.states import WorkItemState
from cronflow_actors.errors import InvalidPolicyResultError
from cronflow_actors.messages.engine import Stats
from cronflow_actors.net.spec import TaskKind

__all__ = ["checked_answer", "default_answer"]

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

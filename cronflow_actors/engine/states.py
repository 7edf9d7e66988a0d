"""The three state machines (spec/tasquencer-semantics.md section 1), and the record of a
detached action, as Enums with one transition table each and one function that applies them.

Where this differs from Tasquencer on purpose: a task completes only from ``started`` (its table
says so and the engine enforces it), so a task cannot complete twice or produce tokens it never
consumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from cronflow_actors.errors import InvalidStateTransitionError

__all__ = [
    "ACTION_TRANSITIONS",
    "TASK_TRANSITIONS",
    "WORKFLOW_TRANSITIONS",
    "WORK_ITEM_TRANSITIONS",
    "ActionState",
    "TaskState",
    "WorkItemState",
    "WorkflowState",
    "check_move",
    "is_final",
]


class WorkflowState(StrEnum):
    INITIALIZED = "initialized"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class WorkItemState(StrEnum):
    INITIALIZED = "initialized"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class TaskState(StrEnum):
    DISABLED = "disabled"
    ENABLED = "enabled"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class ActionState(StrEnum):
    """What became of a detached action (its work item completed when it was dispatched)."""

    DISPATCHED = "dispatched"
    COMPLETED = "completed"
    FAILED = "failed"


_FINAL = frozenset({"completed", "failed", "canceled"})

WORKFLOW_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "initialized": frozenset({"started", "canceled"}),
    "started": frozenset({"completed", "failed", "canceled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "canceled": frozenset(),
}

WORK_ITEM_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "initialized": frozenset({"started", "canceled"}),
    "started": frozenset({"completed", "failed", "canceled", "initialized"}),  # initialized: reset
    "completed": frozenset(),
    "failed": frozenset(),
    "canceled": frozenset(),
}

TASK_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "disabled": frozenset({"enabled"}),
    "enabled": frozenset({"disabled", "started", "canceled"}),
    "started": frozenset({"completed", "canceled", "failed"}),
    "completed": frozenset({"enabled"}),
    "canceled": frozenset({"enabled"}),
    "failed": frozenset({"enabled"}),
}

ACTION_TRANSITIONS: Mapping[str, frozenset[str]] = {
    # dispatched -> dispatched: dispatched again after a restart found it still out
    "dispatched": frozenset({"dispatched", "completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
}

_TABLES: Mapping[str, Mapping[str, frozenset[str]]] = {
    "workflow": WORKFLOW_TRANSITIONS,
    "work item": WORK_ITEM_TRANSITIONS,
    "task": TASK_TRANSITIONS,
    "action": ACTION_TRANSITIONS,
}


def is_final(state: str) -> bool:
    """Whether a workflow or work item state is terminal."""
    return state in _FINAL


def check_move(kind: str, ident: str, current: str, requested: str) -> None:
    """Raise ``InvalidStateTransitionError`` unless the table of ``kind`` allows the move."""
    table = _TABLES[kind]
    if requested not in table[current]:
        allowed = sorted(str(state) for state in table[current])
        raise InvalidStateTransitionError(kind, ident, str(current), str(requested), allowed)

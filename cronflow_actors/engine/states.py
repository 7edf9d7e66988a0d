"""The three state machines (spec/tasquencer-semantics.md section 1), and the record of a
detached action: one transition table each and one function that applies them.

The Enums themselves live in ``messages/states.py``, below the records that hold them, and are
re-exported here. Where this differs from Tasquencer on purpose: a task completes only from
``started`` (its table says so and the engine enforces it), so a task cannot complete twice or
produce tokens it never consumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import NoReturn

from cronflow_actors.errors import InvalidStateTransitionError
from cronflow_actors.messages.engine import Stats
from cronflow_actors.messages.states import (
    ActionState,
    TaskState,
    WorkflowState,
    WorkItemState,
    WorkItemVerb,
)

__all__ = [
    "ACTION_TRANSITIONS",
    "FINAL_STATES",
    "TASK_TRANSITIONS",
    "VERB_TARGETS",
    "WORKFLOW_TRANSITIONS",
    "WORK_ITEM_TRANSITIONS",
    "ActionState",
    "TaskState",
    "WorkItemState",
    "WorkItemVerb",
    "WorkflowState",
    "check_move",
    "count_move",
    "is_final",
    "refuse_move",
]

_W, _I, _T, _A = WorkflowState, WorkItemState, TaskState, ActionState

FINAL_STATES: frozenset[str] = frozenset({_W.COMPLETED, _W.FAILED, _W.CANCELED})
"""The terminal workflow and work item states: ``state in FINAL_STATES`` is ``is_final(state)``
without the call, for the engine's hot paths."""

WORKFLOW_TRANSITIONS: Mapping[WorkflowState, frozenset[WorkflowState]] = {
    _W.INITIALIZED: frozenset({_W.STARTED, _W.CANCELED}),
    _W.STARTED: frozenset({_W.COMPLETED, _W.FAILED, _W.CANCELED}),
    _W.COMPLETED: frozenset(),
    _W.FAILED: frozenset(),
    _W.CANCELED: frozenset(),
}

WORK_ITEM_TRANSITIONS: Mapping[WorkItemState, frozenset[WorkItemState]] = {
    _I.INITIALIZED: frozenset({_I.STARTED, _I.CANCELED}),
    _I.STARTED: frozenset({_I.COMPLETED, _I.FAILED, _I.CANCELED, _I.INITIALIZED}),  # reset
    _I.COMPLETED: frozenset(),
    _I.FAILED: frozenset(),
    _I.CANCELED: frozenset(),
}

TASK_TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    _T.DISABLED: frozenset({_T.ENABLED}),
    _T.ENABLED: frozenset({_T.DISABLED, _T.STARTED, _T.CANCELED}),
    _T.STARTED: frozenset({_T.COMPLETED, _T.CANCELED, _T.FAILED}),
    _T.COMPLETED: frozenset({_T.ENABLED}),
    _T.CANCELED: frozenset({_T.ENABLED}),
    _T.FAILED: frozenset({_T.ENABLED}),
}

ACTION_TRANSITIONS: Mapping[ActionState, frozenset[ActionState]] = {
    # dispatched -> dispatched: dispatched again after a restart found it still out
    _A.DISPATCHED: frozenset({_A.DISPATCHED, _A.COMPLETED, _A.FAILED}),
    _A.COMPLETED: frozenset(),
    _A.FAILED: frozenset(),
}

VERB_TARGETS: Mapping[WorkItemVerb, WorkItemState] = {
    WorkItemVerb.START: _I.STARTED,
    WorkItemVerb.COMPLETE: _I.COMPLETED,
    WorkItemVerb.FAIL: _I.FAILED,
    WorkItemVerb.CANCEL: _I.CANCELED,
    WorkItemVerb.RESET: _I.INITIALIZED,
}
"""The work item verbs and the state each one moves an item to."""

_TABLES: Mapping[str, Mapping[StrEnum, frozenset[StrEnum]]] = {
    "workflow": WORKFLOW_TRANSITIONS,  # type: ignore[dict-item]
    "work item": WORK_ITEM_TRANSITIONS,  # type: ignore[dict-item]
    "task": TASK_TRANSITIONS,  # type: ignore[dict-item]
    "action": ACTION_TRANSITIONS,  # type: ignore[dict-item]
}


def is_final(state: str) -> bool:
    """Whether a workflow or work item state is terminal."""
    return state in FINAL_STATES


def check_move(
    kind: str, ident: str | tuple[str, ...], current: StrEnum, requested: StrEnum
) -> None:
    """Raise ``InvalidStateTransitionError`` unless the table of ``kind`` allows the move.
    ``ident`` names the element, or gives the parts of its name (joined with ``/`` only when
    the move is refused)."""
    if requested not in _TABLES[kind][current]:
        refuse_move(kind, ident, current, requested)


def refuse_move(
    kind: str, ident: str | tuple[str, ...], current: StrEnum, requested: StrEnum
) -> NoReturn:
    """Raise ``InvalidStateTransitionError`` for a move the table of ``kind`` does not allow
    (as ``check_move`` does). The hot paths check their table themselves and call this only for
    a refused move: ``if target not in TASK_TRANSITIONS[state]: refuse_move(...)`` is
    ``check_move`` without a call when the move is allowed."""
    table = _TABLES[kind]
    name = ident if isinstance(ident, str) else "/".join(ident)
    allowed = sorted(str(state) for state in table[current])
    raise InvalidStateTransitionError(kind, name, str(current), str(requested), allowed)


def count_move(stats: Stats, prev: str | None, next_state: str) -> None:
    """A task's child (a work item or a child workflow) moved from ``prev`` (None: it is new)
    to ``next_state``: the task's ``stats`` (how many children are in each state, and the
    total) follow. Matched field by field, not ``getattr``/``setattr``: it runs for every
    move of every child (four calls less each)."""
    match prev:
        case None:
            stats.total += 1
        case "initialized":
            stats.initialized -= 1
        case "started":
            stats.started -= 1
        case "completed":
            stats.completed -= 1
        case "failed":
            stats.failed -= 1
        case "canceled":
            stats.canceled -= 1
        case _:
            raise ValueError(f"no child state {prev!r}")
    match next_state:
        case "initialized":
            stats.initialized += 1
        case "started":
            stats.started += 1
        case "completed":
            stats.completed += 1
        case "failed":
            stats.failed += 1
        case "canceled":
            stats.canceled += 1
        case _:
            raise ValueError(f"no child state {next_state!r}")

"""The states of the net's elements and the verbs of a work item, as Enums the data carries.

Records and change messages hold these members, not strings. Each is a ``StrEnum``: msgspec
writes a member as its value, so the bytes a snapshot holds are the same as when states were
plain strings, and reading an old snapshot gives members back. Which move is allowed from which
state is the engine's business (``engine/states.py``, one transition table per element).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ActionState", "TaskState", "WorkItemState", "WorkItemVerb", "WorkflowState"]


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


class WorkItemVerb(StrEnum):
    """What may be done to a work item that exists, through its action of the same name
    (``initialize``, which makes one, is the task's business)."""

    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    RESET = "reset"

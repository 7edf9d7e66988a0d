"""Scheduled jobs (``Job`` union): engine operations that a durable timer runs later, registered
by an activity with ``ctx.register_scheduled`` (``net.jobs`` builds them). Each is data, kept in
the instance's snapshot (``JobRecord``) until it runs or its owner ends."""

from __future__ import annotations

from typing import Any, ClassVar

from cronflow_actors.messages.base import Message
from cronflow_actors.messages.states import WorkItemVerb

__all__ = [
    "CancelWorkItemJob",
    "CancelWorkflowJob",
    "CompleteWorkItemJob",
    "FailTaskJob",
    "FailWorkItemJob",
    "FailWorkflowJob",
    "InitializeWorkItemJob",
    "InitializeWorkflowJob",
    "Job",
    "ResetWorkItemJob",
    "StartWorkItemJob",
    "WorkItemJob",
]


class InitializeWorkItemJob(Message, frozen=True, kw_only=True):
    """Initialize a work item of ``task`` (latest generation) in ``workflow_id``."""

    workflow_id: str
    task: str
    payload: Any = None


class InitializeWorkflowJob(Message, frozen=True, kw_only=True):
    """Initialize a child workflow of composite ``task``; ``workflow`` picks the child type of
    a dynamic composite task."""

    workflow_id: str
    task: str
    workflow: str | None = None
    payload: Any = None


class WorkItemJob(Message, frozen=True, kw_only=True, omit_defaults=True):
    """What the jobs on one work item hold: the item, and the payload its ``verb`` gets (each
    job below is one verb; their tags are their own class names). Kept in snapshots with their
    timers: a field at its default is left out (one added since reads as its default)."""

    verb: ClassVar[WorkItemVerb]
    work_item_id: str
    payload: Any = None
    timed_out: bool = False
    """The job ends a wait whose deadline passed (a human step's timeout, an event wait's): the
    wait counts ``timed_out`` in metrics, not ``completed`` or ``failed``."""


class StartWorkItemJob(WorkItemJob, frozen=True, kw_only=True):
    verb: ClassVar[WorkItemVerb] = WorkItemVerb.START


class CompleteWorkItemJob(WorkItemJob, frozen=True, kw_only=True):
    verb: ClassVar[WorkItemVerb] = WorkItemVerb.COMPLETE


class FailWorkItemJob(WorkItemJob, frozen=True, kw_only=True):
    verb: ClassVar[WorkItemVerb] = WorkItemVerb.FAIL


class CancelWorkItemJob(WorkItemJob, frozen=True, kw_only=True):
    verb: ClassVar[WorkItemVerb] = WorkItemVerb.CANCEL


class ResetWorkItemJob(WorkItemJob, frozen=True, kw_only=True):
    verb: ClassVar[WorkItemVerb] = WorkItemVerb.RESET


class CancelWorkflowJob(Message, frozen=True, kw_only=True):
    workflow_id: str
    reason: str = ""  # recorded as the workflow's error (a flow's ``.cancel(reason)``)


class FailWorkflowJob(Message, frozen=True, kw_only=True):
    """Fail a workflow (a run's timeout): its active tasks are shut down, policies bypassed."""

    workflow_id: str
    error: str = "failed"


class FailTaskJob(Message, frozen=True, kw_only=True):
    """Fail a started task (a step's timeout): its open children are canceled, and its
    workflow fails unless the task catches its failure."""

    workflow_id: str
    task: str
    error: str = "failed"


Job = (
    InitializeWorkItemJob
    | InitializeWorkflowJob
    | StartWorkItemJob
    | CompleteWorkItemJob
    | FailWorkItemJob
    | CancelWorkItemJob
    | ResetWorkItemJob
    | CancelWorkflowJob
    | FailWorkflowJob
    | FailTaskJob
)

"""Scheduled jobs: engine operations that ``ctx.register_scheduled(delay, job)`` runs later.

A job is data (a msgspec Struct), so it survives a restart with its durable timer; it runs as an
internal call, and is dropped if the element that registered it finishes first.

    ctx.register_scheduled(3600, net.jobs.fail_work_item(ctx.work_item.id, {"reason": "timeout"}))
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.messages.engine import (
    CancelWorkflowJob,
    CancelWorkItemJob,
    CompleteWorkItemJob,
    FailTaskJob,
    FailWorkflowJob,
    FailWorkItemJob,
    InitializeWorkflowJob,
    InitializeWorkItemJob,
    ResetWorkItemJob,
    StartWorkItemJob,
)

__all__ = [
    "cancel_work_item",
    "cancel_workflow",
    "complete_work_item",
    "fail_task",
    "fail_work_item",
    "fail_workflow",
    "initialize_work_item",
    "initialize_workflow",
    "reset_work_item",
    "start_work_item",
]


def initialize_work_item(workflow_id: str, task: str, payload: Any = None) -> InitializeWorkItemJob:
    return InitializeWorkItemJob(workflow_id=workflow_id, task=task, payload=payload)


def initialize_workflow(
    workflow_id: str, task: str, payload: Any = None, *, workflow: str | None = None
) -> InitializeWorkflowJob:
    return InitializeWorkflowJob(
        workflow_id=workflow_id, task=task, workflow=workflow, payload=payload
    )


def start_work_item(work_item_id: str, payload: Any = None) -> StartWorkItemJob:
    return StartWorkItemJob(work_item_id=work_item_id, payload=payload)


def complete_work_item(
    work_item_id: str, payload: Any = None, *, timed_out: bool = False
) -> CompleteWorkItemJob:
    """``timed_out``: the job ends the item's wait as its deadline passed (metrics count the wait
    ``timed_out``); so for ``fail_work_item``."""
    return CompleteWorkItemJob(work_item_id=work_item_id, payload=payload, timed_out=timed_out)


def fail_work_item(
    work_item_id: str, payload: Any = None, *, timed_out: bool = False
) -> FailWorkItemJob:
    return FailWorkItemJob(work_item_id=work_item_id, payload=payload, timed_out=timed_out)


def cancel_work_item(work_item_id: str, payload: Any = None) -> CancelWorkItemJob:
    return CancelWorkItemJob(work_item_id=work_item_id, payload=payload)


def reset_work_item(work_item_id: str, payload: Any = None) -> ResetWorkItemJob:
    return ResetWorkItemJob(work_item_id=work_item_id, payload=payload)


def cancel_workflow(workflow_id: str, reason: str = "") -> CancelWorkflowJob:
    """Cancel the workflow; ``reason`` is recorded as its error (what its run shows)."""
    return CancelWorkflowJob(workflow_id=workflow_id, reason=reason)


def fail_workflow(workflow_id: str, error: str = "failed") -> FailWorkflowJob:
    """Fail workflow ``workflow_id`` if it is started. A workflow nobody started yet cannot
    fail (spec 1.4): the job is then dropped with a WARNING; a deadline for a workflow that
    may not be taken up is ``cancel_workflow`` (conform h36 F7)."""
    return FailWorkflowJob(workflow_id=workflow_id, error=error)


def fail_task(workflow_id: str, task: str, error: str = "failed") -> FailTaskJob:
    """Fail ``task`` of ``workflow_id`` if it is still started (a deadline for a whole task);
    a task not started then is left as it is, the job dropped with a WARNING."""
    return FailTaskJob(workflow_id=workflow_id, task=task, error=error)

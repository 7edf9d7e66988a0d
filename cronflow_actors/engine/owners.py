"""The owner keys of scheduled jobs (``register_scheduled``): each job records the element that
registered it, and leaving that element drops every job whose key starts with its prefix
(``Transaction.cancel_*_jobs``)."""

from __future__ import annotations

__all__ = ["task_owner", "work_item_owner", "workflow_owner"]


def workflow_owner(workflow_id: str) -> str:
    """The owner key of a workflow's jobs."""
    return f"workflow/{workflow_id}/"


def task_owner(workflow_id: str, task: str, generation: int | None = None) -> str:
    """The owner key of a task's jobs; without ``generation``, the prefix of all of them. A
    ``/`` in the task's name is escaped, so that task ``a``'s prefix is not ``a/b``'s too (a
    name without ``/`` or ``%``, every name before this, keys as it always did)."""
    name = task.replace("%", "%25").replace("/", "%2F")
    if generation is None:
        return f"task/{workflow_id}/{name}/"
    return f"task/{workflow_id}/{name}/{generation}/"


def work_item_owner(work_item_id: str) -> str:
    """The owner key of a work item's jobs."""
    return f"work_item/{work_item_id}/"

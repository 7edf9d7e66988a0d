"""What the elements of one instance say to each other on its turn.

A workflow, a task and a work item are each an actor with one typed ``receive``; these are the
commands they send one another, beside the state changes a child reports to its parent
(``WorkItemStateChanged``, ``WorkflowStateChanged``, ``TaskStateChanged``, in ``engine.py``).
The instance's dispatcher (``engine/cascade.py``) delivers each one depth-first, on the
``WorkflowActor``'s turn: they live for one transaction and are never persisted.

One union per receiver: ``WorkItemMessage``, ``TaskMessage``, ``WorkflowMessage``. Some
commands from outside reach an element unchanged (``WorkItemAction``, ``WorkItemFinished``,
``DeliverEvent``, ``CancelWorkflow``, ``FailTaskJob``); the others are here.
``CreateWorkItem`` and ``InitializeWorkflow`` ask for an element that does not exist yet.
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.messages.base import Message
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    DeliverEvent,
    FailTaskJob,
    Principal,
    TaskStateChanged,
    WorkflowStateChanged,
    WorkItemAction,
    WorkItemFinished,
    WorkItemStateChanged,
)
from cronflow_actors.messages.states import WorkItemVerb

__all__ = [
    "CancelTask",
    "CreateWorkItem",
    "DisableTask",
    "ElementMessage",
    "EnableTask",
    "EnsureTaskStarted",
    "EnsureWorkflowStarted",
    "FailWorkflow",
    "InitializeWorkflow",
    "RunTrigger",
    "TaskMessage",
    "TearDownWorkItem",
    "TearDownWorkflow",
    "WorkItemMessage",
    "WorkflowMessage",
]


# -- to a work item --------------------------------------------------------------------------------


class CreateWorkItem(Message, frozen=True, kw_only=True, gc=False):
    """Make work item ``work_item_id`` of ``task``, through its ``initialize`` action
    (``principal=None``: an internal call). ``defer_trigger``: a task activity made it, so an
    auto-trigger it sets is not run but answered, for the task to run once all its new items
    exist."""

    workflow_id: str
    task: str
    work_item_id: str
    payload: Any = None
    principal: Principal | None = None
    defer_trigger: bool = False


class RunTrigger(Message, frozen=True, kw_only=True):
    """Carry out an auto-trigger as an internal call, unless the item moved meanwhile."""

    work_item_id: str
    verb: WorkItemVerb
    payload: Any = None


class TearDownWorkItem(Message, frozen=True, kw_only=True, gc=False):
    """The task is finishing: cancel the item if it is still open, without the task's policy."""

    work_item_id: str


WorkItemMessage = WorkItemAction | RunTrigger | TearDownWorkItem | WorkItemFinished | DeliverEvent


# -- to a task -------------------------------------------------------------------------------------


class EnableTask(Message, frozen=True, kw_only=True, gc=False):
    """Enable the task if its join is satisfied and its state allows it."""

    workflow_id: str
    task: str


class EnsureTaskStarted(Message, frozen=True, kw_only=True, gc=False):
    """A child of the task is starting: the task starts first if it has not yet (``silent``:
    a child workflow a fast-forwarded task started, whose start starts the task's workflow
    without its ``on_started``, as the child's own start is)."""

    workflow_id: str
    task: str
    silent: bool = False


class CancelTask(Message, frozen=True, kw_only=True, gc=False):
    """Cancel an enabled or started task (``teardown``: its workflow's shutdown or a
    cancellation region, where an inactive task is left alone)."""

    workflow_id: str
    task: str
    teardown: bool = True


class DisableTask(Message, frozen=True, kw_only=True, gc=False):
    """Disable the task if it is enabled (its join no longer holds, or its workflow ends)."""

    workflow_id: str
    task: str


TaskMessage = (
    WorkItemStateChanged
    | WorkflowStateChanged
    | EnableTask
    | EnsureTaskStarted
    | CancelTask
    | DisableTask
    | FailTaskJob
)


# -- to a workflow ---------------------------------------------------------------------------------


class InitializeWorkflow(Message, frozen=True, kw_only=True, gc=False):
    """Make workflow ``workflow_id`` through its ``initialize`` action: the root of the instance
    (no ``parent_id``), or a child of composite task ``parent_task``; ``child`` names the child
    type of a dynamic composite task."""

    workflow_id: str
    payload: Any = None
    principal: Principal | None = None
    trigger: str = ""
    by: str | None = None
    """Who asked, for the audit trail, when no action admits the caller (a flow's run started
    by an API caller: the route's authentication did)."""
    parent_id: str | None = None
    parent_task: str | None = None
    child: str | None = None
    empty: bool = False
    """The root of a queued run canceled before it started: made, with its start condition
    marked, but no task enabled and no ``on_initialized`` (a ``CancelWorkflow`` follows)."""
    admitted: bool = False
    """``principal`` was admitted already (schema, authentication, policy): a composite task
    asks its child's ``initialize`` so before it says its state or bound (review h38 F3)."""


class EnsureWorkflowStarted(Message, frozen=True, kw_only=True, gc=False):
    """A task of the workflow is starting: the workflow starts first if it has not yet
    (``silent``: a fast-forwarded task starts it, so its ``on_started`` is not run)."""

    workflow_id: str
    silent: bool = False


class FailWorkflow(Message, frozen=True, kw_only=True, gc=False):
    """Fail the workflow (its active tasks are shut down); ``cause``: the work item whose
    failure this is."""

    workflow_id: str
    error: str = "failed"
    cause: str | None = None
    error_type: str | None = None
    """The class of the exception behind it when no work item's is (a router's, a
    condition's: ``WorkflowRecord.error_type``)."""


class TearDownWorkflow(Message, frozen=True, kw_only=True, gc=False):
    """The composite task that owns this child workflow is finishing: cancel the workflow if it
    is still running, without the task's policy."""

    workflow_id: str


WorkflowMessage = (
    EnsureWorkflowStarted | TaskStateChanged | FailWorkflow | CancelWorkflow | TearDownWorkflow
)

ElementMessage = (
    WorkItemMessage | CreateWorkItem | TaskMessage | WorkflowMessage | InitializeWorkflow
)
"""Everything the dispatcher delivers."""

"""The JSON answers of the HTTP API as msgspec types: what the routes send back, and what the
OpenAPI document (``openapi.py``) describes them with."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from cronflow_actors.http.problems import ProblemBody
from cronflow_actors.http.routes.runs import CancelRun, ReplayRun, ResumedBefore, StartRun
from cronflow_actors.http.routes.workflows import (
    WORK_ITEM_ACTIONS,
    MigrateWorkflow,
    StartWorkflow,
)
from cronflow_actors.runtime import (
    EventFilterError,
    EventRefusal,
    NetDescription,
    OpenWorkItem,
    PausedRun,
    RunInfo,
    TaskState,
    WorkflowDescription,
    WorkflowInfo,
    WorkItemInfo,
)

__all__ = [
    "FIXED",
    "Canceled",
    "ChildWorkflowList",
    "FlowList",
    "Health",
    "NetList",
    "OpenWorkItemList",
    "PausedPage",
    "Published",
    "Readiness",
    "Resumed",
    "ResumedBefore",
    "RunMigrated",
    "RunPage",
    "RunStarted",
    "WebhookAnswered",
    "WorkItemAction",
    "WorkItemCreated",
    "WorkItemList",
    "WorkflowCanceled",
    "WorkflowMigrated",
    "WorkflowStarted",
    "WorkflowView",
]


class RunStarted(msgspec.Struct):
    run_id: str


class WebhookAnswered(msgspec.Struct, omit_defaults=True):
    """200 from a webhook: a duplicate (the first run's id), or a condition that was not met."""

    run_id: str | None
    duplicate: bool = False
    condition_met: bool = True
    current_run_id: str | None = None
    """A duplicate's: the run its work goes on in, when not that one (its migration's, its
    resume's, at the end of their chain)."""


class RunPage(msgspec.Struct):
    runs: list[RunInfo]
    limit: int
    next_cursor: str | None


class PausedPage(msgspec.Struct):
    paused: list[PausedRun]
    next_cursor: str | None


class Canceled(msgspec.Struct):
    run_id: str
    status: str


class Published(msgspec.Struct):
    started: list[str]
    refused: list[EventRefusal]
    """The flows whose schema refused the payload (the event went to the others)."""
    delivered: list[str]
    """Runs whose step waiting for the event took it (its filter, if any, accepted it)."""
    held: list[str]
    """Runs with a step waiting for the event that have not heard it yet: they are held
    (``blocked``, their definition changed under their version); the event is kept for them
    and delivered when they run again."""
    filter_errors: list[EventFilterError]
    """Runs whose waiting step's filter (or validate) raised on the event: the step did not
    take it and waits on."""
    not_kept: list[str]
    """Runs held that keep as many events as they may (100, 1 MB): not kept for them; publish
    it again once they run."""
    note: str | None = None
    """For a publish that reached nothing: that no flow here starts on its name and no step
    waits for it, with the closest name that one does (a misspelt name, most likely)."""


class Resumed(msgspec.Struct):
    status: str


class FlowList(msgspec.Struct):
    flows: list[WorkflowDescription]


class NetList(msgspec.Struct):
    nets: list[NetDescription]


class WorkflowStarted(msgspec.Struct):
    workflow_id: str


class WorkflowView(WorkflowInfo, frozen=True, kw_only=True):
    tasks: dict[str, TaskState]
    migrated_from: str | None = None
    """A root a migration started: the root it replaced."""
    migrated_to: str | None = None
    """A root a migration replaced: the root that replaced it."""


class WorkflowCanceled(msgspec.Struct):
    workflow_id: str
    state: str


class WorkflowMigrated(msgspec.Struct):
    """The root a migration started (``migrated_from``: the one it canceled)."""

    workflow_id: str
    migrated_from: str
    version: str


class RunMigrated(msgspec.Struct):
    """The run a migration started (``migrated_from``: the one it canceled)."""

    run_id: str
    migrated_from: str
    version: str


class WorkItemList(msgspec.Struct):
    work_items: list[WorkItemInfo]


class OpenWorkItemList(msgspec.Struct):
    """A net instance's work list: the work items an outside caller may act on now."""

    work_items: list[OpenWorkItem]


class ChildWorkflowList(msgspec.Struct):
    """A composite task's child workflows (its latest generation's)."""

    workflows: list[WorkflowInfo]


class WorkItemCreated(msgspec.Struct):
    work_item_id: str


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    detail: str | None = None


class Readiness(msgspec.Struct):
    ready: bool
    checks: dict[str, str]


WorkItemAction = StrEnum("WorkItemAction", {a.upper(): a for a in WORK_ITEM_ACTIONS})  # type: ignore[misc]

FIXED: list[Any] = [
    ProblemBody,
    RunStarted,
    ResumedBefore,
    WebhookAnswered,
    StartRun,
    ReplayRun,
    CancelRun,
    RunInfo,
    TaskState,
    RunPage,
    PausedRun,
    PausedPage,
    Canceled,
    Published,
    Resumed,
    FlowList,
    WorkflowDescription,
    NetList,
    StartWorkflow,
    WorkflowStarted,
    WorkflowView,
    WorkflowCanceled,
    MigrateWorkflow,
    WorkflowMigrated,
    RunMigrated,
    WorkItemList,
    OpenWorkItemList,
    ChildWorkflowList,
    WorkItemCreated,
    WorkItemInfo,
    Health,
    Readiness,
]
"""Every type a route answers with or reads, whatever the flows registered."""

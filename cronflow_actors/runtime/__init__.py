"""The runtime layer: wiring, ownership, recovery, triggers and configuration."""

from cronflow_actors.engine.context import WorkflowInfo, WorkItemInfo
from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemState
from cronflow_actors.errors import ResumeError
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.runtime.database import open_store, store_for
from cronflow_actors.runtime.pauses import PausedRun
from cronflow_actors.runtime.runs import (
    Page,
    RunInfo,
    RunResult,
    RunStatus,
    StepInfo,
)
from cronflow_actors.runtime.runtime import Runtime

__all__ = [
    "Page",
    "PausedRun",
    "ResumeError",
    "RunInfo",
    "RunResult",
    "RunStatus",
    "Runtime",
    "StepInfo",
    "TaskState",
    "WorkItemInfo",
    "WorkItemState",
    "WorkflowInfo",
    "WorkflowState",
    "open_store",
    "parse_duration",
    "store_for",
]

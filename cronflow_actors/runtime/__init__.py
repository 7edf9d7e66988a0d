"""The runtime layer: wiring, ownership, recovery, triggers and configuration."""

from cronflow_actors.errors import ResumeError
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
    "open_store",
    "store_for",
]

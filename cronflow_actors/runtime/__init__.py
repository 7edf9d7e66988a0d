"""The runtime layer: wiring, recovery, triggers and configuration."""

from cronflow_actors.runtime.database import open_store, store_for
from cronflow_actors.runtime.runs import (
    PausedRun,
    ResumeError,
    RunInfo,
    RunResult,
    RunStatus,
    StepInfo,
)
from cronflow_actors.runtime.runtime import Runtime

__all__ = [
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

"""cronflow-actors: a durable workflow runtime for Python, built as an actor system on asyncio.

    import cronflow_actors as cf
    from cronflow_actors import net

    async with cf.Runtime(db="app.db", workflows=[spec]) as rt:
        workflow_id = await rt.start_workflow("hire", {"name": "Ada"})

Layers (DESIGN.md): ``net`` (NetSpec and its builder), ``engine`` (the actors that run it),
``kernel`` (pykka actors on asyncio), ``store`` (SQLite and in-memory), ``runtime``.
"""

import importlib.metadata as _metadata

from cronflow_actors import errors, net
from cronflow_actors.engine.context import WorkflowInfo, WorkItemInfo
from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemState
from cronflow_actors.flow import (
    Cache,
    CircuitBreaker,
    Flow,
    FlowContext,
    Hooks,
    PollContext,
    RateLimit,
    Retry,
    WebhookProblem,
    WebhookRequest,
    WebhookResponse,
    define,
    env,
)
from cronflow_actors.messages.engine import Principal, Stats
from cronflow_actors.runtime import (
    EventFilterError,
    EventRefusal,
    ExpectationError,
    FlowTest,
    Page,
    PausedRun,
    PublishResult,
    ResumeError,
    RunInfo,
    RunResult,
    RunStatus,
    Runtime,
    SchedulePause,
    StateStats,
    StepInfo,
    WorkflowDescription,
)

try:
    __version__ = _metadata.version("cronflow-actors")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Cache",
    "CircuitBreaker",
    "EventFilterError",
    "EventRefusal",
    "ExpectationError",
    "Flow",
    "FlowContext",
    "FlowTest",
    "Hooks",
    "Page",
    "PausedRun",
    "PollContext",
    "Principal",
    "PublishResult",
    "RateLimit",
    "ResumeError",
    "Retry",
    "RunInfo",
    "RunResult",
    "RunStatus",
    "Runtime",
    "SchedulePause",
    "StateStats",
    "Stats",
    "StepInfo",
    "TaskState",
    "WebhookProblem",
    "WebhookRequest",
    "WebhookResponse",
    "WorkItemInfo",
    "WorkItemState",
    "WorkflowDescription",
    "WorkflowInfo",
    "WorkflowState",
    "__version__",
    "define",
    "env",
    "errors",
    "net",
]

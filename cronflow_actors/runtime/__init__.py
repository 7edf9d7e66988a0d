"""The runtime layer: ``Runtime`` (``runtime.py``, with its call groups ``lifecycle.py``,
``net_api.py``, ``flow_api.py``), the compiled flows it knows (``catalog.py``), runs
(``runs.py``, ``run_views.py``, ``run_hooks.py``, ``pages.py``, ``queues.py``, ``replays.py``),
triggers (``schedules.py``, ``polls.py``, ``events.py``), human pauses (``pauses.py``),
instances and ownership (``instances.py``, ``ownership.py``), migrations of running instances
(``migrations.py``), state, telemetry and configuration."""

from cronflow_actors.engine.context import WorkflowInfo, WorkItemInfo
from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemState
from cronflow_actors.errors import ResumeError
from cronflow_actors.flow.triggers import (
    EVENT_NAME_LIMIT,
    ONE_LINE_PATTERN,
    SECRET_HEADERS,
    WebhookProblem,
    WebhookRequest,
    WebhookResponse,
    WebhookSpec,
    not_one_line,
    schema_path,
)
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.runtime.catalog import FlowTrigger, RateLimitInfo, WorkflowDescription
from cronflow_actors.runtime.database import open_store, store_for
from cronflow_actors.runtime.migrations import MigrationLinks
from cronflow_actors.runtime.net_api import NetDescription
from cronflow_actors.runtime.pauses import PausedRun
from cronflow_actors.runtime.publish_result import EventFilterError, EventRefusal, PublishResult
from cronflow_actors.runtime.run_trigger import RunTrigger
from cronflow_actors.runtime.runs import (
    Page,
    RunInfo,
    RunResult,
    RunStatus,
    StepInfo,
)
from cronflow_actors.runtime.runtime import WORKFLOWS, Runtime
from cronflow_actors.runtime.schedules import SchedulePause
from cronflow_actors.runtime.shared_state import StateStats
from cronflow_actors.runtime.testing import (
    ExpectationError,
    FlowTest,
    StepResult,
    TestResult,
)
from cronflow_actors.runtime.work_list import OpenWorkItem

__all__ = [
    "EVENT_NAME_LIMIT",
    "ONE_LINE_PATTERN",
    "SECRET_HEADERS",
    "WORKFLOWS",
    "EventFilterError",
    "EventRefusal",
    "ExpectationError",
    "FlowTest",
    "FlowTrigger",
    "MigrationLinks",
    "NetDescription",
    "OpenWorkItem",
    "Page",
    "PausedRun",
    "PublishResult",
    "RateLimitInfo",
    "ResumeError",
    "RunInfo",
    "RunResult",
    "RunStatus",
    "RunTrigger",
    "Runtime",
    "SchedulePause",
    "StateStats",
    "StepInfo",
    "StepResult",
    "TaskState",
    "TestResult",
    "WebhookProblem",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookSpec",
    "WorkItemInfo",
    "WorkItemState",
    "WorkflowDescription",
    "WorkflowInfo",
    "WorkflowState",
    "not_one_line",
    "open_store",
    "parse_duration",
    "schema_path",
    "store_for",
]

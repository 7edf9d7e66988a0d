from typing import Any

from cronflow_actors.messages.base import Message


class AuditSpan(Message, frozen=True, kw_only=True):  # Message from cronflow_actors.messages.base
    trace_id: str  # the root instance id = the run id
    span_id: str  # unique within the trace, stable (e.g. f"{revision}.{n}")
    parent_id: str | None  # the span of the operation that caused this one; None at a turn's root
    instance_id: str
    # "Workflow.initialize", "Task.enable", "WorkItem.complete", "Activity.on_enabled",
    # "Condition.mark", "Task.route", "Action.<name>", ...
    operation: str
    element: str  # the element's id or path
    started_at: float  # epoch seconds
    ended_at: float
    revision: int  # the snapshot revision it was committed with
    attributes: dict[str, Any] = {}  # msgpack-able  # noqa: RUF012 (msgspec copies it)

"""The audit trail's record: one span per engine operation (spec section 10).

Every operation the engine carries out on an instance (a workflow, task or work item moving, a
condition's marking changing, a routing decision, an activity or an action being called) is one
``AuditSpan``, recorded on the instance's turn and committed with the snapshot it led to
(``Mutation.spans``: no extra transaction). The spans of one run form one trace: its id is the
run's (the root instance's) id, and each span names the span of the operation that caused it.
Persisted (the store keeps them until the run is pruned): the shape only grows.
"""

from __future__ import annotations

from typing import Any

import msgspec

from cronflow_actors.messages.base import Message

__all__ = ["AuditSpan"]


class AuditSpan(Message, frozen=True, kw_only=True, gc=False):
    """One engine operation of one run (not tracked by the garbage collector: a span refers
    to no other object that could refer back to it).

    ``operation`` is one of ``Workflow.initialize|start|complete|fail|cancel``,
    ``Task.enable|start|complete|disable|fail|cancel``,
    ``WorkItem.initialize|start|complete|fail|cancel|reset``, ``Condition.mark``,
    ``Task.route``, ``Activity.<name>`` and ``Action.<name>``. ``instance_id`` is the workflow
    (the root or a child) the element belongs to; ``element`` is the element's id within it:
    the workflow's id, a task's or a condition's name, a work item's id. ``attributes`` hold
    plain values: ``before``/``after`` (states, or a condition's token counts), ``generation``
    (tasks and work items), ``split`` and ``outputs`` (routing), ``principal`` (actions: the
    caller's id, None for an internal call), ``error`` (failures), and for
    ``Workflow.initialize`` the workflow's ``name``, its tasks and its first ``marking``.
    """

    trace_id: str
    """The run's id (its root instance's)."""
    span_id: str
    """``"<revision>.<n>"``: unique within the trace, in the order the spans began."""
    parent_id: str | None
    """The span of the operation that caused this one; None for the first operation of a turn
    (what a call, a handler's result or a timer asked for)."""
    instance_id: str
    operation: str
    element: str
    started_at: float
    """Epoch seconds on the runtime's clock; the first span of a turn starts at the turn's
    time, which is also its snapshot's ``updated_at``."""
    ended_at: float
    revision: int
    """The snapshot revision the span was committed with."""
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)

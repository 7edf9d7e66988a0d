"""Feeds a runtime's metrics from the state changes of its durable transactions."""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING, Any

from cronflow_actors.messages import Message
from cronflow_actors.messages.engine import WorkflowStateChanged, WorkItemStateChanged
from cronflow_actors.metrics import RuntimeMetrics

if TYPE_CHECKING:
    from cronflow_actors.runtime.runtime import Runtime

__all__ = ["Telemetry"]

_FINAL = frozenset({"completed", "failed", "canceled"})


class Telemetry:
    def __init__(self, runtime: Runtime, version: str) -> None:
        self.rt = runtime
        self.metrics = RuntimeMetrics(version)
        self._started: dict[str, float] = {}
        self._items: dict[str, float] = {}
        self.metrics.watch(self._actors, lambda: len(runtime.timers))

    def _actors(self) -> dict[str, int]:
        counts = dict.fromkeys(("WorkflowActor", "WorkItemActor", "ActionActor"), 0)
        counts.update(
            Tally(type(ref._actor_weakref()).__name__ for ref in self.rt.system.get_all())
        )
        return counts

    def observe(self, changes: list[Message]) -> None:
        now = self.rt.clock.monotonic()
        for change in changes:
            if isinstance(change, WorkflowStateChanged) and "." not in change.workflow_id:
                self._run(change, now)
            elif isinstance(change, WorkItemStateChanged):
                self._item(change, now)

    def _run(self, change: WorkflowStateChanged, now: float) -> None:
        if change.prev is None:
            self.metrics.runs_started.labels(change.workflow).inc()
            self._started[change.workflow_id] = now
        elif change.next in _FINAL:
            self.metrics.runs_finished.labels(change.workflow, change.next).inc()
            began = self._started.pop(change.workflow_id, None)
            if began is not None:
                self.metrics.run_duration.labels(change.workflow).observe(now - began)

    def _item(self, change: WorkItemStateChanged, now: float) -> None:
        if change.next == "started":
            self._items[change.work_item_id] = now
            return
        if change.prev == "started" and change.next == "initialized":  # reset: a retry
            workflow, _kind = self._describe(change)
            self.metrics.retries.labels(workflow).inc()
            self._items.pop(change.work_item_id, None)
            return
        if change.next not in _FINAL:
            return
        workflow, kind = self._describe(change)
        self.metrics.steps_finished.labels(workflow, kind, change.next).inc()
        began = self._items.pop(change.work_item_id, None)
        if began is not None:
            self.metrics.step_duration.labels(workflow, kind).observe(now - began)

    def _describe(self, change: WorkItemStateChanged) -> tuple[str, str]:
        """The workflow type and work item kind of a change (label values)."""
        actor: Any = self.rt._live.get(change.workflow_id.split(".", 1)[0])
        record = actor.state.workflows.get(change.workflow_id) if actor is not None else None
        if record is None:
            return "unknown", "unknown"
        definition = actor._spec_of(record).tasks[change.task].work_item
        return record.name, str(definition.kind) if definition is not None else "unknown"

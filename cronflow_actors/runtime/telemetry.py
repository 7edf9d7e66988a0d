"""Feeds a runtime's metrics from the state changes of its durable transactions.

Every label value comes from the change messages themselves (the workflow type, the work item's
kind), and every duration from the times they carry, so nothing here reads an actor's state and
nothing is kept per run in flight.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable
from typing import Any

from cronflow_actors.kernel import ActorSystem, Clock
from cronflow_actors.messages import Message
from cronflow_actors.messages.engine import WorkflowStateChanged, WorkItemStateChanged
from cronflow_actors.metrics import RuntimeMetrics

__all__ = ["Telemetry"]

_FINAL = frozenset({"completed", "failed", "canceled"})
_ACTOR_KINDS = ("WorkflowActor", "WorkItemActor", "ActionActor")


class Telemetry:
    def __init__(
        self, version: str, *, clock: Clock, system: ActorSystem, timers: Callable[[], int]
    ) -> None:
        self.metrics = RuntimeMetrics(version)
        self._clock = clock
        self._system = system
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.metrics.watch(self._actors, timers)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set (label values come from
        finite sets, so this stays small) instead of on every change."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _actors(self) -> dict[str, int]:
        counts = dict.fromkeys(_ACTOR_KINDS, 0)
        counts.update(Tally(ref.actor_class.__name__ for ref in self._system.get_all()))
        return counts

    def observe(self, changes: list[Message]) -> None:
        now = self._clock.now()
        for change in changes:
            if isinstance(change, WorkflowStateChanged) and "." not in change.workflow_id:
                self._run(change, now)
            elif isinstance(change, WorkItemStateChanged):
                self._item(change, now)

    def _run(self, change: WorkflowStateChanged, now: float) -> None:
        metrics = self.metrics
        if change.prev is None:
            self._child(metrics.runs_started, change.workflow).inc()
        elif change.next in _FINAL:
            self._child(metrics.runs_finished, change.workflow, change.next).inc()
            if change.created_at:
                duration = max(0.0, now - change.created_at)
                self._child(metrics.run_duration, change.workflow).observe(duration)

    def _item(self, change: WorkItemStateChanged, now: float) -> None:
        final = change.next in _FINAL
        retry = change.prev == "started" and change.next == "initialized"  # a reset
        if not final and not retry:
            return
        metrics = self.metrics
        workflow, kind = change.workflow or "unknown", change.kind or "unknown"
        if retry:
            self._child(metrics.retries, workflow).inc()
            return
        self._child(metrics.steps_finished, workflow, kind, change.next).inc()
        if change.prev == "started" and change.started_at is not None:
            duration = max(0.0, now - change.started_at)
            self._child(metrics.step_duration, workflow, kind).observe(duration)

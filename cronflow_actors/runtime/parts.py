"""What every part of ``Runtime`` reaches: the components ``Runtime.__init__`` wires (declared
here for the method groups it inherits: ``runtime/lifecycle.py``, ``net_api.py``,
``flow_api.py``) and the few helpers they all use."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cronflow_actors.engine.actors import EngineServices, decode_state
from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.timers import TimerService
from cronflow_actors.errors import RuntimeNotRunningError
from cronflow_actors.flow.secrets import Secrets
from cronflow_actors.kernel import ActorSystem, Clock
from cronflow_actors.messages import Message
from cronflow_actors.messages.engine import InstanceState
from cronflow_actors.metrics import RuntimeMetrics
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.events import Events
from cronflow_actors.runtime.instances import InstanceDirectory, root_of
from cronflow_actors.runtime.migrations import Migrations
from cronflow_actors.runtime.otel import OtelExport
from cronflow_actors.runtime.ownership import RuntimeLease
from cronflow_actors.runtime.pauses import Pauses
from cronflow_actors.runtime.pinning import Pinning
from cronflow_actors.runtime.polls import Polls
from cronflow_actors.runtime.queues import RunQueues
from cronflow_actors.runtime.replays import Replays
from cronflow_actors.runtime.run_hooks import RunHooks
from cronflow_actors.runtime.run_views import RunViews
from cronflow_actors.runtime.runs import Runs
from cronflow_actors.runtime.schedules import Schedules
from cronflow_actors.runtime.shared_state import SharedState
from cronflow_actors.runtime.telemetry import Telemetry
from cronflow_actors.store import Store

__all__ = ["RuntimeParts"]


class RuntimeParts:
    """The parts of a runtime (see ``Runtime.__init__``, which makes them)."""

    clock: Clock
    store: Store
    registry: WorkflowRegistry
    catalog: FlowCatalog
    system: ActorSystem
    timers: TimerService
    lease: RuntimeLease
    telemetry: Telemetry
    metrics: RuntimeMetrics
    instances: InstanceDirectory
    migrations: Migrations
    pinning: Pinning
    queues: RunQueues
    runs: Runs
    run_views: RunViews
    run_hooks: RunHooks
    replays: Replays
    shared_state: SharedState
    pauses: Pauses
    events: Events
    schedules: Schedules
    polls: Polls
    otel: OtelExport | None
    state: str
    failure: BaseException | None
    recovered: int
    retention: float | None
    _prune_every: float
    _abort_drain: bool
    _drain_begun: asyncio.Event
    _services: EngineServices
    _secrets: dict[str, Secrets]
    _failure_callbacks: list[Callable[[BaseException], None]]
    _observers: list[Callable[[list[Message]], None]]
    _recovering: dict[str, asyncio.Task[None]]
    _waiters: dict[str, list[asyncio.Future[WorkflowInfo]]]
    _ended: dict[str, WorkflowInfo]
    _new_id: Callable[[], str]

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        return self.system.create_task(coro, name=name)

    def _check_running(self, operation: str) -> None:
        if self.state != "running":
            raise RuntimeNotRunningError(operation, self.state)

    async def _send(self, element_id: str, command: Message) -> Any:
        self._check_running("act on a workflow")
        return await self.instances.send(root_of(element_id), command)

    async def _state(self, element_id: str) -> InstanceState:
        snapshot = await self.instances.read(root_of(element_id))
        return decode_state(snapshot.body, snapshot.instance_id)

    async def _recovered(self, name: str) -> None:
        task = self._recovering.get(name)
        if task is not None:
            await asyncio.shield(task)

"""``Runtime``: one process's engine: the store, the actor system, the timers, the instances.

    async with cf.Runtime(db="app.db", workflows=[hire]) as rt:
        workflow_id = await rt.start_workflow("hire", {"name": "Ada"})
        [item] = await rt.work_items(workflow_id, "screen")
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id, {"ok": True})

Every call is async and returns once what it changed is durable. ``principal=None`` is an
internal caller; an external one passes ``Principal(id, scopes=...)`` and reaches only the
actions the workflow declares (``net.action``), under their policies. Queries read the last
durable state. On start, every non-terminal instance of a registered workflow is rebuilt from
its snapshot, its timers are re-armed and its started handlers run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
import pykka

from cronflow_actors.engine.actors import (
    ActionActor,
    EngineServices,
    Request,
    WorkflowActor,
    WorkItemActor,
    decode_state,
)
from cronflow_actors.engine.context import WorkflowInfo, WorkItemInfo
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.states import TaskState, WorkflowState, is_final
from cronflow_actors.engine.timers import TimerService
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import (
    ConfigurationError,
    InstanceExistsError,
    NotFoundError,
    RuntimeNotRunningError,
)
from cronflow_actors.flow.builder import Flow
from cronflow_actors.kernel import ActorSystem, Clock, SystemClock
from cronflow_actors.messages import Message
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    InitializeWorkItem,
    InstanceState,
    Principal,
    StartWorkflow,
    Stats,
    TimerFired,
    WorkItemAction,
)
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.runtime.database import store_for
from cronflow_actors.runtime.runs import PausedRun, RunInfo, RunResult, Runs
from cronflow_actors.runtime.schedules import Schedules
from cronflow_actors.runtime.telemetry import Telemetry
from cronflow_actors.store import Store

__all__ = ["Runtime"]

logger = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


class Runtime:
    """The engine of one process. Use ``async with Runtime(...) as rt`` (or ``start``/``stop``).

    ``db`` is a SQLite file (created and migrated as needed) or ``":memory:"``; ``clock`` is
    injected for tests (``ManualClock``); ``synchronous`` is SQLite's durability level.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] = ":memory:",
        *,
        workflows: Iterable[NetSpec | Flow] = (),
        clock: Clock | None = None,
        synchronous: str = "FULL",
        blocking_workers: int = 8,
        name: str = "cronflow",
        store: Store | None = None,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store or store_for(db, synchronous=synchronous)
        self.registry = WorkflowRegistry()
        self.system = ActorSystem(name, blocking_workers=blocking_workers, clock=self.clock)
        self.timers = TimerService(self.clock, self._timer_due)
        self._new_id = id_factory or (lambda: uuid.uuid4().hex)
        self._live: dict[str, WorkflowActor] = {}
        self._waiters: dict[str, list[asyncio.Future[WorkflowInfo]]] = {}
        self._recovering: dict[str, asyncio.Task[None]] = {}
        self._observers: list[Callable[[list[Message]], None]] = []
        self.runs = Runs(self)
        self.telemetry = Telemetry(self, _version())
        self.metrics = self.telemetry.metrics
        self._observers.append(self.telemetry.observe)
        self.schedules = Schedules(self)
        self.state = "new"
        self.recovered = 0
        self._abort_drain = False
        self._services = EngineServices(
            store=self.store,
            clock=self.clock,
            registry=self.registry,
            timers=self.timers,
            on_finished=self._finished,
            on_stopped=self._stopped,
            on_changes=self._changes,
        )
        for spec in workflows:
            self.register(spec)

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the store, start the actors and timers, recover registered workflows."""
        if self.state != "new":
            raise RuntimeNotRunningError("start", self.state)
        await self.store.open()
        self.system.start()
        self.timers.start(self.system)
        self.state = "running"
        await self._recover(set(self.registry.names()))
        for name in sorted(self.runs.roots):
            await self.runs.restore(name)
        self.schedules.restart()

    async def stop(self, grace_period: float | None = None, *, drain: float | None = None) -> None:
        """Stop the instances, the timers and the store. Everything already answered is durable.

        With ``drain`` (seconds), no new step starts and the steps and actions already running
        get up to that long to finish and be recorded; whatever is still running then is
        cancelled and runs again on the next start (its work item stays started).
        """
        if self.state != "running":
            return
        if drain:
            self._services.draining = True
            self.schedules.stop()
            self.timers.stop()

            async def finished() -> None:
                # polling the actor registry (and the abort flag a signal handler may set)
                while self._handlers_running() and not self._abort_drain:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished(), drain)
        self.state = "stopping"
        self.timers.stop()
        self.schedules.stop()
        for task in self._recovering.values():
            task.cancel()
        await self.system.stop(grace_period)
        await self.store.close()
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(RuntimeNotRunningError("wait for a workflow", "stopped"))
        self._waiters.clear()
        self.state = "stopped"

    def abort_drain(self) -> None:
        """Cut a drain in ``stop(drain=...)`` short (a second SIGTERM). Safe from a signal
        handler: it only sets a flag the drain polls."""
        self._abort_drain = True

    def register(self, spec: NetSpec | Flow, *, deprecated: bool = False) -> None:
        """Register a workflow version: a ``NetSpec`` or a ``cf.define(...)`` flow (checked and
        compiled here; ``InvalidWorkflowError`` lists every problem). On a running runtime,
        its unfinished instances are recovered at once (calls that reach them wait for that)."""
        net_spec = self.runs.register(spec) if isinstance(spec, Flow) else spec
        self.registry.register(net_spec, deprecated=deprecated)
        name = net_spec.name
        if self.state == "running" and name not in self._recovering:
            self._recovering[name] = self.system.create_task(self._recover({name}))
        if isinstance(spec, Flow) and self.state == "running":
            self.system.create_task(self._restore_flow(name), name=f"restore {name}")
            self.schedules.restart()

    def deprecate(self, name: str, version: str) -> None:
        """Refuse new instances of this version; running ones go on."""
        self.registry.deprecate(name, version)

    def observe(self, callback: Callable[[list[Message]], None]) -> None:
        """Call ``callback`` with the state-change messages of every durable transaction."""
        self._observers.append(callback)

    async def wait_idle(self) -> None:
        """Return once no instance has work in flight (for tests and benchmarks)."""
        await self.system.wait_idle()

    # -- workflow calls -------------------------------------------------------------------------

    async def start_workflow(
        self,
        name: str,
        payload: Any = None,
        *,
        version: str | None = None,
        principal: Principal | None = None,
        instance_id: str | None = None,
    ) -> str:
        """Initialize a root instance; returns its id once it is durable. External callers
        need the workflow's custom ``initialize`` action. ``instance_id`` (letters, digits,
        ``-`` and ``_``) makes the start idempotent: an id already in use raises
        ``InstanceExistsError`` and starts nothing."""
        self._check_running("start a workflow")
        await self._recovered(name)
        spec = self.registry.for_new_instance(name, version)
        if instance_id is None:
            instance_id = self._new_id()
        else:
            await self._check_new_id(instance_id)
        actor = self._spawn(instance_id, spec, None)
        result: str = await self._ask(actor, StartWorkflow(payload=payload, principal=principal))
        return result

    async def cancel_workflow(
        self, workflow_id: str, *, principal: Principal | None = None
    ) -> None:
        """Cancel a workflow top-down (a child workflow's composite task then hears of it)."""
        await self._send(workflow_id, CancelWorkflow(workflow_id=workflow_id, principal=principal))

    async def wait_workflow(self, workflow_id: str) -> WorkflowInfo:
        """Return once the root instance ``workflow_id`` is completed, failed or canceled."""
        self._check_running("wait for a workflow")
        if _root_of(workflow_id) != workflow_id:
            raise NotFoundError(
                "root workflow instance", workflow_id, "wait_workflow (a child's id was given)"
            )
        info = await self.workflow(workflow_id)
        if is_final(info.state):
            return info
        future: asyncio.Future[WorkflowInfo] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(_root_of(workflow_id), []).append(future)
        return await future

    # -- runs of cf.define flows -------------------------------------------------------------------

    async def trigger(
        self, workflow: str, payload: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> str:
        """Start a run of a registered flow; returns its id once the start is durable (it does
        not wait for the run)."""
        return await self.runs.trigger(workflow, payload, headers=headers)

    async def wait(
        self,
        run_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - a limit, as in asyncio.wait_for
    ) -> RunResult:
        """The run's ``RunResult`` once it is completed, failed or canceled."""
        return await self.runs.wait(run_id, timeout)

    async def inspect(self, run_id: str) -> RunInfo:
        """Status, payload, output, error, and each step's status, output, error, attempts and
        timings (from the last durable state)."""
        return await self.runs.inspect(run_id)

    async def cancel(self, run_id: str) -> None:
        """End a run as canceled: running handlers are cancelled and no later step runs."""
        await self.runs.cancel(run_id)

    async def resume(self, token: str, payload: Any = None) -> None:
        """Continue a run paused by ``human_in_the_loop``; a second resume is a ``ResumeError``."""
        await self.runs.resume(token, payload)

    async def list_paused(self) -> list[PausedRun]:
        return await self.runs.list_paused()

    async def publish_event(self, name: str, payload: Any = None) -> list[str]:
        """Start the flows listening for ``name`` and wake the steps waiting for it."""
        return await self.runs.publish_event(name, payload)

    # -- work item calls ---------------------------------------------------------------------------

    async def initialize_work_item(
        self,
        workflow_id: str,
        task: str,
        payload: Any = None,
        *,
        principal: Principal | None = None,
    ) -> str:
        """Initialize a work item of ``task`` (its latest generation); returns its id."""
        command = InitializeWorkItem(
            workflow_id=workflow_id, task=task, payload=payload, principal=principal
        )
        result: str = await self._send(workflow_id, command)
        return result

    async def start_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("start", work_item_id, payload, principal)

    async def complete_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("complete", work_item_id, payload, principal)

    async def fail_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("fail", work_item_id, payload, principal)

    async def cancel_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("cancel", work_item_id, payload, principal)

    async def reset_work_item(
        self, work_item_id: str, payload: Any = None, *, principal: Principal | None = None
    ) -> None:
        await self._act("reset", work_item_id, payload, principal)

    async def _act(
        self, action: str, work_item_id: str, payload: Any, principal: Principal | None
    ) -> None:
        command = WorkItemAction(
            action=action, work_item_id=work_item_id, payload=payload, principal=principal
        )
        await self._send(work_item_id, command)

    # -- queries (last durable state) ------------------------------------------------------------

    async def workflow(self, workflow_id: str) -> WorkflowInfo:
        """A root or child workflow instance."""
        state = await self._state(workflow_id)
        return Transaction.workflow_info(_workflow(state, workflow_id))

    async def workflow_state(self, workflow_id: str) -> WorkflowState:
        return WorkflowState((await self.workflow(workflow_id)).state)

    async def task_states(self, workflow_id: str) -> dict[str, TaskState]:
        """``{task: state}`` of a workflow's tasks (implicit conditions are not tasks)."""
        workflow = _workflow(await self._state(workflow_id), workflow_id)
        return {name: TaskState(record.state) for name, record in workflow.tasks.items()}

    async def marking(self, workflow_id: str) -> dict[str, int]:
        """Tokens per condition (implicit ones included)."""
        workflow = _workflow(await self._state(workflow_id), workflow_id)
        return dict(workflow.marking)

    async def work_items(self, workflow_id: str, task: str) -> list[WorkItemInfo]:
        """The work items of ``task``'s latest generation, in creation order."""
        state = await self._state(workflow_id)
        record = _task(_workflow(state, workflow_id), task)
        return [
            Transaction.work_item_info(state.work_items[i])
            for i in record.children
            if i in state.work_items
        ]

    async def work_item(self, work_item_id: str) -> WorkItemInfo:
        state = await self._state(work_item_id)
        item = state.work_items.get(work_item_id)
        if item is None:
            raise NotFoundError("work item", work_item_id)
        return Transaction.work_item_info(item)

    async def task_stats(self, workflow_id: str, task: str) -> Stats:
        """Children of ``task``'s latest generation per state."""
        record = _task(_workflow(await self._state(workflow_id), workflow_id), task)
        stats: Stats = msgspec.structs.replace(record.stats)  # a copy the caller may keep
        return stats

    async def task_generation(self, workflow_id: str, task: str) -> int:
        record = _task(_workflow(await self._state(workflow_id), workflow_id), task)
        return int(record.generation)

    async def child_workflows(self, workflow_id: str, task: str) -> list[WorkflowInfo]:
        """The child workflows of composite ``task``'s latest generation."""
        state = await self._state(workflow_id)
        record = _task(_workflow(state, workflow_id), task)
        return [
            Transaction.workflow_info(state.workflows[i])
            for i in record.children
            if i in state.workflows
        ]

    # -- internals ---------------------------------------------------------------------------------

    async def _restore_flow(self, name: str) -> None:
        await self._recovered(name)
        await self.runs.restore(name)

    async def _check_new_id(self, instance_id: str) -> None:
        if not isinstance(instance_id, str) or not _ID.fullmatch(instance_id):
            raise ConfigurationError(
                "instance_id", instance_id, "1-100 letters, digits, '-' or '_'"
            )
        if instance_id in self._live or await self.store.load_snapshot(instance_id) is not None:
            raise InstanceExistsError(instance_id)

    def _handlers_running(self) -> int:
        running = self.system.get_by_class(WorkItemActor) + self.system.get_by_class(ActionActor)
        return len(running)

    def _check_running(self, operation: str) -> None:
        if self.state != "running":
            raise RuntimeNotRunningError(operation, self.state)

    async def _recovered(self, name: str) -> None:
        task = self._recovering.get(name)
        if task is not None:
            await asyncio.shield(task)

    async def _recover(self, names: set[str]) -> None:
        """Rebuild every non-terminal instance of the named workflows and re-arm all timers."""
        try:
            snapshots = await self.store.list_snapshots(terminal=False)
            recovered = set()
            for snapshot in snapshots:
                if snapshot.workflow not in names or snapshot.instance_id in self._live:
                    continue
                try:
                    spec = self.registry.get(snapshot.workflow, snapshot.version)
                except LookupError:
                    logger.warning(
                        "instance %s of %s %s not recovered: that version is not registered",
                        snapshot.instance_id,
                        snapshot.workflow,
                        snapshot.version,
                    )
                    continue
                self._spawn(snapshot.instance_id, spec, snapshot)
                recovered.add(snapshot.instance_id)
                self.recovered += 1
                self.metrics.recovered.inc()
            for timer in await self.store.load_timers():
                if timer.instance_id in recovered:
                    self.timers.arm(timer)
        finally:
            for name in names:
                self._recovering.pop(name, None)

    def _spawn(self, instance_id: str, spec: NetSpec, snapshot: Any) -> WorkflowActor:
        ref = self.system.spawn(WorkflowActor, self._services, instance_id, spec, snapshot)
        actor = ref._actor_weakref()
        assert isinstance(actor, WorkflowActor)
        self._live[instance_id] = actor
        return actor

    async def _activate(self, instance_id: str) -> WorkflowActor:
        """The live actor of an instance, or one rebuilt from its snapshot (a finished instance
        too: its actor answers the call, then stops again)."""
        actor = self._live.get(instance_id)
        if actor is not None:
            return actor
        snapshot = await self.store.load_snapshot(instance_id)
        if snapshot is None:
            raise NotFoundError("workflow instance", instance_id)
        await self._recovered(snapshot.workflow)
        actor = self._live.get(instance_id)
        if actor is not None:
            return actor
        spec = self.registry.get(snapshot.workflow, snapshot.version)
        return self._spawn(instance_id, spec, snapshot)

    async def _send(self, element_id: str, command: Any) -> Any:
        self._check_running("act on a workflow")
        instance_id = _root_of(element_id)
        for _attempt in range(3):
            actor = await self._activate(instance_id)
            try:
                return await self._ask(actor, command)
            except pykka.ActorDeadError:
                if self._live.get(instance_id) is actor:
                    del self._live[instance_id]
                self._check_running("act on a workflow")
        raise RuntimeNotRunningError("act on a workflow", "unable to reach the instance")

    @staticmethod
    async def _ask(actor: WorkflowActor, command: Any) -> Any:
        reply = await actor.actor_ref.ask(Request(command=command), block=False)
        return await reply

    async def _state(self, element_id: str) -> InstanceState:
        instance_id = _root_of(element_id)
        actor = self._live.get(instance_id)
        body = actor.committed_body if actor is not None else None
        if body is None:
            snapshot = await self.store.load_snapshot(instance_id)
            if snapshot is None:
                raise NotFoundError("workflow instance", instance_id)
            body = snapshot.body
        return decode_state(body)

    def _timer_due(self, instance_id: str, timer_id: str) -> None:
        actor = self._live.get(instance_id)
        if actor is not None:
            actor.actor_ref.tell(TimerFired(timer_id=timer_id))
            return

        async def deliver() -> None:
            try:
                activated = await self._activate(instance_id)
                activated.actor_ref.tell(TimerFired(timer_id=timer_id))
            except Exception:
                logger.exception("timer %s of instance %s could not fire", timer_id, instance_id)

        self.system.create_task(deliver())

    def _finished(self, root: Any) -> None:
        self.runs.finished(root)
        info = Transaction.workflow_info(root)
        for future in self._waiters.pop(root.id, ()):
            if not future.done():
                future.set_result(info)

    def _stopped(self, actor: WorkflowActor) -> None:
        if self._live.get(actor.instance_id) is actor:
            del self._live[actor.instance_id]

    def _changes(self, changes: list[Message]) -> None:
        for observer in self._observers:
            try:
                observer(changes)
            except Exception:
                logger.exception("observer %r failed", observer)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cronflow-actors")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def _root_of(element_id: str) -> str:
    if not isinstance(element_id, str) or not element_id:
        raise NotFoundError("workflow instance", repr(element_id))
    return element_id.split(".", 1)[0]


def _workflow(state: InstanceState, workflow_id: str) -> Any:
    workflow = state.workflows.get(workflow_id)
    if workflow is None:
        raise NotFoundError("workflow instance", workflow_id)
    return workflow


def _task(workflow: Any, task: str) -> Any:
    record = workflow.tasks.get(task)
    if record is None:
        raise NotFoundError(
            "task", task, f"workflow {workflow.name!r} (tasks: {sorted(workflow.tasks)})"
        )
    return record

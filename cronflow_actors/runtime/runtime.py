"""``Runtime``: one process's engine: the store, the actor system, the timers, the instances.

    async with cf.Runtime(db="app.db", workflows=[hire]) as rt:
        workflow_id = await rt.start_workflow("hire", {"name": "Ada"})
        [item] = await rt.work_items(workflow_id, "screen")
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id, {"ok": True})

Every call is async and returns once what it changed is durable. ``principal=None`` is an
internal caller; an external one passes ``Principal(id, scopes=...)`` and reaches only the
actions the workflow declares (``net.action``), under their policies. Queries read the last
durable state.

A runtime owns its database: at start it takes the database's owner lease (a second runtime on
the same file is refused, or waits with ``wait_for_lease``), and loads only the instances that
have work to run. Waiting instances (on a timer, an event, a human, a concurrency slot) stay in
the store, and leave memory once idle; the message that wakes them activates them from their
snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from cronflow_actors.engine.actors import (
    ActionActor,
    EngineServices,
    WorkItemActor,
    decode_state,
)
from cronflow_actors.engine.context import WorkflowInfo, WorkItemInfo
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemVerb, is_final
from cronflow_actors.engine.timers import TimerService
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import (
    ConfigurationError,
    MissingSecretError,
    MockLostError,
    NotFoundError,
    RuntimeNotRunningError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.flow.builder import Flow
from cronflow_actors.flow.context import unwrap_payload
from cronflow_actors.flow.secrets import Secrets
from cronflow_actors.kernel import ActorSystem, Clock, SystemClock
from cronflow_actors.messages import Message, SnapshotRecord, TimerRecord
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
from cronflow_actors.runtime.catalog import FlowCatalog, WorkflowDescription, describe, flows_of
from cronflow_actors.runtime.database import store_for
from cronflow_actors.runtime.events import Events, PublishResult
from cronflow_actors.runtime.instances import InstanceDirectory, root_of
from cronflow_actors.runtime.ownership import DatabaseLease
from cronflow_actors.runtime.pauses import PausedRun, Pauses
from cronflow_actors.runtime.polls import Polls
from cronflow_actors.runtime.queues import RunQueues, check_queue_limits
from cronflow_actors.runtime.replays import Replays
from cronflow_actors.runtime.runs import Page, RunInfo, RunResult, Runs, check_instance_id
from cronflow_actors.runtime.schedules import Schedules
from cronflow_actors.runtime.shared_state import SharedState, StateMethods
from cronflow_actors.runtime.telemetry import Telemetry
from cronflow_actors.store import Store

__all__ = ["Runtime"]

logger = logging.getLogger(__name__)


class Runtime(StateMethods):
    """The engine of one process. Use ``async with Runtime(...) as rt`` (or ``start``/``stop``).

    ``db`` is a SQLite file (created and migrated as needed) or ``":memory:"``; ``clock`` is
    injected for tests (``ManualClock``); ``synchronous`` is SQLite's durability level.
    ``lease_seconds``: how long the database lease outlives this runtime after a crash (it is
    renewed every third of that); ``wait_for_lease``: wait for another runtime's lease to
    expire instead of refusing to start. ``passivate=False`` keeps idle instances in memory.
    ``timer_window``: how many of the earliest pending timers are held in memory (at most twice
    that); the others wait in the store until the window reaches them. ``retention``: finished
    runs older than this many seconds are pruned every ``prune_every`` seconds (default 30
    days; 0 or None keeps them forever; pruning runs every tenth of that, at most hourly).
    ``queues``: the named queues' concurrency limits, ``{"emails": 5}``: at most that many runs
    of the flows that say ``define(..., queue="emails")`` run at once, the others wait in one
    durable FIFO (a queue a flow names but this leaves out runs without a limit, with a warning).
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
        token_factory: Callable[[], str] | None = None,
        lease_seconds: float = 5.0,
        wait_for_lease: bool = False,
        passivate: bool = True,
        timer_window: int = 1000,
        retention: float | None = 30 * 86400,
        prune_every: float | None = None,
        queues: Mapping[str, int] | None = None,
    ) -> None:
        queue_limits = check_queue_limits(queues)
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store or store_for(db, synchronous=synchronous)
        self.registry = WorkflowRegistry()
        self.catalog = FlowCatalog()
        self.system = ActorSystem(name, blocking_workers=blocking_workers, clock=self.clock)
        self.timers = TimerService(self.clock, self._timer_due, self._timer_page, timer_window)
        self.lease = DatabaseLease(
            self.store,
            self.clock,
            duration=lease_seconds,
            wait=wait_for_lease,
            on_lost=self._fail,
        )
        if retention is not None and (not isinstance(retention, int | float) or retention < 0):
            raise ConfigurationError("retention", retention, "None, 0 or a number of seconds")
        self.retention = retention or None
        if prune_every is not None and (
            not isinstance(prune_every, int | float) or prune_every <= 0
        ):
            raise ConfigurationError("prune_every", prune_every, "a positive number of seconds")
        self._prune_every = prune_every or min(3600.0, max(1.0, (retention or 0) / 10))
        self._failure_callbacks: list[Callable[[BaseException], None]] = []
        self._new_id = id_factory or (lambda: uuid.uuid4().hex)
        self._waiters: dict[str, list[asyncio.Future[WorkflowInfo]]] = {}
        self._ended: dict[str, WorkflowInfo] = {}
        """Root instances that ended and whose actor is still in memory (it stops soon)."""
        self._recovering: dict[str, asyncio.Task[None]] = {}
        self._observers: list[Callable[[list[Message]], None]] = []
        self.telemetry = Telemetry(
            _version(),
            clock=self.clock,
            system=self.system,
            timers=lambda: len(self.timers),
            count_in_flight=self.store.count_in_flight,
            queue_lengths=self.store.queue_lengths,
            workflows=self.registry.names,
        )
        self.metrics = self.telemetry.metrics
        self._observers.append(self.telemetry.observe)
        self.store.watch_commits(self.telemetry.committed)
        self.state = "new"
        self.failure: BaseException | None = None
        """Why the runtime stopped accepting work on its own (a lost lease), if it did."""
        self.recovered = 0
        self._abort_drain = False
        self._secrets: dict[str, Secrets] = {}
        """Flow id -> ``ctx.secrets`` of its runs (flows with secrets only; in memory only)."""
        self._services = EngineServices(
            store=self.store,
            clock=self.clock,
            registry=self.registry,
            timers=self.timers,
            on_finished=self._finished,
            on_stopped=self._instance_stopped,
            on_changes=self._changes,
            tokens=token_factory,
            passivate=passivate,
            secrets=self._secrets,
        )
        self.instances = InstanceDirectory(
            system=self.system,
            store=self.store,
            registry=self.registry,
            services=self._services,
            new_id=self._new_id,
            is_running=lambda: self.state == "running",
            spec_of=self._spec_of,
        )
        self.queues = RunQueues(
            store=self.store,
            clock=self.clock,
            start=self._start_run,
            new_id=self._new_id,
            spawn=self._spawn,
            queue_limits=queue_limits,
        )
        self.runs = Runs(
            catalog=self.catalog,
            registry=self.registry,
            store=self.store,
            clock=self.clock,
            queues=self.queues,
            start=self._start_run,
            ready=self._recovered,
            read=self.instances.read,
            wait_workflow=self.wait_workflow,
            spawn=self._spawn,
            secrets=self._secrets,
        )
        self.replays = Replays(
            catalog=self.catalog,
            store=self.store,
            clock=self.clock,
            read=self.instances.read,
            trigger=self.runs.trigger,
            new_id=self._new_id,
            spawn=self._spawn,
        )
        self.shared_state = SharedState(
            store=self.store,
            clock=self.clock,
            known=self.catalog.root,
            check=self._check_running,
        )
        self.pauses = Pauses(store=self.store, send=self.instances.send)
        self.events = Events(
            catalog=self.catalog,
            store=self.store,
            clock=self.clock,
            trigger=self.runs.trigger,
            send=self.instances.send,
        )
        self.schedules = Schedules(
            catalog=self.catalog,
            store=self.store,
            clock=self.clock,
            trigger=self.runs.trigger,
            spawn=self._spawn,
            on_fired=self.telemetry.schedule_fired,
        )
        self.polls = Polls(
            catalog=self.catalog,
            store=self.store,
            clock=self.clock,
            trigger=self.runs.trigger,
            spawn=self._spawn,
            run_blocking=self.system.run_blocking,
            on_poll=lambda name, outcome: self.metrics.polls.labels(name, outcome).inc(),
            on_item=lambda name, outcome: self.metrics.poll_items.labels(name, outcome).inc(),
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
        """Open the store, take the database lease, start the actors and timers, load the
        instances of registered workflows that have work to run."""
        if self.state != "new":
            raise RuntimeNotRunningError("start", self.state)
        await self.store.open()
        try:
            await self.lease.acquire()
        except BaseException:
            await self.store.close()
            self.state = "stopped"
            raise
        self.system.start()
        self.state = "running"
        self.telemetry.probe.start()
        self.lease.start_heartbeat(self.system)
        if self.retention is not None:
            self.system.create_task(self._prune_forever(), name="retention")
        await self.replays.load()  # before any instance loads: which runs lost their mocks
        await self._recover(set(self.registry.names()))
        await self.timers.start(self.system)
        await self.queues.restore_all(sorted(self.catalog.roots))
        self.schedules.restart()
        self.polls.restart()

    async def stop(self, grace_period: float | None = None, *, drain: float | None = None) -> None:
        """Stop the instances, the timers and the store, and release the database lease.
        Everything already answered is durable.

        With ``drain`` (seconds), no new step starts and the steps and actions already running
        get up to that long to finish and be recorded; whatever is still running then is
        cancelled and runs again on the next start (its work item stays started).
        """
        if self.state not in ("running", "failed"):
            return
        if drain and self.state == "running":
            self._services.draining = True
            self.schedules.stop()
            self.polls.stop()
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
        self.polls.stop()
        for task in self._recovering.values():
            task.cancel()
        await self.system.stop(grace_period)
        await self.telemetry.probe.stop()
        try:
            await self.lease.release()
        except Exception as error:
            logger.warning("the database lease was not released: %s", error)
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
        its instances with work to run are loaded at once (calls that start it wait for that).
        A flow whose secrets read environment variables that are not set is refused with
        ``MissingSecretError`` (naming them all)."""
        net_spec = self.catalog.compile(spec) if isinstance(spec, Flow) else spec
        secrets: dict[str, Secrets] = {}
        if isinstance(spec, Flow):
            secrets = {flow.id: Secrets(flow.id, flow.secrets) for flow in flows_of(spec)}
            missing = [pair for s in secrets.values() for pair in s.missing()]
            if missing:
                raise MissingSecretError(spec.id, missing)
        self.registry.register(net_spec, deprecated=deprecated)  # refused: nothing changed
        if isinstance(spec, Flow):
            self.catalog.add(spec)
            self.metrics.flow_registered(spec.id, spec.name, spec.version, list(spec.tags))
            for flow_id, flow_secrets in secrets.items():
                if flow_secrets:
                    self._secrets[flow_id] = flow_secrets
                else:  # registered again without secrets
                    self._secrets.pop(flow_id, None)
            self.queues.configure(
                spec.id,
                concurrency=spec.concurrency,
                rate_limit=spec.rate_limit,
                queue=spec.queue,
            )
        name = net_spec.name
        if self.state == "running" and name not in self._recovering:
            self._recovering[name] = self.system.create_task(
                self._recover_registered(name), name=f"recover {name}"
            )

    def deprecate(self, name: str, version: str) -> None:
        """Refuse new instances of this version; running ones go on."""
        self.registry.deprecate(name, version)

    def on_failure(self, callback: Callable[[BaseException], None]) -> None:
        """Call ``callback(error)`` when the runtime stops accepting work on its own: its store
        failed (the database file was removed or replaced, the disk is full or read-only) or
        another runtime took its database lease."""
        self._failure_callbacks.append(callback)

    async def readiness(self) -> dict[str, str]:
        """Whether the runtime can take work: ``{"runtime", "store", "lease"}``, each ``"ok"``
        or what is wrong. A store found broken fails the runtime."""
        checks = {"runtime": "ok" if self.state == "running" else self.state}
        try:
            await self.store.check()
            checks["store"] = "ok"
        except (StoreFailedError, StoreClosedError) as broken:
            checks["store"] = str(broken)
            if self.state == "running":
                self._fail(broken)
                checks["runtime"] = self.state
        checks["lease"] = "ok" if self.lease.held else "not held"
        return checks

    def observe(self, callback: Callable[[list[Message]], None]) -> None:
        """Call ``callback`` with the state-change messages of every durable transaction."""
        self._observers.append(callback)

    async def wait_idle(self) -> None:
        """Return once no instance has work in flight: no message, handler, action or call
        being processed. Armed timers (a sleep, a timeout, a schedule) are not work in flight:
        an instance that only waits for one counts as idle."""
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
        ``InstanceExistsError`` and starts nothing, also when two starts of it race."""
        self._check_running("start a workflow")
        if instance_id is not None:
            check_instance_id(instance_id)
        await self._recovered(name)
        spec = self.registry.for_new_instance(name, version)
        trigger = "manual" if principal is None else "api"
        command = StartWorkflow(payload=payload, principal=principal, trigger=trigger)
        return await self.instances.start(spec, command, instance_id)

    async def _start_run(
        self, name: str, payload: Any, instance_id: str | None, dequeued: bool
    ) -> str:
        """A run of a flow (``dequeued``: taken off its concurrency queue in the same
        transaction). Callers have waited for the flow's recovery (``Runs.trigger``), or are
        part of it (the queue's restore)."""
        self._check_running("start a run")
        spec = None
        if instance_id is not None:
            spec = self.replays.spec_for(instance_id, name, None)
        if spec is None:
            spec = self.registry.for_new_instance(name)
        trigger = unwrap_payload(payload)[1].kind
        command = StartWorkflow(payload=payload, dequeued=dequeued, trigger=trigger)
        return await self.instances.start(spec, command, instance_id)

    async def cancel_workflow(
        self, workflow_id: str, *, principal: Principal | None = None
    ) -> None:
        """Cancel a workflow top-down (a child workflow's composite task then hears of it)."""
        await self._send(workflow_id, CancelWorkflow(workflow_id=workflow_id, principal=principal))

    async def wait_workflow(self, workflow_id: str) -> WorkflowInfo:
        """Return once the root instance ``workflow_id`` is completed, failed or canceled."""
        self._check_running("wait for a workflow")
        if root_of(workflow_id) != workflow_id:
            raise NotFoundError(
                "root workflow instance", workflow_id, "wait_workflow (a child's id was given)"
            )
        ended = self._ended.get(workflow_id)
        if ended is not None:
            return ended
        # Registered before anything is awaited, so an end in between is not missed.
        future: asyncio.Future[WorkflowInfo] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(workflow_id, []).append(future)
        if workflow_id in self.instances:
            # In memory and not ended: its end will be announced (and if its actor stops
            # first, _instance_stopped looks at the store for the waiters).
            return await future
        try:
            info = await self.workflow(workflow_id)
        except BaseException:
            self._unwait(workflow_id, future)
            raise
        if is_final(info.state):
            self._unwait(workflow_id, future)
            return info
        return await future

    def _unwait(self, workflow_id: str, future: asyncio.Future[WorkflowInfo]) -> None:
        waiters = self._waiters.get(workflow_id)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[workflow_id]

    # -- runs of cf.define flows -------------------------------------------------------------------

    async def trigger(
        self,
        workflow: str,
        payload: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        instance_id: str | None = None,
    ) -> str:
        """Start a run of a registered flow; returns its id once the start is durable (it does
        not wait for the run). ``instance_id`` makes it idempotent (``InstanceExistsError``
        when that id is taken). A flow at its concurrency limit queues the run instead."""
        return await self.runs.trigger(workflow, payload, headers=headers, instance_id=instance_id)

    async def wait(
        self,
        run_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - a limit, as in asyncio.wait_for
    ) -> RunResult:
        """The run's ``RunResult`` once it is completed, failed or canceled."""
        return await asyncio.wait_for(self.runs.wait(run_id), timeout)

    async def inspect(self, run_id: str) -> RunInfo:
        """Status, payload, output, error, and each step's status, output, error, attempts and
        timings (from the last durable state)."""
        return await self.runs.inspect(run_id)

    async def list_runs(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RunInfo]:
        """Runs newest first (steps left out; ``inspect`` has them), filtered by workflow and
        status, ``limit`` at a time: pass the page's ``next_cursor`` for the next one."""
        return await self.runs.list_runs(
            workflow=workflow, status=status, limit=limit, cursor=cursor
        )

    async def cancel(self, run_id: str) -> None:
        """End a run as canceled: running handlers are cancelled and no later step runs."""
        await self.cancel_workflow(run_id)

    async def resume(self, token: str, payload: Any = None) -> None:
        """Continue a run paused by ``human_in_the_loop``; ``ResumeError`` for a token that
        is unknown or whose pause has ended (``.ended``)."""
        await self.pauses.resume(token, payload)

    async def list_paused(self, *, limit: int = 100, cursor: str | None = None) -> Page[PausedRun]:
        """The runs waiting for a human, oldest first, with their resume tokens."""
        return await self.pauses.list_paused(limit=limit, cursor=cursor)

    async def publish_event(self, name: str, payload: Any = None) -> PublishResult:
        """Start the flows listening for ``name`` and wake the steps waiting for it. Returns
        the ids of the runs started (a list), with ``.refused``: the flows whose
        ``on_event`` schema refused the payload. When every flow listening refused it,
        raises ``InvalidEventError`` and does nothing."""
        return await self.events.publish(name, payload)

    async def emit(self, name: str, payload: Any = None) -> list[str]:
        """``publish_event`` under Cronflow's other name for it."""
        return await self.publish_event(name, payload)

    async def replay(
        self, run_id: str, *, payload: Any = None, mock_steps: Mapping[str, Any] | None = None
    ) -> str:
        """Start a new run of ``run_id``'s flow (its newest active version) from the run's
        recorded trigger: its payload (or ``payload``, when given), headers, trigger kind and
        path parameters. Returns the new run's id once its start is durable; the new run
        shows ``replay_of`` in ``inspect`` and ``GET /runs/{id}``. Limits apply as to any run.

        ``mock_steps={"step-id": fn}`` replaces those steps' functions for this run only (``fn``
        takes what the step's function takes; the step's retry, timeout and ``on_error`` still
        apply). Mocks are kept in this runtime's memory, never stored: if the runtime stops
        before the replay ends, the next one runs its other steps as usual and fails a mocked
        step that still has to run with ``MockLostError``, rather than run the real one.
        ``NotFoundError`` for an unknown run or a flow no longer registered,
        ``ConfigurationError`` for a mock of a step the flow does not have."""
        self._check_running("replay a run")
        return await self.replays.replay(run_id, payload=payload, mock_steps=mock_steps)

    def get_workflows(self) -> list[WorkflowDescription]:
        """The registered flows by id: id, name, description, tags, version, triggers, limits
        and the names of their secrets."""
        return self.catalog.descriptions()

    def get_workflow(self, workflow_id: str) -> WorkflowDescription:
        """One registered flow (``NotFoundError`` if none has that id)."""
        return describe(self.catalog.root(workflow_id))

    async def get_paused(self, token: str) -> PausedRun:
        """The run paused for a human with this resume token; ``ResumeError`` if no run is
        paused with it (``.ended`` when its pause is over)."""
        self._check_running("read a pause")
        return await self.pauses.get(token)

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
            action=WorkItemVerb(action),
            work_item_id=work_item_id,
            payload=payload,
            principal=principal,
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

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        return self.system.create_task(coro, name=name)

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

    async def _recover_registered(self, name: str) -> None:
        """A workflow registered while running: load its runnable instances, arm its timers,
        restore its concurrency queue and schedules."""
        try:
            await self._recover({name})
            await self.timers.reload()
            if name in self.catalog.roots:
                await self.queues.restore(name)
                self.schedules.restart()
                self.polls.restart()
        finally:
            self._recovering.pop(name, None)

    async def _recover(self, names: set[str]) -> None:
        """Load every instance of the named workflows that has work to run (a started handler,
        an action out); the others wait in the store for what wakes them."""
        for snapshot in await self.store.list_snapshots(runnable=True):
            if snapshot.workflow not in names:
                continue
            try:
                spec = self._spec_of(snapshot)
            except (LookupError, MockLostError):
                logger.warning(
                    "instance %s of %s %s not recovered: that version is not registered",
                    snapshot.instance_id,
                    snapshot.workflow,
                    snapshot.version,
                )
                continue
            if self.instances.recover(snapshot, spec):
                self.recovered += 1
                self.metrics.recovered.inc()

    async def _timer_page(self, after: tuple[float, str] | None, limit: int) -> list[TimerRecord]:
        return await self.store.load_timers(after=after, limit=limit)

    async def _send(self, element_id: str, command: Message) -> Any:
        self._check_running("act on a workflow")
        return await self.instances.send(root_of(element_id), command)

    async def _state(self, element_id: str) -> InstanceState:
        snapshot = await self.instances.read(root_of(element_id))
        return decode_state(snapshot.body)

    def _instance_stopped(self, instance_id: str, ref: Any) -> None:
        self.instances.stopped(instance_id, ref)
        self._ended.pop(instance_id, None)
        if instance_id in self._waiters and self.state == "running":
            # Stopped without ending (passivated, stale, or its start was refused): whoever
            # waits keeps waiting if it is stored unfinished, else hears how it stands.
            self.system.create_task(self._recheck_waiters(instance_id), name="recheck waiters")

    async def _recheck_waiters(self, instance_id: str) -> None:
        try:
            info: WorkflowInfo | BaseException = await self.workflow(instance_id)
        except Exception as error:
            info = error
        if isinstance(info, WorkflowInfo) and not is_final(info.state):
            return
        for future in self._waiters.pop(instance_id, ()):
            if future.done():
                continue
            if isinstance(info, BaseException):
                future.set_exception(info)
            else:
                future.set_result(info)

    def _timer_due(self, instance_id: str, timer_id: str) -> None:
        self.instances.deliver(instance_id, TimerFired(timer_id=timer_id))

    def _spec_of(self, snapshot: SnapshotRecord) -> NetSpec:
        """The definition a stored instance runs on: its registered version, or the one a
        replay with mocks keeps for it."""
        spec = self.replays.spec_for(snapshot.instance_id, snapshot.workflow, snapshot.version)
        return spec or self.registry.get(snapshot.workflow, snapshot.version)

    def _finished(self, info: WorkflowInfo, body: bytes, raised: BaseException | None) -> None:
        self.runs.finished(info, body, raised)
        if info.parent_id is None:
            self.replays.finished(info.id)
        if info.id in self.instances:
            self._ended[info.id] = info
        for future in self._waiters.pop(info.id, ()):
            if not future.done():
                future.set_result(info)

    def _changes(self, changes: list[Message]) -> None:
        for observer in self._observers:
            try:
                observer(changes)
            except Exception:
                logger.exception("observer %r failed", observer)

    def _fail(self, error: BaseException) -> None:
        """The store broke or another runtime took the database: accept nothing more (the store
        already refuses every write), and tell whoever asked (``serve`` then exits)."""
        if self.failure is not None:
            return
        self.failure = error
        logger.error("the runtime stops accepting work: %s", error)
        if self.state == "running":
            self.state = "failed"
            self.timers.stop()
            self.schedules.stop()
            self.polls.stop()
        for callback in self._failure_callbacks:
            try:
                callback(error)
            except Exception:
                logger.exception("failure callback %r failed", callback)

    async def _prune_forever(self) -> None:
        assert self.retention is not None
        while True:
            await self.clock.sleep(self._prune_every)
            try:
                await self.prune(older_than=self.retention)
            except Exception as error:
                logger.warning("pruning finished runs failed: %s", error)

    async def prune(self, *, older_than: float) -> int:
        """Delete the runs (and net instances) that finished more than ``older_than`` seconds
        ago, with their history, and expired state keys; returns how many runs."""
        cutoff = self.clock.now() - older_than
        total = 0
        while True:
            pruned = await self.store.prune(finished_before=cutoff, limit=1000)
            total += pruned
            if pruned < 1000:
                break
        await self.store.kv_purge_expired(self.clock.now())
        if total:
            logger.info("pruned %d finished runs older than %g s", total, older_than)
        return total


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cronflow-actors")
    except PackageNotFoundError:
        return "0.0.0+unknown"


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

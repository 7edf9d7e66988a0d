"""``Runtime``: one process's engine: the store, the actor system, the timers, the instances.

    async with cf.Runtime(db="app.db", workflows=[hire]) as rt:
        workflow_id = await rt.start_workflow("hire", {"name": "Ada"})
        [item] = await rt.work_items(workflow_id, "screen")
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id, {"ok": True})

Every call is async and returns once what it changed is durable. ``principal=None`` is an
internal caller; an external one (``Principal(id, scopes=...)``) reaches only the actions the
workflow declares (``net.action``), under their policies. Queries read the last durable state.

A runtime owns its database (its owner lease: a second runtime on the same file is refused, or
waits with ``wait_for_lease``), and loads only the instances that have work to run. Waiting ones
(on a timer, an event, a human, a concurrency slot) stay in the store, leave memory once idle,
and are activated from their snapshot by the message that wakes them.

This module wires the parts (``__init__``), registers definitions and takes the engine's callbacks;
the calls come in groups of one concept each, which ``Runtime`` inherits: ``runtime/lifecycle.py``
(start, stop, failure, recovery, pruning), ``runtime/net_api.py`` (nets, work items, queries),
``runtime/flow_api.py`` (runs of flows, pauses, events, replays) and ``runtime/shared_state.py``
(the state API). Each call goes to its part: ``runs`` (start, wait), ``run_views`` (inspect, list),
``run_hooks``, ``queues``, ``pauses``, ``events``, ``replays``, ``schedules``, ``polls``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cronflow_actors.engine.actors import EngineServices
from cronflow_actors.engine.audit import AuditTrail
from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.states import WorkflowState, is_final
from cronflow_actors.engine.timers import TimerService
from cronflow_actors.errors import ConfigurationError, MissingSecretError
from cronflow_actors.flow.builder import Flow
from cronflow_actors.flow.compiled import CompiledFlow
from cronflow_actors.flow.secrets import Secrets
from cronflow_actors.kernel import ActorSystem, Clock, SystemClock
from cronflow_actors.messages import Message, TimerRecord
from cronflow_actors.messages.audit import AuditSpan
from cronflow_actors.messages.engine import TimerFired
from cronflow_actors.net.migration import MigrationSpec
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.runtime.admission import Admission
from cronflow_actors.runtime.audit import AuditMethods
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.cluster import ClusterLease, ClusterRecovery, lease_for
from cronflow_actors.runtime.config import check_queue_limits
from cronflow_actors.runtime.database import store_for
from cronflow_actors.runtime.events import Events
from cronflow_actors.runtime.flow_api import FlowMethods
from cronflow_actors.runtime.ids import new_run_id
from cronflow_actors.runtime.instances import InstanceDirectory
from cronflow_actors.runtime.lifecycle import LifecycleMethods, pruning
from cronflow_actors.runtime.migration_plans import PlanBook
from cronflow_actors.runtime.migrations import Migrations
from cronflow_actors.runtime.otel import OtelExport
from cronflow_actors.runtime.pauses import Pauses
from cronflow_actors.runtime.pinning import Pinning
from cronflow_actors.runtime.polls import Polls
from cronflow_actors.runtime.queues import RunQueues
from cronflow_actors.runtime.replays import Replays
from cronflow_actors.runtime.run_hooks import FlowEndHooks, RunHooks, say_run_failed
from cronflow_actors.runtime.run_views import RunViews
from cronflow_actors.runtime.runs import Runs
from cronflow_actors.runtime.schedules import Schedules
from cronflow_actors.runtime.shared_state import SharedState, StateMethods
from cronflow_actors.runtime.telemetry import Telemetry
from cronflow_actors.store import Store

__all__ = ["WORKFLOWS", "Runtime"]

logger = logging.getLogger(__name__)


class Runtime(ClusterRecovery, LifecycleMethods, FlowMethods, StateMethods, AuditMethods):
    """The engine of one process. Use ``async with Runtime(...) as rt`` (or ``start``/``stop``).

    ``db`` is a SQLite file (created and migrated as needed), ``":memory:"``, or a
    ``postgresql://user@host:port/dbname`` URL: a database several processes share, each
    holding the instances it runs under a lease of ``lease_seconds`` (``runtime/cluster.py``);
    ``clock`` is
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
    ``otel_endpoint``: export the audit trail's spans over OTLP/HTTP to this collector
    (``http://localhost:4318``), and run step handlers inside their spans; needs
    ``pip install -e '.[otel]'`` in the checkout (``runtime/otel.py``); ``otel_service_name``:
    the resource's ``service.name`` (default ``$OTEL_SERVICE_NAME``, else ``cronflow-actors``).
    ``audit``: record every engine operation as a span, committed with its snapshot
    (``trace``, ``state_at``, ``on_spans``; ``runtime/audit.py``); False records nothing.
    ``id_factory``: makes the ids of runs started without one (default: UUIDv7 in hex,
    ordered by time, ``runtime/ids.py``). ``max_active_runs``: a new run starts only while
    fewer than that many runs are in memory; the starts beyond it wait in line before anything
    is written (starts from steps and resumes are never held back; ``runtime/admission.py``).
    """

    def __init__(
        self,
        db: str | os.PathLike[str] = ":memory:",
        *,
        workflows: Iterable[NetSpec | Flow | MigrationSpec] = (),
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
        otel_endpoint: str | None = None,
        otel_service_name: str | None = None,
        audit: bool = True,
        max_active_runs: int | None = None,
    ) -> None:
        queue_limits = check_queue_limits(queues)
        self.clock: Clock = clock or SystemClock()
        self.otel = OtelExport.optional(
            otel_endpoint, service_name=otel_service_name, clock=self.clock, audit=audit
        )
        self.store: Store = store or store_for(db, synchronous=synchronous)
        self.registry = WorkflowRegistry()
        self.catalog = FlowCatalog(nets=self.registry.versions, waits=self.registry.waited_events)
        self.system = ActorSystem(name, blocking_workers=blocking_workers, clock=self.clock)
        self.timers = TimerService(self.clock, self._timer_due, self._timer_page, timer_window)
        self.lease = lease_for(
            self.store,
            self.clock,
            duration=lease_seconds,
            wait=wait_for_lease,
            on_lost=self._fail,
        )
        self.retention, self._prune_every = pruning(retention, prune_every)
        self._failure_callbacks: list[Callable[[BaseException], None]] = []
        self._new_id = id_factory or new_run_id
        self._waiters: dict[str, list[asyncio.Future[WorkflowInfo]]] = {}
        self._ended: dict[str, WorkflowInfo] = {}  # roots that ended, their actor not yet stopped
        self._recovering: dict[str, asyncio.Task[None]] = {}
        self._observers: list[Callable[[list[Message]], None]] = []
        self._span_callbacks: list[Callable[[Sequence[AuditSpan]], None]] = []
        if self.otel is not None:  # not on_spans: the services it updates come below
            self._span_callbacks.append(self.otel.export)
        self.telemetry = Telemetry(
            _version(),
            clock=self.clock,
            system=self.system,
            timers=lambda: len(self.timers),
            starts_waiting=lambda: self.instances.starts_waiting,
            count_in_flight=self.store.count_in_flight,
            queued_by_workflow=self.store.queued_by_workflow,
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
        self._drain_begun = asyncio.Event()  # (set as a drain or a stop begins)
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
            tracing=self.otel,
            audit=AuditTrail(self.clock, self._span_sink()) if audit else None,
            deliver=self._deliver,
        )
        self.pinning = Pinning(
            store=self.store,
            clock=self.clock,
            disarm=self.timers.disarm,
            on_ended=lambda info, body, hooks: self._finished(info, body, None, hooks=hooks),
            on_count=lambda workflow, n: self.metrics.runs_blocked.labels(workflow).set(n),
            on_unregistered=None  # (on a shared database, another process may run them)
            if isinstance(self.lease, ClusterLease)
            else lambda flow, n: self.metrics.runs_unregistered.labels(flow).set(n),
            audit=lambda: self._services.audit,
            registered=self._registered,
            announce=self._changes,
        )
        """Holds the instances whose definition changed under their version (``blocked``)."""
        self.instances = InstanceDirectory(
            admission=Admission.for_limit(
                max_active_runs, passivate, lambda: len(self.instances), lambda: self.state
            ),
            system=self.system,
            store=self.store,
            registry=self.registry,
            services=self._services,
            new_id=self._new_id,
            state=lambda: self.state,
            spec_of=self._spec_of,
            router=self.lease if isinstance(self.lease, ClusterLease) else None,
            pinning=self.pinning,
        )
        self.migrations = Migrations(
            registry=self.registry,
            catalog=self.catalog,
            store=self.store,
            clock=self.clock,
            instances=self.instances,
            new_id=self._new_id,
            spec_of=self._spec_of,
            spawn=self._spawn,
            audit=lambda: self._services.audit,
            owner=self.lease.owner,
            is_live=self.lease.is_live if isinstance(self.lease, ClusterLease) else None,
        )
        if isinstance(self.lease, ClusterLease):  # several processes on one database
            self.lease.attach(
                instances=self.instances,
                timers=self.timers,
                spec_of=self._spec_of,
                on_recovered=self.metrics.recovered.inc,
                waiting=self._waiters.keys,
                recheck=self._recheck_waiters,
                requeue=lambda: self.queues.resume_waiting(),  # noqa: PLW0108 - made below
                orphans=self.migrations.carry_on_orphans,
                versions=self.registry.pairs,
            )
        self.queues = RunQueues(
            store=self.store,
            clock=self.clock,
            start=self._start_run,
            new_id=self._new_id,
            spawn=self._spawn,
            queue_limits=queue_limits,
            shared=isinstance(self.lease, ClusterLease),
        )
        self.runs = Runs(
            catalog=self.catalog,
            queues=self.queues,
            start=self._start_run,
            ready=self._recovered,
            wait_workflow=self.wait_workflow,
            admit=self.instances.with_place,
            reserved=PlanBook(self.store, self.clock).planned,
        )
        self.run_views = RunViews(
            catalog=self.catalog,
            registry=self.registry,
            store=self.store,
            instances=self.instances,
        )
        self._wire_run_hooks()
        self.replays = Replays(
            catalog=self.catalog,
            store=self.store,
            clock=self.clock,
            read=self.instances.read,
            trigger=self.runs.trigger,
            new_id=self._new_id,
            spawn=self._spawn,
        )
        self._wire_triggers()
        self._register_all(workflows)

    def _wire_run_hooks(self) -> None:
        """The flows' hooks, which the engine has called when a run ends, at least once."""
        self.run_hooks = RunHooks(
            store=self.store,
            clock=self.clock,
            spawn=self._spawn,
            run_blocking=self.system.run_blocking,
            in_order=self._services.callbacks,
            secrets=self._secrets,
            admitted=self.system.wait_admitted,
        )
        self._services.end_hooks = FlowEndHooks(self.catalog.compiled, self.run_hooks)
        self._services.callbacks.cancel_run = self._cancel_asked  # (a callback's ctx.cancel)

    def _wire_triggers(self) -> None:
        """The services through which work arrives from outside: state shared across runs,
        human pauses, events, schedules and polls."""
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
            keep=self._keep_event,
            recorded=self.replays.recorded_trigger,
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

    def _register_all(self, workflows: Iterable[Any]) -> None:
        """``Runtime(workflows=...)``: each registered; a thing that is no workflow is refused
        with its place in the list (an app's ``workflows``, say)."""
        for index, spec in enumerate(workflows):
            if not isinstance(spec, WORKFLOWS):
                raise ConfigurationError(f"workflows[{index}]", spec, _WORKFLOW)
            self.register(spec)

    def register(self, spec: NetSpec | Flow | MigrationSpec, *, deprecated: bool = False) -> None:
        """Register a workflow version: a ``NetSpec`` or a ``cf.define(...)`` flow (checked and
        compiled here, ``InvalidWorkflowError`` listing every problem; it cannot change after),
        or a migration between two registered versions (``net.migration(...).build()``, see
        ``Runtime.migrate``). On a running runtime, its instances with work to run are loaded
        at once (calls that start it wait for that). A flow whose secrets read environment
        variables that are not set is refused with ``MissingSecretError`` (naming them all)."""
        if isinstance(spec, MigrationSpec):
            self.registry.register_migration(spec)  # refused (MigrationError): nothing changed
            return
        if not isinstance(spec, NetSpec | Flow):
            raise ConfigurationError("workflow", spec, _WORKFLOW)
        compiled: CompiledFlow | None = None
        if isinstance(spec, Flow):
            compiled = self.catalog.compile(spec)
            net_spec = compiled.spec
        else:
            net_spec = self.catalog.checked_net(spec)  # (no flow's name: hostile h29 H2)
        secrets: dict[str, Secrets] = {}
        if compiled is not None:
            secrets = {f.id: Secrets(f.id, f.secrets) for f in compiled.with_subflows()}
            missing = [pair for s in secrets.values() for pair in s.missing()]
            if missing:
                raise MissingSecretError(compiled.id, missing)
        self.registry.register(net_spec, deprecated=deprecated)  # refused: nothing changed
        self.telemetry.registered(net_spec, compiled.triggers if compiled is not None else None)
        if compiled is None:
            self.telemetry.net_current(self.registry, net_spec.name)
        if isinstance(spec, Flow) and compiled is not None:
            self.catalog.add(spec, compiled, deprecated=deprecated or net_spec.deprecated)
            self._flow_changed(compiled.id)
            for flow_id, flow_secrets in secrets.items():
                if flow_secrets:
                    self._secrets[flow_id] = flow_secrets
                else:  # registered again without secrets
                    self._secrets.pop(flow_id, None)
        name = net_spec.name
        if self.state == "running" and name not in self._recovering:
            self._recovering[name] = self.system.create_task(
                self._recover_registered(name), name=f"recover {name}"
            )

    def deprecate(self, name: str, version: str) -> None:
        """Refuse new instances of this version; running ones go on. For a flow, new runs
        (and its triggers) take its last registered version that is not deprecated."""
        if not isinstance(version, str) or not version:
            versions = self.registry.versions(name) if isinstance(name, str) else []
            raise ConfigurationError(
                "version", version, f"one of the versions of {name!r}: {versions}"
            )
        self.registry.deprecate(name, version)
        if self.catalog.deprecate(name, version):
            self._flow_changed(name)
            if self.state == "running":
                self.schedules.restart()
                self.polls.restart()
        elif name not in self.catalog.compiled:
            self.telemetry.net_current(self.registry, name)

    def _flow_changed(self, flow_id: str) -> None:
        """A flow's current version may be another one: its limits and info are that one's."""
        current = self.catalog.compiled[flow_id]
        self.metrics.flow_registered(current.id, current.name, current.version, list(current.tags))
        self.queues.configure(
            current.id,
            concurrency=current.concurrency,
            rate_limit=current.rate_limit,
            queue=current.queue,
        )

    # -- what the engine and the timers call back ---------------------------------------------

    async def _timer_page(self, after: tuple[float, str] | None, limit: int) -> list[TimerRecord]:
        return await self.store.load_timers(after=after, limit=limit)

    def _timer_due(self, instance_id: str, timer_id: str) -> None:
        self.instances.deliver(instance_id, TimerFired(timer_id=timer_id))

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

    def _deliver(self, instance_id: str, message: Message) -> None:
        """``EngineServices.deliver`` (made before the directory is): activates, then tells."""
        self.instances.deliver(instance_id, message)

    def _finished(
        self, info: WorkflowInfo, body: bytes, raised: BaseException | None, *, hooks: bool = False
    ) -> None:
        """A root run ended: its place under its limits is freed. ``hooks``: call its hooks
        (a run canceled offline; the engine has the hooks of the runs it ends called, at least
        once: ``engine/endings.py``)."""
        compiled = self.catalog.compiled.get(info.name) if info.parent_id is None else None
        if raised is None and not hooks and info.state == WorkflowState.FAILED:
            say_run_failed(info, flow=info.name in self.catalog.compiled)
        if compiled is not None:  # (a canceled one's body: a migration's successor takes its place)
            self.queues.finished(
                info.name, info.id, body if info.state == WorkflowState.CANCELED else None
            )
            if hooks:
                self.run_hooks.finished(compiled.hooks, info, body, raised)
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


WORKFLOWS = (NetSpec, Flow, MigrationSpec)
"""What ``Runtime(workflows=[...])`` takes: flows, nets and migrations."""
_WORKFLOW = (
    "a flow from cf.define(...), a net from net.workflow(...).build(), or a migration from "
    "net.migration(...).build()"
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cronflow-actors")
    except PackageNotFoundError:
        return "0.0.0+unknown"

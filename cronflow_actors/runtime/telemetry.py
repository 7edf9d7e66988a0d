"""Feeds a runtime's metrics: from the state changes of its durable transactions, from the places
that know (the store's commits, the schedules, a probe of the event loop), and from a sample
taken on the loop when ``/metrics`` is scraped.

Every label value comes from the change messages themselves (the workflow type, the work item's
kind, the action's task), and every duration from the times they carry, so nothing here reads an
actor's state and nothing is kept per run in flight. The counts of runs in flight by status come
from the store's indexes (waiting runs are not in memory), read through its reader off the loop
and cached for ``sample_max_age`` seconds, so scrapes in a burst cost one query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.states import FINAL_STATES
from cronflow_actors.errors import WorkflowDeprecatedError
from cronflow_actors.flow.definition import FlowTriggers
from cronflow_actors.kernel import ActorSystem, Clock
from cronflow_actors.messages import Message
from cronflow_actors.messages.engine import (
    ActionStateChanged,
    WorkflowStateChanged,
    WorkItemRerun,
    WorkItemStateChanged,
)
from cronflow_actors.messages.states import ActionState, WorkItemState
from cronflow_actors.metrics import (
    MANUAL,
    TIMED_OUT,
    TRIGGERS,
    WAIT_KINDS,
    LiveSample,
    RuntimeMetrics,
)
from cronflow_actors.net.spec import NetSpec, item_kind

__all__ = ["LoopLagProbe", "Telemetry"]

logger = logging.getLogger(__name__)

_STARTED = WorkItemState.STARTED
_INITIALIZED = WorkItemState.INITIALIZED  # (an enum member's read: EnumType.__getattr__)
_FAILED = WorkItemState.FAILED
_FALLBACK = "fallback"  # (a group's on_error: a work item of its own, flow/compile.py)
_ACTOR_KINDS = ("WorkflowActor", "WorkItemActor", "ActionActor")


class LoopLagProbe:
    """A task on the event loop that asks to be woken every ``interval`` seconds and reports how
    late it was woken: the time the loop spent on other work it could not interrupt (a handler
    that blocks, a long burst of messages). Real time, whatever clock the runtime uses."""

    STALL = 1.0
    """A wake-up this late (seconds) is logged as a warning: one such stall is one observation
    among the hundreds a few minutes hold, which no percentile of the histogram shows, while
    every request waited it out, ``/healthz`` too (newcomer h39 F2)."""

    def __init__(self, observe: Callable[[float], None], interval: float = 0.5) -> None:
        self._observe = observe
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            # a plain task of the loop, not of the actor system: it is no work in flight, and
            # must not keep wait_idle() from returning
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            late = max(0.0, loop.time() - due)
            self._observe(late)
            if late >= self.STALL:
                logger.warning(
                    "the event loop was blocked for %.1f s: every run, schedule and request "
                    "waited. Something ran on it without awaiting, most often an async def step "
                    "or handler that makes a blocking call (time.sleep, a synchronous client): "
                    "make it a plain def (it then runs on the blocking pool) or await an async "
                    "call",
                    late,
                )


class Telemetry:
    """The metrics of one runtime and what feeds them. ``count_in_flight`` and
    ``queued_by_workflow`` are the store's; ``workflows`` names the registered workflow types
    (each gets a series per status, 0 until it has runs)."""

    def __init__(
        self,
        version: str,
        *,
        clock: Clock,
        system: ActorSystem,
        timers: Callable[[], int],
        starts_waiting: Callable[[], int],
        count_in_flight: Callable[[], Awaitable[dict[tuple[str, str], int]]],
        queued_by_workflow: Callable[[], Awaitable[dict[str, int]]],
        workflows: Callable[[], Iterable[str]],
        sample_max_age: float = 1.0,
        loop_lag_interval: float = 0.5,
    ) -> None:
        self.metrics = RuntimeMetrics(version)
        self._clock = clock
        self._system = system
        self._timers = timers
        self._starts_waiting = starts_waiting
        self._count_in_flight = count_in_flight
        self._queued_by_workflow = queued_by_workflow
        self._workflows = workflows
        self.sample_max_age = sample_max_age
        """How long a sample is reused before the store is asked again (seconds)."""
        self._sampled_at: float | None = None
        self._sample_lock: asyncio.Lock | None = None
        self._children: dict[tuple[str, ...], Any] = {}
        self._manual: set[tuple[str, str]] = set()
        self._not_manual: set[tuple[str, str]] = set()
        """(workflow, task) of the registered work items a caller starts (no handler, no wait):
        the time each waited ``initialized`` is a wait of kind ``manual``."""
        self._rerun_at: dict[str, float] = {}
        """Work item id -> when a restart ran its attempt again here, until that attempt ends:
        its schedule-to-start delay counts from then, not from its start in the process before
        (metrics h41 F2: every crash with steps in flight read as a saturated loop)."""
        self.probe = LoopLagProbe(self.metrics.loop_lag.observe, loop_lag_interval)
        metrics = self.metrics  # the store's series (no labels), each batch counted in them
        self._commits = metrics.store_commits.labels()
        self._commit_duration = metrics.store_commit_duration.labels()
        self._batch_size = metrics.store_batch_size.labels()

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set (label values come from
        finite sets, so this stays small) instead of on every change. The key is flat,
        ``(metric's name, *labels)``, so that the hot paths look it up inline with one
        ``dict.get`` (``_child`` only on a miss)."""
        key = (metric.name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- the store, the schedules -------------------------------------------------------------

    def committed(self, seconds: float, writes: int) -> None:
        """The store's writer committed a transaction of ``writes`` writes in ``seconds``: in
        the series themselves, not through their families (a call each less, every batch)."""
        self._commits.inc()
        self._commit_duration.observe(seconds)
        self._batch_size.observe(writes)

    def schedule_fired(self, workflow: str, lag: float) -> None:
        """A schedule's tick started a run of ``workflow``, ``lag`` seconds after the tick."""
        self._child(self.metrics.cron_fires, workflow).inc()
        self._child(self.metrics.cron_lag, workflow).observe(max(0.0, lag))

    def migration_given_up(self, workflow: str) -> None:
        """A run of ``workflow`` canceled for a migration whose next run never started stays
        canceled: it ends so now (it was counted nothing at its cancel)."""
        self._child(self.metrics.runs_finished, workflow, "canceled").inc()

    def registered(self, spec: NetSpec, triggers: FlowTriggers | None) -> None:
        """Make a registered workflow's series at zero (``RuntimeMetrics.workflow_registered``):
        its runs by each trigger it can start with (a flow's ``triggers``; a net's by a call,
        with or without a principal), and the work items of its tasks and of its child
        workflows' (a flow per item, a subflow), each under its own workflow's label."""
        labels = _triggers(triggers) if triggers is not None else ["manual", "api", "migration"]
        for workflow, steps, manual, taken in _work_items(spec):
            self.metrics.workflow_registered(
                workflow, labels if workflow == spec.name else (), steps, manual=taken
            )
            for name, kind in steps.items():  # manual in every version registered, or not at
                pair = (workflow, name)  # all: the message names no version (reviewer h26 L2)
                if name in manual and pair not in self._not_manual:
                    self._manual.add(pair)
                elif kind != "action" or name not in manual:
                    self._not_manual.add(pair)
                    self._manual.discard(pair)

    def net_current(self, registry: WorkflowRegistry, name: str) -> None:
        """``cronflow_flow_info`` of net ``name`` (a flow's is its catalog's, with its display
        name and tags): the version its new instances start on, as registered and deprecated
        (nets had none: a query joining names dropped them, metrics h41 F3)."""
        try:
            spec = registry.for_new_instance(name)
        except WorkflowDeprecatedError:
            return  # every version deprecated: the series keeps the last one's
        self.metrics.flow_registered(name, name, spec.version, [])

    # -- the state changes of durable transactions ----------------------------------------------

    def observe(self, changes: list[Message]) -> None:
        # A run makes about 20 changes, and most measure nothing (a task's, an item's start):
        # those are passed over by their type, before any call; the clock is read once, for the
        # first change that measures something. By ``type(change) is``, not a ``match`` on the
        # classes: each class pattern a change does not match is an isinstance through the
        # message class's metaclass (~600 instructions; the changes are final classes).
        now: float | None = None
        manual = self._manual
        for change in changes:
            kind = type(change)
            if kind is WorkItemStateChanged:
                item: Any = change
                if not item.detached and (
                    item.prev == _STARTED
                    or item.next in FINAL_STATES
                    or (
                        manual
                        and item.prev == _INITIALIZED
                        and (item.workflow, item.task) in manual
                    )
                ):  # an attempt, the item, or a manual item's wait ended (a detached item: its
                    # action's changes tell)
                    if now is None:
                        now = self._clock.now()
                    self._item(item, now)
            elif kind is WorkflowStateChanged:
                workflow: Any = change
                if "." not in workflow.workflow_id and (
                    workflow.prev is None or workflow.next in FINAL_STATES
                ):  # a run started or ended
                    if now is None:
                        now = self._clock.now()
                    self._run(workflow, now)
            elif kind is ActionStateChanged:
                self._action(change)  # type: ignore[arg-type]
            elif kind is WorkItemRerun:
                rerun: Any = change
                if now is None:
                    now = self._clock.now()
                self._rerun_at[rerun.work_item_id] = now
                workflow_name, step_kind = rerun.workflow or "unknown", rerun.kind or "unknown"
                self._child(self.metrics.steps_rerun, workflow_name, step_kind).inc()

    def _run(self, change: WorkflowStateChanged, now: float) -> None:
        metrics, children = self.metrics, self._children
        workflow = change.workflow
        if change.prev is None:
            trigger = change.trigger if change.trigger in TRIGGERS else "other"
            key: tuple[str, ...] = (metrics.runs_started.name, workflow, trigger)
            (children.get(key) or self._child(metrics.runs_started, workflow, trigger)).inc()
            if trigger == "migration":  # the run it replaces ends migrated once this one is
                # started (not at its cancel: a migration whose next run never starts is given
                # up, the run it canceled counted canceled then: hostile h30 M1)
                self._child(metrics.runs_finished, workflow, "migrated").inc()
        elif change.next in FINAL_STATES:
            if not change.migrated:  # (a migration's: counted as the next run starts)
                key = (metrics.runs_finished.name, workflow, change.next)
                series = children.get(key) or self._child(
                    metrics.runs_finished, workflow, change.next
                )
                series.inc()
            if change.created_at and not change.migrated:  # (it goes on in the next run)
                duration = now - change.created_at
                duration = duration if duration > 0.0 else 0.0  # max(0.0, d), without a call
                key = (metrics.run_duration.name, workflow)
                series = children.get(key) or self._child(metrics.run_duration, workflow)
                series.observe(duration)

    def _item(self, change: WorkItemStateChanged, now: float) -> None:
        """An attempt ended (the item left ``started``) or the item ended (not detached)."""
        attempt_ended = change.prev == _STARTED
        metrics, children = self.metrics, self._children
        workflow, kind = change.workflow or "unknown", change.kind or "unknown"
        if change.prev == _INITIALIZED and (change.workflow, change.task) in self._manual:
            if change.started_at == change.created_at and kind in WAIT_KINDS:  # a wait started
                return  # as it was made (by an activity of it): it waited for nobody to take it
            self._manual_wait(change, now)  # (started, or ended unstarted: a wait, no step;
            return  # newcomer h33 F5: a manual item canceled unstarted counted as both)
        rerun_at = self._rerun_at.pop(change.work_item_id, None) if self._rerun_at else None
        if attempt_ended and change.began_at is not None and change.started_at is not None:
            scheduled = change.started_at
            if rerun_at is not None and rerun_at > scheduled:  # run again by a restart, here
                scheduled = rerun_at
            delay = change.began_at - scheduled
            delay = delay if delay > 0.0 else 0.0  # max(0.0, delay), without a call (per step)
            key: tuple[str, ...] = (metrics.schedule_to_start.name, workflow)
            series = children.get(key) or self._child(metrics.schedule_to_start, workflow)
            series.observe(delay)
        # an attempt's time is its handler's, from when it began (not the item's start, which
        # a restart may have kept waiting); an item canceled before it started has none
        began = change.began_at if change.began_at is not None else change.started_at
        duration = None
        if attempt_ended and began is not None:
            duration = now - began
            duration = duration if duration > 0.0 else 0.0  # max(0.0, d), without a call
        if change.next == _INITIALIZED:  # a reset: the attempt failed, is tried again
            self._child(metrics.retries, workflow).inc()
            if duration is not None and kind not in WAIT_KINDS:  # an attempt all the same
                self._child(metrics.step_duration, workflow, kind).observe(duration)
            return
        ended = change.next
        if ended not in FINAL_STATES or change.migrated:  # (it goes on in the next run)
            return
        if kind in WAIT_KINDS:
            outcome = TIMED_OUT if change.timed_out else ended  # (newcomer h32 F6)
            self._child(metrics.waits_finished, workflow, kind, outcome).inc()
            if duration is not None:
                self._child(metrics.wait_duration, workflow, kind).observe(duration)
            return
        if change.answered and kind != _FALLBACK:  # its handler failed, its on_error answered:
            ended = _FAILED  # a failed step (a group's fallback is its own item: it answered)
        key = (metrics.steps_finished.name, workflow, kind, ended)
        (children.get(key) or self._child(metrics.steps_finished, workflow, kind, ended)).inc()
        if duration is not None:
            key = (metrics.step_duration.name, workflow, kind)
            series = children.get(key) or self._child(metrics.step_duration, workflow, kind)
            series.observe(duration)

    def _manual_wait(self, change: WorkItemStateChanged, now: float) -> None:
        """A manual work item left ``initialized``: its wait for a caller ended, ``completed``
        by a start (at ``started_at``), or as the item ended (canceled with its task, say)."""
        if change.migrated:
            return  # it goes on in the next run
        started = change.next == _STARTED
        outcome: Any = "completed" if started else change.next  # (a label as _item gives it)
        metrics, workflow = self.metrics, change.workflow or "unknown"
        self._child(metrics.waits_finished, workflow, MANUAL, outcome).inc()
        if change.created_at is not None:
            ended = change.started_at if started and change.started_at is not None else now
            waited = ended - change.created_at
            waited = waited if waited > 0.0 else 0.0
            self._child(metrics.wait_duration, workflow, MANUAL).observe(waited)

    def _action(self, change: ActionStateChanged) -> None:
        metrics = self.metrics
        workflow, action = change.workflow or "unknown", change.task
        if change.next == ActionState.DISPATCHED:
            self._child(metrics.actions_dispatched, workflow, action).inc()
            if change.redispatched:
                self._child(metrics.actions_redispatched, workflow, action).inc()
            return
        self._child(metrics.actions_finished, workflow, action, change.next).inc()
        if change.started_at is not None and change.finished_at is not None:
            duration = max(0.0, change.finished_at - change.started_at)
            self._child(metrics.action_duration, workflow, action).observe(duration)

    # -- gauges sampled when scraped --------------------------------------------------------------

    async def sample(self, *, store_open: bool = True) -> None:
        """Bring the sampled gauges up to date, unless they were sampled less than
        ``sample_max_age`` seconds ago. Call it on the runtime's loop before rendering (the
        store is read through its reader; the loop is never blocked). Concurrent callers share
        one sample. With ``store_open=False`` (a runtime not running) the store's counts keep
        their last values."""
        if self._sample_lock is None:
            self._sample_lock = asyncio.Lock()
        async with self._sample_lock:
            taken = time.monotonic()
            if self._sampled_at is not None and taken - self._sampled_at < self.sample_max_age:
                return
            previous = self.metrics.live.current
            in_flight, queued = previous.runs_in_flight, previous.runs_queued
            if store_open:
                try:
                    in_flight = await self._count_in_flight()
                    queued = await self._queued_by_workflow()
                except Exception as error:  # the store closing under a scrape, say
                    logger.warning("runs in flight could not be counted: %s", error)
            self.metrics.live.update(self._live(in_flight, queued))
            self._sampled_at = taken

    def _live(
        self, in_flight: Mapping[tuple[str, str], int], queued: Mapping[str, int]
    ) -> LiveSample:
        system = self._system
        actors = dict.fromkeys(_ACTOR_KINDS, (0, 0))
        if system.state == "running":
            actors.update(system.actor_counts())
        pool = system.blocking_statistics()
        return LiveSample(
            runs_in_flight=in_flight,
            runs_queued=queued,
            actors=actors,
            timers_armed=self._timers(),
            starts_waiting=self._starts_waiting(),
            pool_threads=pool.threads,
            pool_busy=pool.busy,
            pool_queued=pool.queued,
            workflows=tuple(self._workflows()),
        )


def _triggers(triggers: FlowTriggers) -> list[str]:
    """The ``trigger`` labels a flow's runs can start with: a call, a replay, a migration, and
    what it declares."""
    found = ["manual", "replay", "migration"]
    for label, declared in (
        ("webhook", triggers.webhooks),
        ("schedule", triggers.schedules or triggers.intervals),
        ("event", triggers.events),
        ("poll", triggers.polls),
    ):
        if declared:
            found.append(label)
    return found


def _work_items(spec: NetSpec) -> Iterator[tuple[str, dict[str, str], list[str], bool]]:
    """Each workflow of ``spec``'s tree (itself, then its tasks' child workflows) with its tasks
    that have work items, by the kind their metrics carry (``action`` for a detached one),
    those whose items a caller may start (manual: no handler, no timer; a wait too, such as a
    net's pause a person takes, its pause then a wait of its own: newcomer h34 F2; one started
    as it is made, by an activity of it, waited for nobody), and whether one surely waits for
    a caller (no activity starts it: its series are made at zero)."""
    steps, manual_items, taken = {}, [], False
    for name, task in spec.tasks.items():
        item = task.work_item
        if item is not None:
            steps[name] = "action" if item.detached else item_kind(item)
            # (a flow's sleep has neither handler nor wait: a timer ends it)
            manual = item.wait is not None or item.kind not in WAIT_KINDS
            if manual and item.handler is None and not item.detached:
                manual_items.append(name)
                taken = taken or "on_initialized" not in item.activities
    yield spec.name, steps, manual_items, taken
    for task in spec.tasks.values():
        for child in task.subworkflows:
            yield from _work_items(child)

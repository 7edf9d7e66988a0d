"""Run queues: the one way a run waits for its start.

Three limits can hold a run back: its flow's ``concurrency`` (runs at once), its flow's
``rate_limit`` (starts per sliding window) and the concurrency of the named ``queue`` it belongs
to (shared by every flow that names it, set on the runtime). A run that may start at once and
has nobody waiting before it starts; any other waits in a durable FIFO: the flow's own (keyed
by its id), or the named queue's, shared with the other flows in it.

A queued run is a row in the store (its id, payload and place): its id is taken and it survives
a restart. Its start deletes its row in the same transaction, so a crash can neither lose it
nor start it twice. What the limits count comes from the store too, so a restart resets none:
the runs active are the flows' unfinished instances, and a rate limit's window holds the
creation times of the flow's newest instances.

Runs of one flow start in the order they were queued. In a named queue, a run whose own flow is
at its limit lets the runs of other flows behind it go first (it keeps its place among its
flow's runs); so one flow's rate limit does not stall a queue it shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol

import msgspec

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.errors import DuplicateInstanceError, InstanceExistsError
from cronflow_actors.flow.workflow_options import RateLimit, queue_key
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import QueuedRun, encode
from cronflow_actors.runtime.migration_plans import PlanBook
from cronflow_actors.store import MISSING, Store

__all__ = ["RunQueues"]

logger = logging.getLogger(__name__)

_decode = msgspec.msgpack.Decoder().decode
_LEGACY = "cronflow:queues"
"""Where queues were kept before version 2 of the schema (moved into the queue table)."""
_PAGE = 100
_LOOK_AGAIN = 0.5  # (s: a queued run waited on, read again on a shared store)


class Start(Protocol):
    """``start(workflow, payload, instance_id, dequeued, canceled=False) -> run id``: a run's
    start (``dequeued``: its queue row goes in the same transaction; ``canceled``: it is
    recorded canceled before any step runs, ``reason`` its error, ``by`` who asked,
    ``terminated``: by a terminate, no end hook called)."""

    def __call__(
        self,
        workflow: str,
        payload: Any,
        instance_id: str | None,
        dequeued: bool,
        /,
        *,
        canceled: bool = False,
        reason: str = "",
        by: str | None = None,
        terminated: bool = False,
    ) -> Awaitable[str]: ...


class _Limits(msgspec.Struct, frozen=True):
    """What holds back the runs of one flow."""

    concurrency: int | None
    rate: tuple[int, float] | None
    """(count, window in seconds)."""
    queue: str | None
    """The named queue it belongs to."""
    fifo: str
    """The key of the FIFO its runs wait in."""


class RunQueues:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        start: Start,
        new_id: Callable[[], str],
        spawn: Callable[[Coroutine[Any, Any, None], str], Any],
        queue_limits: Mapping[str, int] | None = None,
        shared: bool = False,
    ) -> None:
        self._store = store
        self._shared = shared
        """Other processes queue and start runs of these flows too (a database several share):
        what the limits count is read from the store before each decision (``_recount``), and
        ``resume_waiting`` takes up the runs they queued."""
        self._clock = clock
        self._start = start
        self._new_id = new_id
        self._spawn = spawn
        self._queue_limits = dict(queue_limits or {})
        self._flows: dict[str, _Limits] = {}
        self._active: dict[str, set[str]] = {}
        """Unfinished runs of the flows whose concurrency (or queue's) is limited."""
        self._ended_uncounted: dict[str, set[str]] = {}
        """Runs of a limited flow that ended before its unfinished runs were counted (``_count``):
        a run recovered at start can end while the store is read, and the count may still
        include it."""
        self._starts: dict[str, deque[float]] = {}
        """The latest start times of each rate-limited flow (at most ``count``)."""
        self._queued: dict[str, int] = {}
        """FIFO key -> how many runs wait in it."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._wakeups: dict[str, tuple[float, asyncio.Task[None]]] = {}
        """FIFO key -> when its next run's rate window opens, and the task that waits for it."""
        self._started: dict[str, asyncio.Future[None]] = {}
        """Queued runs someone waits for -> resolved when they start."""

    # -- configuration --------------------------------------------------------------------------

    def configure(
        self,
        workflow: str,
        *,
        concurrency: int | None = None,
        rate_limit: RateLimit | None = None,
        queue: str | None = None,
    ) -> None:
        """The limits of a registered flow (its registration replaces what was set before)."""
        rate = (rate_limit.count, rate_limit.seconds) if rate_limit is not None else None
        fifo = queue_key(queue) if queue is not None else workflow
        self._flows[workflow] = _Limits(concurrency, rate, queue, fifo)
        if queue is not None and queue not in self._queue_limits:
            logger.warning(
                "flow %r puts its runs in queue %r, which this runtime does not configure: they "
                "start without a queue limit; set Runtime(queues={%r: N}) (or [queues] in the "
                "settings of serve) to limit them",
                workflow,
                queue,
                queue,
            )

    def limit(self, workflow: str, concurrency: int | None) -> None:
        """Set only a flow's concurrency (no rate limit, no named queue)."""
        self.configure(workflow, concurrency=concurrency)

    def limited(self, workflow: str) -> bool:
        """Whether a run of ``workflow`` may have to wait for its start."""
        limits = self._flows.get(workflow)
        if limits is None:
            return False
        return (
            limits.concurrency is not None
            or limits.rate is not None
            or (limits.queue is not None and limits.queue in self._queue_limits)
        )

    # -- runs -------------------------------------------------------------------------------------

    async def restore(self, workflow: str) -> None:
        """After a registration while running: count the flow's runs, then start queued ones
        while the limits allow."""
        await self.restore_all([workflow])

    async def restore_all(self, workflows: Iterable[str]) -> None:
        """At start: count what the limits of every flow count (all of them first, so a
        named queue sees the runs of all its flows), then start queued runs while they allow."""
        fifos: list[str] = []
        for workflow in workflows:
            limits = self._flows.get(workflow)
            if limits is None:
                continue
            async with self._lock(limits.fifo):
                await self._count(workflow, limits)
            if limits.fifo not in fifos:
                fifos.append(limits.fifo)
        for fifo in fifos:
            await self._drain(fifo)

    async def trigger(self, workflow: str, payload: Any, instance_id: str | None) -> str:
        """Start a run now if every limit allows it and nobody waits before it, or put it at
        the end of its FIFO; returns its id either way."""
        limits = self._flows[workflow]
        fifo = limits.fifo
        async with self._lock(fifo):
            now = self._clock.now()
            if self._shared:  # other processes' runs: running, or queued before it
                await self._recount(fifo)
            allowed = self._allows(workflow, limits, now)
            if allowed and not self._queued.get(fifo):
                run_id = await self._start(workflow, payload, instance_id, False)
                self._account(workflow, limits, run_id)
                return run_id
            run_id = instance_id or self._new_id()
            run = QueuedRun(
                queue=fifo,
                instance_id=run_id,
                workflow=workflow,
                payload=encode(payload),
                queued_at=now,
            )
            try:
                await self._store.enqueue(run)
            except DuplicateInstanceError:
                raise InstanceExistsError(run_id) from None
            self._queued[fifo] = self._queued.get(fifo, 0) + 1
            # A run that ended while this one was being written to the queue found nothing
            # queued to give its place to: if the limits allow a start now, drain below.
            allowed = allowed or self._allows(workflow, limits, self._clock.now())
        if allowed or limits.queue is not None:
            # runs queued before it may start now (and it, after them); in a shared queue,
            # runs of other flows may be all that waits before it
            await self._drain(fifo)
        elif limits.rate is not None:
            self._wake_when_open(fifo, [workflow], now)
        return run_id

    async def resume_waiting(self) -> None:
        """On a shared database, now and then: the queues holding runs in the store (queued
        by any process, one that stopped among them) are counted again and drained while the
        limits allow, so a run another process queued is not left waiting for it (the drain
        counts them first, ``_recount``)."""
        fifos = {limits.fifo for workflow, limits in self._flows.items() if self.limited(workflow)}
        for fifo in sorted(fifos):
            if await self._store.queue_length(fifo):
                await self._drain(fifo)

    def finished(self, workflow: str, run_id: str, canceled: bytes | None = None) -> None:
        """A run of ``workflow`` ended: its place goes to the first queued run that may start;
        or, when a migration canceled it (``canceled``: its snapshot's body), to the run that
        replaces it (which starts on its own: it was counted nowhere, and a flow at its limit
        ran one over it after each migration)."""
        limits = self._flows.get(workflow)
        if limits is None:
            return
        active = self._active.get(workflow)
        if active is not None:
            active.discard(run_id)
            successor = decode_state(canceled, run_id).migrated_to if canceled else None
            if successor is not None:
                active.add(successor)
                return
        elif self._counts_active(limits):  # not counted yet: _count leaves it out
            self._ended_uncounted.setdefault(workflow, set()).add(run_id)
        if self._queued.get(limits.fifo):
            self._spawn(self._drain(limits.fifo), f"queue {limits.fifo}")

    def given_up(self, workflow: str, run_ids: Iterable[str]) -> None:
        """The runs a migration given up planned (``run_ids``) will never start: the place
        ``finished`` kept for them is free, for the first queued run that may start."""
        limits = self._flows.get(workflow)
        if limits is None:
            return
        self._active.get(workflow, set()).difference_update(run_ids)
        if self._queued.get(limits.fifo):
            self._spawn(self._drain(limits.fifo), f"queue {limits.fifo}")

    async def cancel(
        self, run_id: str, *, reason: str = "", by: str | None = None, terminate: bool = False
    ) -> bool:
        """Cancel ``run_id`` if it waits in a queue: True once it is recorded as canceled, with
        ``reason`` as its error and ``by`` (who asked) on its cancel's audit span (its row
        leaves the queue in the same transaction, and none of its steps runs); False if it is
        not queued (never was, or it started meanwhile: cancel it as a started run)."""
        run = await self._store.queued_run(run_id)
        if run is None:
            return False
        async with self._lock(run.queue):  # the drain does not start it meanwhile
            if await self._store.queued_run(run_id) is None:
                return False  # it started before the lock was ours
            try:
                payload = _decode(run.payload)
                await self._start(
                    run.workflow,
                    payload,
                    run_id,
                    True,
                    canceled=True,
                    reason=reason,
                    by=by,
                    terminated=terminate,
                )
            except (InstanceExistsError, DuplicateInstanceError):
                return False  # another process's drain started it first: cancel that run
            if self._queued.get(run.queue):
                self._queued[run.queue] -= 1
        self._started_now(run_id)  # whoever waits for its start: it has ended
        return True

    async def wait_started(self, run_id: str) -> bool:
        """If ``run_id`` is queued, wait until it leaves the queue and return True; else False.
        On a shared database another process may start or cancel it, unheard here: the queue is
        read again each ``_LOOK_AGAIN`` (hostile h35 F2: a long poll saw it as its time ran out)."""
        if await self._store.queued_run(run_id) is None:
            return False
        if (started := self._started.get(run_id)) is None:  # one for every waiter, made once
            started = self._started[run_id] = asyncio.get_running_loop().create_future()
        look = _LOOK_AGAIN if self._shared else None
        while await self._store.queued_run(run_id) is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(started), look)
                return True
        if self._started.get(run_id) is started and not started.done():  # it left: every
            self._started.pop(run_id).set_result(None)  # one waiting with this one goes on
        return True

    # -- internals --------------------------------------------------------------------------------

    async def _count(self, workflow: str, limits: _Limits, *, adopt: bool = True) -> None:
        """Count, from the store, what the flow's limits count (``adopt``: and take over a
        queue kept the old way, as a restore does)."""
        if adopt and limits.fifo == workflow:
            await self._adopt_legacy_queue(workflow)
        if self._counts_active(limits):
            unfinished = set(await self._store.unfinished_ids(workflow))
            unfinished |= await self._to_come(workflow, unfinished)
            self._active[workflow] = unfinished - self._ended_uncounted.pop(workflow, set())
        if limits.rate is not None:
            count, window = limits.rate
            since = self._clock.now() - window
            starts = await self._store.run_starts(workflow, since=since, limit=count)
            self._starts[workflow] = deque(sorted(starts), maxlen=count)
        self._queued[limits.fifo] = await self._store.queue_length(limits.fifo)

    async def _to_come(self, workflow: str, unfinished: set[str]) -> set[str]:
        """The runs of ``workflow`` that pending migrations will start, each in the place of
        the run it replaces, which they canceled before a crash or a start that raised: its
        place stays theirs (a restart gave it to the queue, and the successor, started later,
        ran beside the run that took it: h25 hostile M4)."""
        to_come = set()
        for plan in (await PlanBook(self._store, self._clock).all()).values():
            ids = [plan.instance, *(new_id for _, new_id in plan.hops)]
            if plan.workflow != workflow or unfinished.intersection(ids):
                continue  # another flow's, or a run of it still holds the place
            old = await self._store.load_snapshot(plan.instance)
            if old is not None and decode_state(old.body, old.instance_id).migrated_to == ids[1]:
                to_come.add(ids[-1])  # canceled for it
        return to_come

    async def _recount(self, fifo: str) -> None:
        """Count again, from the store, what the limits of the flows of ``fifo`` count."""
        for workflow, limits in list(self._flows.items()):
            if limits.fifo == fifo:
                await self._count(workflow, limits, adopt=False)

    def _counts_active(self, limits: _Limits) -> bool:
        """Whether the flow's unfinished runs count against a limit (its own or its queue's)."""
        return limits.concurrency is not None or (
            limits.queue is not None and limits.queue in self._queue_limits
        )

    def _allows(self, workflow: str, limits: _Limits, now: float) -> bool:
        concurrency = limits.concurrency
        if concurrency is not None and len(self._active.get(workflow, ())) >= concurrency:
            return False
        if limits.rate is not None and self._opens_at(workflow, limits, now) > now:
            return False
        return not self._queue_full(limits.queue)

    def _opens_at(self, workflow: str, limits: _Limits, now: float) -> float:
        """When the flow's rate window lets one more run start (``now`` if it does)."""
        assert limits.rate is not None
        count, window = limits.rate
        starts = self._starts.get(workflow)
        if starts is None or len(starts) < count:
            return now
        return max(now, starts[0] + window)

    def _queue_full(self, queue: str | None) -> bool:
        if queue is None:
            return False
        limit = self._queue_limits.get(queue)
        if limit is None:
            return False
        running = sum(
            len(self._active.get(name, ()))
            for name, limits in self._flows.items()
            if limits.queue == queue
        )
        return running >= limit

    def _account(self, workflow: str, limits: _Limits, run_id: str) -> None:
        """A run started: it holds a place under its concurrency, and its rate window counts
        it from now, once its start is done (a drain counted each of its starts at the moment
        it began, before the first: up to count - 1 more than the limit came in one window,
        crash h44 F1)."""
        active = self._active.get(workflow)
        if active is not None:
            active.add(run_id)
        elif self._counts_active(limits):
            self._active[workflow] = {run_id}
        if limits.rate is not None:
            starts = self._starts.get(workflow)
            if starts is None:
                starts = self._starts[workflow] = deque(maxlen=limits.rate[0])
            starts.append(self._clock.now())

    async def _drain(self, fifo: str) -> None:
        """Start queued runs of ``fifo`` in order while their limits allow; runs of a flow
        that is at its own limit are passed over (and keep their place)."""
        async with self._lock(fifo):
            if self._shared:
                await self._recount(fifo)
            now = self._clock.now()
            blocked: set[str] = set()
            rated: list[str] = []
            after = 0
            while self._queued.get(fifo):
                page = await self._store.queued(fifo, limit=_PAGE, after=after)
                if not page:
                    if after == 0:
                        self._queued[fifo] = 0
                    break
                for run in page:
                    after = run.seq
                    workflow = run.workflow
                    limits = self._flows.get(workflow)
                    if workflow in blocked or limits is None:
                        blocked.add(workflow)  # not registered (yet): it waits for that
                        continue
                    if self._queue_full(limits.queue):
                        return  # nothing more of this queue can start until a run ends
                    if not self._allows(workflow, limits, now):
                        blocked.add(workflow)
                        if limits.rate is not None:
                            rated.append(workflow)
                        continue
                    if not await self._start_queued(run, limits):
                        blocked.add(workflow)
                if len(page) < _PAGE:
                    break
            if rated:
                self._wake_when_open(fifo, rated, now)

    async def _start_queued(self, run: QueuedRun, limits: _Limits) -> bool:
        try:
            await self._start(run.workflow, _decode(run.payload), run.instance_id, True)
        except (InstanceExistsError, DuplicateInstanceError):
            # another process's drain started it first (a shared database): not queued here
            self._queued[limits.fifo] -= 1
            return True
        except Exception:
            logger.exception(
                "queued run %s of %s could not start; it stays queued",
                run.instance_id,
                run.workflow,
            )
            return False
        self._account(run.workflow, limits, run.instance_id)
        self._queued[limits.fifo] -= 1
        self._started_now(run.instance_id)
        return True

    def _started_now(self, run_id: str) -> None:
        """The queued run has left its queue: who waits for its start (``wait_started``) goes
        on."""
        started = self._started.pop(run_id, None)
        if started is not None and not started.done():
            started.set_result(None)

    def _wake_when_open(self, fifo: str, workflows: list[str], now: float) -> None:
        """Drain ``fifo`` again when the first of these flows' rate windows opens."""
        due = min(self._opens_at(w, self._flows[w], now) for w in workflows)
        pending = self._wakeups.get(fifo)
        if pending is not None and not pending[1].done() and pending[0] <= due:
            return
        if pending is not None:
            pending[1].cancel()

        async def wake() -> None:
            await self._clock.sleep_until(due)
            self._wakeups.pop(fifo, None)
            await self._drain(fifo)

        self._wakeups[fifo] = (due, self._spawn(wake(), f"rate window of {fifo}"))

    async def _adopt_legacy_queue(self, workflow: str) -> None:
        legacy = await self._store.kv_get(_LEGACY, workflow, now=self._clock.now())
        if legacy is MISSING:
            return
        for entry in legacy:
            run = QueuedRun(
                queue=workflow,
                instance_id=entry["id"],
                workflow=workflow,
                payload=encode(entry["payload"]),
                queued_at=entry["queued_at"],
            )
            # a duplicate started before the upgrade; only its removal was lost
            with contextlib.suppress(DuplicateInstanceError):
                await self._store.enqueue(run)
        await self._store.kv_delete(_LEGACY, workflow)

    def _lock(self, fifo: str) -> asyncio.Lock:
        return self._locks.setdefault(fifo, asyncio.Lock())

"""The runtime's life: start (the lease, the actors, recovery of the instances with work to
run), stop (with a drain), failure (a lost lease or a broken store), readiness, and the
periodic pruning of finished runs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Self

from cronflow_actors.engine.actors import ActionActor, WorkItemActor
from cronflow_actors.errors import (
    ConfigurationError,
    CronflowError,
    MockLostError,
    RevisionConflictError,
    RuntimeNotRunningError,
    StartGivenUpError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.messages import Message, SnapshotRecord
from cronflow_actors.messages.migrations import KeptEvent
from cronflow_actors.net.durations import parse_duration
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.runtime import ownership
from cronflow_actors.runtime.config import deletion_age
from cronflow_actors.runtime.database import open_when_free
from cronflow_actors.runtime.ownership import STARTING, RuntimeLease, said_if_slow
from cronflow_actors.runtime.parts import RuntimeParts
from cronflow_actors.runtime.pinning import Block, is_held
from cronflow_actors.runtime.pruning import prune_finished

__all__ = ["LifecycleMethods", "pruning"]


def pruning(retention: float | None, prune_every: float | None) -> tuple[float | None, float]:
    """``Runtime(retention=, prune_every=)`` checked: the age past which finished runs are
    deleted (None: kept) and how often they are looked for (by default a tenth of it, 1 s to
    an hour)."""
    if retention is not None and (not isinstance(retention, int | float) or retention < 0):
        raise ConfigurationError("retention", retention, "None, 0 or a number of seconds")
    if prune_every is not None and (not isinstance(prune_every, int | float) or prune_every <= 0):
        raise ConfigurationError("prune_every", prune_every, "a positive number of seconds")
    return retention or None, prune_every or min(3600.0, max(1.0, (retention or 0) / 10))


logger = logging.getLogger("cronflow_actors.runtime.runtime")


class LifecycleMethods(RuntimeParts):
    """Start, stop, failure and recovery of ``Runtime`` (which inherits them)."""

    _acquiring: asyncio.Future[None] | None = None
    """A start's wait for the database lease, while it waits: a drain asked meanwhile (a
    supervisor's stop of a standby ``serve --wait-for-lease``) gives the start up."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the store, take the database lease, start the actors and timers, load the
        instances of registered workflows that have work to run. If it raises, whatever it had
        started is stopped again (the lease released, the store closed) and the runtime is
        ``stopped``."""
        if self.state != "new":
            raise RuntimeNotRunningError("start", self.state)
        await self._open_store()
        acquiring = self._acquiring = asyncio.ensure_future(self.lease.acquire())
        try:
            if self._drain_begun.is_set():  # asked as the store opened (review h35 F8)
                acquiring.cancel()
            await acquiring
        except BaseException:
            given_up = acquiring.cancelled() and self._drain_begun.is_set()
            owner = getattr(self.lease, "owner", None)
            if given_up and owner is not None:  # (a cancel as its take was being written:
                with contextlib.suppress(Exception):  # review h35 F9)
                    await self.store.release_lease("runtime", owner)
            await self.store.close()
            self.state = "stopped"
            if given_up:
                raise StartGivenUpError() from None
            raise
        finally:
            self._acquiring = None
        self.state = "running"
        try:
            if self.otel is not None:
                self.otel.start()
            self.system.start()
            self.system.admit_blocking(self.lease.admits)  # none starts once the lease is gone
            await self._bring_up()
        except BaseException as error:
            # nothing may be left behind: a caller whose start raised never calls stop() (nor
            # does 'async with'), and the lease, the store and the loaded runs would stay held
            logger.error("the runtime did not start (%r): stopping what it had started", error)
            await self.stop()
            raise
        if self.instances.admission is not None:
            logger.info(
                "max_active_runs %d: new runs wait in line while that many are in memory",
                self.instances.admission.limit,
            )

    async def _bring_up(self) -> None:
        """What ``start`` does once the store is open, the lease held and the actors running."""
        self.telemetry.probe.start()
        self._services.publish = self.events.publish  # a step's ctx.publish_event
        self.lease.start_heartbeat(self.system)
        if self.retention is not None:
            self.system.create_task(self._prune_forever(), name="retention")
        await self.replays.load()  # before any instance loads: which runs lost their mocks
        await self._recover(set(self.registry.names()))
        await self._say_unknown(set(self.registry.names()))
        if self.recovered:
            logger.info(
                "recovered %d run(s) with work to run (steps or actions in flight, events kept)",
                self.recovered,
            )
        await self.timers.start(self.system)
        await self.queues.restore_all(sorted(self.catalog.roots))
        self.schedules.restart()
        self.polls.restart()
        await self.migrations.resume()  # migrations a crash interrupted go on

    async def stop(self, grace_period: float | None = None, *, drain: float | None = None) -> None:
        """Stop the instances, the timers and the store, and release the database lease.
        Everything already answered is durable.

        With ``drain`` (seconds), no new step starts and the steps and actions already running
        get up to that long to finish and be recorded; whatever is still running then is
        cancelled and runs again on the next start (its work item stays started), and a plain
        ``def`` function still running then (one the drain gave up on, or one that timed out
        or whose run was canceled earlier: they cannot be cancelled) is left to end on its own
        thread. Without a drain (``async with Runtime(...)``'s exit) the ``async def`` steps
        and actions running are cancelled at once, and run again at the next start (at least
        once, as after a crash); the stop waits for the plain ``def`` functions running on
        their threads. ``await rt.stop(drain=30)`` lets them finish first, as ``serve`` does.
        """
        if self.state not in ("running", "failed"):
            return
        if drain and self.state == "running":
            self.begin_drain()

            async def finished() -> None:
                # polling the actor registry (and the abort flag a signal handler may set)
                while self._handlers_running() and not self._abort_drain:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)

            if running := self._handlers_running():
                logger.info(
                    "draining: up to %g s for %d running step(s), action(s), notice(s) and "
                    "run hooks",
                    drain,
                    running,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished(), drain)
            if put_off := self._services.postponed:
                logger.info(
                    "the drain put off %d step(s) it would have started (after a deadline or a "
                    "step's end meanwhile): they run at the next start",
                    put_off,
                )
            if left := self._handlers_running():
                logger.warning(
                    "the drain ended (%s) with %d step(s), action(s), notice(s) and run hooks "
                    "running: they are stopped, and run again at the next start (but actions "
                    "with durable=False)",
                    "aborted" if self._abort_drain else f"after {drain:g} s",
                    left,
                )
        self.state = "stopping"
        self._drain_begun.set()
        self.stop_admitting()
        self.timers.stop()
        self.schedules.stop()
        self.polls.stop()
        for task in self._recovering.values():
            task.cancel()
        # after a drain, a def function still running is waited for by nothing: a step the
        # drain gave up on, or one that timed out or whose run was canceled before
        await self.system.stop(grace_period, leave_running=bool(drain))
        await self.telemetry.probe.stop()
        try:
            await self.lease.release()
        except Exception as error:
            logger.warning("the database lease was not released: %s", error)
        await self.store.close()
        if self.otel is not None:  # the spans of every commit are in its batch: send them
            await self.otel.close()
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(RuntimeNotRunningError("wait for a workflow", "stopped"))
        self._waiters.clear()
        self.state = "stopped"

    @property
    def draining(self) -> bool:
        """Whether a stop has begun (``begin_drain``, ``stop``): the work in flight ends now."""
        return self._drain_begun.is_set()

    def begin_drain(self) -> None:
        """The first half of ``stop(drain=...)``, at once: no new step starts (a run's next step, a
        retry; a started run waits at its first), nor a run waiting in line; schedules and polls
        stop. The steps and actions running go on, and are recorded. Timers go on firing: a deadline
        that passes during the drain (a group's, a run's, a wait's) ends what it ends, as it would
        have, where a group's slow function ran to its end and the group completed with it (newcomer
        h35 F1); a step or an action one would start is recorded postponed, for the next start,
        while a pause's notice or a run's end hooks it calls are called (the drain waits for them;
        one it cuts is called again at the next start). ``serve`` calls it as its drain begins
        (SIGTERM), before it waits for the requests in flight, which may take long (a client sending
        its body slowly)."""
        if self.state == "new":  # starting: waiting for the lease (or the schema's), it ends
            self._drain_begun.set()
            if self._acquiring is not None:
                self._acquiring.cancel()
            return
        if self.state != "running":
            return
        self._services.draining = True
        self._drain_begun.set()
        self.stop_admitting()
        self.schedules.stop()
        self.polls.stop()

    def stop_admitting(self) -> None:
        """Under ``max_active_runs``, the starts waiting in line fail now with nothing written,
        and later ones at once (``RuntimeNotRunningError``: a 503 over HTTP): ``serve`` calls it
        as its drain begins, before it waits for the requests in flight."""
        self.instances.stop_admitting()

    def abort_drain(self) -> None:
        """Cut a drain in ``stop(drain=...)`` short (a second SIGTERM). Safe from a signal
        handler: it only sets a flag the drain polls."""
        self._abort_drain = True

    def on_failure(self, callback: Callable[[BaseException], None]) -> None:
        """Call ``callback(error)`` when the runtime stops accepting work on its own: its store
        failed (the database file was removed or replaced, the disk is full or read-only) or
        another runtime took its database lease."""
        self._failure_callbacks.append(callback)

    async def liveness(self) -> BaseException | None:
        """Why the runtime has failed, if it has (None: it has not). A store found broken (its
        file removed, a write that failed) fails it first, as ``readiness`` does: the two
        probes never disagree. No I/O beyond the store's look at its own file."""
        if self.failure is None and self.state == "running":
            try:
                await self.store.check()
            except StoreFailedError as broken:
                self._fail(broken)
            except StoreClosedError:
                pass  # closing: a stop is under way, not a failure
        return self.failure

    async def _open_store(self) -> None:
        """Open the store; a file whose schema this version upgrades is refused while another
        runtime owns it (``LeaseHeldError``: one of the version that wrote it, which the upgrade
        would break), and waited for with ``wait_for_lease``, as the lease itself is."""

        def opening() -> Awaitable[None]:  # a frozen disk is said (retest-edge h44 N5)
            return said_if_slow(self.store.open(), ownership.PATIENCE, "its opening", STARTING)

        if not self.lease.waits:
            await opening()
            return

        def stop_asked() -> None:
            if self._drain_begun.is_set():  # a stop asked as it waits (review h35 F8)
                raise StartGivenUpError() from None

        await open_when_free(
            opening,
            say=lambda held: logger.warning("%s; waiting for it to stop (--wait-for-lease)", held),
            sleep=self.clock.sleep,
            check=stop_asked,
        )

    async def readiness(self) -> dict[str, str]:
        """Whether the runtime can take work: ``{"runtime", "store", "lease"}``, each ``"ok"``
        or what is wrong. A store found broken fails the runtime."""
        checks = {"runtime": "ok" if self.state == "running" else self.state}
        try:
            await self.store.check()
            waited = self.store.write_waiting()  # (PostgreSQL: a table locked, retest h45 N7)
            late = f"a write has waited {waited:.0f} s for the database (a lock, a hung backend?)"
            checks["store"] = "ok" if waited < self.lease.duration else late
        except (StoreFailedError, StoreClosedError) as broken:
            checks["store"] = str(broken)
            if self.state == "running":
                self._fail(broken)
                checks["runtime"] = self.state
        checks["lease"] = _lease_check(self.lease)
        return checks

    def observe(self, callback: Callable[[list[Message]], None]) -> None:
        """Call ``callback`` with the state-change messages of every durable transaction
        (``WorkflowStateChanged``, ``TaskStateChanged``, ``WorkItemStateChanged``,
        ``ActionStateChanged``, and ``WorkItemRerun``: a step run again after a restart)."""
        self._observers.append(callback)

    async def wait_idle(self) -> None:
        """Return once no instance has work in flight: no message, handler, action or call
        being processed. Armed timers (a sleep, a timeout, a schedule) are not work in flight:
        an instance that only waits for one counts as idle."""
        await self.system.wait_idle()

    def _handlers_running(self) -> int:
        """Steps, actions, notices (a pause's on_pause) and runs' end hooks running: what a
        drain waits for."""
        running = self.system.get_by_class(WorkItemActor) + self.system.get_by_class(ActionActor)
        # a notice (engine/notices.py) or a run's end hooks (engine/endings.py) running, or
        # ended with its end on its way to its instance (in memory, or being activated to take
        # it: its end is recorded once it is there)
        services = self._services
        calls = itertools.chain(
            ((key[0], ended) for key, ended in services.notifying.items()),
            services.ending.items(),
        )
        owed = sum(1 for i, ended in calls if not ended or self.instances.reaching(i))
        return len(running) + owed

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
        said = None  # a failure said once, not at each pass (once a second: retest h45 N5)
        while True:
            await self.clock.sleep(self._prune_every)
            try:
                await self.prune(older_than=self.retention)
                said = None
            except Exception as error:
                if str(error) != said:
                    again = "said once, until it works or fails otherwise"
                    logger.warning("pruning finished runs failed: %s (%s)", error, again)
                said = str(error)

    async def prune(self, *, older_than: float | str) -> int:
        """Delete the runs (and net instances) that finished more than ``older_than`` (seconds,
        or a duration with its unit such as ``"7d"``: a bare ``"7"`` is refused, as for
        ``db prune``) ago, with their history, and expired state keys; returns how many runs.
        The runs a migration under way still needs are kept, and each run whose work goes on
        in one still stored (its resume, its migration's run)."""
        try:
            if isinstance(older_than, str):
                age = deletion_age(older_than, "older_than")
            elif isinstance(older_than, bool) or not math.isfinite(older_than):
                raise ValueError(older_than)
            else:
                age = parse_duration(older_than, "older_than")
        except (TypeError, ValueError):
            expected = "seconds (a number >= 0) or a duration such as '7d'; nothing was deleted"
            raise ConfigurationError("older_than", older_than, expected) from None
        now = self.clock.now()
        total = await prune_finished(self.store, finished_before=now - age, now=now)
        if total:
            logger.info("pruned %d finished runs older than %g s", total, age)
        return total

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

    async def _say_unknown(self, names: set[str]) -> None:
        """One warning for each workflow not registered here that unfinished runs are of: its
        runs waited with no word (retest h43 N2; one registered at other versions is said by
        the scan, ``runtime/unregistered.py``)."""
        counts: dict[str, int] = {}
        for (workflow, _status), count in (await self.store.count_in_flight()).items():
            if workflow not in names:
                counts[workflow] = counts.get(workflow, 0) + count
        for workflow, count in sorted(counts.items()):
            logger.warning(
                "%d unfinished run(s) of workflow %r, which is not registered here: nothing "
                "runs them until it is registered again (a process that registers it runs "
                "them), or each is canceled ('cronflow-actors runs --workflow %s' lists them)",
                count,
                workflow,
                workflow,
            )

    async def _recover(self, names: set[str]) -> None:
        """Load every instance of the named workflows that has work to run (a started handler,
        an action out); the others wait in the store for what wakes them. An instance whose
        definition changed under its version is held instead (``runtime/pinning.py``), the
        waiting ones too; a held one whose definition is registered again runs on."""
        loading: list[tuple[SnapshotRecord, NetSpec]] = []
        for snapshot in await self.store.list_snapshots(runnable=True):
            if snapshot.workflow not in names:
                continue
            try:
                spec = self._spec_of(snapshot)
            except (LookupError, MockLostError) as missing:
                if snapshot.terminal:  # ended owing its hooks: they cannot wait for its version
                    await self.pinning.settle_hooks(snapshot)
                elif isinstance(missing, MockLostError):
                    logger.warning("instance %s not recovered: %s", snapshot.instance_id, missing)
                else:
                    self.pinning.seen(snapshot, registered=False)  # the scan's warning counts it
                continue
            self.pinning.seen(snapshot, registered=True)
            if snapshot.instance_id in self.instances:
                continue  # activated meanwhile (and admitted then)
            try:
                admitted = await self.pinning.admit(snapshot, spec)
            except RevisionConflictError:
                continue  # activated meanwhile (and admitted then)
            if not isinstance(admitted, Block):
                loading.append((admitted, spec))
        loading += await self.pinning.scan_waiting(names, self._spec_of)
        # loaded last, together: nothing of theirs runs before the scan is over
        for snapshot, spec in loading:
            if self.instances.recover(snapshot, spec):
                self.recovered += 1
                self.metrics.recovered.inc()

    def _spec_of(self, snapshot: SnapshotRecord) -> NetSpec:
        """The definition a stored instance runs on: its registered version, or the one a
        replay with mocks keeps for it."""
        spec = self.replays.spec_for(snapshot.instance_id, snapshot.workflow, snapshot.version)
        return spec or self.registry.get(snapshot.workflow, snapshot.version)

    def _registered(self, snapshot: SnapshotRecord) -> bool:
        """Whether the definition a stored instance runs on is registered here."""
        try:
            self._spec_of(snapshot)
        except (LookupError, MockLostError):
            return False
        return True

    async def _keep_event(self, instance_id: str, event: KeptEvent) -> bool:
        """Keep an event for a run that cannot take it now (``Pinning.keep``): False if it
        can. A run whose workflow was registered meanwhile, after that registration loaded
        what had work to run, is loaded now, to hear it."""
        kept = await self.pinning.keep(instance_id, event)
        if kept is None:
            return False
        if self.pinning.cannot_run(kept) and not is_held(kept):  # its version not registered
            await self.instances.let_go(instance_id)  # here: for one that has it (newcomer h26 F1)
        if not self.pinning.cannot_run(kept) and instance_id not in self.instances:
            try:
                await self.instances.activate(instance_id)
            except CronflowError as error:  # it stays runnable: the next start loads it
                logger.warning(
                    "run %s keeps event %s until it is loaded: %s", instance_id, event.event, error
                )
        return True


def _lease_check(lease: RuntimeLease) -> str:
    """The lease's part of readiness: held and renewed in time, or what is wrong. Overdue, the
    database has not answered its renewal: a frozen or hung disk, a lost server. It read "ok"
    while every write waited for 25 s (crash h44 F2)."""
    admits = lease.admits()
    if admits:
        return "ok"
    if admits is False:
        return "not held"
    return (
        f"its renewal is overdue: the database has not answered for over the lease's "
        f"{lease.duration:g} s (a frozen or hung disk, a lost server?); writes wait"
    )

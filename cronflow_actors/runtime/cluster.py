"""Several runtime processes on one PostgreSQL database: the process lease, instance claims,
takeover after a crash, timers of unheld instances, and work sent to another process.

A runtime on a store that can be shared (``PostgresStore``) takes a ``ClusterLease`` in place of
the single-owner ``DatabaseLease``: it registers the process (owner id, host, pid, expiry on the
database's clock) and renews that row by heartbeats, every third of ``lease_seconds`` (a failed
one again within half a second: retest h40 N1). The row's expiry is the expiry of every
instance lease the process holds.

- An instance is held by the process that runs it: new runs by the process that started them;
  a waiting instance (nothing to run) is nobody's, and the first process that has work for it
  claims it (``FOR UPDATE SKIP LOCKED``) and activates it from its snapshot.
- Work for an instance another live process holds (an HTTP call, a resume, an event) is posted
  to that process through the database and answered back (NOTIFY, with polling as the fallback).
- A process that dies keeps its leases until they expire; then the others take its instances
  with work to run over (``take_over``), arm their timers, and carry out the work posted to it
  for them before their cut steps run again.
- Timers fire where the instance is held; a due timer of an instance nobody holds is fired by
  whichever process claims the instance first.
- A process whose own lease expired (it was paused past it) may have lost instances to others:
  its snapshot writes are fenced per instance, and it stops accepting work (``on_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cronflow_actors.engine.timers import TimerService
from cronflow_actors.errors import (
    ConfigurationError,
    InstanceBusyError,
    LeaseLostError,
    MockLostError,
    RuntimeNotRunningError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.kernel import ActorSystem, Clock
from cronflow_actors.messages import Message, SnapshotRecord, decoder_for, encode
from cronflow_actors.messages.engine import TimerFired, WorkflowCommand
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.runtime import ownership
from cronflow_actors.runtime.instances import InstanceDirectory
from cronflow_actors.runtime.lifecycle import LifecycleMethods
from cronflow_actors.runtime.ownership import STARTING, DatabaseLease, Renewed, said_if_slow
from cronflow_actors.runtime.replies import Reply, error_reply, unpack
from cronflow_actors.store import Store
from cronflow_actors.store.postgres_cluster import ClusterOps, Posted

__all__ = ["ClusterLease", "ClusterRecovery", "lease_for"]

logger = logging.getLogger(__name__)

_commands = decoder_for(WorkflowCommand)


class ClusterRecovery(LifecycleMethods):
    """Recovery on a shared database (``Runtime`` inherits it): the instances with work to run
    that no live process holds are taken over (claimed), never loaded because they are stored:
    another process may be running them."""

    async def _recover(self, names: set[str]) -> None:
        lease: Any = self.lease
        if isinstance(lease, ClusterLease):
            self.recovered += await lease.take_over(names)
            # those it releases with events kept for them are runnable: taken over as any
            await self.pinning.scan_waiting(names, self._spec_of)
        else:
            await super()._recover(names)


def lease_for(
    store: Store, clock: Clock, *, duration: float, wait: bool, on_lost: Callable[[Exception], None]
) -> DatabaseLease | ClusterLease:
    """The lease a runtime takes on ``store``: one process among several on a shared database,
    or the one owner of a SQLite file."""
    if isinstance(store, ClusterOps):
        if store.idle_transaction_timeout is None:
            # a transaction left idle longer than the lease: its process was paused past it
            store.idle_transaction_timeout = duration
        return ClusterLease(store, clock, duration=duration, on_lost=on_lost, waits=wait)
    return DatabaseLease(store, clock, duration=duration, wait=wait, on_lost=on_lost)


class ClusterLease(Renewed):
    """This process's membership of the processes sharing the database (see the module)."""

    def __init__(
        self,
        store: ClusterOps,
        clock: Clock,
        *,
        duration: float = 5.0,
        on_lost: Callable[[Exception], None],
        poll: float = 0.5,
        waits: bool = False,
    ) -> None:
        if not isinstance(duration, int | float) or isinstance(duration, bool) or duration <= 0:
            raise ConfigurationError("lease_seconds", duration, "a number of seconds > 0")
        self.owner, self.host, self.pid = uuid.uuid4().hex[:16], socket.gethostname(), os.getpid()
        self.waits = waits  # a start waits for the processes of an older version to stop
        # (the schema's upgrade: review h41 F1), as the one owner of a file waits for its lease
        self.duration = float(duration)
        self.poll = min(poll, self.duration / 2)
        self._store = store
        self._clock = clock
        self._on_lost = on_lost
        self.held = False
        self._tasks: list[asyncio.Task[None]] = []
        self._work = asyncio.Event()
        self._answered: dict[str, asyncio.Event] = {}
        self._sending: set[str] = set()  # instances a withdrawn call of ours is taking here,
        self._skipped: set[str] = set()  # and those the take-over left to that call
        self._system: ActorSystem | None = None
        self._instances: InstanceDirectory | None = None
        self._timers: TimerService | None = None
        self._spec_of: Callable[[SnapshotRecord], NetSpec] | None = None
        self._on_recovered: Callable[[], None] = lambda: None
        self._waiting: Callable[[], Iterable[str]] = tuple
        self._recheck: Callable[[str], Awaitable[None]] | None = None
        self._requeue: Callable[[], Awaitable[None]] | None = None
        self._versions: Callable[[], list[tuple[str, str]]] | None = None
        self._orphans: Callable[[], Awaitable[None]] | None = None
        self.taken_over = 0
        """Instances this process took over from processes whose lease expired."""

    def attach(
        self,
        *,
        instances: InstanceDirectory,
        timers: TimerService,
        spec_of: Callable[[SnapshotRecord], NetSpec],
        on_recovered: Callable[[], None],
        waiting: Callable[[], Iterable[str]],
        recheck: Callable[[str], Awaitable[None]],
        requeue: Callable[[], Awaitable[None]] | None = None,
        versions: Callable[[], list[tuple[str, str]]] | None = None,
        orphans: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """What the runtime gives once its parts exist: the instance directory, the timer
        service (an instance claimed here has its stored timers armed here), the definition
        of a stored instance, a count of recovered instances, the waited-for runs to look at
        in the store (they may end in another process), how to take up the runs waiting
        in the store's queues (another process, stopped since, may have queued them), and the
        (workflow, version) pairs registered here (the only instances it takes over or fires
        the timers of: one it cannot run, it leaves to a process that can), and how to carry
        on the migrations of processes that ended."""
        self._instances = instances
        self._timers = timers
        self._spec_of = spec_of
        self._on_recovered = on_recovered
        self._waiting = waiting
        self._recheck = recheck
        self._requeue = requeue
        self._versions = versions
        self._orphans = orphans

    # -- the process lease ----------------------------------------------------------------------

    async def acquire(self) -> None:
        asked_at = self._clock.monotonic()
        joining = self._store.join_cluster(self.owner, self.host, self.pid, self.duration)
        await said_if_slow(joining, ownership.PATIENCE, "the process lease's take", STARTING)
        self.held = True
        self._renewed(asked_at)

    def start_heartbeat(self, system: ActorSystem) -> None:
        self._system = system
        loops = (
            (self._beat(), "process lease heartbeat"),
            (self._take_over_forever(), "take over instances"),
            (self._timers_forever(), "fire timers of unheld instances"),
            (self._waiters_forever(), "runs that end in other processes"),
        )
        self._tasks = [system.create_task(coro, name=name) for coro, name in loops]
        # Waiting for work from other processes is not work in flight here (wait_idle would
        # never return): a plain task, cancelled by release(); the work it takes is the system's
        inbox, loop = self._inbox_forever(system), asyncio.get_running_loop()
        self._tasks.append(loop.create_task(inbox, name="work from other processes"))

    async def release(self) -> None:
        """Stop the loops and give every held instance up, for the others to claim at once."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        if self.held:
            self.held = False
            await self._store.leave_cluster(self.owner)

    async def _beat(self) -> None:
        pause = self.duration / 3
        while True:
            await self._clock.sleep(pause)
            try:
                asked_at, pause = self._clock.monotonic(), min(self.duration / 3, 0.5)
                beat = self._store.heartbeat(self.owner, self.duration)  # (said: review h44 F5)
                slow = said_if_slow(beat, ownership.patience(self), "the process lease's renewal")
                try:
                    renewed = await asyncio.wait_for(slow, 2 * self.duration)
                except TimeoutError:  # unanswered past its lease twice over: it has lapsed, and
                    renewed = False  # others take its runs (it ran on for good: review2 h44 F5)
                if not renewed:
                    raise LeaseLostError(repr(self._store), self.owner, None, shared=True)
                self._renewed(asked_at)
                if (check := getattr(self._store, "check", None)) is not None:
                    await check()  # (a failed writer fails the lease too)
                pause = self.duration / 3
            except (LeaseLostError, StoreFailedError, StoreClosedError) as failed:
                self.held = not isinstance(failed, LeaseLostError) and self.held
                logger.critical("%s", failed)
                self._on_lost(failed)
                return
            except Exception as error:  # (a line each half second: no traceback each time)
                logger.warning("the process lease could not be renewed (%r); trying again", error)

    # -- instances: claims, takeover, timers ----------------------------------------------------

    async def is_live(self, owner: str) -> bool:
        """Whether the process ``owner`` (a lease's owner id) is alive in the cluster."""
        return await self._store.is_live(owner)

    async def named(self, owner: str) -> tuple[str, float]:
        """The process ``owner`` as an operator finds it, ``process <owner> (pid N on HOST)``
        (the owner id alone is shown nowhere else: chaos h31 F2; the id only once its row is
        gone), and the seconds its lease runs on (0: expired, or gone; more: it is live, as
        ``is_live`` says): a process killed is taken for live until then (chaos h32 F4)."""
        for found, host, pid, left in await self._store.processes():
            if found == owner:
                return f"process {owner} (pid {pid} on {host})", max(left, 0.0)
        return f"process {owner}", 0.0

    async def claim(self, instance_id: str) -> str | None:
        """Claim the instance for this process: None once it may run it here (or there is no
        such instance), else the live process that holds it. ``InstanceBusyError`` (try
        again) while another transaction keeps its row locked past a moment: running it here
        unclaimed, the copy would be stale once that transaction commits, and its writes would
        wait on the lock meanwhile (a process paused inside a claim: the server ends such a
        transaction after the store's ``idle_transaction_timeout``)."""
        for _attempt in range(200):
            found = await self._store.claim(instance_id, self.owner)
            if found.holder is not None:
                return found.holder
            snapshot = found.snapshot
            if snapshot is not None and self._runs_here(snapshot):
                await self._arm(instance_id)
            elif snapshot is not None:  # it cannot run here (activating it says why)
                await self.let_go(instance_id)
            if not found.busy:
                return None
            await asyncio.sleep(0.01)  # a writer or another claimer has the row for a moment
        raise InstanceBusyError(instance_id, 2)

    def _runs_here(self, snapshot: SnapshotRecord) -> bool:
        """Whether the instance's workflow and version are registered here."""
        versions = None if self._versions is None else self._versions()
        return versions is None or (snapshot.workflow, snapshot.version) in versions

    async def let_go(self, instance_id: str) -> None:
        """Give up this process's claim of an instance it cannot run (its workflow or version
        is not registered here), so that a process that can may claim it."""
        await self._store.let_go(instance_id, self.owner)

    async def _arm(self, instance_id: str) -> None:
        """Arm the stored timers of an instance this process now holds (set elsewhere, they
        are in no window of its timer service)."""
        if self._timers is not None:
            for timer in await self._store.instance_timers(instance_id):
                self._timers.arm(timer)

    async def take_over(self, names: Iterable[str] | None = None) -> int:
        """Claim and load instances with work to run that no live process holds."""
        instances, spec_of = self._instances, self._spec_of
        if instances is None or spec_of is None:
            return 0
        wanted = None if names is None else set(names)
        versions = None if self._versions is None else self._versions()
        if versions is not None and wanted is not None:
            versions = [pair for pair in versions if pair[0] in wanted]
        total = 0
        while True:
            snapshots = await self._store.take_over(self.owner, limit=100, versions=versions)
            for snapshot in snapshots:
                if wanted is not None and snapshot.workflow not in wanted:
                    continue
                try:
                    spec = spec_of(snapshot)
                except (LookupError, MockLostError):
                    logger.warning(
                        "instance %s of %s %s not taken over: that version is not registered",
                        snapshot.instance_id,
                        snapshot.workflow,
                        snapshot.version,
                    )
                    continue
                if snapshot.instance_id in self._sending:  # a call of ours loads it, the
                    self._skipped.add(snapshot.instance_id)  # call first (chaos h34 F1)
                    continue
                admitted = await instances.admit(snapshot, spec)
                if admitted is None:
                    continue  # held: its definition changed under its version
                await self._arm(snapshot.instance_id)
                # calls posted to the process that died holding it, ahead of its cut steps
                adopted = await self._store.adopt_posted(snapshot.instance_id, self.owner)
                if instances.recover(admitted, spec):
                    total += 1
                    self._on_recovered()
                for posted in adopted:
                    command = _commands.decode(posted.body)
                    asked = instances.ask_first(posted.instance_id, command)
                    answering = self._answer(
                        posted, asked or instances.send(posted.instance_id, command)
                    )
                    assert self._system is not None  # (its heartbeat began first)
                    self._system.create_task(answering, name=f"work for {posted.instance_id}")
            if len(snapshots) < 100:
                break
        if total:
            self.taken_over += total
            logger.info("took over %d instances with work to run", total)
        return total

    async def _take_over_forever(self) -> None:
        while True:
            await self._clock.sleep(self.duration / 2)
            try:
                await self.take_over()
                if self._requeue is not None:
                    await self._requeue()
                if self._orphans is not None:
                    await self._orphans()
            except Exception:
                logger.exception("taking instances over failed; trying again")

    async def _timers_forever(self) -> None:
        instances = self._instances
        assert instances is not None
        while True:
            await self._clock.sleep(self.poll)
            try:
                # a grace of one poll: the process that set a timer fires it first, if it can
                versions = None if self._versions is None else self._versions()
                now = self._clock.now() - self.poll
                due = await self._store.unheld_due_timers(now, versions=versions)
            except Exception:
                logger.exception("reading due timers failed; trying again")
                continue
            for timer in due:
                instances.deliver(timer.instance_id, TimerFired(timer_id=timer.timer_id))

    async def _waiters_forever(self) -> None:
        instances = self._instances
        while True:
            await self._clock.sleep(self.poll)
            if self._recheck is None or instances is None:
                continue
            elsewhere = [i for i in self._waiting() if i not in instances]
            if not elsewhere:
                continue
            try:  # one read for all (hostile h34 L1: one each, for each long poll)
                going = await self._store.unfinished_among(elsewhere)
            except Exception:
                logger.exception("looking at %d waited-for runs failed", len(elsewhere))
                continue
            for instance_id in elsewhere:
                if instance_id in going:
                    continue  # (read in full only once it ended, or is not stored)
                try:
                    await self._recheck(instance_id)
                except Exception:
                    logger.exception("looking at run %s failed", instance_id)

    # -- work sent to the process that holds an instance ----------------------------------------

    async def forward(self, owner: str, instance_id: str, command: Message) -> Any:
        """Have process ``owner`` carry ``command`` out on the instance; its result or error.

        Posted through the database; if ``owner`` dies before taking it, it is taken back and
        this process claims the instance itself."""
        posted = await self._store.post(owner, self.owner, instance_id, encode(command))
        answered = self._answered[posted] = asyncio.Event()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), self.poll)
                answered.clear()
                replies = await self._store.answers([posted])
                if posted in replies:
                    return unpack(replies[posted])
                if not await self._store.is_live(owner):
                    if await self._store.withdraw(posted):
                        assert self._instances is not None
                        self._sending.add(instance_id)
                        try:
                            return await self._instances.send(instance_id, command)
                        finally:
                            await self._sent(instance_id)
                    taker = await self._store.posted_to(posted)
                    if taker is not None and taker != owner:  # the process that took the
                        owner = taker  # instance over took the call too: its answer comes
                        continue
                    await self._store.forget_posted(posted)  # (retest2 h34 F2: left for good)
                    raise RuntimeNotRunningError(
                        f"reach instance {instance_id}",
                        f"process {owner}, which held it or took it over, stopped before it "
                        "answered; the call may or may not have been done: look at the run",
                    )
        finally:
            del self._answered[posted]

    async def _sent(self, instance_id: str) -> None:
        """A withdrawn call ended here: a run the take-over left to it, unloaded, is let go."""
        self._sending.discard(instance_id)
        if instance_id in self._skipped:
            self._skipped.discard(instance_id)
            assert self._instances is not None
            if instance_id not in self._instances:
                await self._store.let_go(instance_id, self.owner)

    def _heard_answer(self, posted: str) -> None:
        event = self._answered.get(posted)
        if event is not None:
            event.set()

    async def _inbox_forever(self, system: ActorSystem) -> None:
        try:
            await self._store.listen(self._work.set, self._heard_answer)
        except Exception as error:  # polling alone then
            logger.warning("LISTEN failed (%s); polling for work every %g s", error, self.poll)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), self.poll)
            self._work.clear()
            try:
                taken = await self._store.take_posted(self.owner)
            except Exception:
                logger.exception("reading work from other processes failed; trying again")
                continue
            for posted in taken:
                system.create_task(self._carry_out(posted), name=f"work for {posted.instance_id}")

    async def _carry_out(self, posted: Posted) -> None:
        assert self._instances is not None
        command = _commands.decode(posted.body)
        await self._answer(posted, self._instances.send(posted.instance_id, command))

    async def _answer(self, posted: Posted, result: Awaitable[Any]) -> None:
        """Answer posted work with what carrying it out gives."""
        try:
            reply = Reply(ok=True, result=await result)
        except Exception as error:
            reply = error_reply(error)
        try:
            await self._store.answer(posted, encode(reply))
        except Exception:
            logger.exception("answering work for %s failed", posted.instance_id)

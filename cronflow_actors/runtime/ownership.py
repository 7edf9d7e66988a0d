"""One owning runtime per database: a lease in the database itself, renewed by heartbeats.

At start a runtime takes the lease (owner id, host, pid, expiry). A second runtime on the same
database is refused with ``LeaseHeldError`` naming the owner, or waits for the lease to expire
(``wait=True``). A clean stop releases the lease at once; after a crash it expires by itself
``duration`` seconds after the last heartbeat, and the next runtime takes over. Once held, the
lease fences every snapshot the store writes: a runtime that lost it (a pause past its expiry,
say) writes nothing more, and is told so through ``on_lost``.

The record's ``scope`` names what is owned; the PostgreSQL store will use the same shape for one
lease per instance.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from cronflow_actors.errors import (
    ConfigurationError,
    LeaseHeldError,
    LeaseLostError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.kernel import ActorSystem, Clock
from cronflow_actors.messages import LeaseRecord
from cronflow_actors.store import Store

__all__ = ["LEASE_RANGE", "LEASE_SECONDS", "DatabaseLease", "RuntimeLease"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


LEASE_SECONDS = (0.5, 86_400.0)
LEASE_RANGE = (
    "a number of seconds from 0.5 to 86,400 (a day): a shorter lease is renewed many times a "
    "second, a longer one keeps the database owned that long after a crash"
)
"""How long a lease may last, and the words that say so."""


class RuntimeLease(Protocol):
    """What a runtime holds while it runs: ``DatabaseLease`` (one runtime per database) or,
    on a database several processes share, ``runtime.cluster.ClusterLease``."""

    owner: str
    duration: float
    held: bool
    waits: bool
    """Whether a start waits for another's lease (or an older version's processes) to end."""

    async def acquire(self) -> None: ...

    def start_heartbeat(self, system: ActorSystem) -> None: ...

    async def release(self) -> None: ...

    def admits(self) -> bool | None: ...


class Renewed:
    """When a lease was last renewed, by the clock's monotonic time (a lease's mixin: ``held``,
    ``duration`` and ``_clock`` are the lease's), and whether work may start under it now."""

    held: bool
    duration: float
    _clock: Clock
    _renewed_at: float = 0.0

    def _renewed(self, asked_at: float) -> None:
        """Renewed by a request sent at ``asked_at`` (the store counts the lease from before
        the round trip, and so does this)."""
        self._renewed_at = asked_at

    def admits(self) -> bool | None:
        """Whether work may start under the lease (asked by the blocking pool, on its thread,
        before a queued call starts): False once it is lost or given up; None while its
        renewal is overdue, until the heartbeat renews it or finds it lost (a process paused
        past its lease, SIGSTOP or a frozen VM, wakes with calls queued that another process
        may be running by now, before its heartbeat can tell); True otherwise."""
        if not self.held:
            return False
        return True if self._clock.monotonic() - self._renewed_at < self.duration else None


class DatabaseLease(Renewed):
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        duration: float = 5.0,
        wait: bool = False,
        on_lost: Callable[[Exception], None],
    ) -> None:
        if (
            not isinstance(duration, int | float)
            or isinstance(duration, bool)
            or not LEASE_SECONDS[0] <= duration < math.inf
        ):
            # (no bound above here: a test's manual clock may leap years; serve's settings
            # keep to a day)
            raise ConfigurationError(
                "lease_seconds",
                duration,
                "a finite number of seconds from 0.5: a shorter lease is renewed many times a "
                "second",
            )
        self.owner = uuid.uuid4().hex[:16]
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.duration = float(duration)
        self._store = store
        self._clock = clock
        self.waits = wait
        """Whether a start waits for another runtime's lease to lapse (``wait_for_lease``)."""
        self._on_lost = on_lost
        self._heartbeat: asyncio.Task[None] | None = None
        self.held = False

    async def acquire(self) -> None:
        """Take the lease; with ``wait``, until the current owner's lease expires."""
        announced = False
        while True:
            now, asked_at = self._clock.now(), self._clock.monotonic()
            record = LeaseRecord(
                owner=self.owner,
                host=self.host,
                pid=self.pid,
                acquired_at=now,
                renewed_at=now,
                expires_at=now + self.duration,
            )
            try:
                taking = self._store.acquire_lease(record)
                await said_if_slow(taking, PATIENCE, "the database lease's take", STARTING)
            except LeaseHeldError as held:
                if not self.waits:
                    raise
                if not announced:
                    logger.warning(
                        "database %s is owned by runtime %s (pid %d on %s): this one waits to "
                        "take it over once that lease expires (in %.1f s unless renewed)",
                        held.database,
                        held.owner,
                        held.pid,
                        held.host,
                        held.expires_in,
                    )
                    announced = True
                await self._clock.sleep(min(max(held.expires_in, 0.05), self.duration / 3))
                continue
            self.held = True
            self._renewed(asked_at)
            return

    def start_heartbeat(self, system: ActorSystem) -> None:
        self._heartbeat = system.create_task(self._beat(), name="database lease heartbeat")

    async def _beat(self) -> None:
        """Renew the lease, and check the store, every third of the lease's duration: a lost
        lease or a store that cannot write any more (``on_lost``) ends the heartbeat."""
        interval = self.duration / 3
        while True:
            await self._clock.sleep(interval)
            now, asked_at = self._clock.now(), self._clock.monotonic()
            try:
                renewing = self._store.renew_lease(
                    "runtime", self.owner, now=now, expires_at=now + self.duration
                )
                await said_if_slow(renewing, patience(self), "the database lease's renewal")
                self._renewed(asked_at)
                await self._store.check()
            except (LeaseLostError, StoreFailedError, StoreClosedError) as failed:
                self.held = not isinstance(failed, LeaseLostError) and self.held
                logger.critical("%s", failed)
                self._on_lost(failed)
                return
            except Exception:
                logger.exception("the database lease could not be renewed; trying again")

    async def release(self) -> None:
        """Give the lease up so another runtime can start at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self.held:
            self.held = False
            await self._store.release_lease("runtime", self.owner)


PATIENCE = 5.0
"""Seconds a starting runtime waits for its database before it says so (not the lease's
duration, which may be a day: review h45 F18)."""
RUNNING = "every write waits, and /readyz says not ready once it has waited the lease's duration"
"""What waits on a running runtime's database that does not answer."""
STARTING = "the runtime's start waits for it (serve takes no connection meanwhile)"
"""What waits on a starting runtime's (retest-edge h44 N5: a frozen disk at the start was
silent)."""


def patience(lease: RuntimeLease) -> float:
    """Seconds a renewal waits before the log says so: ``PATIENCE``, or the lease's duration if
    shorter (a lease of an hour said a frozen disk after an hour: retest3 h45 N3)."""
    return min(PATIENCE, lease.duration)


async def said_if_slow(call: Awaitable[T], within: float, what: str, meanwhile: str = RUNNING) -> T:
    """Await ``call``, saying so once it has taken over ``within`` seconds (with what waits
    ``meanwhile``), and again when it ends: a database that does not answer (a frozen or hung
    disk, a lost server) held every write for 25 s with no line in the log (crash h44 F2;
    ``/readyz`` says it too). A timer, not a task: the answer comes in time at every beat."""
    began, said = time.monotonic(), []

    def waiting() -> None:
        said.append(True)
        logger.warning(
            "the database has not answered %s for %g s (a frozen or hung disk, a lost server?): %s",
            what,
            within,
            meanwhile,
        )

    late = asyncio.get_running_loop().call_later(within, waiting)
    try:
        answer = await call
    finally:
        late.cancel()
    if said:
        logger.warning("the database answered %s after %.1f s", what, time.monotonic() - began)
    return answer

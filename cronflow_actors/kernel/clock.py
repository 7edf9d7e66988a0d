"""Clocks: everything that reads time gets one injected, so tests can drive time by hand.

``now()`` is wall-clock time in epoch seconds (what durable timers and records store);
``monotonic()`` is for measuring durations; ``sleep()`` waits on the clock's own time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cronflow_actors.kernel._system import ActorSystem

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the runtime needs of time."""

    def now(self) -> float:
        """Wall-clock time, epoch seconds."""
        ...

    def monotonic(self) -> float:
        """A clock that never goes back, for durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Wait until ``now()`` reaches ``when``."""
        ...


class _Parking:
    """What both clocks share: a task of an ``ActorSystem`` that sleeps on the clock is parked,
    not busy, so ``wait_idle()`` does not wait for timers (a run sleeping for a day, a schedule,
    a heartbeat) but only for work in flight."""

    def __init__(self) -> None:
        self._systems: list[ActorSystem] = []

    def attach(self, system: ActorSystem) -> None:
        """Called by an ActorSystem that uses this clock, so parked tasks count as idle."""
        self._systems.append(system)

    def detach(self, system: ActorSystem) -> None:
        if system in self._systems:
            self._systems.remove(system)

    def _park(self) -> list[ActorSystem]:
        task = asyncio.current_task()
        return [system for system in self._systems if system._task_parked(task)]


class SystemClock(_Parking):
    """The real clock: ``time.time``, ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(time.time() + seconds)

    async def sleep_until(self, when: float) -> None:
        delay = when - time.time()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        parked_in = self._park()
        try:
            await asyncio.sleep(delay)
        finally:
            for system in parked_in:
                system._task_unparked()


class ManualClock(_Parking):
    """A clock that moves only when told to, for deterministic tests.

    ``advance(seconds)`` (or ``set(when)``) moves time forward and wakes, in deadline order, every
    sleeper whose deadline has been reached. A sleeper woken by one call that sleeps again is
    woken by a later call. Sleeping does not keep an ``ActorSystem`` busy: ``wait_idle()`` returns
    while actor tasks wait on this clock.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        super().__init__()
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None], list[ActorSystem]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting."""
        return sum(1 for entry in self._sleepers if not entry[2].done())

    def next_deadline(self) -> float | None:
        """The earliest deadline a sleeper waits for, or None."""
        live = [entry[0] for entry in self._sleepers if not entry[2].done()]
        return min(live) if live else None

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + max(0.0, seconds))

    async def sleep_until(self, when: float) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        parked_in = self._park()
        heapq.heappush(self._sleepers, (when, next(self._order), future, parked_in))
        try:
            await future
        finally:
            # Cancelled while parked: count it busy again until it ends. (A woken sleeper was
            # unparked by set(), which emptied the list, so each park is undone exactly once.)
            if not future.done():
                future.cancel()
            for system in parked_in:
                system._task_unparked()
            parked_in.clear()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake the sleepers that are due."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back; advance() got {seconds} seconds")
        self.set(self._now + seconds)

    def set(self, when: float) -> None:
        """Move time forward to ``when`` (epoch seconds) and wake the sleepers that are due."""
        if when < self._now:
            raise ValueError(f"a clock cannot go back from {self._now} to {when}")
        self._now = float(when)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _due, _order, future, parked_in = heapq.heappop(self._sleepers)
            if future.done():
                continue
            for system in parked_in:
                system._task_unparked()
            parked_in.clear()
            future.set_result(None)

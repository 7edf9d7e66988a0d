"""Clocks: everything that reads time gets one injected, so tests can drive time by hand.

``now()`` is wall-clock time in epoch seconds (what durable timers and records store);
``monotonic()`` is for measuring durations; ``sleep()`` waits on the clock's own time.

The hook between a clock and an ``ActorSystem`` is two protocols: a ``ParkingClock`` (both
clocks here are) accepts ``SleepListener``s and tells them when a task starts and stops
sleeping on it, so the system's ``wait_idle()`` does not wait for sleepers. This module knows
nothing of the system: anything with ``parked``/``unparked`` can listen.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any, Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "ParkingClock", "SleepListener", "SystemClock"]


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


class SleepListener(Protocol):
    """Hears of tasks sleeping on a clock (an ``ActorSystem``'s count of work in flight)."""

    def parked(self, task: asyncio.Task[Any] | None) -> bool:
        """``task`` starts to sleep; True if the listener counted it (it then hears
        ``unparked()`` exactly once, when the task wakes or its sleep is cancelled)."""
        ...

    def unparked(self) -> None:
        """A task this listener counted in ``parked()`` is awake again."""
        ...


@runtime_checkable
class ParkingClock(Clock, Protocol):
    """A clock that tells listeners about its sleepers; an ``ActorSystem`` attaches itself to
    its clock when it starts and detaches when it stops, if the clock is one of these."""

    def attach(self, listener: SleepListener) -> None:
        """From now on, tell ``listener`` about tasks that sleep."""
        ...

    def detach(self, listener: SleepListener) -> None:
        """Stop telling ``listener``."""
        ...


class _Parking:
    """What both clocks share: a task that sleeps on the clock is parked, not busy, for each
    listener that counts it, so ``wait_idle()`` does not wait for timers (a run sleeping for a
    day, a schedule, a heartbeat) but only for work in flight."""

    def __init__(self) -> None:
        self._listeners: list[SleepListener] = []

    def attach(self, listener: SleepListener) -> None:
        """Called by an ActorSystem that uses this clock, so parked tasks count as idle."""
        self._listeners.append(listener)

    def detach(self, listener: SleepListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _park(self) -> list[SleepListener]:
        task = asyncio.current_task()
        return [listener for listener in self._listeners if listener.parked(task)]


class SystemClock(_Parking):
    """The real clock: ``time.time``, ``time.monotonic`` and ``asyncio.sleep``."""

    # The functions themselves, not methods that call them: a run reads the clock about twenty
    # times, and a method around each reading is one Python call more. Its sleeps read the same
    # function, so the clock agrees with itself even where ``time.time`` is patched later (a
    # test's mock): inject a ``ManualClock`` to control time.
    now = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)

    async def sleep_until(self, when: float) -> None:
        delay = when - self.now()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        parked_in = self._park()
        try:
            await asyncio.sleep(delay)
        finally:
            for listener in parked_in:
                listener.unparked()


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
        self._sleepers: list[tuple[float, int, asyncio.Future[None], list[SleepListener]]] = []
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
            for listener in parked_in:
                listener.unparked()
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
            for listener in parked_in:
                listener.unparked()
            parked_in.clear()
            future.set_result(None)

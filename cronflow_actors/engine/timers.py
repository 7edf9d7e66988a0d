"""Durable timers, armed in memory: one heap and one sleeping task for all of them.

Timers are written to the store by the transaction that registers them (and deleted by the one
that cancels or runs them); this service only wakes the owning instance when one is due. On
start the runtime arms every timer the store holds, so a restart loses none. Cancelling is lazy:
a disarmed timer stays in the heap and is skipped when it comes up.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from cronflow_actors.kernel import ActorSystem, Clock
from cronflow_actors.messages import TimerRecord

__all__ = ["TimerService"]


class TimerService:
    def __init__(self, clock: Clock, fire: Callable[[str, str], None]) -> None:
        """``fire(instance_id, timer_id)`` is called on the loop when a timer is due."""
        self._clock = clock
        self._fire = fire
        self._heap: list[tuple[float, int, str]] = []
        self._armed: dict[str, tuple[float, str]] = {}  # timer id -> (due, instance id)
        self._order = itertools.count()
        self._system: ActorSystem | None = None
        self._sleeper: asyncio.Task[None] | None = None
        self._sleeping_until: float | None = None

    def start(self, system: ActorSystem) -> None:
        self._system = system
        self._wake()

    def stop(self) -> None:
        self._system = None
        if self._sleeper is not None:
            self._sleeper.cancel()
            self._sleeper = None

    def __len__(self) -> int:
        return len(self._armed)

    def arm(self, record: TimerRecord) -> None:
        self._armed[record.timer_id] = (record.due_at, record.instance_id)
        heapq.heappush(self._heap, (record.due_at, next(self._order), record.timer_id))
        if self._sleeping_until is None or record.due_at < self._sleeping_until:
            self._wake()

    def disarm(self, timer_id: str) -> None:
        self._armed.pop(timer_id, None)

    def _wake(self) -> None:
        if self._system is None:
            return
        if self._sleeper is not None:
            self._sleeper.cancel()
            self._sleeper = None
        self._sleeping_until = None
        self._fire_due()
        if self._heap:
            due = self._heap[0][0]
            self._sleeping_until = due
            self._sleeper = self._system.create_task(self._sleep(due), name="timers")

    async def _sleep(self, due: float) -> None:
        await self._clock.sleep_until(due)
        self._sleeper = None
        self._sleeping_until = None
        self._wake()

    def _fire_due(self) -> None:
        now = self._clock.now()
        heap = self._heap
        while heap:
            due, _order, timer_id = heap[0]
            armed = self._armed.get(timer_id)
            if armed is None or armed[0] != due:
                heapq.heappop(heap)  # disarmed, or re-armed at another time
                continue
            if due > now:
                return
            heapq.heappop(heap)
            del self._armed[timer_id]
            self._fire(armed[1], timer_id)

"""Durable timers, armed lazily: the earliest ones in memory, the rest only in the store.

Timers are written to the store by the transaction that registers them (and deleted by the one
that cancels or runs them); this service only wakes the owning instance when one is due. It
keeps in memory a window of the earliest timers, read from the store a page at a time (by due
time, then id), and one sleeping task for all of them: a timer past the window stays in the
store until the window reaches it, so a hundred thousand waiting runs cost a page of memory, not
an entry each. A timer armed while a page is being read is kept aside and applied after it.
Cancelling is lazy: a disarmed timer stays in the heap and is skipped when it comes up.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.kernel import ActorSystem, Clock
from cronflow_actors.messages import TimerRecord

__all__ = ["TimerService"]

logger = logging.getLogger(__name__)

Key = tuple[float, str]
LoadPage = Callable[[Key | None, int], Awaitable[list[TimerRecord]]]


class TimerService:
    def __init__(
        self, clock: Clock, fire: Callable[[str, str], None], load: LoadPage, page: int = 1000
    ) -> None:
        """``fire(instance_id, timer_id)`` is called on the loop when a timer is due;
        ``load(after, limit)`` reads the next ``page`` timers from the store."""
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise ConfigurationError("timer_window", page, "a whole number >= 1")
        self._clock = clock
        self._fire = fire
        self._load = load
        self._page = page
        self._heap: list[tuple[float, int, str]] = []
        self._armed: dict[str, tuple[float, str]] = {}  # timer id -> (due, instance id)
        self._order = itertools.count()
        self._horizon: Key | None = None
        """Every stored timer up to this key is in memory; None: none read yet."""
        self._complete = False
        """The store holds no timer past the horizon."""
        self._loading = False
        self._armed_while_loading: list[TimerRecord] = []
        self._disarmed_while_loading: set[str] = set()
        self._system: ActorSystem | None = None
        self._sleeper: asyncio.Task[None] | None = None
        self._sleeping_until: float | None = None

    async def start(self, system: ActorSystem) -> None:
        """Read the first page of timers and start waking instances."""
        self._system = system
        self._heap.clear()
        self._armed.clear()
        self._horizon = None
        self._complete = False
        await self._load_page()
        self._wake()

    def stop(self) -> None:
        self._system = None
        if self._sleeper is not None:
            self._sleeper.cancel()
            self._sleeper = None
        self._sleeping_until = None

    async def reload(self) -> None:
        """Forget the window and read it again (timers of a workflow registered meanwhile)."""
        if self._system is not None:
            self.stop_sleeping()
            await self.start(self._system)

    def stop_sleeping(self) -> None:
        if self._sleeper is not None:
            self._sleeper.cancel()
            self._sleeper = None
        self._sleeping_until = None

    def __len__(self) -> int:
        """Timers held in memory (the window), not all pending timers."""
        return len(self._armed)

    def arm(self, record: TimerRecord) -> None:
        if self._loading:
            self._armed_while_loading.append(record)
            self._disarmed_while_loading.discard(record.timer_id)
        if not self._covers((record.due_at, record.timer_id)):
            return  # past the window: the store has it, and the window will reach it
        self._push(record)
        self._trim()
        if self._sleeping_until is None or record.due_at < self._sleeping_until:
            self._wake()

    def disarm(self, timer_id: str) -> None:
        self._armed.pop(timer_id, None)
        if self._loading:
            self._disarmed_while_loading.add(timer_id)

    # -- internals ------------------------------------------------------------------------------

    def _covers(self, key: Key) -> bool:
        return self._complete or (self._horizon is not None and key <= self._horizon)

    def _push(self, record: TimerRecord) -> None:
        self._armed[record.timer_id] = (record.due_at, record.instance_id)
        heapq.heappush(self._heap, (record.due_at, next(self._order), record.timer_id))

    def _trim(self) -> None:
        """Past two pages in memory, keep the earliest page: the rest is in the store, and the
        window reaches it again when the earliest have fired."""
        if len(self._armed) <= 2 * self._page:
            return
        keys = ((due, timer_id) for timer_id, (due, _instance) in self._armed.items())
        horizon = heapq.nsmallest(self._page, keys)[-1]
        self._armed = {t: a for t, a in self._armed.items() if (a[0], t) <= horizon}
        self._heap = [entry for entry in self._heap if entry[2] in self._armed]
        heapq.heapify(self._heap)
        self._horizon = horizon
        self._complete = False

    async def _load_page(self) -> None:
        self._loading = True
        try:
            records = await self._load(self._horizon, self._page)
        finally:
            self._loading = False
            armed, self._armed_while_loading = self._armed_while_loading, []
            disarmed, self._disarmed_while_loading = self._disarmed_while_loading, set()
        for record in records:
            if record.timer_id not in disarmed and record.timer_id not in self._armed:
                self._push(record)
        if len(records) < self._page:
            self._complete = True
        elif records:
            self._horizon = (records[-1].due_at, records[-1].timer_id)
        for record in armed:
            if record.timer_id not in self._armed and self._covers(
                (record.due_at, record.timer_id)
            ):
                self._push(record)
        self._trim()

    def _wake(self) -> None:
        if self._system is None:
            return
        if self._loading:
            self._fire_due()  # the page being read wakes the service again when it is in
            return
        self.stop_sleeping()
        self._fire_due()
        if self._heap:
            due = self._heap[0][0]
            self._sleeping_until = due
            self._sleeper = self._system.create_task(self._sleep(due), name="timers")
        elif not self._complete:
            self._sleeper = self._system.create_task(self._next_page(), name="timers: next page")

    async def _sleep(self, due: float) -> None:
        await self._clock.sleep_until(due)
        self._sleeper = None
        self._sleeping_until = None
        self._wake()

    async def _next_page(self) -> None:
        try:
            await self._load_page()
        except Exception:
            logger.exception("could not read the next timers from the store")
            return
        self._sleeper = None
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

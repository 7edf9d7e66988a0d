"""Admission of new runs: ``Runtime(max_active_runs=N)`` (``serve --max-active-runs N``).

A run in memory costs the event loop more the more of them there are: with 2,000 runs in flight
the loop spends about a third more time on each run than with 100, the same Python work on
objects that have most likely gone cold in the processor's caches by the time each run's next
step comes round (issue 16, ``benchmarks/README.md``). With a limit, a new run starts only while
fewer than N runs are in this process's memory; a start beyond it waits, in the order the starts
came, before anything is written, and goes ahead when a run finishes or is set aside
(passivated: paused for a human, asleep on a timer, waiting for an event). Its caller is
answered once its start is durable, as always, so callers that start more runs than the limit
are slowed to the pace the engine finishes them at (backpressure), and memory stays bounded
however many arrive at once.

A start waits for its place first, before it takes any lock or claim (its flow's queue, an
explicit instance id's), and holds the place until its run is in memory (the place is then the
run's) or its start ends without one (queued under its flow's limit, refused, canceled: the
place is free again). Not held back, so that a limit can never leave runs waiting on each other:
a start from a step or an action (a run that starts another and waits for it keeps its own place
meanwhile; a plain ``def`` step on the thread pool too, which runs in a copy of its context), a
run taken off its flow's concurrency queue (that limit already holds it), a migration's new run
(it replaces one that was in memory), and every run already started (resumed, woken by a timer
or an event, recovered after a restart). So the count of runs in memory can pass N while those
come in; new starts wait until it is below N again. Waiting runs leave memory only when the
runtime passivates them, so a limit needs ``passivate=True`` (the default), and ``Runtime``
refuses it otherwise.

Without a limit (the default) every start goes ahead at once. A limit suits a process whose
steps are short and CPU-bound: on the 2-core reference machine 128 kept the loop's throughput close
to its best from 500 to 2,000 callers (64 was too few to fill the store's group commits). When the
runtime drains or stops, the line fails (``close``). Steps that wait on slow I/O hold their
places while they wait, so a limit also caps how many such steps run at once (as a worker pool's
size does).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cronflow_actors.engine.handlers import in_user_code
from cronflow_actors.errors import ConfigurationError, RuntimeNotRunningError

__all__ = ["Admission"]

T = TypeVar("T")


class _Place:
    """A place held by one start; ``held`` until it is its run's, or given back."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = True


_place: contextvars.ContextVar[_Place | None] = contextvars.ContextVar(
    "cronflow_admission_place", default=None
)
"""The place the start under way in this context holds (``InstanceDirectory`` gives it to the
run it spawns)."""


class Admission:
    """The places of runs in memory, and the starts waiting in line for one."""

    __slots__ = ("_closed", "_in_memory", "_reserved", "_state", "_waiting", "limit")

    def __init__(
        self,
        limit: int,
        in_memory: Callable[[], int],
        state: Callable[[], str] = lambda: "stopping",
    ) -> None:
        self.limit = limit
        self._in_memory = in_memory
        """How many runs are in memory (the instance directory's count)."""
        self._state = state
        """The runtime's state, for the error of a start refused once the line is closed."""
        self._reserved = 0
        """Places held by starts whose run is not in memory yet."""
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @classmethod
    def for_limit(
        cls, limit: Any, passivate: bool, in_memory: Callable[[], int], state: Callable[[], str]
    ) -> Admission | None:
        """``Runtime(max_active_runs=limit)``'s admission; None for no limit; a bad limit, or
        one without ``passivate``, raises ``ConfigurationError``."""
        if limit is None:
            return None
        if not passivate:
            raise ConfigurationError(
                "max_active_runs",
                limit,
                "None with passivate=False (waiting runs would stay in memory and keep their "
                "places; passivate=True lets them go)",
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(
                "max_active_runs", limit, "a whole number >= 1 (runs in memory), or None"
            )
        return cls(limit, in_memory, state)

    @property
    def waiting(self) -> int:
        """How many starts wait in line."""
        return len(self._waiting)

    async def start(self, start: Callable[[], Awaitable[T]]) -> T:
        """``await start()`` holding a place (waiting in line for one first, unless it is
        called from a step or an action, which is never held back)."""
        if in_user_code.get():
            return await start()
        await self._take_place()
        place = _Place()
        token = _place.set(place)
        try:
            return await start()
        finally:
            _place.reset(token)
            if place.held:  # no run came of it: the place is free again
                place.held = False
                self._reserved -= 1
                self._let_in()

    def spawned(self) -> None:
        """The start under way in this context has its run in memory: its place (if it holds
        one) is the run's now."""
        place = _place.get()
        if place is not None and place.held:
            place.held = False
            self._reserved -= 1

    def run_left(self) -> None:
        """A run left memory: let in as many starts as there is room for."""
        self._let_in()

    def close(self) -> None:
        """The runtime stops: every start in line fails with nothing written, and so does any
        start that comes after."""
        self._closed = True
        while self._waiting:
            self._waiting.popleft().set_exception(self._refusal())

    async def _take_place(self) -> None:
        if self._closed:
            raise self._refusal()
        if not self._waiting and self._in_memory() + self._reserved < self.limit:
            self._reserved += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future in self._waiting:  # canceled in line
                self._waiting.remove(future)
            elif not future.cancelled() and future.exception() is None:
                self._reserved -= 1  # let in, then canceled: its place goes on
            self._let_in()  # it may have been the one holding the others back
            raise

    def _refusal(self) -> RuntimeNotRunningError:
        """A start refused by the closed line: the runtime drains (still running) or has
        stopped (or failed), and its error says which."""
        state = self._state()
        return RuntimeNotRunningError("start a run", "stopping" if state == "running" else state)

    def _let_in(self) -> None:
        while self._waiting and self._in_memory() + self._reserved < self.limit:
            future = self._waiting.popleft()
            if future.done():  # canceled in line, its task not run yet: it holds no place
                continue
            self._reserved += 1
            future.set_result(None)

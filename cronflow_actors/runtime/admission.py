"""Admission of new runs: ``Runtime(max_active_runs=N)`` (``serve --max-active-runs N``).

A run in memory costs the event loop more the more of them there are: with 2,000 runs in
flight each one's objects have gone cold in the processor's caches by the time its next step
comes round, and the loop spends about a third more time on each run than with 100 (issue 16,
``benchmarks/README.md``). With a limit, a new run starts only while fewer than N runs are in
this process's memory; a start beyond it waits, in the order the starts came, before anything
is written, and goes ahead when a run finishes or is set aside (passivated: paused for a human,
asleep on a timer, waiting for an event). Its caller is answered once its start is durable,
as always, so callers that start more runs than the limit are slowed to the pace the engine
finishes them at (backpressure), and memory stays bounded however many arrive at once.

Not held back, so that a limit can never leave runs waiting on each other: a start from a step
or an action (a run that starts another and waits for it keeps its own place meanwhile), a run
taken off its flow's concurrency queue (that limit already holds it), a migration's new run
(it replaces one that was in memory), and every run already started (resumed, woken by a
timer or an event, recovered after a restart). So the count of runs in memory can pass N
while those come in; new starts wait until it is below N again.

Without a limit (the default) every start goes ahead at once. A limit suits a process whose
steps are short and CPU-bound: N of about a hundred per core keeps the loop's throughput where
it is at its best. Steps that wait on slow I/O hold their places while they wait, so a limit
also caps how many such steps run at once (as a worker pool's size does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from cronflow_actors.engine.handlers import in_user_code
from cronflow_actors.errors import ConfigurationError, RuntimeNotRunningError

__all__ = ["Admission"]


class Admission:
    """The places of runs in memory, and the starts waiting in line for one."""

    __slots__ = ("_admitted", "_in_memory", "_waiting", "limit")

    def __init__(self, limit: int, in_memory: Callable[[], int]) -> None:
        self.limit = limit
        self._in_memory = in_memory
        """How many runs are in memory (the instance directory's count)."""
        self._admitted = 0
        """Starts let in from the line that have not reached memory yet (each holds a place)."""
        self._waiting: deque[asyncio.Future[None]] = deque()

    @classmethod
    def optional(cls, limit: Any, in_memory: Callable[[], int]) -> Admission | None:
        """``Runtime(max_active_runs=limit)``'s admission; None for no limit; a bad limit
        raises ``ConfigurationError``."""
        if limit is None:
            return None
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(
                "max_active_runs", limit, "a whole number >= 1 (runs in memory), or None"
            )
        return cls(limit, in_memory)

    @property
    def waiting(self) -> int:
        """How many starts wait in line."""
        return len(self._waiting)

    def has_room(self) -> bool:
        """Whether a new start may go ahead now (nobody is ahead of it and there is a place)."""
        if in_user_code.get():
            return True
        return not self._waiting and self._in_memory() + self._admitted < self.limit

    async def wait_for_room(self) -> None:
        """Wait in line for a place; on return the caller holds one until it calls ``arrived``
        (its run is in memory, or its start gave up)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # let in, then canceled: pass it on
                self.arrived()
            else:
                self._waiting.remove(future)
                self.left()  # it may have been the one holding the others back
            raise

    def arrived(self) -> None:
        """A start let in from the line has its run in memory, or gave up: its place is the
        run's now, or free."""
        self._admitted -= 1
        self.left()

    def left(self) -> None:
        """A run left memory (or a place came free): let in as many as there is room for."""
        while self._waiting and self._in_memory() + self._admitted < self.limit:
            self._admitted += 1
            self._waiting.popleft().set_result(None)

    def close(self) -> None:
        """The runtime stops: every start still in line fails, and nothing is written for it."""
        while self._waiting:
            self._waiting.popleft().set_exception(RuntimeNotRunningError("start a run", "stopping"))

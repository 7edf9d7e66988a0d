"""The cyclic garbage collector in a long-lived runtime process (``serve``).

CPython collects its youngest generation every 700 net allocations of container objects, and
each collection walks every object in that generation. A runtime keeps each run in flight alive
while it waits for its commit (its actor, its transaction, their futures: some fifty objects a
run), so with thousands of runs in flight the collector walks thousands of live objects every
few runs: at 2,000 in flight it took a sixth of the process's time. The engine frees a run's
objects by reference counting, not through the collector (``tests/runtime/test_garbage.py``),
so collecting less often leaves little garbage waiting (what does wait: the reference cycles of
exceptions, of steps that raised and calls refused): ``serve`` raises the youngest generation's
threshold (``--gc-threshold``; 0 leaves CPython's thresholds alone).

That threshold is a floor: the youngest generation is collected once its objects outnumber
those the runs in memory hold. Right after a collection every object alive is old; as the runs
in flight turn over, their new objects fill the youngest generation, and with 2,000 in flight
(some fifty objects each) a threshold of 20,000 was crossed every few hundred runs, each
collection walking the young objects of every run in flight: 9% of the process's time. So the
threshold grows with the instances in memory (``OBJECTS_PER_RUN`` times the power of two
above their count, up to ``SCALED_CEILING``), and falls back when they go. The count is the
process's (``runs_in_memory``, every runtime's instance directory tells it), as the collector is.
"""

from __future__ import annotations

import gc
import threading

__all__ = [
    "DEFAULT_GC_THRESHOLD",
    "MAX_GC_THRESHOLD",
    "OBJECTS_PER_RUN",
    "SCALED_CEILING",
    "RunsInMemory",
    "runs_in_memory",
    "tune_collector",
]

DEFAULT_GC_THRESHOLD = 20_000
"""What ``serve`` sets the youngest generation's threshold to (CPython's default: 700)."""
MAX_GC_THRESHOLD = 100_000_000
"""The largest threshold taken (beyond it the collector would all but never run)."""
OBJECTS_PER_RUN = 128
"""The youngest generation's threshold per instance in memory, times the power of two above
their count (so 128 to 256 objects each, up to 512 while the count falls): at least twice the
container objects one holds at a step (52: its actor, its state's records, its handler's
actor, task and context)."""
SCALED_CEILING = 1_000_000
"""The most the instances in memory raise the threshold to (from 4,096 of them on): a bound on
the garbage in cycles that waits for a collection (the setting, if higher, is kept)."""


class RunsInMemory:
    """The count of workflow instances in memory, which scales the youngest generation's
    threshold while ``tune_collector`` has set a floor. Instance directories (on their loops'
    threads) tell it of each instance they bring into memory and let go."""

    __slots__ = ("_lock", "count", "floor", "high", "low")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.floor = 0
        """The threshold set (0: CPython's thresholds are left alone, and not scaled)."""
        self.low = self.high = 0
        self._unscaled()

    def added(self) -> None:
        with self._lock:
            self.count += 1
            if self.count >= self.high:
                self._rescale()

    def removed(self) -> None:
        with self._lock:
            self.count -= 1
            if self.count < self.low:
                self._rescale()

    def scale_from(self, floor: int) -> None:
        with self._lock:
            self.floor = floor
            if floor:
                self._rescale()
            else:
                self._unscaled()

    def threshold(self) -> int:
        """The youngest generation's threshold for the instances in memory now."""
        room = OBJECTS_PER_RUN * self.high
        return max(self.floor, min(room, SCALED_CEILING))

    def _rescale(self) -> None:
        if not self.floor:
            self._unscaled()
            return
        # the count's power-of-two step: rescaled when it reaches the next, or falls below a
        # quarter of this one (so a count going to and fro across a step does not retune)
        self.high = 1 << max(self.count, 1).bit_length()
        self.low = self.high >> 2
        gc.set_threshold(self.threshold(), *gc.get_threshold()[1:])

    def _unscaled(self) -> None:
        self.low, self.high = -1, 1 << 62


runs_in_memory = RunsInMemory()
"""The process's count: what ``tune_collector`` scales with, and what every runtime's instance
directory tells unless it is given another."""


def tune_collector(threshold: int = DEFAULT_GC_THRESHOLD) -> tuple[int, int, int]:
    """Collect the youngest generation when ``threshold`` more container objects were made
    than freed, or more while many instances are in memory (``OBJECTS_PER_RUN`` times the
    power of two above their count, up to ``SCALED_CEILING``; the older generations'
    thresholds as they are): a threshold an
    application sets itself afterwards lasts until the count crosses its next step. 0 changes
    nothing and stops the scaling (the threshold stays where it is). Returns the thresholds as
    they were, for ``gc.set_threshold(*previous)``; ``ValueError`` for a negative
    ``threshold``."""
    if not 0 <= threshold <= MAX_GC_THRESHOLD:
        raise ValueError(
            f"gc threshold must be 0 (CPython's own) to {MAX_GC_THRESHOLD:,}, got {threshold}"
        )
    previous = gc.get_threshold()
    if threshold:
        gc.set_threshold(threshold, *previous[1:])
    runs_in_memory.scale_from(threshold)
    return previous

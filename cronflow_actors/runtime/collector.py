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
"""

from __future__ import annotations

import gc

__all__ = ["DEFAULT_GC_THRESHOLD", "MAX_GC_THRESHOLD", "tune_collector"]

DEFAULT_GC_THRESHOLD = 20_000
"""What ``serve`` sets the youngest generation's threshold to (CPython's default: 700)."""
MAX_GC_THRESHOLD = 100_000_000
"""The largest threshold taken (beyond it the collector would all but never run)."""


def tune_collector(threshold: int = DEFAULT_GC_THRESHOLD) -> tuple[int, int, int]:
    """Collect the youngest generation when ``threshold`` more container objects were made
    than freed (the older generations' thresholds as they are); 0 changes nothing. Returns the
    thresholds as they were, for ``gc.set_threshold(*previous)``; ``ValueError`` for a negative
    ``threshold``."""
    if not 0 <= threshold <= MAX_GC_THRESHOLD:
        raise ValueError(
            f"gc threshold must be 0 (CPython's own) to {MAX_GC_THRESHOLD:,}, got {threshold}"
        )
    previous = gc.get_threshold()
    if threshold:
        gc.set_threshold(threshold, *previous[1:])
    return previous

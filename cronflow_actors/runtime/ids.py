"""Run ids: UUIDv7 (RFC 9562) as 32 hex digits, ordered by the time they were made.

A run's id is the key of its snapshot and of every row that belongs to it (journal, audit,
timers, waits). Random ids (UUIDv4) land anywhere in those indexes, so each commit dirties
pages spread over the whole file and a database with a million runs writes more pages per
commit than one with ten thousand; ids that grow with time land next to each other, at the end
of each index, where the pages are already in cache. The first 48 bits are the Unix time in
milliseconds, the next 12 the fraction of that millisecond, then 62 random bits: enough that
two processes making ids in one instant do not collide. Ids one process makes sort in the order
it made them: one whose time is not past the last one's (a coarse clock, or two ids in a
quarter of a microsecond) takes the next value after it (RFC 9562, section 6.2, method 3). An
id says when its run began to the millisecond; it is not a secret (resume tokens are, and are
random: ``Transaction.new_token``).
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_run_id"]

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RANDOM_BITS = (1 << 62) - 1


class _Stamps:
    """The process's time stamps for ids (milliseconds and 12 bits of fraction), each past the
    last one given out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        ms, fraction = divmod(time.time_ns(), 1_000_000)
        stamp = (ms << 12) | (fraction * 4096 // 1_000_000)
        with self._lock:
            self._last = stamp = max(stamp, self._last + 1)
        return stamp


_stamps = _Stamps()


def new_run_id() -> str:
    """A new UUIDv7, as 32 lowercase hex digits (the shape of ``uuid.uuid4().hex``)."""
    stamp = _stamps.next()
    rand = int.from_bytes(os.urandom(8), "big") & _RANDOM_BITS
    return f"{(stamp >> 12) << 80 | _VERSION | (stamp & 0xFFF) << 64 | _VARIANT | rand:032x}"

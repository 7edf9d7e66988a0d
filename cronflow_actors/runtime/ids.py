"""Run ids: UUIDv7 (RFC 9562) as 32 hex digits, ordered by the time they were made.

A run's id is the key of its snapshot and of every row that belongs to it (journal, audit,
timers, waits). Random ids (UUIDv4) land anywhere in those indexes, so each commit dirties
pages spread over the whole file and a database with a million runs writes more pages per
commit than one with ten thousand; ids that grow with time land next to each other, at the end
of each index, where the pages are already in cache. The first 48 bits are the Unix time in
milliseconds, the next 12 the fraction of that millisecond (so ids one process makes in a row
sort in the order it made them, to a quarter of a microsecond), then 62 random bits: enough
that two processes making ids in one instant do not collide. An id says when its run began to
the millisecond; it is not a secret (resume tokens are, and are random: ``Transaction.new_token``).
"""

from __future__ import annotations

import os
import time

__all__ = ["new_run_id"]

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RANDOM_BITS = (1 << 62) - 1


def new_run_id() -> str:
    """A new UUIDv7, as 32 lowercase hex digits (the shape of ``uuid.uuid4().hex``)."""
    ms, fraction = divmod(time.time_ns(), 1_000_000)
    sub = fraction * 4096 // 1_000_000
    rand = int.from_bytes(os.urandom(8), "big") & _RANDOM_BITS
    return f"{(ms << 80) | _VERSION | (sub << 64) | _VARIANT | rand:032x}"

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

The runs a trigger names itself (a schedule's tick, a webhook's idempotency key or signature, a
poll's item, a keyed event) get ids derived from what names them: ``<kind>:<32 hex digits>``
(``derived_run_id``). The colon is outside what a client may choose (``check_instance_id``:
letters, digits, ``-`` and ``_``), so no caller can take such an id before its trigger does.
Earlier versions derived the bare 32 hex digits (``legacy_run_id``), which ``POST /runs``
could name too: a run found under one counts as the trigger's only if it recorded that kind of
trigger.

The random bits come from ``os.urandom``, read 4 KiB at a time: a system call per id was 1% of
the loop's time at a few thousand runs a second. A forked child starts a read of its own, so it
does not hand out its parent's bits.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Literal

__all__ = ["DERIVED_KINDS", "derived_run_id", "legacy_run_id", "new_run_id"]

DerivedKind = Literal["tick", "hook", "poll", "event", "resume"]
DERIVED_KINDS: tuple[DerivedKind, ...] = ("tick", "hook", "poll", "event", "resume")
"""What names a derived run: a schedule's tick, a webhook's key or signature, a poll's item,
a keyed event's publish, the run a resume goes on from (``replay(resume=True)``)."""

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RANDOM_BITS = (1 << 62) - 1


class _IdParts:
    """The process's time stamps for ids (milliseconds and 12 bits of fraction), each past the
    last one given out, and 62 random bits each, from ``os.urandom`` read 4 KiB at a time."""

    _READ = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._buffer = b""
        self._at = 0

    def next(self) -> tuple[int, int]:
        """(time stamp, random bits) for one id."""
        ms, fraction = divmod(time.time_ns(), 1_000_000)
        stamp = (ms << 12) | (fraction * 4096 // 1_000_000)
        with self._lock:
            self._last = stamp = max(stamp, self._last + 1)
            at = self._at
            if at + 8 > len(self._buffer):
                self._buffer, at = os.urandom(self._READ), 0
            self._at = at + 8
            bits = self._buffer[at : at + 8]
        return stamp, int.from_bytes(bits, "big") & _RANDOM_BITS

    def forget(self) -> None:
        """In a forked child: read random bits afresh (not the parent's next ones), and take a
        lock of its own (one another thread held at the fork would never be let go here)."""
        self._lock = threading.Lock()
        self._buffer, self._at = b"", 0


_parts = _IdParts()
os.register_at_fork(after_in_child=_parts.forget)


def new_run_id() -> str:
    """A new UUIDv7, as 32 lowercase hex digits (the shape of ``uuid.uuid4().hex``)."""
    stamp, rand = _parts.next()
    return f"{(stamp >> 12) << 80 | _VERSION | (stamp & 0xFFF) << 64 | _VARIANT | rand:032x}"


def derived_run_id(kind: DerivedKind, namespace: uuid.UUID, name: str) -> str:
    """The id of the run that ``name`` names for a trigger of ``kind`` (a UUIDv5 in
    ``namespace``, behind ``<kind>:``): the same name gives the same id, and no client-chosen
    id is one."""
    return f"{kind}:{legacy_run_id(namespace, name)}"


_RESUMES = uuid.UUID("0d6c4b7e-2f1a-4e83-9b5d-7a1c3e9f2b64")
"""The namespace of the ids of the runs that resume others (one a run)."""


def resume_id(run_id: str) -> str:
    """The id of the run that resumes ``run_id`` (one a run: asked again, the same)."""
    return derived_run_id("resume", _RESUMES, run_id)


def legacy_run_id(namespace: uuid.UUID, name: str) -> str:
    """The id earlier versions gave the run ``name`` names (32 hex digits, which a client may
    also choose): found only to answer a retry that spans the upgrade."""
    return uuid.uuid5(namespace, name).hex

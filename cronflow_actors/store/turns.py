"""A turn of one process at a time at some work on a database (``Store.exclusive``): pruning,
whose order two processes at once broke (review h44 F1). Held by what the operating system or
the server lets go when its holder dies, not by a key with an expiry: a turn timed by each
process's clock lapsed under a prune longer than it, or a clock ahead, and two prunes ran at
once again (review2 h44 F1)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable

__all__ = ["POLL", "file_turn"]

POLL = 0.2
"""Seconds between two asks of a turn another process holds."""


@contextlib.asynccontextmanager
async def file_turn(path: str, waiting: Callable[[], None]) -> AsyncIterator[None]:
    """The turn named by the lock file ``path`` (beside a SQLite database: the processes that
    share its file share its folder): an exclusive ``flock``, which ends with its process.
    ``waiting`` is called once if another process holds it first."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        said = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    waiting()
                    said = True
                await asyncio.sleep(POLL)
        yield
    finally:
        os.close(descriptor)  # (its lock with it)

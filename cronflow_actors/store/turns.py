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

from cronflow_actors.errors import ConfigurationError

__all__ = ["POLL", "file_turn"]

POLL = 0.2
"""Seconds between two asks of a turn another process holds."""

_HELD: set[int] = set()
"""The descriptors of the turns this process holds. An ``flock`` belongs to the open file,
which a forked child shares: a child forked by a step as a prune ran held the turn for its
whole life, after its parent's end too (retest h45 N5). A child closes its copies."""


def _let_go_in_child() -> None:
    for descriptor in _HELD:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _HELD.clear()


os.register_at_fork(after_in_child=_let_go_in_child)


def _lock_file(path: str) -> int:
    """The lock file ``path``, opened to read (an ``flock`` needs no more) and made readable by
    all: a file made ``0600`` by one user (a ``sudo db prune``) stopped another's prunes for
    good (retest h45 N3). One that cannot be opened is said, naming it and what to do."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        said = (
            f"a turn at this work is taken by a lock on the file {path}, which cannot be "
            f"opened ({error.strerror or error}): remove it, or let this process's user read "
            "it (was it made by a prune run as another user?); nothing was done"
        )
        raise ConfigurationError("db", path, "", said=said) from None


@contextlib.asynccontextmanager
async def file_turn(path: str, waiting: Callable[[], None]) -> AsyncIterator[None]:
    """The turn named by the lock file ``path`` (beside a SQLite database: the processes that
    share its file share its folder): an exclusive ``flock``, which ends with its process.
    ``waiting`` is called once if another process holds it first."""
    descriptor = _lock_file(path)
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
        _HELD.add(descriptor)
        yield
    finally:
        _HELD.discard(descriptor)
        os.close(descriptor)  # (its lock with it)

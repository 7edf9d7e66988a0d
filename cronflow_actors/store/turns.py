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
from collections.abc import AsyncIterator, Awaitable, Callable

from cronflow_actors.errors import ConfigurationError

__all__ = ["POLL", "file_turn", "taken"]

POLL = 0.2
"""Seconds between two asks of a turn another process holds."""

_HELD: set[int] = set()
"""The descriptors of the turns this process holds or waits for. An ``flock`` belongs to the
open file, which a forked child shares: a child forked by a step as a prune ran held the turn
for its whole life, after its parent's end too (retest h45 N5), and so did one forked as the
prune waited for its turn (review h45 F6). A child closes its copies."""

_FORKS_WATCHED: list[bool] = []


def _let_go_in_child() -> None:
    for descriptor in _HELD:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _HELD.clear()


def _lock_file(path: str) -> int:
    """The lock file ``path``, made readable by all whatever the umask, and opened to write
    where this user may (an exclusive ``flock`` on NFS needs it, review h45 F13), else to read
    (an ``flock`` needs no more): a file made ``0600`` by one user (a ``sudo db prune``) stopped
    another's prunes for good (retest h45 N3; a umask of 077 made it so again, review F7). One
    that cannot be opened is said, naming it and what to do."""
    flags = os.O_CREAT | os.O_CLOEXEC
    try:
        try:
            descriptor = os.open(path, os.O_RDWR | flags, 0o644)
        except PermissionError:
            descriptor = os.open(path, os.O_RDONLY | flags, 0o644)
    except OSError as error:
        said = (
            f"prunes of this database take turns through the lock file {path}, which this "
            f"process cannot open ({error.strerror or error}): let its user read it (chmod a+r; "
            "a prune run as another user made it?), or remove it once no prune runs"
        )
        raise ConfigurationError("db", path, "", said=said) from None
    with contextlib.suppress(OSError):  # (another user's file: its owner's mode stands)
        os.fchmod(descriptor, 0o644)
    return descriptor


@contextlib.asynccontextmanager
async def file_turn(path: str, waiting: Callable[[], None]) -> AsyncIterator[None]:
    """The turn named by the lock file ``path`` (beside a SQLite database: the processes that
    share its file share its folder): an exclusive ``flock``, which ends with its process.
    ``waiting`` is called once if another process holds it first."""
    if not _FORKS_WATCHED:  # (registered once, by the first turn a process takes)
        os.register_at_fork(after_in_child=_let_go_in_child)
        _FORKS_WATCHED.append(True)
    descriptor = _lock_file(path)
    _HELD.add(descriptor)

    async def locked() -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        await taken(locked, waiting)
        yield
    finally:
        _HELD.discard(descriptor)
        os.close(descriptor)  # (its lock with it)


async def taken(take: Callable[[], Awaitable[bool]], waiting: Callable[[], None]) -> None:
    """Ask ``take`` for the turn every ``POLL`` seconds until it is given; ``waiting`` is
    called once if another holds it first (a lock file's, a PostgreSQL session's)."""
    said = False
    while not await take():
        if not said:
            waiting()
            said = True
        await asyncio.sleep(POLL)

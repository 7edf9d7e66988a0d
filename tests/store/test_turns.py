"""``Store.exclusive``: one process at a time at some work on a database (pruning: two at once
broke a chain's order, review h44 F1), held by what ends with its process, with no expiry to
outlive (review2 h44 F1: a turn timed by each process's clock lapsed, and two ran at once)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.store import SQLiteStore


async def test_a_turn_waits_for_its_holder_and_ends_with_its_process(tmp_path: Path) -> None:
    db = tmp_path / "turns.db"
    store = SQLiteStore(db)
    await store.open()
    holder = await asyncio.create_subprocess_exec(  # another process takes the turn, and is
        sys.executable, "-c", "import fcntl, os, sys, time\n"  # killed with it held
        f"fd = os.open({str(db) + '-prune.lock'!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"held\n"
        waited: list[bool] = []
        entered = asyncio.Event()

        async def take() -> None:
            async with store.exclusive("prune", lambda: waited.append(True)):
                entered.set()

        taking = asyncio.ensure_future(take())
        await asyncio.sleep(0.6)
        assert waited == [True]
        assert not entered.is_set()
        os.kill(holder.pid, signal.SIGKILL)  # no expiry to wait out: its end lets it go
        await asyncio.wait_for(taking, 5)
        async with store.exclusive("prune", lambda: waited.append(True)):
            pass  # given back at the block's end: taken again at once
        assert waited == [True]
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
        await store.close()


def _held_elsewhere(lock: Path) -> bool:
    """Whether another open file holds ``lock`` (an ``flock`` of this process's own new open
    file is refused then too)."""
    descriptor = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


async def test_a_database_named_through_a_symlink_shares_its_turn(tmp_path: Path) -> None:
    """A symlink to the file had a lock file of its own: two prunes ran at once (retest h45
    N1)."""
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "s.db"
    (tmp_path / "link.db").symlink_to(real)
    stores = [SQLiteStore(real), SQLiteStore(tmp_path / "link.db")]
    for store in stores:
        await store.open()
    try:
        async with stores[0].exclusive("prune", lambda: None):
            waited: list[bool] = []

            async def take() -> None:
                async with stores[1].exclusive("prune", lambda: waited.append(True)):
                    pass

            taking = asyncio.ensure_future(take())
            await asyncio.sleep(0.4)
            assert waited == [True]
            assert not taking.done()
        await asyncio.wait_for(taking, 5)
        assert not (tmp_path / "link.db-prune.lock").exists()
    finally:
        for store in stores:
            await store.close()


def _forked(*others: int) -> int:
    """A child of this process that sleeps (a step's multiprocessing, a pool of processes);
    ``others``: descriptors of another process's it closes (this test's stand-ins)."""
    child = os.fork()
    if child == 0:
        for descriptor in others:
            os.close(descriptor)
        time.sleep(30)
        os._exit(0)
    return child


def _alive(child: int) -> bool:
    return os.waitpid(child, os.WNOHANG) == (0, 0)


def _kill(child: int) -> None:
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)


async def test_a_child_forked_during_a_turn_does_not_keep_it(tmp_path: Path) -> None:
    """An ``flock`` belongs to the open file a forked child shares: a child forked by a step
    as a prune ran held the turn for its whole life (retest h45 N5)."""
    store = SQLiteStore(tmp_path / "forked.db")
    await store.open()
    lock = Path(f"{tmp_path / 'forked.db'}-prune.lock")
    try:
        async with store.exclusive("prune", lambda: None):
            child = _forked()
            assert _held_elsewhere(lock)
        for _ in range(50):  # (the child closes its copy as it begins: a moment)
            if not _held_elsewhere(lock):
                break
            await asyncio.sleep(0.05)
        assert not _held_elsewhere(lock)  # the child lives on
        assert _alive(child)
    finally:
        _kill(child)
        await store.close()


async def test_a_child_forked_while_a_turn_is_awaited_does_not_keep_it(tmp_path: Path) -> None:
    """The lock file is open while the prune waits for another's turn: a child forked then
    kept the turn its parent took next (review h45 F6)."""
    store = SQLiteStore(tmp_path / "waiting.db")
    await store.open()
    lock = f"{tmp_path / 'waiting.db'}-prune.lock"
    holder = os.open(lock, os.O_RDONLY | os.O_CREAT)  # another process's turn
    fcntl.flock(holder, fcntl.LOCK_EX)
    waiting, child = asyncio.Event(), 0
    try:

        async def take() -> None:
            async with store.exclusive("prune", waiting.set):
                pass

        taking = asyncio.ensure_future(take())
        await asyncio.wait_for(waiting.wait(), 5)
        child = _forked(holder)  # as the turn is awaited
        os.close(holder)
        holder = -1
        await asyncio.wait_for(taking, 5)
        for _ in range(50):
            if not _held_elsewhere(Path(lock)):
                break
            await asyncio.sleep(0.05)
        assert not _held_elsewhere(Path(lock))
        assert _alive(child)
    finally:
        if holder >= 0:
            os.close(holder)
        if child:
            _kill(child)
        await store.close()


async def test_a_lock_file_is_readable_by_all_and_one_that_cannot_be_opened_is_said(
    tmp_path: Path,
) -> None:
    """A lock file made ``0600`` by one user (a ``sudo db prune``) stopped another user's
    prunes for good, in a traceback or a warning each pass (retest h45 N3)."""
    store = SQLiteStore(tmp_path / "mode.db")
    await store.open()
    try:
        before = os.umask(0o077)  # a hardened root shell's (review h45 F7)
        try:
            async with store.exclusive("prune", lambda: None):
                pass
        finally:
            os.umask(before)
        lock = f"{tmp_path / 'mode.db'}-prune.lock"
        assert stat.S_IMODE(os.stat(lock).st_mode) == 0o644
        os.unlink(lock)
        os.mkdir(lock)  # a lock file that cannot be opened
        with pytest.raises(ConfigurationError) as refused:
            async with store.exclusive("prune", lambda: None):
                raise AssertionError("no turn is taken")
        said = str(refused.value)
        assert f"through the lock file {lock}, which this process cannot open (Is a dir" in said
        assert "let its user read it (chmod a+r" in said
        assert "or remove it once no prune runs" in said
    finally:
        await store.close()

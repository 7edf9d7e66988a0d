"""``Store.exclusive``: one process at a time at some work on a database (pruning: two at once
broke a chain's order, review h44 F1), held by what ends with its process, with no expiry to
outlive (review2 h44 F1: a turn timed by each process's clock lapsed, and two ran at once)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

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

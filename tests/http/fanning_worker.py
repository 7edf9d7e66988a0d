"""A worker for the cancel test of a dropped flow's runs: it starts a run whose first node is a
``for_each`` and one whose first node is a ``parallel``, says their ids once their functions
run, and is killed there (their work items, of those kinds, the only ones the runs have)."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import cronflow_actors as cf

running = threading.Event()


def slow(ctx: Any, *_: Any) -> int:
    running.set()
    threading.Event().wait(60)  # until the process is killed
    return 1


FLOWS = [
    cf.define("fanning").for_each("lines", lambda ctx: [1, 2], slow),
    cf.define("checking").parallel("checks", [slow, slow]),
]


async def main(db: str) -> None:
    async with cf.Runtime(db=db, workflows=FLOWS) as rt:
        runs = [await rt.trigger("fanning"), await rt.trigger("checking")]
        await asyncio.to_thread(running.wait, 30)
        await asyncio.sleep(0.2)  # the second run's functions begun too, recorded
        print(" ".join(runs), flush=True)
        await asyncio.sleep(60)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

"""A process running a loop or a subflow, for the crash test of what ``inspect`` says of a
step run again: ``python -m tests.flow.rerun_worker DB MODE``.

``while``: a ``while_`` of five passes hangs in its third (``hanging`` printed); ``subflow``:
a subflow's second step hangs. Once killed, a runtime on the file runs them again
(``flow(MODE, hang=False)``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import cronflow_actors as cf


def flow(mode: str, *, hang: bool) -> cf.Flow:
    async def cut(ctx: Any, value: Any) -> Any:
        if hang:
            print("hanging", flush=True)
            await asyncio.sleep(3600)
        return value

    async def body(ctx: Any) -> int:
        await asyncio.sleep(0.05)  # (each pass takes a while: the loop's time is theirs)
        return await cut(ctx, ctx.last + 1) if ctx.last == 2 else ctx.last + 1

    async def second(ctx: Any) -> int:
        return int(await cut(ctx, ctx.last + 10))

    if mode == "while":
        looped = cf.define("looped").step("zero", lambda ctx: 0)
        return looped.while_("loop", lambda ctx: ctx.last < 5, body)
    child = cf.define("child").step("one", lambda ctx: 1).step("two", second)
    return cf.define("parent").subflow("sub", child)


async def main(db: str, mode: str) -> None:
    # A short lease, so the next process takes over soon after the kill.
    async with cf.Runtime(
        db=db, workflows=[flow(mode, hang=True)], lease_seconds=0.5, wait_for_lease=True
    ) as rt:
        await rt.trigger("looped" if mode == "while" else "parent", {}, instance_id="r1")
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

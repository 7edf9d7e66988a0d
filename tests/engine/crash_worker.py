"""A process that runs many instances and gets killed: ``python -m tests.engine.crash_worker DB N``.

It prints ``ready`` once all N instances are durable, then keeps working until it is killed.
The same module gives the test the workflow to recover them with.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

import cronflow_actors as cf
from cronflow_actors import net

RUNS: list[tuple[str, str]] = []
"""(instance id, task) of every handler run in this process."""


def step(name: str) -> Any:
    async def handler(ctx: Any) -> dict[str, Any]:
        RUNS.append((ctx.parent.id, name))
        await asyncio.sleep(random.uniform(0.01, 0.25))
        previous = ctx.outputs.get({"t1": "", "t2": "t1", "t3": "t2"}[name])
        total = (previous or {"total": ctx.payload["n"]})["total"]
        return {"total": total * 2 + 1, "by": name}

    return handler


SPEC = (
    net.workflow("crashy")
    .start_condition("start")
    .end_condition("end")
    .task("t1", net.task(step("t1")))
    .task("t2", net.task(step("t2")))
    .task("t3", net.task(step("t3")))
    .connect_condition("start", "t1")
    .connect_task("t1", "t2")
    .connect_task("t2", "t3")
    .connect_task("t3", "end")
    .build()
)


def expected(n: int) -> int:
    total = n
    for _ in range(3):
        total = total * 2 + 1
    return total


async def main(db: str, count: int) -> None:
    # A short lease, so the runtime that recovers after the kill takes over quickly.
    async with cf.Runtime(db=db, workflows=[SPEC], lease_seconds=0.5) as rt:
        await asyncio.gather(*(rt.start_workflow("crashy", {"n": n}) for n in range(count)))
        print("ready", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

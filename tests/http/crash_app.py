"""Workflows for the crash-recovery test of ``cronflow-actors serve`` (loaded as a file APP).

Every step appends "<run id> <step>" to the file named by CRASH_LOG before returning, so the test
can tell which steps ran in which process.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import cronflow_actors as cf


def mark(ctx: Any, step: str) -> None:
    with open(os.environ["CRASH_LOG"], "a") as log:
        log.write(f"{ctx.run.id} {step}\n")


def step(name: str, delay: float) -> Any:
    async def handler(ctx: Any) -> Any:
        await asyncio.sleep(delay)
        mark(ctx, name)
        previous = ctx.last if ctx.last is not None else ctx.payload["n"]
        return previous * 2 + 1

    return handler


chain = (
    cf.define("chain")
    .step("one", step("one", 0.05))
    .step("two", step("two", 0.05))
    .step("three", step("three", 0.05))
    .on_webhook("/webhooks/chain")
)

napper = (
    cf.define("napper")
    .step("before", step("before", 0))
    .sleep("nap", "1s")
    .step("after", step("after", 0))
)

approval = (
    cf.define("approval")
    .step("ask", step("ask", 0))
    .human_in_the_loop("ok", description="approve")
    .step("done", lambda ctx: {"approved": ctx.last["approved"], "asked": ctx.steps["ask"]})
)

workflows = [chain, napper, approval]


def expected(n: int) -> int:
    for _ in range(3):
        n = n * 2 + 1
    return n

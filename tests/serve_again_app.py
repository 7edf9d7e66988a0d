"""Calls a handler makes again within one attempt: a step's fallbacks (the first raises after
``AGAIN_HOLD`` seconds, the second is a compensation), a step's ``retry_on`` (asked after the
step raised, after the hold) and a detached action's retries (each try raises after the hold).
Each call writes a line as it begins (``AGAIN_MARKS``: pid, what, time): for the test of a
process paused past its lease in the middle of one such call, which must make none of the calls
after it once it wakes."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import cronflow_actors as cf


def mark(what: str) -> None:
    with open(os.environ["AGAIN_MARKS"], "a") as marks:
        marks.write(f"{os.getpid()} {what} {time.time()}\n")


async def bad(ctx: Any) -> None:
    raise RuntimeError("the step fails")


async def held_then_failing(ctx: Any) -> None:
    mark("fallback")
    await asyncio.sleep(float(os.environ["AGAIN_HOLD"]))
    raise RuntimeError("the first fallback fails too")


async def compensate(ctx: Any) -> str:
    mark("compensate")
    return "compensated"


async def held_step(ctx: Any) -> None:
    mark("step")
    await asyncio.sleep(float(os.environ["AGAIN_HOLD"]))
    raise RuntimeError("the step fails")


def filtered(error: BaseException) -> bool:
    mark("retry_on")
    return False


async def notify(ctx: Any) -> None:
    mark("notify")
    await asyncio.sleep(float(os.environ["AGAIN_HOLD"]))
    raise RuntimeError("the provider is down")


workflows = [
    cf.define("fallbacks").step("bad", bad).on_error(held_then_failing).on_error(compensate),
    cf.define("filtered").step("held", held_step, retry=cf.Retry(attempts=2, retry_on=filtered)),
    cf.define("retried").action(
        "notify", notify, retry=cf.Retry(attempts=3, backoff="fixed", delay="100ms")
    ),
]

"""A workflow whose step takes long, for the drain and abort test of ``serve`` (an ``async def``
step, or with ``SLOW_BLOCKING`` set a plain ``def`` one on the thread pool)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import cronflow_actors as cf


def _mark(text: str) -> None:
    with open(os.environ["SLOW_MARK"], "a") as mark:
        mark.write(f"{text}\n")


def _held() -> bool:
    """With ``SLOW_GATE`` set, the step ends once that file exists (or its seconds have passed),
    not after a fixed time: for a test that must act while it runs, however slow the machine."""
    return not os.path.exists(os.environ["SLOW_GATE"])


async def slow(ctx: Any) -> str:
    _mark("started")
    seconds = float(os.environ.get("SLOW_SECONDS", "0.5"))
    if "SLOW_GATE" in os.environ:
        deadline = time.monotonic() + seconds
        while _held() and time.monotonic() < deadline:  # noqa: ASYNC110 - a file, not an event
            await asyncio.sleep(0.02)
    else:
        await asyncio.sleep(seconds)
    _mark("finished")
    return "done"


def blocking(ctx: Any) -> str:
    """A plain def: it holds its pool thread, and a drain cannot cut it."""
    _mark("started")
    time.sleep(float(os.environ.get("SLOW_SECONDS", "0.5")))
    _mark("finished")
    return "done"


step = blocking if os.environ.get("SLOW_BLOCKING") else slow
limit = os.environ.get("SLOW_TIMEOUT")  # the step cut then, its run going on by a fallback
flow = cf.define("slow")
if limit is None:
    flow = flow.step("slow", step)
else:
    flow = flow.step("slow", step, timeout=float(limit), on_error=lambda ctx: "fell back")
workflows = [flow.step("after", lambda ctx: ctx.last)]

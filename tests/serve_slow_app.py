"""A workflow whose step takes long, for the drain and abort test of ``serve``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import cronflow_actors as cf


def _mark(text: str) -> None:
    with open(os.environ["SLOW_MARK"], "a") as mark:
        mark.write(f"{text}\n")


async def slow(ctx: Any) -> str:
    _mark("started")
    await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "0.5")))
    _mark("finished")
    return "done"


workflows = [cf.define("slow").step("slow", slow).step("after", lambda ctx: ctx.last)]

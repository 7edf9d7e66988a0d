"""Plain ``def`` steps that queue for the blocking pool's threads, each writing a line when it
starts (``QUEUED_MARKS``: pid, run id, time) and holding its thread until the file
``QUEUED_GATE`` exists (30 s at most): for the test of a process paused past its lease with
calls still queued, which must start none of them once it wakes."""

from __future__ import annotations

import os
import time
from typing import Any

import cronflow_actors as cf


def hold(ctx: Any) -> str:
    with open(os.environ["QUEUED_MARKS"], "a") as marks:
        marks.write(f"{os.getpid()} {ctx.run.id} {time.time()}\n")
    gate, deadline = os.environ["QUEUED_GATE"], time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "held"


workflows = [cf.define("queued").step("hold", hold)]

"""A process running one flow, for the pinning crash test:
``python -m tests.runtime.pinning_worker DB MODE``.

``crash``: the flow as first deployed; starts run ``r1``, prints ``in a`` once its step ``a``
runs, and hangs there until it is killed. ``changed``: the flow edited without a version bump
(step ``b`` renamed ``c``, a step added); starts the runtime, prints the run as ``inspect``
shows it, and stops. ``old``: the flow as first deployed again; prints the run's result once
it ends. Every step that runs prints ``ran <step>``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import cronflow_actors as cf


def step(name: str, hang: bool = False) -> Any:
    async def handler(ctx: Any) -> str:
        print(f"ran {name}", flush=True)
        if hang:
            print("in a", flush=True)
            await asyncio.sleep(3600)
        return f"{name}:{ctx.payload['n']}"

    return handler


def flow(mode: str) -> cf.Flow:
    pinned = cf.define("pinned", version="v1")
    if mode == "changed":
        return pinned.step("a", step("a")).step("audit", step("audit")).step("c", step("c"))
    return pinned.step("a", step("a", hang=mode == "crash")).step("b", step("b"))


async def main(db: str, mode: str) -> None:
    # A short lease, so the next process takes over soon after the kill.
    async with cf.Runtime(
        db=db, workflows=[flow(mode)], lease_seconds=0.5, wait_for_lease=True
    ) as rt:
        if mode == "crash":
            await rt.trigger("pinned", {"n": 1}, instance_id="r1")
            await asyncio.sleep(3600)
        elif mode == "changed":
            await rt.wait_idle()
            info = await rt.inspect("r1")
            print(json.dumps({"status": str(info.status), "blocked": info.blocked}), flush=True)
            page = await rt.list_runs(status="blocked")
            print(json.dumps({"listed": [run.id for run in page]}), flush=True)
        else:
            result = await rt.wait("r1", timeout=10)
            print(json.dumps({"status": str(result.status), "output": result.output}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

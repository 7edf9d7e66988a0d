"""A fresh process that runs a few flows and prints, as JSON, the types of the engine's objects
it found in reference cycles afterwards: ``python -m tests.runtime.garbage_worker DB AUDIT``
(``AUDIT``: ``on`` or ``off``). A process of its own, so that nothing another test left behind
is counted."""

from __future__ import annotations

import asyncio
import gc
import json
import sys

import cronflow_actors as cf

_began = asyncio.Event()


async def _slow(ctx: cf.FlowContext) -> None:
    _began.set()
    await asyncio.Event().wait()  # until its run is canceled: its handler's task is cancelled


def flows() -> list[cf.Flow]:
    return [
        cf.define("three")
        .step("a", lambda ctx: 1)
        .step("b", lambda ctx: ctx.last + 1)
        .step("c", lambda ctx: ctx.last + 1),
        cf.define("approved")
        .step("a", lambda ctx: "A")
        .human_in_the_loop("approve", description="ok?", timeout="1d")
        .step("b", lambda ctx: ctx.last["approved"]),
        cf.define("canceled").step("slow", _slow),
    ]


def engine_objects(garbage: list[object]) -> list[str]:
    return sorted(
        type(o).__qualname__
        for o in garbage
        if type(o).__module__ == "cronflow_actors"
        or type(o).__module__.startswith("cronflow_actors.")
    )


async def main(db: str, audit: bool) -> None:
    async with cf.Runtime(db=db, workflows=flows(), audit=audit) as rt:
        await rt.wait(await rt.trigger("three"))  # warm up: what a first run loads once
        await rt.wait_idle()
        gc.collect()
        gc.disable()  # from here on, objects in cycles stay until the collection below
        runs = [await rt.trigger("three") for _ in range(20)]
        paused = await rt.trigger("approved")
        assert [(await rt.wait(r)).output for r in runs] == [3] * 20
        await rt.wait_idle()
        [token] = [p.token for p in await rt.list_paused() if p.run_id == paused]
        await rt.resume(token, {"approved": True})
        assert (await rt.wait(paused)).output is True
        await rt.wait_idle()
        for _ in range(3):  # a step whose run is canceled while it runs: its handler is stopped
            _began.clear()
            canceled = await rt.trigger("canceled")
            await _began.wait()
            await rt.cancel(canceled)
            assert (await rt.wait(canceled)).status == "canceled"
        await rt.wait_idle()
        assert len(rt.system) == 0  # every instance's actor has stopped
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        print(json.dumps(engine_objects(gc.garbage)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] == "on"))

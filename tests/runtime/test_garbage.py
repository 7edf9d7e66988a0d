"""A run's objects are freed when it is done with them, by reference counting: a transaction, its
dispatcher and its elements, the instance's actor once it has stopped. Nothing of the engine is
left in reference cycles for the cyclic collector, which would otherwise run more often and walk
every run in flight each time (a turn makes thousands of objects a second)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import cronflow_actors as cf


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
        cf.define("failing").step("boom", lambda ctx: 1 / 0),
    ]


@pytest.fixture
def cycles_kept() -> Iterator[list[object]]:
    """Collects nothing automatically; ``gc.collect()`` keeps what it finds in ``gc.garbage``
    (the list yielded) instead of freeing it."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def engine_objects(garbage: list[object]) -> list[str]:
    return sorted(
        type(o).__qualname__ for o in garbage if type(o).__module__.startswith("cronflow_actors.")
    )


@pytest.mark.parametrize("audit", [True, False], ids=["audit", "no-audit"])
async def test_finished_runs_leave_no_engine_objects_in_cycles(
    tmp_path: Path, cycles_kept: list[object], audit: bool
) -> None:
    async with cf.Runtime(db=tmp_path / "g.db", workflows=flows(), audit=audit) as rt:
        await rt.wait(await rt.trigger("three"))  # warm up: what the first run loads stays
        await rt.wait_idle()
        gc.collect()
        cycles_kept.clear()

        runs = [await rt.trigger("three") for _ in range(20)]
        paused = await rt.trigger("approved")
        failing = await rt.trigger("failing")
        assert [(await rt.wait(r)).output for r in runs] == [3] * 20
        await rt.wait_idle()
        [token] = [p.token for p in await rt.list_paused() if p.run_id == paused]
        await rt.resume(token, {"approved": True})
        assert (await rt.wait(paused)).output is True
        assert (await rt.wait(failing)).status == "failed"
        await rt.wait_idle()
        assert len(rt.system) == 0  # every instance's actor has stopped

        gc.collect()
        assert engine_objects(cycles_kept) == []

"""A step a migration or a resume carries over whole (its output kept, nothing of it run) has
a ``Task.carried`` span naming the run it came from, as a carried work item has its
``WorkItem.carried``: the trace, read to answer "did charge run in this run?", said nothing
(devx h40 F8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cronflow_actors as cf


def orders(version: str, fail: bool = False) -> cf.Flow:
    def ship(ctx: Any) -> str:
        if fail:
            raise RuntimeError("no courier")
        return "shipped"

    return (
        cf.define("orders", version=version)
        .step("charge", lambda ctx: "charged")
        .pause("approve")
        .step("ship", ship)
    )


async def test_a_step_carried_whole_by_a_migration_or_a_resume_is_in_the_trace(
    tmp_path: Path,
) -> None:
    async with cf.Runtime(db=tmp_path / "c.db", workflows=[orders("v1", fail=True)]) as rt:
        old = await rt.trigger("orders")
        await rt.wait_idle()
        rt.register(orders("v2", fail=True))
        new = await rt.migrate(old, "v2")
        carried = [s for s in await rt.spans(new) if s.operation == "Task.carried"]
        assert [(s.element, s.attributes) for s in carried] == [("charge", {"from_run": old})]
        await rt.resume((await rt.get_run_pause(new)).token, {"approved": True})
        assert (await rt.wait(new, timeout=5)).status == "failed"
        rt.register(orders("v3"))
        resumed = await rt.replay(new, resume=True)
        assert (await rt.wait(resumed, timeout=5)).status == "completed"
        carried = [s for s in await rt.spans(resumed) if s.operation == "Task.carried"]
        assert [(s.element, s.attributes["from_run"]) for s in carried] == [
            ("charge", new),
            ("approve", new),
        ]
        # the time-travel view reads past them (a span that moves nothing)
        assert await rt.state_at(resumed, 1e12) is not None

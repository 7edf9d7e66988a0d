"""Draining on shutdown: running steps finish and are recorded, no new step starts, and the
next runtime picks up where the drained one stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cronflow_actors as cf


async def test_a_drain_lets_running_steps_finish_and_starts_no_new_ones(tmp_path: Path) -> None:
    db = tmp_path / "drain.db"
    started = asyncio.Event()
    ran: list[str] = []

    def flow() -> cf.Flow:
        async def slow(ctx: Any) -> str:
            started.set()
            await asyncio.sleep(0.2)
            ran.append("slow")
            return "slow done"

        async def next_step(ctx: Any) -> str:
            ran.append("next")
            return f"{ctx.last}, next done"

        return cf.define("drained").step("slow", slow).step("next", next_step)

    runtime = cf.Runtime(db=db, workflows=[flow()])
    await runtime.start()
    run_id = await runtime.trigger("drained")
    await started.wait()
    await runtime.stop(drain=5)
    assert ran == ["slow"]  # finished during the drain; "next" did not start
    journal_steps = [e.step_id for e in await _journal(db, run_id)]
    assert journal_steps == ["slow"]
    async with cf.Runtime(db=db, workflows=[flow()]) as second:
        result = await second.wait(run_id, timeout=5)
        assert (result.status, result.output) == ("completed", "slow done, next done")
    assert ran == ["slow", "next"]


async def _journal(db: Path, run_id: str) -> list[Any]:
    from cronflow_actors.store import SQLiteStore

    async with SQLiteStore(db) as store:
        return await store.load_journal(run_id)

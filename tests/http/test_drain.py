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


async def _journal(db: Path, run_id: str) -> list[Any]:
    from cronflow_actors.store import SQLiteStore

    async with SQLiteStore(db) as store:
        return await store.load_journal(run_id)


async def test_a_drain_begun_starts_no_new_step_while_requests_are_still_in_flight(
    tmp_path: Path,
) -> None:
    # serve begins the drain as SIGTERM arrives and stops the runtime only once its requests
    # in flight end (a client may send its body for --body-timeout): nothing starts meanwhile
    db = tmp_path / "begun.db"
    release = asyncio.Event()
    began = {"slow": asyncio.Event(), "flaky": asyncio.Event()}
    ran: list[str] = []

    async def slow(ctx: Any) -> str:
        ran.append("slow")
        began["slow"].set()
        await release.wait()
        return "slow done"

    async def flaky(ctx: Any) -> None:
        ran.append("flaky")
        began["flaky"].set()
        raise RuntimeError("again")

    def flow() -> cf.Flow:
        return cf.define("begun").step("slow", slow).step("next", lambda ctx: ran.append("next"))

    retried = cf.define("retried").step("flaky", flaky, retry=cf.Retry(attempts=3, delay="0.1s"))
    runtime = cf.Runtime(db=db, workflows=[flow(), retried])
    await runtime.start()
    run_id = await runtime.trigger("begun")
    await runtime.trigger("retried")
    await asyncio.gather(*(event.wait() for event in began.values()))

    runtime.begin_drain()
    release.set()
    await asyncio.sleep(0.5)  # the requests in flight: time for a next step, and retries
    assert sorted(ran) == ["flaky", "slow"]
    assert (await runtime.inspect(run_id)).steps[0].status == "completed"  # recorded
    await runtime.stop(drain=5)

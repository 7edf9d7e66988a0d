"""Rate limits and named queues: runs over a limit wait in order in the durable queue (none is
dropped) and start when the limit allows, on the next runtime too."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.kernel import ManualClock


def counted(name: str, log: list[Any], clock: ManualClock, **options: Any) -> cf.Flow:
    def work(ctx: Any) -> Any:
        log.append((ctx.payload, clock.now()))
        return ctx.payload

    return cf.define(name, **options).step("work", work)


def holding(name: str, **options: Any) -> cf.Flow:
    """Each run holds its place (paused for a human) until resumed."""
    return (
        cf.define(name, **options)
        .human_in_the_loop("hold", description="hold the place")
        .step("done", lambda ctx: ctx.payload)
    )


async def holders(rt: cf.Runtime) -> list[Any]:
    """The payloads of the runs that started and hold their place, sorted."""
    return sorted([(await rt.inspect(p.run_id)).payload for p in await rt.list_paused()])


async def release(rt: cf.Runtime, payload: Any) -> None:
    for paused in await rt.list_paused():
        if (await rt.inspect(paused.run_id)).payload == payload:
            await rt.resume(paused.token)
            await rt.wait(paused.run_id)
            await rt.wait_idle()
            return
    raise AssertionError(f"no run with payload {payload!r} holds a place")


async def test_runs_over_a_rate_limit_wait_in_order_and_start_as_the_window_allows(
    tmp_path: Path, clock: ManualClock
) -> None:
    log: list[Any] = []
    flow = counted("limited", log, clock, rate_limit=cf.RateLimit(count=2, per="1m"))
    start = clock.now()
    async with cf.Runtime(db=tmp_path / "rate.db", clock=clock, workflows=[flow]) as rt:
        runs = [await rt.trigger("limited", n) for n in range(5)]
        await rt.wait_idle()
        # (their steps run on the thread pool: which logs first is the pool's choice, below too)
        assert sorted(log) == [(0, start), (1, start)]
        waiting = await rt.inspect(runs[4])
        assert (waiting.status, waiting.payload, waiting.steps) == ("waiting", 4, [])
        clock.advance(59)
        await rt.wait_idle()
        assert len(log) == 2
        clock.advance(1)  # the window of the first two starts has passed
        await rt.wait_idle()
        # both start now; their steps (plain functions) run on the thread pool, so which
        # one logs first is the pool's choice (the order of starts: the FIFO tests)
        assert sorted(log[2:]) == [(2, start + 60), (3, start + 60)]
        clock.advance(60)
        await rt.wait_idle()
        assert log[4:] == [(4, start + 120)]
        results = [await rt.wait(run) for run in runs]
        assert [r.output for r in results] == [0, 1, 2, 3, 4]  # none was dropped


async def test_a_rate_limit_counts_each_start_when_it_was_made(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A drain counted each of its starts at the moment it began: when starting took time,
    the window reopened early, and a quicker drain after it let one more run in within it
    (crash h44 F1: 28 starts in 2 s under a limit of 20). Here each write takes a second in
    the first drain, none after it."""
    flow = cf.define("limited", rate_limit=cf.RateLimit(count=2, per="1m")).step("s", str)
    async with cf.Runtime(db=tmp_path / "slow.db", clock=clock, workflows=[flow]) as rt:
        written, loaded = rt.store.commit, clock.now() + 30

        def slowly(mutation: Any) -> Any:
            if loaded < clock.now() < loaded + 60:
                clock.advance(1)
            return written(mutation)

        rt.store.commit = slowly  # type: ignore[method-assign]
        runs = [await rt.trigger("limited", n) for n in range(6)]
        for _ in range(200):  # the timers fire as they are due, a second at a time
            await rt.wait_idle()
            clock.advance(1)
        await rt.wait_idle()
        for run in runs:
            assert (await rt.wait(run)).status == "completed"
        starts = sorted([(await rt.inspect(run)).created_at for run in runs])
        assert len(starts) == 6
        most = max(sum(1 for t in starts if first <= t < first + 60) for first in starts)
        assert most == 2, starts


async def test_a_rate_limit_counts_the_starts_before_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "rate-restart.db"
    log: list[Any] = []
    start = clock.now()

    def flow() -> cf.Flow:
        return counted("limited", log, clock, rate_limit={"count": 2, "per": "1m"})

    async with cf.Runtime(db=db, clock=clock, workflows=[flow()]) as first:
        runs = [await first.trigger("limited", n) for n in range(4)]
        await first.wait_idle()
        assert sorted(payload for payload, _ in log) == [0, 1]  # (the pool's order)
    clock.advance(30)
    async with cf.Runtime(db=db, clock=clock, workflows=[flow()]) as second:
        await second.wait_idle()
        assert sorted(payload for payload, _ in log) == [0, 1]  # the window still holds two
        clock.advance(29)
        await second.wait_idle()
        assert len(log) == 2
        clock.advance(1)
        await second.wait_idle()
        assert sorted(log[2:]) == [(2, start + 60), (3, start + 60)]  # (the pool's order)
        assert [(await second.wait(run)).output for run in runs] == [0, 1, 2, 3]
    assert sorted(payload for payload, _ in log) == [0, 1, 2, 3]  # each ran once


async def test_flows_naming_a_queue_share_its_limit_and_its_order(
    tmp_path: Path, clock: ManualClock
) -> None:
    flows = [holding("welcome", queue="emails"), holding("digest", queue="emails")]
    async with cf.Runtime(
        db=tmp_path / "shared.db", clock=clock, workflows=flows, queues={"emails": 2}
    ) as rt:
        for flow, payload in [("welcome", "w1"), ("digest", "d1"), ("welcome", "w2")]:
            await rt.trigger(flow, payload)
        await rt.trigger("digest", "d2")
        await rt.wait_idle()
        assert await holders(rt) == ["d1", "w1"]
        await release(rt, "d1")
        assert await holders(rt) == ["w1", "w2"]  # the first in line, of either flow
        await release(rt, "w1")
        assert await holders(rt) == ["d2", "w2"]


async def test_queued_runs_of_a_named_queue_survive_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "named-restart.db"

    def flows() -> list[cf.Flow]:
        return [holding("welcome", queue="emails"), holding("digest", queue="emails")]

    async with cf.Runtime(db=db, clock=clock, workflows=flows(), queues={"emails": 1}) as first:
        await first.trigger("welcome", "w1")
        queued = [await first.trigger("digest", "d1"), await first.trigger("welcome", "w2")]
        await first.wait_idle()
        assert await holders(first) == ["w1"]
    async with cf.Runtime(db=db, clock=clock, workflows=flows(), queues={"emails": 1}) as second:
        await second.wait_idle()
        assert await holders(second) == ["w1"]  # still at its limit: nothing more started
        assert [(await second.inspect(run)).status for run in queued] == ["waiting", "waiting"]
        await release(second, "w1")
        assert await holders(second) == ["d1"]
        await release(second, "d1")
        assert await holders(second) == ["w2"]
        await release(second, "w2")
        assert len(await second.list_runs(status="completed")) == 3


async def test_a_flow_at_its_rate_limit_does_not_stall_a_queue_it_shares(
    tmp_path: Path, clock: ManualClock
) -> None:
    log: list[Any] = []
    flows = [
        counted("slow", log, clock, queue="emails", rate_limit=cf.RateLimit(count=1, per=60)),
        counted("fast", log, clock, queue="emails"),
    ]
    async with cf.Runtime(
        db=tmp_path / "pass.db", clock=clock, workflows=flows, queues={"emails": 5}
    ) as rt:
        slow = [await rt.trigger("slow", name) for name in ("s1", "s2")]
        fast = await rt.trigger("fast", "f1")
        await rt.wait_idle()
        assert [payload for payload, _ in log] == ["s1", "f1"]
        assert (await rt.inspect(slow[1])).status == "waiting"
        clock.advance(60)
        await rt.wait_idle()
        assert [payload for payload, _ in log] == ["s1", "f1", "s2"]
        assert (await rt.wait(fast)).output == "f1"


async def test_a_queue_the_runtime_does_not_configure_has_no_limit_and_says_so(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cronflow_actors.runtime.queues"):
        async with cf.Runtime(
            db=tmp_path / "open.db", clock=clock, workflows=[holding("bulk", queue="bulk")]
        ) as rt:
            for n in range(3):
                await rt.trigger("bulk", n)
            await rt.wait_idle()
            assert await holders(rt) == [0, 1, 2]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "queue 'bulk', which this runtime does not configure" in warning
    assert "Runtime(queues={'bulk': N})" in warning


@pytest.mark.parametrize(
    "queues", ["emails", {"emails": 0}, {"emails": True}, {"": 3}, {"emails": 1.5}]
)
def test_queue_limits_must_be_whole_numbers(queues: Any) -> None:
    with pytest.raises(ConfigurationError, match="queues"):
        cf.Runtime(queues=queues)


async def test_a_queued_run_that_starts_while_it_is_looked_up_is_found(tmp_path: Path) -> None:
    """``inspect`` reads a run's snapshot, then its queue row: a run that starts between the
    two reads (another process's drain, on a shared store) left the queue in the transaction
    that stored its snapshot, and is read again rather than reported as no run."""
    flow = holding("one", concurrency=1)
    async with cf.Runtime(db=tmp_path / "between.db", workflows=[flow]) as rt:
        first = await rt.trigger("one", "first")
        await rt.wait_idle()
        queued = await rt.trigger("one", "queued")
        assert (await rt.inspect(queued)).steps == []  # waiting in the queue
        store_read, between = rt.store.queued_run, [True]

        async def started_meanwhile(run_id: str) -> Any:
            if run_id == queued and between and between.pop():  # the first ends, the queued starts
                await release(rt, "first")
                await rt.queues.wait_started(run_id)  # started by now, or once it has
            return await store_read(run_id)

        rt.store.queued_run = started_meanwhile  # type: ignore[method-assign]
        info = await rt.inspect(queued)
        # started, and waiting at its human step
        assert (info.id, info.payload, info.status) == (queued, "queued", "waiting")
        assert [step.id for step in info.steps] == ["hold"]
        assert (await rt.inspect(first)).status == "completed"

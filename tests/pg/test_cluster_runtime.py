"""Two runtimes in one test process on one PostgreSQL database, through the public API: work
for an instance the other runtime holds is carried out there and answered back (its result,
or its error as the same exception); a waiting run is anyone's to claim."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors.errors import NotFoundError
from cronflow_actors.runtime.cluster import ClusterLease
from cronflow_actors.runtime.migration_plans import PlanBook
from tests.runtime.test_recovery_order import CutStep

gate: dict[str, asyncio.Event] = {}
"""The event each test's blocked step waits for (one per test: an event belongs to a loop)."""


async def blocked(ctx: object) -> str:
    await gate["released"].wait()
    return "released"


def flows() -> list[cf.Flow]:
    return [
        cf.define("blocker").step("wait", blocked).step("after", lambda ctx: ctx.last),
        cf.define("hold").human_in_the_loop("approve").step("done", lambda ctx: ctx.last),
    ]


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[cf.Runtime, cf.Runtime]]:
    gate["released"] = asyncio.Event()
    first = cf.Runtime(db=postgres_url, workflows=flows(), lease_seconds=2)
    second = cf.Runtime(db=postgres_url, workflows=flows(), lease_seconds=2)
    async with first, second:
        yield first, second
        gate["released"].set()


async def test_work_for_an_instance_held_elsewhere_is_carried_out_there(
    pair: tuple[cf.Runtime, cf.Runtime],
) -> None:
    first, second = pair
    assert isinstance(first.lease, ClusterLease)
    run_id = await first.trigger("blocker")
    await asyncio.sleep(0.2)  # its step runs in the first runtime, which holds the run
    assert run_id in first.instances
    # the second runtime cannot claim it: the call goes to the first one, and comes back
    await second.cancel(run_id)
    result = await first.wait(run_id, timeout=10)
    assert str(result.status) == "canceled"
    assert run_id not in second.instances


async def test_runs_held_elsewhere_are_waited_for_by_one_read_a_poll_for_all(
    pair: tuple[cf.Runtime, cf.Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run waited for in another process was read in full twice a second, one by one:
    400 long polls took PostgreSQL from 16 to 1,400 transactions a second (hostile h34 L1).
    One query a poll asks which of them are still going; only an ended one is read."""
    first, second = pair
    runs = [await first.trigger("blocker") for _ in range(3)]
    await asyncio.sleep(0.2)  # each step runs in the first runtime, which holds the runs
    store = second.store
    reads: list[str] = []
    asked: list[int] = []
    load, among = store.load_snapshot, store.unfinished_among  # type: ignore[attr-defined]

    async def counted_load(instance_id: str) -> object:
        reads.append(instance_id)
        return await load(instance_id)

    async def counted_among(ids: list[str]) -> set[str]:
        asked.append(len(ids))
        return await among(ids)  # type: ignore[no-any-return]

    monkeypatch.setattr(store, "load_snapshot", counted_load)
    monkeypatch.setattr(store, "unfinished_among", counted_among)
    waits = [asyncio.ensure_future(second.wait(run_id, timeout=15)) for run_id in runs]
    await asyncio.sleep(0.1)  # each wait reads its run once, as it begins
    reads.clear()
    await asyncio.sleep(1.6)  # three polls at least, the runs going on
    assert asked
    assert max(asked) == 3
    assert reads == []
    gate["released"].set()
    assert [str(r.status) for r in await asyncio.gather(*waits)] == ["completed"] * 3
    assert await among(runs) == set()  # (ended: none of them is unfinished)
    assert await among(["a\x00b", "nobody"]) == set()


async def test_a_run_that_ended_with_an_action_out_is_seen_ended_by_another_process(
    postgres_url: str,
) -> None:
    """A run that ended while its detached action was still out is over, though not yet
    terminal: a wait in another process never heard it end (review h34 F1)."""
    released = asyncio.Event()

    async def out(ctx: cf.FlowContext) -> None:
        await released.wait()

    def flow() -> cf.Flow:
        return cf.define("acting").action("mail", out).step("s", lambda ctx: "done")

    first = cf.Runtime(db=postgres_url, workflows=[flow()], lease_seconds=5)
    second = cf.Runtime(db=postgres_url, workflows=[flow()], lease_seconds=5)
    async with first, second:
        run_id = await first.trigger("acting")
        try:
            assert (await second.wait(run_id, timeout=5)).output == "done"
        finally:
            released.set()


async def test_a_cancel_that_wakes_a_cut_run_elsewhere_ends_it_before_its_step_runs_again(
    postgres_url: str,
) -> None:
    """A process that took a run over for a cancel ran the cut step again first, then
    canceled the run: a plain ``def`` step ran to its end after the caller heard "canceled"
    (chaos h34 F1). The cancel comes first; the step, canceled, is not run again."""
    slow = CutStep()

    def flow() -> cf.Flow:
        return cf.define("cut").step("slow", slow)

    first = cf.Runtime(db=postgres_url, workflows=[flow()], lease_seconds=5)
    second = cf.Runtime(db=postgres_url, workflows=[flow()], lease_seconds=5)
    async with second:
        async with first:
            run_id = await first.trigger("cut")
            await slow.running.wait()  # stopped while the step runs: its end is not recorded
        await second.cancel(run_id)  # the second process takes the run over for it
        assert str((await second.wait(run_id, timeout=10)).status) == "canceled"
        await second.wait_idle()
    assert slow.begun == [0]


async def test_an_error_raised_where_the_instance_is_held_reaches_the_caller(
    pair: tuple[cf.Runtime, cf.Runtime],
) -> None:
    first, second = pair
    run_id = await first.trigger("blocker")
    await asyncio.sleep(0.2)
    with pytest.raises(NotFoundError, match="wi999") as raised:
        await second.complete_work_item(f"{run_id}.wi999", {})
    assert type(raised.value) is NotFoundError
    gate["released"].set()
    assert (await second.wait(run_id, timeout=10)).output == "released"


async def test_a_waiting_run_is_claimed_by_the_runtime_that_has_work_for_it(
    pair: tuple[cf.Runtime, cf.Runtime],
) -> None:
    first, second = pair
    run_id = await first.trigger("hold")
    for _ in range(100):
        paused = await second.list_paused()
        if any(p.run_id == run_id for p in paused):
            break
        await asyncio.sleep(0.05)
    [token] = [p.token for p in paused if p.run_id == run_id]
    await second.resume(token, {"ok": 1})
    result = await first.wait(run_id, timeout=10)
    assert (str(result.status), result.output["payload"]) == ("completed", {"ok": 1})


async def test_runs_another_process_queued_start_here_once_it_has_stopped(
    postgres_url: str,
) -> None:
    # one run at a time: the first process starts one and queues two, then stops; the runs it
    # queued are rows in the shared store, which the other process takes up (in order), and a
    # run started there meanwhile waits behind them instead of jumping the queue
    def gated() -> cf.Flow:
        return cf.define("gated", concurrency=1).wait_for_event("go", "go").step("done", noop)

    first = cf.Runtime(db=postgres_url, workflows=[gated()], lease_seconds=1)
    second = cf.Runtime(db=postgres_url, workflows=[gated()], lease_seconds=1)
    async with second:
        async with first:
            runs = [await first.trigger("gated", n) for n in range(3)]
            assert [await started(first, r) for r in runs] == [True, False, False]
        late = await second.trigger("gated", 3)
        assert not await started(second, late)
        for run_id in [*runs, late]:
            async with asyncio.timeout(15):
                while True:  # it starts once the one before it ends: then it waits for "go"
                    await second.publish_event("go")
                    if str((await second.inspect(run_id)).status) == "completed":
                        break
                    await asyncio.sleep(0.1)
        order = [(await second.inspect(r)).finished_at for r in [*runs, late]]
        assert order == sorted(order)


async def test_a_queued_run_another_process_cancels_is_seen_ending_at_once(
    postgres_url: str,
) -> None:
    """A wait for a queued run heard only its own process's queue: canceled by another
    process, it was seen ending as the long poll's time ran out (hostile h35 F2)."""

    def gated() -> cf.Flow:
        return cf.define("gated", concurrency=1).wait_for_event("go", "go").step("done", noop)

    first = cf.Runtime(db=postgres_url, workflows=[gated()], lease_seconds=2)
    second = cf.Runtime(db=postgres_url, workflows=[gated()], lease_seconds=2)
    async with first, second:
        holder = await first.trigger("gated")
        queued = await first.trigger("gated")
        assert not await started(first, queued)
        waited = asyncio.ensure_future(second.wait(queued, timeout=20))
        await asyncio.sleep(0.5)  # waiting on it, queued
        await first.cancel(queued)
        async with asyncio.timeout(3):  # (it waited its whole 20 s)
            assert str((await waited).status) == "canceled"
        await first.cancel(holder)


def noop(ctx: object) -> str:
    return "done"


async def started(rt: cf.Runtime, run_id: str) -> bool:
    """Whether the run has started (a queued one has no steps yet)."""
    return bool((await rt.inspect(run_id)).steps)


async def test_a_step_cut_in_one_process_is_run_again_and_counted_where_it_is_taken(
    postgres_url: str,
) -> None:
    """A process stopped while a step ran: another takes the run over, records the step as run
    again (its redispatches, before it runs) and runs it there, as a restart does on SQLite."""
    running, go = asyncio.Event(), asyncio.Event()
    seen: list[tuple[int, int]] = []

    async def slow(ctx: cf.FlowContext) -> str:
        seen.append((ctx.attempt, ctx.redispatches))
        running.set()
        await go.wait()
        return "done"

    def flow() -> cf.Flow:
        return cf.define("slowly").step("slow", slow)

    async with cf.Runtime(db=postgres_url, workflows=[flow()], lease_seconds=1) as taker:
        async with cf.Runtime(db=postgres_url, workflows=[flow()], lease_seconds=1) as first:
            run_id = await first.trigger("slowly")
            await running.wait()
        running.clear()
        await asyncio.wait_for(running.wait(), 30)  # taken over: the step starts again there
        go.set()
        assert (await taker.wait(run_id, timeout=10)).output == "done"
        [step] = (await taker.inspect(run_id)).steps
    assert seen == [(1, 0), (1, 1)]
    assert (step.attempts, step.redispatches) == (1, 1)


def paying(version: str) -> cf.Flow:
    flow = cf.define("paying", version=version)
    if version == "v2":
        flow = flow.step("audit", lambda ctx: "audited")
    return flow.wait_for_event("paid", "paid", timeout="1h").step("ship", lambda ctx: ctx.last)


async def test_an_event_kept_by_a_process_without_the_runs_version_reaches_one_with_it(
    postgres_url: str,
) -> None:
    """A rolling deploy: an event published through a process that lacks a waiting run's
    version is kept for the run, and that process became the run's owner, which the process
    that can run it never claimed from a live one: the event was not heard, nor its timers
    fired, until the old process stopped (newcomer h26 F1). The keeper lets it go, and the
    process with its version takes it on and delivers it."""
    old = cf.Runtime(db=postgres_url, workflows=[paying("v1")], lease_seconds=2)
    new = cf.Runtime(db=postgres_url, workflows=[paying("v1"), paying("v2")], lease_seconds=2)
    async with old, new:
        run_id = await new.trigger("paying")  # on v2, which the old process lacks
        await new.wait_idle()
        published = await old.publish_event("paid", {"amount": 3})
        assert published.held == [run_id]
        result = await new.wait(run_id, timeout=15)
        assert (result.status, result.output) == ("completed", {"amount": 3})


def approving(version: str) -> cf.Flow:
    flow = cf.define("approving", version=version)
    if version == "v2":
        flow = flow.step("audit", lambda ctx: "audited")
    return flow.human_in_the_loop("ok", description="approve").step("done", lambda ctx: 1)


async def test_a_call_for_a_run_of_a_version_another_process_runs_says_so(
    postgres_url: str,
) -> None:
    """A rolling deploy: a resume of a new version's run sent to a process still on the old one
    was refused with advice to migrate the run to the old version, dropping its new step (the
    newcomer's h26 F4). It says another process sharing the database may register it, and
    nothing changes; the process that does takes the call."""
    old = cf.Runtime(db=postgres_url, workflows=[approving("v1")], lease_seconds=2)
    new = cf.Runtime(db=postgres_url, workflows=[approving("v1"), approving("v2")], lease_seconds=2)
    async with old, new:
        run_id = await new.trigger("approving")
        await new.wait_idle()
        [pause] = [p for p in await new.list_paused() if p.run_id == run_id]
        with pytest.raises(cf.errors.InstanceBlockedError) as refused:
            await old.resume(pause.token, {"approved": True})
        said = str(refused.value)
        assert "another process sharing this database may register it" in said
        assert "--to v1" not in said
        await new.resume(pause.token, {"approved": True})
        assert (await new.wait(run_id, timeout=10)).status == "completed"


def gated(version: str) -> cf.Flow:
    def amount(ctx: Any) -> bool:  # v1 needs an amount, v2 made it optional
        return bool(ctx.payload["amount"] if version == "v1" else ctx.payload.get("amount"))

    # (each version's if_ its own: one a run decided is not asked again in a migration)
    flow = cf.define("gated", version=version).if_(f"big_{version}", amount)
    flow = flow.step("check", str).end_if()
    return flow.pause("hold")


async def test_a_pending_migration_is_given_up_through_any_process_never_while_under_way(
    postgres_url: str,
) -> None:
    """A migration whose new run's start raised could be given up only through the process that
    asked for it while that process lived ("process X carries it out", though nothing did:
    chaos h30 M1): it is pending, carried out by none, and a cancel through any process gives
    it up once. One under way in a live process is still refused elsewhere (given up there and
    started here, the run would run twice: the reviewer's h26 M1); asked again, the asker takes
    it on, and a failure sets it down again."""
    flows = [gated("v1"), gated("v2")]
    first = cf.Runtime(db=postgres_url, workflows=flows, lease_seconds=2)
    second = cf.Runtime(db=postgres_url, workflows=flows, lease_seconds=2)
    async with first, second:
        run_id = await first.trigger("gated", {"note": "no amount"})  # on v2, the newest
        await first.wait_idle()
        with pytest.raises(cf.errors.MigrationError, match="raised KeyError"):
            await first.migrate(run_id, "v1")
        book = PlanBook(first.store, first.clock)
        pending = await book.get(run_id)
        assert isinstance(first.lease, ClusterLease)
        assert pending is not None
        assert (pending.owner, pending.stopped, pending.turn) == (first.lease.owner, True, 1)
        under_way = msgspec.structs.replace(pending, stopped=False)
        await book.save(under_way)  # as while first carries it out
        busy = "carries it out at this moment"
        with pytest.raises(cf.errors.MigrationError, match=busy) as refused:
            await second.cancel(run_id)
        # who, as an operator finds it: the id alone is in no URL (chaos h31 F2)
        named = f"process {first.lease.owner} (pid {os.getpid()} on {socket.gethostname()})"
        assert named in str(refused.value)
        # killed, it is taken for live until its lease ends: when, said (chaos h32 F4)
        said = str(refused.value)
        assert re.search(r"if that process has stopped, its lease ends within [12] s", said)
        # and not "ask that process": a cancel there waits for the migration, then finds it
        # done (chaos h33 F3)
        assert "ask that process" not in said
        await book.save(pending)
        with pytest.raises(cf.errors.MigrationError, match="raised KeyError"):
            await first.migrate(run_id, "v1")  # asked again: taken on, and set down again
        again = await book.get(run_id)
        assert again is not None
        assert (again.owner, again.stopped, again.turn) == (first.lease.owner, True, 2)
        # claimed by first at this moment (giving it up there, say): refused here, naming first
        # (it said "another process sharing the database": chaos h33 F1)
        assert await book.claim(again, first.lease.owner)
        with pytest.raises(cf.errors.MigrationError, match="gives it up at this moment") as refused:
            await second.cancel(run_id)
        assert f"{named} carries it on or gives it up at this moment" in str(refused.value)
        await book.unclaim(again)
        await second.cancel(run_id)  # first lives on: given up here
        assert await book.get(run_id) is None
        for runtime in (first, second):
            with pytest.raises(cf.errors.InvalidStateTransitionError):
                await runtime.cancel(run_id)
        assert (await second.wait(run_id, timeout=5)).status == "canceled"
        replayed = await second.replay(run_id, payload={"amount": 1})
        for runtime in (first, second):
            await runtime.wait_idle()
        assert (await second.inspect(replayed)).status == "waiting"  # at its pause, on v2


async def test_rows_of_processes_long_dead_go_as_a_process_joins(postgres_url: str) -> None:
    """A process killed (not stopped) left its row for good, one per crash (pg h40 F3): rows
    whose lease expired over an hour ago go as a process joins; recent ones stay listed."""
    async with cf.Runtime(db=postgres_url, workflows=flows()):
        pass  # (the schema made, and a clean stop: no row of its own left)
    connection = await asyncpg.connect(postgres_url)
    try:
        now = "extract(epoch from clock_timestamp())"
        for owner, expired_ago in (("long-gone", 7200), ("just-gone", 60)):
            await connection.execute(
                "INSERT INTO processes (owner, host, pid, started_at, renewed_at, expires_at) "
                f"VALUES ($1, 'h', 1, {now} - $2 - 10, {now} - $2 - 5, {now} - $2)",
                owner,
                float(expired_ago),
            )
        async with cf.Runtime(db=postgres_url, workflows=flows()) as rt:
            listed = {owner for owner, *_ in await rt.store.processes()}  # type: ignore[attr-defined]
            assert "just-gone" in listed
            assert "long-gone" not in listed
            assert len(listed) == 2  # and its own
    finally:
        await connection.close()

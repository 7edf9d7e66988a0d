"""Waiting costs nothing: runs paused for a human, sleeping, waiting for an event or queued under
a concurrency limit are not in memory; each is woken by what it waits for (a resume, its timer,
the event, a freed slot), also on the next runtime after a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pykka
import pytest

import cronflow_actors as cf
from cronflow_actors.kernel import ManualClock


def flows() -> list[cf.Flow]:
    return [
        cf.define("paused")
        .step("a", lambda ctx: "A")
        .human_in_the_loop("approve", description="ok?", timeout="1d")
        .step("b", lambda ctx: ctx.last["approved"]),
        cf.define("sleeping").sleep("nap", "10m").step("b", lambda ctx: "woke"),
        cf.define("event")
        .wait_for_event(
            "paid", "payment", filter=lambda event, ctx: event["order"] == ctx.payload["order"]
        )
        .step("b", lambda ctx: ctx.last["amount"]),
        cf.define("limited", concurrency=1)
        .human_in_the_loop("hold", description="first in line")
        .step("b", lambda ctx: ctx.payload),
    ]


async def settle(rt: cf.Runtime) -> None:
    await rt.wait_idle()


async def test_waiting_runs_leave_memory_and_are_woken_by_what_they_wait_for(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with cf.Runtime(db=tmp_path / "p.db", clock=clock, workflows=flows()) as rt:
        paused = await rt.trigger("paused")
        sleeping = await rt.trigger("sleeping")
        waiting = await rt.trigger("event", {"order": 7})
        other = await rt.trigger("event", {"order": 8})
        first = await rt.trigger("limited", "first")
        queued = await rt.trigger("limited", "second")
        await settle(rt)
        assert len(rt.instances) == 0  # every run waits, none is in memory
        assert len(rt.system) == 0
        for run_id in (paused, sleeping, waiting, other, first, queued):
            assert (await rt.inspect(run_id)).status == "waiting"
        assert len(await rt.store.list_runs()) == 5  # the queued run exists only in the queue
        assert len(await rt.list_runs()) == 6  # which listings show too

        # A resume wakes the paused run (and only it).
        [token] = [p.token for p in await rt.list_paused() if p.run_id == paused]
        await rt.resume(token, {"approved": True})
        assert (await rt.wait(paused)).output is True
        # Its timer wakes the sleeping one.
        clock.advance(600)
        assert (await rt.wait(sleeping)).output == "woke"
        # The event wakes the run whose filter accepts it; the other one goes on waiting.
        await rt.publish_event("payment", {"order": 7, "amount": 12})
        assert (await rt.wait(waiting)).output == 12
        await settle(rt)
        assert (await rt.inspect(other)).status == "waiting"
        # A freed slot wakes the queued run.
        [hold] = [p.token for p in await rt.list_paused() if p.run_id == first]
        await rt.resume(hold)
        assert (await rt.wait(first)).output == "first"
        await settle(rt)
        assert (await rt.inspect(queued)).steps[0].status == "waiting"  # now it holds the slot
        await settle(rt)
        assert len(rt.instances) == 0


async def test_waiting_runs_are_woken_on_the_next_runtime(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "restart.db"
    async with cf.Runtime(db=db, clock=clock, workflows=flows()) as first:
        paused = await first.trigger("paused")
        sleeping = await first.trigger("sleeping")
        waiting = await first.trigger("event", {"order": 7})
        holder = await first.trigger("limited", "first")
        queued = await first.trigger("limited", "second")
        await settle(first)
        [token] = [p.token for p in await first.list_paused() if p.run_id == paused]
        [hold] = [p.token for p in await first.list_paused() if p.run_id == holder]
    clock.advance(300)
    async with cf.Runtime(db=db, clock=clock, workflows=flows()) as second:
        assert second.recovered == 0  # nothing had work to run: nothing was loaded
        assert len(second.instances) == 0
        await second.resume(token, {"approved": False})
        assert (await second.wait(paused)).output is False
        clock.advance(300)  # ten minutes after the sleep began, across the restart
        assert (await second.wait(sleeping)).output == "woke"
        await second.publish_event("payment", {"order": 7, "amount": 3})
        assert (await second.wait(waiting)).output == 3
        await second.resume(hold)
        assert (await second.wait(holder)).output == "first"
        await settle(second)
        [next_hold] = [p.token for p in await second.list_paused() if p.run_id == queued]
        await second.resume(next_hold)
        assert (await second.wait(queued)).output == "second"


async def test_a_thousand_paused_runs_hold_no_actor_and_one_page_of_timers(
    tmp_path: Path, clock: ManualClock
) -> None:
    # A small window of timers in memory, so that most wait in the store.
    runtime = cf.Runtime(db=tmp_path / "many.db", clock=clock, workflows=flows(), timer_window=100)
    async with runtime as rt:
        runs = [await rt.trigger("paused") for _ in range(1200)]
        await settle(rt)
        assert len(rt.instances) == 0
        # Each pause has a one-day timeout timer; memory holds a window of them, not all.
        assert 0 < len(rt.timers) <= 200
        first_page = await rt.list_paused(limit=500)
        assert len(first_page) == 500
        assert first_page.next_cursor is not None
        rest = await rt.list_paused(limit=1000, cursor=first_page.next_cursor)
        assert {p.run_id for p in first_page} | {p.run_id for p in rest} == set(runs)
        assert rest.next_cursor is None
        # The timeouts all fire a day later, from the store, a page at a time.
        clock.advance(86400)
        results = [await rt.wait(run_id, timeout=30) for run_id in runs]
        assert {r.output for r in results} == {False}
        assert await rt.list_paused() == []


async def test_runs_are_listed_a_page_at_a_time(tmp_path: Path, clock: ManualClock) -> None:
    async with cf.Runtime(db=tmp_path / "list.db", clock=clock, workflows=flows()) as rt:
        ids = []
        for _ in range(7):
            ids.append(await rt.trigger("sleeping"))
            clock.advance(1)
        await settle(rt)
        seen: list[Any] = []
        page = await rt.list_runs(workflow="sleeping", limit=3)
        while True:
            seen.extend(run.id for run in page)
            if page.next_cursor is None:
                break
            page = await rt.list_runs(workflow="sleeping", limit=3, cursor=page.next_cursor)
        assert seen == list(reversed(ids))  # newest first, each once
        assert [r.id for r in await rt.list_runs(status="waiting", limit=2)] == ids[:-3:-1]
        assert await rt.list_runs(status="completed") == []
        # a last page exactly full says it is the last: its cursor led to an empty page that
        # read "No runs match." in the console (console h43 F12)
        first = await rt.list_runs(workflow="sleeping", limit=4)
        last = await rt.list_runs(workflow="sleeping", limit=3, cursor=first.next_cursor)
        assert ([r.id for r in last], last.next_cursor) == (ids[2::-1], None)
        assert (await rt.list_runs(workflow="sleeping", limit=7)).next_cursor is None


async def test_an_idle_instance_leaves_memory_though_a_read_of_it_waits(tmp_path: Path) -> None:
    """Its actor looked idle while a read of its snapshot waited to be answered, stayed, and no
    later message asked again: a run canceled twice while its pause timed out stayed in memory
    for good (a flaky ``test_ownership_property``). It leaves; the read goes to the store."""
    from cronflow_actors.messages.engine import ReadCommitted

    flow = cf.define("held").human_in_the_loop("approve", description="ok?")
    async with cf.Runtime(db=tmp_path / "idle.db", workflows=[flow], passivate=False) as rt:
        run_id = await rt.trigger("held")
        await rt.wait_idle()
        ref = rt.instances._refs[run_id]  # in memory: passivation is off
        actor = ref._actor_weakref()
        rt._services.passivate = True  # it could leave now, at its next idle moment
        read = ref.ask(ReadCommitted(), block=False)  # waiting to be answered, as it decides
        actor.on_idle()
        assert not ref.is_alive()
        assert len(rt.instances) == 0
        with pytest.raises(pykka.ActorDeadError):  # its asker reads the store instead
            await read
        assert (await rt.instances.read(run_id)).instance_id == run_id

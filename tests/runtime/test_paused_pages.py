"""Runs paused for a person, read a page at a time: a page of big pauses is bounded by bytes
(as a page of runs is), and a run's own pause is read without listing the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import NotFoundError, NotPausedError
from cronflow_actors.kernel import ManualClock
from cronflow_actors.runtime import pauses


def asks() -> cf.Flow:
    """A pause after a step whose output (the pause's ``last``) is the run's payload."""
    return (
        cf.define("asks")
        .step("echo", lambda ctx: ctx.payload)
        .human_in_the_loop("approve", description="ok?")
    )


async def every_page(rt: cf.Runtime, limit: int = 1000) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor = None
    while True:
        page = await rt.list_paused(limit=limit, cursor=cursor)
        assert page or page.next_cursor is None  # never an empty page that says there is more
        pages.append([paused.run_id for paused in page])
        cursor = page.next_cursor
        if cursor is None:
            return pages


async def test_a_last_page_of_pauses_exactly_full_says_it_is_the_last(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with cf.Runtime(db=tmp_path / "last.db", clock=clock, workflows=[asks()]) as rt:
        ids = []
        for _ in range(4):
            ids.append(await rt.trigger("asks", "x"))
            await rt.wait_idle()
            clock.advance(1)
        assert await every_page(rt, limit=2) == [ids[:2], ids[2:]]  # (no third, empty page)
        assert (await rt.list_paused(limit=4)).next_cursor is None


async def test_a_page_of_big_pauses_ends_at_a_byte_budget(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pauses, "PAGE_BYTES", 20_000, raising=False)
    async with cf.Runtime(db=tmp_path / "big.db", clock=clock, workflows=[asks()]) as rt:
        ids = []
        for _ in range(12):  # one at a time: oldest pause first is the order they started in
            ids.append(await rt.trigger("asks", "x" * 5000))
            await rt.wait_idle()
            clock.advance(1)
        pages = await every_page(rt)
        assert [run for page in pages for run in page] == ids  # each once, in order
        assert len(pages) > 2
        assert all(len(page) <= 4 for page in pages)  # each stops near 20 KB of pauses


async def test_a_pause_bigger_than_a_page_comes_alone(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pauses, "PAGE_BYTES", 20_000, raising=False)
    async with cf.Runtime(db=tmp_path / "huge.db", clock=clock, workflows=[asks()]) as rt:
        ids = []
        for payload in ("small", "x" * 50_000, "small", "x" * 50_000):
            ids.append(await rt.trigger("asks", payload))
            await rt.wait_idle()
            clock.advance(1)
        pages = await every_page(rt)
        # each page ends with the pause that passes 20 KB; the last one reached it, and no
        # cursor follows it to an empty last page (retest h43 of console F12)
        assert pages == [ids[:2], ids[2:]]
        first = await rt.list_paused(limit=1000, cursor=None)
        assert first[1].last == "x" * 50_000  # shown whole: the page ends after it


async def test_a_runs_pause_is_read_by_its_run_id(tmp_path: Path, clock: ManualClock) -> None:
    child = cf.define("child").pause("hold")
    flows = [
        asks(),
        child,
        cf.define("parent").subflow("approval", "child"),
        cf.define("naps").sleep("nap", "1h"),
        cf.define("one-at-a-time", concurrency=1).pause("wait"),
    ]
    async with cf.Runtime(db=tmp_path / "one.db", clock=clock, workflows=flows) as rt:
        others = [await rt.trigger("asks", n) for n in range(30)]
        run_id = await rt.trigger("asks", "mine")
        parent = await rt.trigger("parent")
        napping = await rt.trigger("naps")
        await rt.trigger("one-at-a-time")
        queued = await rt.trigger("one-at-a-time")
        await rt.wait_idle()
        pause = await rt.get_run_pause(run_id)
        assert (pause.run_id, pause.step, pause.last) == (run_id, "approve", "mine")
        assert pause.token == (await rt.get_paused(pause.token)).token
        assert (await rt.get_run_pause(others[7])).run_id == others[7]
        assert (await rt.get_run_pause(parent)).step == "hold"  # a child's pause is its run's
        with pytest.raises(NotPausedError, match=f"no pause of run '{napping}'; the run exists"):
            await rt.get_run_pause(napping)  # it waits, but for a timer
        with pytest.raises(NotPausedError):
            await rt.get_run_pause(queued)  # it waits in its flow's queue, not started yet
        await rt.resume(pause.token, {"approved": True})
        await rt.wait_idle()
        with pytest.raises(NotPausedError):
            await rt.get_run_pause(run_id)  # over: resumed
        with pytest.raises(NotFoundError) as unknown:
            await rt.get_run_pause("no-such-run")
        assert not isinstance(unknown.value, NotPausedError)

"""A listing shows a run's payload and output, and a pause's ``last``, up to 64 KiB of JSON
each; a bigger one is left out, named in ``clipped``, and read whole by ``inspect`` and the
run's pause: a run with a 30 MB output made every page of ``GET /runs`` that held it 30 MB,
which the console fetched every 2.5 s (console h40 F1)."""

from __future__ import annotations

from pathlib import Path

import cronflow_actors as cf
from cronflow_actors.runtime.run_info import LISTED_VALUE

BIG = "x" * (LISTED_VALUE + 1)


def flows() -> list[cf.Flow]:
    return [
        cf.define("echo").step("echo", lambda ctx: ctx.payload),
        cf.define("grow").step("grow", lambda ctx: BIG),
        cf.define("asks").step("echo", lambda ctx: ctx.payload).pause("approve"),
    ]


async def test_big_values_are_left_out_of_listings_and_named(tmp_path: Path) -> None:
    async with cf.Runtime(db=tmp_path / "big.db", workflows=flows()) as rt:
        small = await rt.trigger("echo", {"n": 1})
        both = await rt.trigger("echo", BIG)
        grown = await rt.trigger("grow", "small")
        paused = await rt.trigger("asks", BIG)
        quiet = await rt.trigger("asks", "x" * (LISTED_VALUE - 100))  # under: shown whole
        await rt.wait_idle()
        listed = {run.id: run for run in await rt.list_runs(limit=10)}
        assert (listed[small].payload, listed[small].output, listed[small].clipped) == (
            {"n": 1},
            {"n": 1},
            None,
        )
        assert (listed[both].payload, listed[both].output) == (None, None)
        assert listed[both].clipped == ["payload", "output"]
        assert (listed[grown].payload, listed[grown].output) == ("small", None)
        assert listed[grown].clipped == ["output"]
        assert listed[paused].clipped == ["payload"]  # (waiting: no output yet)
        # read one at a time, each is whole
        assert ((await rt.inspect(both)).payload, (await rt.inspect(both)).output) == (BIG, BIG)
        assert (await rt.inspect(grown)).clipped is None
        pauses = {pause.run_id: pause for pause in await rt.list_paused()}
        assert (pauses[paused].last, pauses[paused].clipped) == (None, ["last"])
        assert (pauses[quiet].last, pauses[quiet].clipped) == ("x" * (LISTED_VALUE - 100), None)
        assert (await rt.get_run_pause(paused)).last == BIG
        assert (await rt.get_run_pause(paused)).clipped is None


async def test_a_queued_run_s_big_payload_is_left_out_too(tmp_path: Path) -> None:
    """A run waiting in its flow's queue was listed whole (review h40 F4)."""
    one_at_a_time = cf.define("one", concurrency=1).pause("hold")
    async with cf.Runtime(db=tmp_path / "q.db", workflows=[one_at_a_time]) as rt:
        await rt.trigger("one", "first")
        await rt.wait_idle()
        queued = await rt.trigger("one", BIG)
        [listed] = [run for run in await rt.list_runs() if run.id == queued]
        assert (listed.status, listed.payload, listed.clipped) == ("waiting", None, ["payload"])
        assert (await rt.inspect(queued)).payload == BIG

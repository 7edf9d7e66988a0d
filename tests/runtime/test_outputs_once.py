"""A step's output is written once in its run's snapshot (``engine/state_body.py``), though its
work item, its task's output, the workflow's ``last`` and its output all hold it: a 1 MB output
made a 4 MB row, written again by every later commit (console h40 F1). Every reader gets the
values back: later steps, a restart, ``inspect``, listings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.state_body import encode_state
from cronflow_actors.errors import NotFoundError, SnapshotDamagedError

MB = 1_000_000


async def fetch(ctx: Any) -> dict[str, str]:
    return {"doc": "a" * MB}


async def measure(ctx: Any) -> dict[str, Any]:
    return {"len": len(ctx.last["doc"]), "same": ctx.steps["fetch"] == ctx.last}


async def finish(ctx: Any) -> dict[str, Any]:
    return {"doc": len(ctx.steps["fetch"]["doc"]), "measured": ctx.steps["measure"]}


def big_flow() -> cf.Flow:
    return (
        cf.define("big")
        .step("fetch", fetch)
        .step("measure", measure)
        .human_in_the_loop("approve", description="ok?")
        .step("finish", finish)
    )


async def paused_token(rt: cf.Runtime, run_id: str) -> str:
    for _ in range(500):
        try:
            return (await rt.get_run_pause(run_id)).token
        except NotFoundError:
            await asyncio.sleep(0.01)
    raise AssertionError("the run never paused in 5 s")


async def body_of(rt: cf.Runtime, run_id: str) -> bytes:
    return (await rt.instances.read(run_id)).body


async def test_a_big_output_is_stored_once_and_read_back_by_every_reader(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    async with cf.Runtime(db=db, workflows=[big_flow()]) as rt:
        run_id = await rt.trigger("big", {"n": 1})
        token = await paused_token(rt, run_id)
        waiting = await body_of(rt, run_id)
        assert MB < len(waiting) < 1.1 * MB  # was about 4 MB: item, outputs, last, output
    # read back after a restart: the later step sees the output whole
    async with cf.Runtime(db=db, workflows=[big_flow()]) as rt:
        await rt.resume(token, {"approved": True})
        result = await rt.wait(run_id)
        assert result.status == "completed"
        assert result.output == {"doc": MB, "measured": {"len": MB, "same": True}}
        info = await rt.inspect(run_id)
        fetched = next(step for step in info.steps if step.id == "fetch")
        assert fetched.output == {"doc": "a" * MB}
        assert MB < len(await body_of(rt, run_id)) < 1.1 * MB  # still once after the resume
        state = decode_state(await body_of(rt, run_id), run_id)
        root = state.workflows[run_id]
        assert root.outputs["fetch"] == {"doc": "a" * MB}
        assert root.output == root.last == result.output
        assert (root.outputs_from, root.last_from, root.output_from) == ({}, "", "")


async def test_encoding_leaves_the_state_in_memory_as_it_was(tmp_path: Path) -> None:
    async with cf.Runtime(db=tmp_path / "a.db", workflows=[big_flow()]) as rt:
        run_id = await rt.trigger("big", None)
        await paused_token(rt, run_id)
        state = decode_state(await body_of(rt, run_id), run_id)
    root = state.workflows[run_id]
    item = next(i for i in state.work_items.values() if i.name == "fetch")
    assert root.outputs["fetch"] is item.output  # one object, as the engine has it
    before = msgspec.msgpack.encode(state)  # every value written whole
    compact = encode_state(state)
    assert msgspec.msgpack.encode(state) == before
    assert root.outputs["fetch"] is item.output
    assert (root.outputs_from, root.last_from) == ({}, "")  # (in memory: none)
    assert decode_state(compact, run_id) == decode_state(before, run_id) == state


async def test_a_body_naming_a_source_it_lacks_is_refused_as_damaged(tmp_path: Path) -> None:
    async with cf.Runtime(db=tmp_path / "a.db", workflows=[big_flow()]) as rt:
        run_id = await rt.trigger("big", None)
        await paused_token(rt, run_id)
        raw = msgspec.msgpack.decode(await body_of(rt, run_id))
    (fetched,) = [key for key, item in raw["work_items"].items() if item["name"] == "fetch"]
    assert raw["workflows"][run_id]["outputs_from"]["fetch"] == fetched
    del raw["work_items"][fetched]
    with pytest.raises(SnapshotDamagedError, match=rf"run '{run_id}'.*task 'fetch'"):
        decode_state(msgspec.msgpack.encode(raw), run_id)


async def test_a_small_run_s_body_is_its_state_as_it_is(tmp_path: Path) -> None:
    """Under 64 KiB, naming where each output is would take as many bytes as it saves, and
    twice the time: the body is the state, written whole."""

    async def small(ctx: Any) -> dict[str, int]:
        return {"n": 1}

    flow = cf.define("small").step("a", small).step("b", small)
    async with cf.Runtime(db=tmp_path / "a.db", workflows=[flow]) as rt:
        run_id = await rt.trigger("small", None)
        assert (await rt.wait(run_id)).output == {"n": 1}
        body = await body_of(rt, run_id)
    root = msgspec.msgpack.decode(body)["workflows"][run_id]
    assert root["outputs"] == {"a": {"n": 1}, "b": {"n": 1}}
    assert root["last"] == root["output"] == {"n": 1}
    assert "outputs_from" not in root
    assert body == msgspec.msgpack.encode(decode_state(body, run_id))


async def test_small_outputs_of_a_big_run_are_written_whole(tmp_path: Path) -> None:
    """Over 64 KiB, a small output was named by its item's id, longer than itself: 300 small
    steps made the body 9-18% bigger than writing each whole (retest h41)."""

    async def big(ctx: Any) -> str:
        return "x" * 70_000

    async def small(ctx: Any) -> dict[str, int]:
        return {"n": 1}

    flow = cf.define("mixed").step("big", big)
    for n in range(30):
        flow = flow.step(f"s{n}", small)
    async with cf.Runtime(db=tmp_path / "a.db", workflows=[flow.pause("hold")]) as rt:
        run_id = await rt.trigger("mixed", None)
        await paused_token(rt, run_id)
        body = await body_of(rt, run_id)
    root = msgspec.msgpack.decode(body)["workflows"][run_id]
    assert list(root["outputs_from"]) == ["big"]  # the big one alone is named
    assert root["outputs"]["s29"] == {"n": 1}
    assert len(body) < len(msgspec.msgpack.encode(decode_state(body, run_id)))

"""A run's hooks are owed from the commit that ends it until they have all been called
(``engine/endings.py``): a stop that cuts them leaves them owed, and the next start calls them
again; a drain waits for them; a run with no hook for its outcome owes nothing (no load at
start, no commit more). tests/test_serve_hooks.py has the same with a real process killed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf


def _flow(calls: list[str], gate: asyncio.Event | None = None) -> cf.Flow:
    async def on_success(ctx: Any) -> None:
        calls.append(f"success {ctx.last}")
        if gate is not None:
            await gate.wait()  # a chat service that does not answer

    return cf.define(
        "hooked",
        hooks=cf.Hooks(on_success=on_success, on_complete=lambda ctx: calls.append("complete")),
    ).step("s", lambda ctx: ctx.payload)


async def _owed(rt: cf.Runtime, run_id: str) -> bool:
    snapshot = await rt.store.load_snapshot(run_id)
    assert snapshot is not None
    return snapshot.runnable


async def test_hooks_cut_by_a_stop_are_called_again_at_the_next_start(tmp_path: Path) -> None:
    calls: list[str] = []
    hung = asyncio.Event()  # never set: the hook hangs until the stop gives up on it
    rt = cf.Runtime(db=tmp_path / "cut.db", workflows=[_flow(calls, hung)])
    await rt.start()
    run_id = await rt.trigger("hooked", 7)
    assert (await rt.wait(run_id, timeout=5)).status == "completed"
    for _ in range(500):
        if calls:
            break
        await asyncio.sleep(0.01)
    assert calls == ["success 7"]
    await rt.stop(drain=0.2)  # the drain gives up on the hung hook: it is cut
    async with cf.Runtime(db=tmp_path / "cut.db", workflows=[_flow(calls)]) as again:
        await again.wait_idle()
        for _ in range(500):
            if not await _owed(again, run_id):
                break
            await asyncio.sleep(0.01)
        assert not await _owed(again, run_id)
    assert calls == ["success 7", "success 7", "complete"]  # again, then on_complete once


async def test_a_drain_waits_for_hooks_and_nothing_is_owed_after(tmp_path: Path) -> None:
    calls: list[str] = []
    slow = asyncio.Event()
    rt = cf.Runtime(db=tmp_path / "drain.db", workflows=[_flow(calls, slow)])
    await rt.start()
    run_id = await rt.trigger("hooked", 1)
    await rt.wait(run_id, timeout=5)
    asyncio.get_running_loop().call_later(0.2, slow.set)  # the chat answers, late
    await rt.stop(drain=5)
    assert calls == ["success 1", "complete"]
    async with cf.Runtime(db=tmp_path / "drain.db", workflows=[_flow(calls)]) as again:
        assert not await _owed(again, run_id)
        await again.wait_idle()
    assert calls == ["success 1", "complete"]  # not called again


async def test_a_run_without_a_hook_for_its_outcome_owes_nothing(rt: cf.Runtime) -> None:
    failures: list[Any] = []
    quiet = cf.define("quiet", hooks=cf.Hooks(on_failure=failures.append)).step("s", str)
    plain = cf.define("plain").step("s", str)
    rt.register(quiet)
    rt.register(plain)
    revisions = []
    for flow in ("quiet", "plain"):
        run_id = await rt.trigger(flow, 1)
        await rt.wait(run_id, timeout=5)
        await rt.wait_idle()
        snapshot = await rt.store.load_snapshot(run_id)
        assert snapshot is not None
        assert not snapshot.runnable
        revisions.append(snapshot.revision)
    assert revisions[0] == revisions[1]  # no commit more for a hook it does not call
    assert failures == []


async def test_hooks_that_raise_are_logged_and_owed_no_more(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    called: list[str] = []

    def broken(ctx: Any) -> None:
        called.append(ctx.run.id)
        raise RuntimeError("the chat service refused")

    flow = cf.define("broken", hooks=cf.Hooks(on_complete=broken)).step("s", str)
    async with cf.Runtime(db=tmp_path / "broken.db", workflows=[flow]) as rt:
        run_id = await rt.trigger("broken", 1)
        await rt.wait(run_id, timeout=5)
        for _ in range(500):
            if called and not await _owed(rt, run_id):
                break
            await asyncio.sleep(0.01)
        assert called == [run_id]
        assert not await _owed(rt, run_id)  # its end recorded, though the hook raised
    assert "the chat service refused" in caplog.text
    async with cf.Runtime(db=tmp_path / "broken.db", workflows=[flow]) as again:
        await again.wait_idle()
    assert called == [run_id]  # owed no more: not called again


async def test_hooks_owed_by_a_retired_version_are_settled_at_the_next_start(
    tmp_path: Path,
) -> None:
    """The run's version is not registered at the next start (v1 replaced by v2): its instance
    cannot be loaded to have the hooks called. It stayed owed for good (loaded at no start, its
    hooks never called, never pruned); now they are called once, as the flow has them now."""
    calls: list[str] = []
    hung = asyncio.Event()

    def versioned(version: str, gate: asyncio.Event | None) -> cf.Flow:
        async def on_complete(ctx: Any) -> None:
            calls.append(f"{version} {ctx.run.id}")
            if gate is not None:
                await gate.wait()

        hooks = cf.Hooks(on_complete=on_complete)
        return cf.define("orders", version=version, hooks=hooks).step(version, lambda ctx: 1)

    db = tmp_path / "retired.db"
    rt = cf.Runtime(db=db, workflows=[versioned("v1", hung)])
    await rt.start()
    run_id = await rt.trigger("orders")
    await rt.wait(run_id, timeout=5)
    for _ in range(500):
        if calls:
            break
        await asyncio.sleep(0.01)
    await rt.stop(drain=0.2)  # cut: owed
    async with cf.Runtime(db=db, workflows=[versioned("v2", None)]) as again:
        await again.wait_idle()
        assert not await _owed(again, run_id)
        assert await again.prune(older_than=0) == 1  # no longer kept for its hooks
    assert calls == [f"v1 {run_id}", f"v2 {run_id}"]  # once more, by the flow as it is now

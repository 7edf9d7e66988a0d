"""A step's handler runs in a task of its own, so what binds itself to the current task
(``asyncio.timeout``, a task group, context variables) works in it as in any asyncio code."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.engine.handlers import WorkItemActor, in_user_code
from cronflow_actors.kernel import ActorSystem

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


async def test_a_timeout_inside_a_step_cancels_the_step_and_nothing_else(tmp_path: Path) -> None:
    async def slow(ctx: Any) -> str:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(30)
        return "never"

    async def quick(ctx: Any) -> str:
        return "done"

    flows = [
        cf.define("slow").step("wait", slow),
        cf.define("quick").step("only", quick),
    ]
    async with cf.Runtime(db=tmp_path / "steps.db", workflows=flows) as rt:
        slow_run = await rt.trigger("slow")
        quick_runs = [await rt.trigger("quick") for _ in range(3)]
        result = await asyncio.wait_for(rt.wait(slow_run), 10)
        assert result.status == "failed"
        assert "TimeoutError" in str(result.error)
        for run_id in quick_runs:
            assert (await asyncio.wait_for(rt.wait(run_id), 10)).status == "completed"


async def test_a_step_gets_its_own_task_and_context(tmp_path: Path) -> None:
    seen: list[Any] = []

    async def step(ctx: Any) -> str:
        SEEN.set(f"step {ctx.payload}")
        task = asyncio.current_task()
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(0.01))
        seen.append((task, asyncio.current_task(), SEEN.get()))
        return SEEN.get()

    async with cf.Runtime(
        db=tmp_path / "own.db", workflows=[cf.define("own").step("s", step)]
    ) as rt:
        runs = [await rt.trigger("own", n) for n in range(2)]
        outputs = [(await asyncio.wait_for(rt.wait(run_id), 10)).output for run_id in runs]
    assert outputs == ["step 0", "step 1"]
    assert all(before is after and before is not None for before, after, _ in seen)
    assert seen[0][0] is not seen[1][0]
    assert SEEN.get() == "unset"  # nothing leaked into the caller's context


async def test_a_step_becomes_an_actor_only_if_it_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[str] = []
    made = ActorSystem.spawn_made

    def counted(self: ActorSystem, actor: Any, **kwargs: Any) -> Any:
        spawned.append(type(actor).__name__)
        return made(self, actor, **kwargs)

    monkeypatch.setattr(ActorSystem, "spawn_made", counted)
    gate, waiting = asyncio.Event(), asyncio.Event()
    seen: list[Any] = []

    async def quick(ctx: Any) -> int:
        seen.append(in_user_code.get())  # what a step's task has set, in its own context
        return int(ctx.last if ctx.steps else ctx.payload) + 1

    async def waits(ctx: Any) -> int:
        waiting.set()
        await gate.wait()
        return int(ctx.last) * 10

    flow = cf.define("mixed").step("a", quick).step("b", waits).step("c", quick)
    async with cf.Runtime(db=tmp_path / "mixed.db", workflows=[flow]) as rt:
        run_id = await rt.trigger("mixed", 1)
        await asyncio.wait_for(waiting.wait(), 10)
        running = rt.system.get_by_class(WorkItemActor)
        assert [ref.actor_class for ref in running] == [WorkItemActor]
        gate.set()
        result = await asyncio.wait_for(rt.wait(run_id), 10)
        assert rt.system.get_by_class(WorkItemActor) == []
    assert result.output == 21
    assert spawned == ["WorkItemActor"]  # only the step that waited
    assert seen == [True, True]
    assert not in_user_code.get()

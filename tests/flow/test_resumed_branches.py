"""A resume or a migration goes on through the ``if_`` branch its run took: its condition,
asked again, answered otherwise (the state it reads changed, or the code was fixed before the
resume), the run took the other branch, the steps the first one completed vanished from it and
its failed step never ran again (conform h39 F5)."""

from __future__ import annotations

from typing import Any

import cronflow_actors as cf


def recording(calls: list[Any], fails: dict[str, bool]) -> Any:
    """A step's function by its name: it records its call, and raises while ``fails`` says."""

    def step(name: str) -> Any:
        def run(ctx: Any) -> str:
            calls.append(name)
            if fails.get(name):
                raise RuntimeError(f"{name} broke")
            return name

        return run

    return step


def branching(calls: list[Any], *, version: str = "v1", fails: dict[str, bool]) -> cf.Flow:
    async def is_a(ctx: Any) -> bool:
        mode = await ctx.state.get("mode", "A")
        calls.append(("asked", mode))
        return bool(mode == "A")

    step = recording(calls, fails)
    flow = cf.define("branching", version=version).step("s0", step("s0")).if_("a", is_a)
    flow = flow.step("a1", step("a1")).step("a2", step("a2"))
    if version == "v2":
        flow = flow.step("a3", step("a3"))
    flow = flow.else_().step("b1", step("b1")).end_if()
    return flow.step("z", lambda ctx: {"last": ctx.last, "steps": sorted(ctx.steps)})


async def test_a_resume_goes_on_in_the_branch_its_run_took() -> None:
    calls: list[Any] = []
    fails = {"a2": True}
    async with cf.Runtime(workflows=[branching(calls, fails=fails)]) as rt:
        first = await rt.trigger("branching", {})
        assert (await rt.wait(first)).status == "failed"
        assert calls == ["s0", ("asked", "A"), "a1", "a2"]
        calls.clear()
        fails["a2"] = False
        await rt.set_workflow_state("branching", "mode", "B")  # the condition would say B now
        resumed = await rt.replay(first, resume=True)
        result = await rt.wait(resumed)
        assert (result.status, result.output) == (
            "completed",
            {"last": "a2", "steps": ["a1", "a2", "s0"]},
        )
        assert calls == ["a2"]  # not asked again; a1 kept, a2 run again, b1 never
        steps = {step.id: step for step in (await rt.inspect(resumed)).steps}
        assert (steps["a1"].status, steps["a1"].carried) == ("completed", True)
        # a new run asks the condition
        fresh = await rt.wait(await rt.trigger("branching", {}))
        assert fresh.output == {"last": "b1", "steps": ["b1", "s0"]}


async def test_a_migration_goes_on_in_the_branch_its_run_took() -> None:
    """A run paused in its branch: the pause, and the branch's completed step, stay."""
    calls: list[Any] = []

    def paused(version: str) -> cf.Flow:
        async def is_a(ctx: Any) -> bool:
            return bool(await ctx.state.get("mode", "A") == "A")

        flow = cf.define("paused", version=version).if_("a", is_a)
        flow = flow.step("a1", lambda ctx: calls.append("a1") or "a1").human_in_the_loop("ok")
        if version == "v2":
            flow = flow.step("a3", lambda ctx: calls.append("a3") or "a3")
        flow = flow.else_().step("b1", lambda ctx: calls.append("b1") or "b1").end_if()
        return flow.step("z", lambda ctx: sorted(ctx.steps))

    async with cf.Runtime(workflows=[paused("v2"), paused("v1")]) as rt:  # v1's runs start
        first = await rt.trigger("paused", {})
        assert (await rt.inspect(first)).version == "v1"
        await rt.wait_idle()
        await rt.set_workflow_state("paused", "mode", "B")
        moved = await rt.migrate(first, "v2")
        await rt.wait_idle()
        [pause] = await rt.list_paused()
        assert (pause.run_id, pause.step) == (moved, "ok")
        await rt.resume(pause.token, {"approved": True})
        assert (await rt.wait(moved)).output == ["a1", "a3", "ok"]
        assert calls == ["a1", "a3"]


async def test_a_resume_goes_past_an_if_without_else_its_run_went_past() -> None:
    """No condition held, so the run went past the if_; its condition, asked again on the
    resume, ran a step the run never took (review h39 F1)."""
    calls: list[Any] = []
    fails = {"after": True}

    async def refund(ctx: Any) -> bool:
        return bool(await ctx.state.get("refund", False))

    step = recording(calls, fails)
    flow = cf.define("skipping").step("s0", step("s0")).if_("refund", refund)
    flow = flow.step("refund_money", step("refund_money")).end_if().step("after", step("after"))
    async with cf.Runtime(workflows=[flow]) as rt:
        first = await rt.trigger("skipping", {})
        assert (await rt.wait(first)).status == "failed"
        fails["after"] = False
        await rt.set_workflow_state("skipping", "refund", True)  # it would hold now
        calls.clear()
        result = await rt.wait(await rt.replay(first, resume=True))
        assert (result.status, result.output, calls) == ("completed", "after", ["after"])

"""A ``while_`` its ``.on_error`` ended, carried by a resume or a migration: the loop went round
again from its carried pass, its body and its fallback called a second time (conform h36 F3),
where every other construct's answered failure was carried."""

from __future__ import annotations

from collections import Counter
from typing import Any

import cronflow_actors as cf


def looping(version: str, calls: Counter[str], *, then: str) -> cf.Flow:
    """A loop that ends when its condition does, one its first pass's failure and fallback
    end, then a step that fails (``then="fail"``) or a pause."""

    def count(ctx: cf.FlowContext) -> int:
        calls["good"] += 1
        return (ctx.last if isinstance(ctx.last, int) else 0) + 1

    def bad(ctx: cf.FlowContext) -> None:
        calls["bad"] += 1
        raise ValueError("bad")

    def fallback(ctx: cf.FlowContext) -> str:
        calls["fallback"] += 1
        return "answered"

    def last(ctx: cf.FlowContext) -> Any:
        calls["last"] += 1
        if calls["last"] == 1:
            raise RuntimeError("the last step fails once")
        return ctx.last

    flow = (
        cf.define("loops", version=version)
        .while_("good", lambda ctx: not isinstance(ctx.last, int) or ctx.last < 3, count)
        .while_("bad", lambda ctx: True, bad)
        .on_error(fallback)
    )
    return flow.step("last", last) if then == "fail" else flow.pause("wait")


async def test_a_loop_its_fallback_ended_is_carried_by_resumes(rt: cf.Runtime) -> None:
    calls: Counter[str] = Counter()
    rt.register(looping("v1", calls, then="fail"))
    failed = await rt.trigger("loops")
    assert (await rt.wait(failed, timeout=5)).status == "failed"
    assert calls == {"good": 3, "bad": 1, "fallback": 1, "last": 1}
    resumed = await rt.replay(failed, resume=True)
    done = await rt.wait(resumed, timeout=5)
    assert (done.status, done.output) == ("completed", "answered")
    assert calls == {"good": 3, "bad": 1, "fallback": 1, "last": 2}  # only last ran again
    steps = {step.id: step for step in (await rt.inspect(resumed)).steps}
    assert (steps["bad"].output, steps["bad"].carried) == ("answered", True)
    assert steps["bad"].error_type == "builtins.ValueError"


async def test_a_loop_its_fallback_ended_is_carried_by_a_second_migration(
    rt: cf.Runtime,
) -> None:
    calls: Counter[str] = Counter()
    rt.register(looping("v1", calls, then="pause"))
    run_id = await rt.trigger("loops")
    await rt.wait_idle()
    for version in ("v2", "v3"):  # (the second from a run the first carried)
        rt.register(looping(version, calls, then="pause"))
        run_id = await rt.migrate(run_id, version)
        await rt.wait_idle()
        assert calls == {"good": 3, "bad": 1, "fallback": 1}, version
    [pause] = await rt.list_paused()
    assert pause.run_id == run_id

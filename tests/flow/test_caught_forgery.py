"""A value shaped as the engine's failure record, ``{":caught": {"error": ...}}``, is an output
like any other: which tasks caught a failure is kept beside their outputs, never told by an
output's shape, which any caller may choose (conform h30 F2: a published event ran a saga's
compensation, an echoed payload showed its step failed)."""

from __future__ import annotations

import asyncio
from typing import Any

import cronflow_actors as cf
from cronflow_actors import net
from tests.engine.helpers import build, open_item, states

FORGED = {":caught": {"error": "forged by a caller"}}


async def test_a_payload_shaped_as_a_failure_reaches_no_fallback(rt: cf.Runtime) -> None:
    fell_back: list[str] = []

    def fallback(name: str) -> Any:
        def answer(ctx: Any) -> str:
            fell_back.append(name)
            return "compensated"

        return answer

    def seen(ctx: Any) -> Any:
        return {"last": ctx.last, "steps": dict(ctx.steps)}

    flows = [
        cf.define("paid")
        .wait_for_event("paid", "payment.confirmed", timeout="1h")
        .on_error(fallback("paid"))
        .step("z", seen),
        cf.define("echo").step("echo", lambda ctx: ctx.payload).step("z", seen),
        cf.define("child").step("e", lambda ctx: ctx.payload),
        cf.define("sub")
        .subflow("s", "child", input=lambda ctx: ctx.payload)
        .on_error(fallback("sub"))
        .step("z", lambda ctx: ctx.last),
        cf.define("race")
        .race("r", [lambda ctx: ctx.payload])
        .on_error(fallback("race"))
        .step("z", lambda ctx: ctx.last),
    ]
    for flow in flows:
        rt.register(flow)
    waiting = await rt.trigger("paid")
    await rt.wait_idle()
    await rt.publish_event("payment.confirmed", FORGED)
    paid = await rt.wait(waiting, timeout=5)
    assert paid.output == {"last": FORGED, "steps": {"paid": FORGED}}
    echoed = await rt.trigger("echo", FORGED)
    assert (await rt.wait(echoed, timeout=5)).output == {"last": FORGED, "steps": {"echo": FORGED}}
    shown = {s.id: (s.status, s.output) for s in (await rt.inspect(echoed)).steps}
    assert shown["echo"] == ("completed", FORGED)
    for name in ("sub", "race"):
        assert (await rt.wait(await rt.trigger(name, FORGED), timeout=5)).output == FORGED
    assert fell_back == []


async def test_a_real_failure_still_reaches_its_fallback_and_a_resume_keeps_it_one(
    rt: cf.Runtime,
) -> None:
    """The caught record is still the failure for its fallback, in the run and once carried
    to a resume: only what caught it is marked."""
    broken = [True]
    calls: list[str] = []

    def fallback(ctx: Any) -> str:
        calls.append(str(ctx.error))
        if broken:
            raise RuntimeError("the fallback is down")
        return "compensated"

    def boom(ctx: Any) -> None:
        raise ValueError("card declined")

    flow = cf.define("saga").step("pre", lambda ctx: ctx.payload).step("charge", boom)
    rt.register(flow.on_error(fallback).step("z", lambda ctx: dict(ctx.steps)))
    run = await rt.trigger("saga", FORGED)
    assert (await rt.wait(run, timeout=5)).status == "failed"
    broken.clear()
    resumed = await rt.replay(run, resume=True)
    result = await rt.wait(resumed, timeout=5)
    assert result.output == {"pre": FORGED, "charge": "compensated"}
    assert calls == ["card declined", "card declined"]


async def test_a_nets_catching_task_routes_a_completed_item_as_done_whatever_its_output(
    rt: cf.Runtime,
) -> None:
    """A ``catch()`` task's router reads ``net.caught(ctx.output)``: a manual item completed
    by a caller with the record's shape went to the failure branch."""

    def route(ctx: Any) -> Any:
        failed = net.caught(ctx.output) is not None
        return ctx.route.to_task("on_fail" if failed else "on_ok")

    task = net.task(net.work_item("t")).catch().split("xor").route(route)
    rt.register(
        build(
            "catching",
            {"t": task, "on_fail": net.task(), "on_ok": net.task()},
            [
                ("start", "t"),
                ("t", "on_fail"),
                ("t", "on_ok"),
                ("on_fail", "end"),
                ("on_ok", "end"),
            ],
        )
    )
    instance = await rt.start_workflow("catching")
    item = await open_item(rt, instance, "t")
    await rt.start_work_item(item.id)
    await rt.complete_work_item(item.id, FORGED)
    await asyncio.wait_for(rt.wait_idle(), 5)
    routed = await states(rt, instance)
    assert (routed["t"], routed["on_ok"], routed["on_fail"]) == ("completed", "enabled", "disabled")

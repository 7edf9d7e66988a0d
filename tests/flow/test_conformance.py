"""Cronflow-style flows as Cronflow's own docs and tests use them: each case a bug found by
running those examples, now a regression test through the public API on a real SQLite file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InvalidWorkflowError, RunFailedError
from cronflow_actors.kernel import ManualClock


async def settle(rt: cf.Runtime, clock: ManualClock, seconds: float = 0) -> None:
    if seconds:
        clock.advance(seconds)
    await rt.wait_idle()


# -- 3: a run's output is the last step's, whatever construct ends the flow ---------------------


async def test_the_output_is_the_last_steps_whatever_ends_the_flow(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    flows = [
        cf.define("ends-in-if")
        .step("a", lambda ctx: "A")
        .if_("big", lambda ctx: True)
        .step("b", lambda ctx: "B")
        .end_if(),
        cf.define("ends-in-else-skip")
        .step("a", lambda ctx: "A")
        .if_("never", lambda ctx: False)
        .step("b", lambda ctx: "B")
        .end_if(),
        cf.define("ends-in-action").step("a", lambda ctx: "A").action("notify", lambda ctx: "x"),
        cf.define("ends-in-sleep").step("a", lambda ctx: "A").sleep("nap", "1s"),
        cf.define("ends-in-while")
        .step("a", lambda ctx: 0)
        .while_("loop", lambda ctx: ctx.last < 3, lambda ctx: ctx.last + 1),
        cf.define("ends-in-parallel").parallel("p", [lambda ctx: 1, lambda ctx: 2]),
    ]
    expected = {
        "ends-in-if": "B",
        "ends-in-else-skip": "A",
        "ends-in-action": "A",
        "ends-in-sleep": "A",
        "ends-in-while": 3,
        "ends-in-parallel": [1, 2],
    }
    for flow in flows:
        rt.register(flow)
    runs = {name: await rt.trigger(name) for name in expected}
    await settle(rt, clock, 1)
    for name, run_id in runs.items():
        result = await rt.wait(run_id)
        assert (result.status, result.output) == ("completed", expected[name]), name
        assert (await rt.inspect(run_id)).output == expected[name]


# -- 4: what a handler does to ctx values never reaches the record -------------------------------


async def test_mutating_ctx_values_does_not_rewrite_history(tmp_path: Path) -> None:
    def drain(ctx: Any) -> list[int]:
        queue = ctx.steps["load"]["queue"]
        queue.pop(0)  # the documented queue.shift() loop
        ctx.last["queue"].clear()
        ctx.payload["mutated"] = True
        return queue

    flow = (
        cf.define("history")
        .step("load", lambda ctx: {"queue": [1, 2, 3]})
        .step("drain", drain)
        .step("check", lambda ctx: (ctx.steps["load"], ctx.payload))
    )
    db = tmp_path / "history.db"
    async with cf.Runtime(db=db, workflows=[flow]) as rt:
        run_id = await rt.trigger("history", {"order": 1})
        result = await rt.wait(run_id)
        assert result.output == [{"queue": [1, 2, 3]}, {"order": 1}]
        steps = {s.id: s.output for s in (await rt.inspect(run_id)).steps}
        assert steps == {
            "load": {"queue": [1, 2, 3]},
            "drain": [2, 3],
            "check": [{"queue": [1, 2, 3]}, {"order": 1}],
        }
    async with cf.Runtime(db=db, workflows=[flow]) as again:  # and so it stays, as stored
        info = await again.inspect(run_id)
        assert info.payload == {"order": 1}
        assert info.steps[0].output == {"queue": [1, 2, 3]}


async def test_a_for_each_item_is_a_copy(rt: cf.Runtime) -> None:
    def touch(item: Any, ctx: Any) -> int:
        item["seen"] = True
        return len(item)

    rt.register(
        cf.define("each")
        .step("items", lambda ctx: [{"a": 1}, {"b": 2}])
        .for_each("touch", lambda ctx: ctx.last, touch)
    )
    run_id = await rt.trigger("each")
    result = await rt.wait(run_id)
    assert [r["item"] for r in result.output["results"]] == [{"a": 1}, {"b": 2}]
    assert (await rt.inspect(run_id)).steps[0].output == [{"a": 1}, {"b": 2}]


# -- 5: on_timeout sees the output from before the pause as ctx.last -----------------------------


async def test_on_timeout_sees_the_step_before_the_pause(
    tmp_path: Path, clock: ManualClock
) -> None:
    seen: list[Any] = []
    flow = (
        cf.define("expiring")
        .step("quote", lambda ctx: {"amount": 42})
        .human_in_the_loop(
            "approve",
            description="approve",
            timeout="1h",
            on_timeout=lambda ctx: seen.append(ctx.last["amount"]),
        )
        .step("after", lambda ctx: ctx.last["status"])
    )
    db = tmp_path / "expiring.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as first:
        run_id = await first.trigger("expiring")
        await settle(first, clock)
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as second:  # across a restart
        await settle(second, clock, 3600)
        assert (await second.wait(run_id)).output == "timeout"
        await settle(second, clock)
    assert seen == [42]


# -- 6: ctx.error in on_failure is the step's own exception ------------------------------------


class PaymentDeclined(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
        self.handle = object()  # cannot be stored: kept in memory only


async def test_on_failure_gets_the_exception_the_step_raised(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    errors: list[Any] = []

    def charge(ctx: Any) -> None:
        raise PaymentDeclined("card declined", code="card_declined")

    rt.register(
        cf.define("pay", hooks=cf.Hooks(on_failure=lambda ctx: errors.append(ctx.error))).step(
            "charge", charge, retry=cf.Retry(attempts=2, delay="1ms")
        )
    )
    run_id = await rt.trigger("pay")
    await settle(rt, clock)  # the first attempt fails and arms the retry's timer
    await settle(rt, clock, 1)
    result = await rt.wait(run_id, timeout=10)
    await rt.wait_idle()
    assert result.status == "failed"
    [error] = errors
    assert isinstance(error, PaymentDeclined)
    assert (str(error), error.code) == ("card declined", "card_declined")
    info = await rt.inspect(run_id)
    assert info.error_type == "tests.flow.test_conformance.PaymentDeclined"
    assert info.steps[0].error_type == info.error_type


async def test_without_the_exception_at_hand_the_record_tells_how_the_run_failed(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    errors: list[Any] = []
    rt.register(
        cf.define(
            "slow", timeout="1m", hooks=cf.Hooks(on_failure=lambda c: errors.append(c.error))
        ).sleep("nap", "1h")
    )
    run_id = await rt.trigger("slow")
    await settle(rt, clock, 60)
    assert (await rt.wait(run_id)).status == "failed"
    await rt.wait_idle()
    [error] = errors
    assert isinstance(error, RunFailedError)
    assert "timed out" in str(error)


def test_a_run_failed_error_reads_the_stored_attributes() -> None:
    error = RunFailedError("declined", type="x.PaymentDeclined", attributes={"code": "card"})
    assert (error.code, error.type) == ("card", "x.PaymentDeclined")
    with pytest.raises(AttributeError, match="no attribute 'other'"):
        _ = error.other


# -- 7: Cronflow's camelCase keys on resume -------------------------------------------------------


async def test_resume_takes_cronflows_camel_case_keys(rt: cf.Runtime) -> None:
    rt.register(
        cf.define("approve").human_in_the_loop("ok", description="ok?").step("s", lambda c: c.last)
    )
    run_id = await rt.trigger("approve")
    await rt.wait_idle()
    [paused] = await rt.list_paused()
    await rt.resume(paused.token, {"approved": True, "approvedBy": "ada", "reason": "fine"})
    output = (await rt.wait(run_id)).output
    assert (output["approved"], output["approved_by"], output["reason"]) == (True, "ada", "fine")


# -- 8: a second on_error is a further fallback ----------------------------------------------


async def test_on_error_fallbacks_are_tried_in_order(rt: cf.Runtime) -> None:
    seen: list[str] = []

    def first_fallback(ctx: Any) -> Any:
        seen.append(f"first saw {ctx.error}")
        raise RuntimeError("cache down")

    def second_fallback(ctx: Any) -> Any:
        seen.append(f"second saw {ctx.error}")
        return "default"

    def fails(ctx: Any) -> Any:
        raise RuntimeError("api down")

    rt.register(
        cf.define("fallbacks")
        .step("fetch", fails)
        .on_error(first_fallback)
        .on_error(second_fallback)
    )
    result = await rt.wait(await rt.trigger("fallbacks"))
    assert result.output == "default"
    assert seen == ["first saw api down", "second saw cache down"]


# -- 9: webhook path parameters (tests/http/test_api.py) ------------------------------------


def test_bad_path_parameters_are_refused_at_definition() -> None:
    flow = cf.define("bad").step("s", str).on_webhook("/x/:a/y:b/{a}/{}")
    with pytest.raises(InvalidWorkflowError) as refused:
        flow.build()
    text = str(refused.value)
    assert "'y:b' is not a path parameter" in text
    assert "parameter 'a' appears twice" in text
    assert "{}" in text


# -- 10: steps named like the compiler's own names ----------------------------------------------


async def test_steps_named_start_and_end_are_fine(rt: cf.Runtime) -> None:
    rt.register(cf.define("names").step("start", lambda ctx: 1).step("end", lambda ctx: 2))
    result = await rt.wait(await rt.trigger("names"))
    assert (result.status, result.output) == ("completed", 2)


def test_a_step_id_holding_a_reserved_character_is_refused() -> None:
    with pytest.raises(InvalidWorkflowError, match="step id 'if:x' holds ':' or '#'"):
        cf.define("reserved").step("if:x", str).build()


# -- 11: wait_idle on the system clock returns while timers are armed ------------------------------


async def test_wait_idle_returns_while_durable_timers_are_armed(tmp_path: Path) -> None:
    flow = (
        cf.define("waits")
        .step("a", lambda ctx: "A")
        .human_in_the_loop("approve", description="later", timeout="1d")
        .on_schedule("0 0 1 1 *")
    )
    async with cf.Runtime(db=tmp_path / "idle.db", workflows=[flow]) as rt:
        run_id = await rt.trigger("waits")
        began = time.monotonic()
        await asyncio.wait_for(rt.wait_idle(), 5)
        assert time.monotonic() - began < 1
        assert (await rt.inspect(run_id)).status == "waiting"

"""``flow.test()`` on the real engine, ``flow.validate()``, and flow introspection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InvalidWorkflowError


def order_flow(sent: list[str]) -> cf.Flow:
    def charge(ctx: cf.FlowContext) -> dict[str, Any]:
        raise ConnectionError("the real payment API must not be called in a test")

    def notify(ctx: cf.FlowContext) -> None:
        sent.append(ctx.payload["email"])
        raise RuntimeError("SMTP server refused the message")

    return (
        cf.define("order")
        .step("validate", lambda ctx: {"amount": ctx.payload["amount"]})
        .if_("big", lambda ctx: ctx.last["amount"] > 100)
        .step("review", lambda ctx: "reviewed")
        .else_()
        .step("fast", lambda ctx: "fast lane")
        .end_if()
        .step("charge", charge, retry=cf.Retry(attempts=3, delay="10s"))
        .parallel("side", [lambda ctx: 1, lambda ctx: 2])
        .action("audit", lambda ctx: None)
        .step("notify", notify)
        .on_error(lambda ctx: "notification queued")
    )


async def test_the_harness_runs_the_real_engine_with_mocks_and_expectations() -> None:
    sent: list[str] = []
    calls: list[int] = []

    def fake_charge(ctx: cf.FlowContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("declined, try again")
        return {"charged": ctx.payload["amount"]}

    result = await (
        order_flow(sent)
        .test()
        .trigger({"amount": 250, "email": "ada@example.test"})
        .mock_step("charge", fake_charge)
        .expect_step("validate")
        .to_succeed()
        .expect_step("charge")
        .to_succeed()
        .run()
    )
    assert result.status == "completed"
    assert result.output == "notification queued"
    steps = {s.id: s for s in result.steps}
    assert "review" in steps
    assert "fast" not in steps  # branches behave as in production
    assert steps["charge"].output == {"charged": 250}
    assert (steps["charge"].attempts, calls) == (3, [1, 2, 3])
    assert steps["charge"].retry_delays == [10.0, 20.0]  # exponential, on the test's clock
    duration = steps["charge"].duration  # its last attempt's, on that clock: no delay in it
    assert duration is not None
    assert 0 <= duration < 5
    assert {type(s.status) for s in result.steps} == {str}  # one kind of value, any step
    assert steps["side"].output == [1, 2]
    assert steps["notify"].status == "completed"  # its fallback answered
    assert sent == ["ada@example.test"]
    assert result.clock_seconds == 30.0
    assert result.duration < 30  # the retries' delays took no real time


async def test_unmet_expectations_are_listed_in_one_error() -> None:
    sent: list[str] = []
    test = (
        order_flow(sent)
        .test()
        .trigger({"amount": 5, "email": "x@example.test"})
        .expect_step("charge")
        .to_succeed()
        .expect_step("review")
        .to_succeed()
        .expect_step("validate")
        .to_fail_with("boom")
    )
    with pytest.raises(cf.ExpectationError) as caught:
        await test.run()
    unmet = caught.value.unmet
    assert len(unmet) == 3
    assert "step 'charge' was expected to end completed, it ended failed" in unmet[0]
    assert "the real payment API must not be called" in unmet[0]
    assert unmet[1].startswith(
        "step 'review' was expected to end completed but never ran: the run failed at step "
        "'charge' ("
    )  # where it stopped, which the expectation alone did not say
    assert "step 'validate' was expected to end failed, it ended completed" in unmet[2]
    assert caught.value.result.status == "failed"
    # a mock of a step the flow does not have is named as the test gave it
    with pytest.raises(cf.errors.ConfigurationError, match="setting 'mock_step' has the value"):
        await order_flow(sent).test().mock_step("chrage", lambda ctx: None).run()
    # and an expectation of one: no "never ran" (newcomer h38 F7)
    typo = order_flow(sent).test().trigger({"amount": 5, "email": "x@example.test"})
    with pytest.raises(cf.ExpectationError) as caught:
        await typo.expect_step("chrage").to_succeed().run()
    [said] = caught.value.unmet
    assert said.startswith("step 'chrage' was expected, but flow 'order' has no step 'chrage'")
    assert "'charge'" in said  # the steps it has


async def test_pauses_and_events_are_answered_and_a_run_left_waiting_says_so() -> None:
    flow = (
        cf.define("approve")
        .human_in_the_loop("ok", description="approve?", timeout="1d")
        .wait_for_event("paid", "payment")
        .step("done", lambda ctx: [ctx.steps["ok"]["approved"], ctx.last["amount"]])
    )
    result = await flow.test().resume("ok", {"approved": True}).emit("payment", {"amount": 9}).run()
    assert (result.status, result.output) == ("completed", [True, 9])
    waiting = await flow.test().run()
    assert waiting.status == "waiting"  # for the event no one sends
    assert waiting.step("ok").output["timed_out"] is True  # the pause timed out on its clock
    assert waiting.step("paid").status == "waiting"
    held = cf.define("held").pause("hold").step("after", str)
    left = await held.test().run()
    assert left.status == "waiting"
    assert left.step("hold").status == "waiting"


async def test_a_resume_or_an_emit_nothing_takes_is_an_unmet_expectation() -> None:
    """A misspelt step of a resume, or an event no step takes, was ignored: the pause timed out
    as not approved, and the test passed (the newcomer's finding 5)."""
    flow = (
        cf.define("approve")
        .human_in_the_loop("ok", description="approve?", timeout="1d")
        .wait_for_event("paid", "payment", timeout="1d")
        .step("done", lambda ctx: "shipped")
    )
    with pytest.raises(cf.errors.ExpectationError) as caught:
        await flow.test().resume("okk", {"approved": True}).emit("paymnet", {}).run()
    said = str(caught.value)
    assert "resume('okk') was given, but no pause of step 'okk' came" in said
    assert "(the run's pause steps: ['ok'])" in said
    assert "emit('paymnet') was published while the run waited, but no step of it took" in said
    assert "(its wait_for_event steps: ['paid']" in said
    # one the run ended before: not taken either
    early = cf.define("early").step("s", lambda ctx: 1)
    with pytest.raises(cf.errors.ExpectationError, match=r"emit\('payment'\) was given, but"):
        await early.test().emit("payment", {}).run()


async def test_an_event_reaches_a_step_waiting_in_a_subflow_or_a_flow_per_item() -> None:
    child = cf.define("child").wait_for_event("w", "go").step("c", lambda ctx: ctx.last["v"])
    parent = cf.define("parent").subflow("kid", child).step("after", lambda ctx: ctx.last)

    def per_item(item: Any, flow: cf.Flow) -> cf.Flow:
        return flow.wait_for_event("w", "go").step("s", lambda ctx: ctx.last["v"] + item)

    each = cf.define("each").for_each("fe", lambda ctx: [10], per_item)
    through_subflow = await parent.test().emit("go", {"v": 1}).run()
    through_item = await each.test().emit("go", {"v": 1}).run()
    assert (through_subflow.status, through_subflow.output) == ("completed", 1)
    assert through_item.status == "completed"
    assert [r["result"] for r in through_item.output["results"]] == [11]


async def test_a_schedule_does_not_start_runs_in_a_test() -> None:
    flow = (
        cf.define("nightly").step("s", lambda ctx: "ran").sleep("nap", "2d").on_schedule("@daily")
    )
    result = await flow.test().run()
    assert result.status == "completed"


def test_validate_raises_what_registration_raises() -> None:
    bad = cf.define("bad").step("a", "not a function").step("a", str)  # type: ignore[arg-type]
    with pytest.raises(InvalidWorkflowError) as validated:
        bad.validate()
    with pytest.raises(InvalidWorkflowError) as registered:
        cf.Runtime().register(bad)
    assert validated.value.problems == registered.value.problems
    by_id = cf.define("by-id").subflow("child", "registered-elsewhere")
    by_id.validate()  # only a runtime knows its flows: checked at registration
    with pytest.raises(InvalidWorkflowError, match="no flow 'registered-elsewhere'"):
        cf.Runtime().register(by_id)


def test_introspection_lists_steps_triggers_and_json() -> None:
    flow = (
        cf.define("shop", name="Shop orders", tags=["sales"], description="orders")
        .step("validate", str, timeout="5s", retry=cf.Retry(attempts=2))
        .if_("big", lambda ctx: True)
        .step("review", str)
        .end_if()
        .parallel("side", [str, str], max_concurrency=1)
        .on_webhook("/webhooks/shop")
        .on_schedule("0 9 * * 1", timezone="Europe/Paris")
        .on_event("restock")
    )
    steps = flow.get_steps()
    assert [(s.id, s.kind) for s in steps] == [
        ("validate", "step"),
        ("big", "if"),
        ("side", "parallel"),
    ]
    assert steps[0].options["timeout"] == 5.0
    assert steps[0].options["retry"]["attempts"] == 2
    assert [s.id for s in steps[1].branches[0]] == ["review"]
    assert flow.get_step("review").kind == "step"
    with pytest.raises(KeyError, match="no step 'nope'"):
        flow.get_step("nope")
    assert [(t.kind, t.path or t.cron or t.event) for t in flow.get_triggers()] == [
        ("webhook", "/webhooks/shop"),
        ("schedule", "0 9 * * 1"),
        ("event", "restock"),
    ]
    record = json.loads(flow.to_json())
    assert (record["id"], record["name"], record["tags"]) == ("shop", "Shop orders", ["sales"])
    assert [s["id"] for s in record["steps"]] == ["validate", "big", "side"]


async def test_a_timeout_a_handler_overruns_fires_as_in_production() -> None:
    # the handlers take real time; the test's clock follows it while they run, so the group's
    # deadline (a durable timer on that clock) fires after its 200 ms, not after they return
    async def slow(ctx: cf.FlowContext) -> str:
        await asyncio.sleep(3600)
        return "slow"

    for flow in (
        cf.define("fan").parallel("p", [slow, lambda ctx: 1], timeout="200ms"),
        cf.define("first").race("r", [slow, slow], timeout="200ms"),
        # after a step: its deadline, armed once the step ended, was never looked at, and the
        # group waited for its slowest function (newcomer h35 F2)
        cf.define("after").step("s", lambda ctx: 1).parallel("p", [slow], timeout="200ms"),
    ):
        caught = flow.on_error(lambda ctx: ["fallback", ctx.error.type])
        result = await caught.test().trigger({}).run(within=5)
        assert (result.status, result.output) == (
            "completed",
            ["fallback", "cronflow_actors.errors.StepTimeoutError"],
        )
        assert result.duration < 5


async def test_a_step_read_from_ctx_steps_that_has_no_output_names_those_that_have() -> None:
    """A typo in ``ctx.steps[...]`` was a bare ``KeyError: 'reserv'`` (the newcomer's finding
    11); ``.get`` and ``in`` are a dict's as before."""
    flow = (
        cf.define("typo")
        .step("reserve", lambda ctx: 1)
        .step("peek", lambda ctx: [ctx.steps.get("reserv"), "reserve" in ctx.steps])
        .step("ship", lambda ctx: ctx.steps["reserv"])
    )
    result = await flow.test().run()
    assert result.step("peek").output == [None, True]
    assert result.status == "failed"
    assert "no step 'reserv' has an output here (steps that have: ['peek', 'reserve'])" in (
        result.error or ""
    )


async def test_a_pause_s_callback_that_raises_is_named_and_so_is_the_pause_it_cut() -> None:
    """An ``approval_url`` that raised failed the pause with a bare error that named no
    callback, and the harness said no pause 'ok' came, while listing 'ok' among the pause
    steps (conform h39 F6). One written ``(ctx)`` is refused where the flow is built (devx h40
    F3)."""

    def url(ctx: Any, token: str) -> str:
        return f"https://x/{ctx.last['missing']}"

    one_argument = cf.define("pz1").human_in_the_loop("ok", approval_url=lambda ctx: "https://x")
    with pytest.raises(InvalidWorkflowError, match=r"approval_url must take 2 arguments, as in"):
        one_argument.validate()
    flow = cf.define("pz").step("a", lambda ctx: {"amt": 1})
    flow = flow.human_in_the_loop("ok", approval_url=url)
    harness = flow.test().trigger({}).resume("ok", {"approved": True})
    with pytest.raises(cf.ExpectationError) as failed:
        await harness.run()
    said = str(failed.value)
    assert "resume('ok') was given, but pause 'ok' failed before it opened" in said
    assert "KeyError: " in said
    assert "(raised by the approval_url(ctx, token) of pause 'ok')" in said

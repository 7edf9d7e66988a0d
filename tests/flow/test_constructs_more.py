"""The rest of Cronflow's documented constructs, through ``cf.Runtime`` on a SQLite file: step
delays and durable delays, computed sleeps, log steps, pauses, computed human-step details,
event validation, action retries and timeouts, ``parallel`` limits and deadlines, subflows by
id, ``on_error`` after any construct, and a flow per item in ``for_each`` / ``batch``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InvalidWorkflowError, StepFailedError
from cronflow_actors.kernel import ManualClock

TIMEOUT = "cronflow_actors.errors.StepTimeoutError"


async def settle(rt: cf.Runtime, clock: ManualClock, seconds: float = 0) -> None:
    if seconds:
        clock.advance(seconds)
    await rt.wait_idle()


def runtime(tmp_path: Path, clock: ManualClock, *flows: cf.Flow) -> cf.Runtime:
    return cf.Runtime(db=tmp_path / "more.db", clock=clock, workflows=list(flows))


async def test_delays_and_computed_sleeps_wait_on_durable_timers(
    tmp_path: Path, clock: ManualClock
) -> None:
    ran: list[tuple[str, float]] = []

    def note(name: str) -> Any:
        def record(ctx: cf.FlowContext) -> str:
            ran.append((name, clock.now()))
            return name

        return record

    flow = (
        cf.define("waits")
        .step("first", note("first"))
        .step("later", note("later"), delay="10s")
        .delay("settle", "5s")
        .sleep("nap", lambda ctx: ctx.payload["nap"])
        .step("last", lambda ctx: ctx.last)
    )
    began = clock.now()
    async with runtime(tmp_path, clock, flow) as rt:
        run_id = await rt.trigger("waits", {"nap": "1m"})
        await settle(rt, clock)
        assert ran == [("first", began)]
        steps = {s.id: s for s in (await rt.inspect(run_id)).steps}
        assert "delay:later" not in steps  # its delay is not a step of its own: the step
        assert (steps["later"].status, steps["later"].attempts) == ("waiting", 0)  # waits
        await settle(rt, clock, 10)
        assert ran[-1] == ("later", began + 10)
        await settle(rt, clock, 5)
        assert (await rt.inspect(run_id)).status == "waiting"  # napping for the computed minute
        await settle(rt, clock, 59)
        assert (await rt.inspect(run_id)).status == "waiting"
        await settle(rt, clock, 1)
        result = await rt.wait(run_id, timeout=5)
        # delays and sleeps do not change ctx.last
        assert (result.status, result.output) == ("completed", "later")


async def test_a_bad_computed_duration_fails_the_run_clearly(
    tmp_path: Path, clock: ManualClock
) -> None:
    flow = cf.define("bad-nap").sleep("nap", lambda ctx: "soon").step("after", str)
    async with runtime(tmp_path, clock, flow) as rt:
        result = await rt.wait(await rt.trigger("bad-nap"), timeout=5)
        assert result.status == "failed"
        assert "nap" in (result.error or "")
        assert "'soon'" in (result.error or "")


async def test_log_steps_write_a_line_with_the_run_and_step(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    flow = (
        cf.define("logged")
        .step("price", lambda ctx: 42)
        .log(lambda ctx: f"priced at {ctx.last}")
        .log("done pricing", level="warning")
        .step("after", lambda ctx: ctx.last)
    )
    with caplog.at_level(logging.INFO, logger="cronflow_actors.flow.log"):
        async with runtime(tmp_path, clock, flow) as rt:
            run_id = await rt.trigger("logged")
            result = await rt.wait(run_id, timeout=5)
    assert result.output == 42  # log steps are not ctx.last
    lines = [r for r in caplog.records if r.name == "cronflow_actors.flow.log"]
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in lines] == [
        ("INFO", "priced at 42"),
        ("WARNING", "done pricing"),
    ]
    assert all(getattr(r, "run_id", None) == run_id for r in lines)
    with pytest.raises(InvalidWorkflowError, match="level must be one of"):
        cf.define("x").step("a", str).log("hi", level="loud").build()


async def test_pause_waits_for_resume_with_computed_details(
    tmp_path: Path, clock: ManualClock
) -> None:
    tokens: list[str] = []
    flow = (
        cf.define("approvals")
        .step("quote", lambda ctx: ctx.payload)
        .human_in_the_loop(
            "approve",
            description=lambda ctx: f"approve {ctx.last['amount']} EUR",
            approval_url=lambda ctx, token: f"https://example.test/approve/{token}",
        )
        .pause("hold", on_pause=lambda ctx, token: tokens.append(token))
        .step("done", lambda ctx: ctx.last["approved"])
    )
    async with runtime(tmp_path, clock, flow) as rt:
        run_id = await rt.trigger("approvals", {"amount": 120})
        await settle(rt, clock)
        [first] = await rt.list_paused()
        assert first.description == "approve 120 EUR"
        assert first.approval_url == f"https://example.test/approve/{first.token}"
        await rt.resume(first.token, {"approved": True})
        await settle(rt, clock, 365 * 86400)  # a pause has no timeout
        [second] = await rt.list_paused()
        assert (second.step, second.expires_at, tokens) == ("hold", None, [second.token])
        assert (await rt.inspect(run_id)).steps[-1].status == "waiting"
        await rt.resume(second.token, {"approved": False})
        result = await rt.wait(run_id, timeout=5)
        assert (result.status, result.output) == ("completed", False)


async def test_an_event_that_fails_validation_fails_the_step_and_on_error_catches_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    def check(payload: Any, ctx: cf.FlowContext) -> Any:
        return True if payload.get("amount", 0) > 0 else "the amount must be positive"

    strict = cf.define("strict").wait_for_event("paid", "payment", validate=check)
    forgiving = (
        cf.define("forgiving")
        .wait_for_event("paid", "payment", validate=check)
        .on_error(lambda ctx: {"refused": str(ctx.error)})
    )
    async with runtime(tmp_path, clock, strict, forgiving) as rt:
        failing = await rt.trigger("strict")
        caught = await rt.trigger("forgiving")
        await settle(rt, clock)
        await rt.publish_event("payment", {"amount": -5})
        result = await rt.wait(failing, timeout=5)
        assert result.status == "failed"
        assert "the amount must be positive" in (result.error or "")
        recovered = await rt.wait(caught, timeout=5)
        assert recovered.status == "completed"
        assert "the amount must be positive" in recovered.output["refused"]
        step = (await rt.inspect(caught)).steps[0]
        assert (step.id, step.output) == ("paid", recovered.output)


async def test_actions_retry_on_the_clock_and_time_out(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    done = asyncio.Event()

    retried: list[tuple[int, float]] = []

    async def flaky(ctx: cf.FlowContext) -> None:
        calls.append(ctx.attempt)  # each call sees its own attempt
        if len(calls) < 3:
            raise ConnectionError("down")
        done.set()

    async def hangs(ctx: cf.FlowContext) -> None:
        await asyncio.sleep(3600)

    flow = (
        cf.define("acting")
        .action(
            "notify",
            flaky,
            retry=cf.Retry(
                attempts=3,
                delay="1s",
                backoff="fixed",
                on_retry=lambda ctx, error, attempt, delay: retried.append((attempt, delay)),
            ),
        )
        .action("stuck", hangs, timeout=0.05)
        .step("next", lambda ctx: "went on")
    )
    async with runtime(tmp_path, clock, flow) as rt:
        run_id = await rt.trigger("acting")
        assert (await rt.wait(run_id, timeout=5)).output == "went on"
        for _ in range(2):
            await asyncio.sleep(0.01)
            await settle(rt, clock, 1)
        await asyncio.wait_for(done.wait(), 5)
        assert calls == [1, 2, 3]
        assert retried == [(1, 1.0), (2, 1.0)]  # as a step's retry policy calls it
        await rt.wait_idle()
        # its record counts the calls, not the one dispatch (the newcomer's finding 2: 1)
        notify = next(s for s in (await rt.inspect(run_id)).steps if s.id == "notify")
        assert (notify.status, notify.attempts) == ("completed", 3)
    # each failed call that another followed is logged, with its attempt
    said = [r.getMessage() for r in caplog.records if "another attempt follows" in r.getMessage()]
    assert [m.split("(attempt ")[1][:1] for m in said] == ["1", "2"]
    assert all("action 'notify'" in m and "ConnectionError: down" in m for m in said)


async def test_parallel_max_concurrency_and_timeout(tmp_path: Path, clock: ManualClock) -> None:
    running, most = 0, 0

    def worker(n: int) -> Any:
        async def work(ctx: cf.FlowContext) -> int:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1
            return n

        return work

    async def forever(ctx: cf.FlowContext) -> None:
        await asyncio.sleep(3600)

    limited = cf.define("limited").parallel("fan", [worker(n) for n in range(6)], max_concurrency=2)
    bounded = cf.define("bounded").parallel("slow", [forever], timeout="30s")
    caught = (
        cf.define("caught")
        .race("slow", [forever], timeout="30s")
        .on_error(lambda ctx: [ctx.error.type, str(ctx.error)])
    )
    lone = cf.define("lone").race("slow", [forever], timeout="30s")
    async with runtime(tmp_path, clock, limited, bounded, caught, lone) as rt:
        result = await rt.wait(await rt.trigger("limited"), timeout=5)
        assert (result.output, most) == ([0, 1, 2, 3, 4, 5], 2)
        slow = await rt.trigger("bounded")
        await asyncio.sleep(0.05)  # its function is running (wait_idle would wait for it)
        clock.advance(30)
        failed = await rt.wait(slow, timeout=5)
        assert failed.status == "failed"
        timed_out = "StepTimeoutError: parallel 'slow' timed out after 30 s"
        assert failed.error == f"step 'slow': {timed_out}"  # (was the engine's "task 'slow'")
        # the step says why it failed (conform h33 F1: no error, no type, on the step)
        [step] = (await rt.inspect(slow)).steps
        assert (step.status, step.error, step.error_type) == ("failed", timed_out, TIMEOUT)
        # its fallback reads the timeout as a step's: a StepTimeoutError (not an unknown type)
        recovered = await rt.trigger("caught")
        await asyncio.sleep(0.05)
        clock.advance(30)
        said = "StepTimeoutError: race 'slow' timed out after 30 s"
        assert (await rt.wait(recovered, timeout=5)).output == [TIMEOUT, said]
        # and the error it answered stays beside its output, as a step's does
        [step] = (await rt.inspect(recovered)).steps
        assert (step.status, step.output, step.error) == ("completed", [TIMEOUT, said], said)
        # a race of one function whose deadline passed failed (its item canceled, conform h33 F1)
        lone = await rt.trigger("lone")
        await asyncio.sleep(0.05)
        clock.advance(30)
        assert (await rt.wait(lone, timeout=5)).status == "failed"
        [step] = (await rt.inspect(lone)).steps
        assert (step.status, step.error_type) == ("failed", TIMEOUT)
        assert step.error == "StepTimeoutError: race 'slow' timed out after 30 s"


async def test_a_deadline_inside_an_item_flow_or_subflow_gives_its_step_the_type(
    tmp_path: Path, clock: ManualClock
) -> None:
    """(conform h34 F1) A ``for_each`` or ``subflow`` whose child a group's deadline failed read
    ``error_type`` None, where the same step failed by a raise names the raised class."""

    async def forever(ctx: cf.FlowContext) -> None:
        await asyncio.sleep(3600)

    kid = cf.define("kid").parallel("kp", [forever], timeout="30s")
    per_item = cf.define("each").for_each(
        "fe", lambda ctx: [1], lambda item, flow: flow.race("r", [forever], timeout="30s")
    )
    nested = cf.define("nested").subflow("s", kid)
    async with runtime(tmp_path, clock, per_item, nested) as rt:
        runs = [await rt.trigger("each"), await rt.trigger("nested")]
        await asyncio.sleep(0.05)  # their functions are running
        clock.advance(30)
        for run_id in runs:
            assert (await rt.wait(run_id, timeout=5)).status == "failed"
            [step] = (await rt.inspect(run_id)).steps
            assert (step.status, step.error_type) == ("failed", TIMEOUT), step
            assert "StepTimeoutError" in (step.error or "")


async def test_on_error_after_parallel_race_for_each_batch_and_subflow(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    class PaymentError(Exception):
        def __init__(self, code: str) -> None:
            super().__init__(f"payment refused ({code})")
            self.code = code

    def refuse(ctx: Any) -> None:
        raise PaymentError("card-declined")

    def fallback(ctx: cf.FlowContext) -> dict[str, Any]:
        error = ctx.error
        assert isinstance(error, StepFailedError)
        return {"recovered": ctx.step_name, "type": error.type, "code": error.code}

    child = cf.define("child").step("pay", refuse)
    flows = [
        cf.define("p").parallel("all", [lambda ctx: 1, refuse]).on_error(fallback),
        cf.define("r").race("first", [refuse]).on_error(fallback),
        cf.define("e").for_each("each", lambda ctx: [1, 2], lambda i, ctx: refuse(ctx)),
        cf.define("b").batch("chunks", lambda ctx: [1, 2, 3], 2, lambda b, ctx: refuse(ctx)),
        cf.define("s").subflow("sub", child).on_error(fallback).step("after", lambda c: c.last),
    ]
    flows[2].on_error(fallback)
    flows[3].on_error(fallback)
    caplog.set_level(logging.WARNING, logger="cronflow_actors.engine.handlers")
    async with runtime(tmp_path, clock, child, *flows) as rt:
        for flow, step in (("p", "all"), ("r", "first"), ("e", "each"), ("b", "chunks")):
            run_id = await rt.trigger(flow)
            result = await rt.wait(run_id, timeout=5)
            assert result.status == "completed", (flow, result.error)
            assert result.output["recovered"] == step
            assert result.output["code"] == "card-declined"
            assert result.output["type"].endswith("PaymentError")
            info = await rt.inspect(run_id)
            assert [s.id for s in info.steps] == [step]
            assert info.steps[0].output == result.output
            # the failure the fallback answered, in the words a step's own would be in
            assert info.steps[0].error == "PaymentError: payment refused (card-declined)"
        # a branch's failure that the group's on_error answers is a warning, not an error with
        # its traceback (the README's example printed one): as a step's answered failure
        answered = [r for r in caplog.records if "its on_error answers it" in r.getMessage()]
        assert {r.levelno for r in answered} == {logging.WARNING}
        # p's failing branch, r's, b's first batch (the next never starts), and e's first
        # failing item: that failure fails the for_each, whose other item is canceled unless it
        # has failed already (on a loaded machine its thread may not have run yet)
        by_step = Counter(getattr(r, "step", None) for r in answered)
        assert by_step["each"] in (1, 2), by_step
        assert {**by_step, "each": 1} == {"all": 1, "first": 1, "each": 1, "chunks": 1}
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        sub = await rt.wait(await rt.trigger("s"), timeout=5)
        assert sub.status == "completed"
        assert sub.output["recovered"] == "sub"  # ctx.last after the fallback is its output
    with pytest.raises(InvalidWorkflowError, match=r"\.on_error\(\) must follow"):
        cf.define("x").sleep("nap", 1).on_error(fallback).build()


async def test_subflows_by_registered_id(tmp_path: Path, clock: ManualClock) -> None:
    child = cf.define("double").step("twice", lambda ctx: ctx.payload * 2)
    parent = (
        cf.define("parent")
        .subflow("static", "double", input=21)
        .subflow("computed", "double", input=lambda ctx: ctx.last + 1)
    )
    async with runtime(tmp_path, clock, child, parent) as rt:
        assert (await rt.wait(await rt.trigger("parent"), timeout=5)).output == 86
        orphan = cf.define("orphan").subflow("x", "nowhere")
        with pytest.raises(InvalidWorkflowError, match="no flow 'nowhere' is registered"):
            rt.register(orphan)
        loop = cf.define("loop").step("a", str)
        loop.subflow("again", loop)
        with pytest.raises(InvalidWorkflowError, match="runs itself as a subflow"):
            rt.register(loop)


async def test_a_flow_per_item_runs_each_item_as_a_child_workflow(
    tmp_path: Path, clock: ManualClock
) -> None:
    sent: list[str] = []

    def per_user(user: Any, flow: cf.Flow) -> cf.Flow:
        return (
            flow.step("greet", lambda ctx: f"hello {user['name']}")
            .sleep("wait", "1h")
            .step("send", lambda ctx: sent.append(ctx.last) or ctx.payload["name"].upper())
        )

    users = [{"name": "ada"}, {"name": "bob"}]
    flow = cf.define("welcome").for_each("users", lambda ctx: ctx.payload, per_user)
    db = tmp_path / "more.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        run_id = await rt.trigger("welcome", users)
        await settle(rt, clock)
        assert (await rt.inspect(run_id)).status == "waiting"
    # a new runtime: each item's flow is built again for its item, and goes on
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await settle(rt, clock, 3600)
        result = await rt.wait(run_id, timeout=5)
    assert result.status == "completed"
    assert sorted(sent) == ["hello ada", "hello bob"]
    assert result.output == {
        "type": "forEach",
        "name": "users",
        "results": [
            {"item": {"name": "ada"}, "result": "ADA", "index": 0},
            {"item": {"name": "bob"}, "result": "BOB", "index": 1},
        ],
        "total_items": 2,
    }


async def test_a_flow_per_batch_runs_one_batch_after_another(
    tmp_path: Path, clock: ManualClock
) -> None:
    order: list[list[int]] = []

    def per_batch(batch: Any, flow: cf.Flow) -> cf.Flow:
        return flow.step("sum", lambda ctx: order.append(list(ctx.payload)) or sum(ctx.payload))

    flow = cf.define("sums").batch("chunks", lambda ctx: [1, 2, 3, 4, 5], 2, per_batch)
    empty = cf.define("none").for_each("nothing", lambda ctx: [], per_batch)
    async with runtime(tmp_path, clock, flow, empty) as rt:
        result = await rt.wait(await rt.trigger("sums"), timeout=5)
        assert order == [[1, 2], [3, 4], [5]]
        assert [r["result"] for r in result.output["results"]] == [3, 7, 5]
        assert result.output["total_items"] == 5
        nothing = await rt.wait(await rt.trigger("none"), timeout=5)
        assert nothing.output["results"] == []


def test_a_flow_per_item_may_not_be_shaped_by_the_item() -> None:
    def shaped(user: Any, flow: cf.Flow) -> cf.Flow:
        return flow.step(f"greet-{user['name']}", str)

    with pytest.raises(InvalidWorkflowError, match="may not depend on the item"):
        cf.define("shaped").for_each("users", lambda ctx: [], shaped).build()


async def test_a_condition_that_raises_fails_the_run_not_the_step_before_it(
    rt: cf.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # the step before the branch completed (its output is kept, its fallback and retries are
    # not for the condition's error); the run fails with the condition's error, hooks hear it
    ran: list[str] = []
    failures: list[Any] = []
    flow = (
        cf.define("branchy", hooks=cf.Hooks(on_failure=lambda ctx: failures.append(ctx.error)))
        .step("a", lambda ctx: ran.append("a") or 0, retry=cf.Retry(attempts=3, delay="1s"))
        .on_error(lambda ctx: ran.append("fallback") or "fb")
        .if_("check", lambda ctx: ctx.last["k"])
        .step("then", lambda ctx: ran.append("then"))
        .end_if()
    )
    loop = (
        cf.define("loopy")
        .step("s", lambda ctx: 5)
        .while_("w", lambda ctx: 1 / 0, lambda ctx: ctx.last + 1)
    )
    rt.register(flow)
    rt.register(loop)
    caplog.set_level(logging.DEBUG, logger="cronflow_actors.engine.withdrawal")
    run_id = await rt.trigger("branchy", {})
    result = await rt.wait(run_id, timeout=5)
    assert result.status == "failed"
    assert result.error == (  # in the flow's words (conform h31 F6), and the step shows it
        "step 'check': its condition raised TypeError: 'int' object is not subscriptable"
    )
    [check] = [s for s in (await rt.inspect(run_id)).steps if s.id == "check"]
    assert (check.kind, check.status) == ("if", "failed")
    assert check.error == "its condition raised TypeError: 'int' object is not subscriptable"
    # its class, for a hook that tells failures apart (conform h32 F5: None everywhere)
    assert (check.error_type, (await rt.inspect(run_id)).error_type) == (
        "builtins.TypeError",
        "builtins.TypeError",
    )
    assert ran == ["a"]
    # where in the condition: its traceback at DEBUG (newcomer h22 L2: none anywhere)
    [raised] = [r for r in caplog.records if r.getMessage().startswith("router of task 'if:")]
    assert raised.levelno == logging.DEBUG
    assert raised.exc_info is not None
    assert raised.exc_info[0] is TypeError
    await rt.wait_idle()  # the hook, on a pool thread
    assert [str(error) for error in failures] == [result.error]
    assert [error.type for error in failures] == ["builtins.TypeError"]
    a, _check = (await rt.inspect(run_id)).steps
    assert (a.id, str(a.status), a.output, a.error, a.attempts) == ("a", "completed", 0, None, 1)

    # a condition after a wait_for_event raises when the event comes: the run fails with it,
    # and the event was heard (not refused and lost, the run waiting for good)
    heard = (
        cf.define("heard")
        .wait_for_event("paid", "paid")
        .if_("big", lambda ctx: ctx.last["amount"] > 10)
        .step("ship", lambda ctx: "shipped")
        .end_if()
    )
    rt.register(heard)
    heard_id = await rt.trigger("heard", {})
    await rt.wait_idle()
    assert (await rt.publish_event("paid", {})).delivered == [heard_id]
    failed = await rt.wait(heard_id, timeout=5)
    assert failed.error == "step 'big': its condition raised KeyError: 'amount'"

    loop_id = await rt.trigger("loopy", {})
    looped = await rt.wait(loop_id, timeout=5)
    assert (looped.status, "ZeroDivisionError" in (looped.error or "")) == ("failed", True)
    s, w = (await rt.inspect(loop_id)).steps
    assert (s.id, str(s.status), s.output) == ("s", "completed", 5)
    assert (w.id, w.kind, w.status) == ("w", "while", "failed")  # before its first pass
    assert w.error_type == "builtins.ZeroDivisionError"
    # in a subflow, the run's too
    rt.register(cf.define("outer").subflow("inner", loop))
    outer = await rt.wait(await rt.trigger("outer", {}), timeout=5)
    assert outer.status == "failed"
    assert (await rt.inspect(outer.id)).error_type == "builtins.ZeroDivisionError"


@pytest.mark.parametrize(
    "flow",
    [
        cf.define("one-item").for_each("fe", lambda ctx: [1], lambda item, ctx: 1 / 0),
        cf.define("one-chunk").batch("fe", lambda ctx: [1, 2], 5, lambda chunk, ctx: 1 / 0),
        cf.define("one-branch").parallel("fe", [lambda ctx: 1 / 0]),
        cf.define("two-items").for_each("fe", lambda ctx: [1, 2], lambda item, ctx: 1 / 0),
    ],
    ids=lambda flow: flow.id,
)
async def test_a_construct_its_on_error_answered_shows_completed_however_many_items_it_ran(
    rt: cf.Runtime, flow: cf.Flow
) -> None:
    rt.register(flow.on_error(lambda ctx: "fb").step("after", lambda ctx: ctx.last))
    run_id = await rt.trigger(flow.id, {})
    assert (await rt.wait(run_id, timeout=5)).output == "fb"
    step = (await rt.inspect(run_id)).steps[0]
    assert (step.id, str(step.status), step.output) == ("fe", "completed", "fb")
    assert step.error == "ZeroDivisionError: division by zero"  # kept beside the answer


async def test_a_plain_step_that_timed_out_waiting_for_a_thread_never_runs_late(
    tmp_path: Path,
) -> None:
    release = threading.Event()
    charged: list[str] = []

    async def fallback(ctx: Any) -> str:  # on the loop: the one thread is held
        return f"fallback: {type(ctx.error).__name__}"

    hold = cf.define("hold").step("h", lambda ctx: release.wait(10))
    pay = (
        cf.define("pay")
        .step("charge", lambda ctx: charged.append("charged"), timeout="0.2s")
        .on_error(fallback)
    )
    async with cf.Runtime(db=tmp_path / "pool.db", blocking_workers=1) as rt:
        rt.register(hold)
        rt.register(pay)
        holding = await rt.trigger("hold", {})  # takes the one pool thread
        result = await rt.wait(await rt.trigger("pay", {}), timeout=5)
        assert (result.status, result.output) == ("completed", "fallback: StepTimeoutError")
        release.set()
        await rt.wait(holding, timeout=5)
        await rt.wait_idle()
    assert charged == []  # given up while it waited: the run took its fallback, and that stands


async def test_plain_hooks_and_pause_callbacks_run_off_the_event_loop(rt: cf.Runtime) -> None:
    # each may block (a chat message): on the blocking pool, never on the loop's thread
    loop_thread = threading.get_ident()
    threads: dict[str, int] = {}

    def record(name: str) -> Any:
        return lambda *args: threads.setdefault(name, threading.get_ident())

    hooks = cf.Hooks(on_start=record("on_start"), on_success=record("on_success"))
    asks = (
        cf.define("asks", hooks=hooks)
        .human_in_the_loop("ok", description="ok?", on_pause=record("on_pause"), timeout="1h")
        .step("after", lambda ctx: "done")
    )
    rt.register(asks)
    run_id = await rt.trigger("asks", {})
    await rt.wait_idle()
    [pause] = await rt.list_paused()
    await rt.resume(pause.token, {"approved": True})
    await rt.wait(run_id, timeout=5)
    await rt.wait_idle()
    assert sorted(threads) == ["on_pause", "on_start", "on_success"]
    assert loop_thread not in threads.values()


async def test_a_runs_plain_hooks_run_in_order_though_off_the_loop(rt: cf.Runtime) -> None:
    # each on a pool thread of its own, yet on_start ends before the outcome's hook begins
    called: list[str] = []

    def slow_start(ctx: Any) -> None:
        time.sleep(0.3)
        called.append("on_start")

    async def quick(ctx: Any) -> str:
        return "done"

    hooks = cf.Hooks(
        on_start=slow_start,
        on_success=lambda ctx: called.append("on_success"),
        on_complete=lambda ctx: called.append("on_complete"),
    )
    rt.register(cf.define("ordered", hooks=hooks).step("s", quick))
    run_id = await rt.trigger("ordered", {})
    await rt.wait(run_id, timeout=5)
    await rt.wait_idle()
    assert called == ["on_start", "on_success", "on_complete"]


def _item(x: int) -> dict[str, int]:
    if x == 2:
        raise ValueError("bad item 2")
    return {"item": x}


@pytest.mark.parametrize("shape", ["for_each", "per-item", "batch", "per-chunk", "parallel"])
async def test_a_failed_fan_out_shows_no_sibling_s_result(
    tmp_path: Path, clock: ManualClock, shape: str
) -> None:
    """One item of a fan-out failed: the step showed another item's result as its output (a
    different one each run), a flow per item without the failure's class and in the engine's
    words (newcomer h29 F1); its ``on_error`` read that sibling's result as ``ctx.last``, and
    the construct's own failure record in ``ctx.steps`` (F2). Its output is none, its error
    the item's, and its fallback sees the step before's output, as after a plain step."""
    items = lambda ctx: [0, 1, 3, 2]  # noqa: E731 (the failing item last: its siblings end first)
    fan_outs = {
        "for_each": lambda f: f.for_each("each", items, lambda x, ctx: _item(x)),
        "per-item": lambda f: f.for_each(
            "each", items, lambda x, flow: flow.step("work", lambda ctx: _item(ctx.payload))
        ),
        "batch": lambda f: f.batch("each", items, 2, lambda chunk, ctx: [_item(x) for x in chunk]),
        "per-chunk": lambda f: f.batch(
            "each",
            items,
            2,
            lambda chunk, flow: flow.step("work", lambda ctx: [_item(x) for x in ctx.payload]),
        ),
        "parallel": lambda f: f.parallel("each", [lambda ctx: "ok", lambda ctx: _item(2)]),
    }

    def seen(ctx: Any) -> Any:
        return {"last": ctx.last, "steps": sorted(ctx.steps)}

    before = cf.define(f"fan-{shape}").step("prev", lambda ctx: {"prev": True})
    answered = cf.define(f"answered-{shape}").step("prev", lambda ctx: {"prev": True})
    async with runtime(
        tmp_path, clock, fan_outs[shape](before), fan_outs[shape](answered).on_error(seen)
    ) as rt:
        failed = await rt.wait(await rt.trigger(f"fan-{shape}"), timeout=5)
        assert failed.status == "failed"
        step = {s.id: s for s in (await rt.inspect(failed.id)).steps}["each"]
        assert (step.status, step.output, step.error_type) == (
            "failed",
            None,
            "builtins.ValueError",
        )
        assert step.error is not None
        assert step.error.endswith("ValueError: bad item 2")
        assert "work item" not in step.error  # (a flow per item's: "step 'work': ...")
        result = await rt.wait(await rt.trigger(f"answered-{shape}"), timeout=5)
        assert (result.status, result.output) == (
            "completed",
            {"last": {"prev": True}, "steps": ["prev"]},
        )


async def test_a_step_whose_output_holds_the_engine_s_marker_is_still_a_step(
    tmp_path: Path, clock: ManualClock
) -> None:
    """``ctx.steps`` leaves out a construct's failure record (its only key the engine's
    marker), not a step's own output that merely holds that key (the reviewer's h29 L1)."""
    flow = cf.define("marked").step("a", lambda ctx: {":caught": 1, "x": 2})
    flow = flow.step("b", lambda ctx: sorted(ctx.steps))
    async with runtime(tmp_path, clock, flow) as rt:
        result = await rt.wait(await rt.trigger("marked"), timeout=5)
    assert result.output == ["a"]


@pytest.mark.parametrize("shape", ["per-item", "subflow", "while"])
async def test_a_resumed_fallback_reads_the_step_before_as_ctx_last(
    tmp_path: Path, clock: ManualClock, shape: str
) -> None:
    """A construct failed and its fallback raised; resumed, the fallback read the engine's
    failure record as ``ctx.last``, carried as the construct's output (the verifier's h29 V1).
    It reads the step before's, as in the run it came from."""
    fixed: list[bool] = []
    seen: list[Any] = []

    def fallback(ctx: Any) -> str:
        seen.append(ctx.last)
        if not fixed:
            raise RuntimeError("the fallback's own bug")
        return "fell back"

    def bad(ctx: Any) -> None:
        raise ValueError("bad")

    child = cf.define(f"child-{shape}").step("c", bad)
    constructs = {
        "per-item": lambda f: f.for_each("x", lambda ctx: [1], lambda i, flow: flow.step("c", bad)),
        "subflow": lambda f: f.subflow("x", child),
        "while": lambda f: f.while_("x", lambda ctx: True, bad),
    }
    flow = constructs[shape](cf.define(f"fb-{shape}").step("pre", lambda ctx: "PRE"))
    async with runtime(tmp_path, clock, child, flow.on_error(fallback)) as rt:
        failed = await rt.wait(await rt.trigger(f"fb-{shape}"), timeout=5)
        assert failed.status == "failed"
        fixed.append(True)
        resumed = await rt.wait(await rt.replay(failed.id, resume=True), timeout=5)
    assert (resumed.status, resumed.output) == ("completed", "fell back")
    assert seen == ["PRE", "PRE"]


async def test_a_step_output_shaped_like_the_engine_s_failure_record_is_an_output(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A step's own output of the shape of a construct's failure record (an echoed payload:
    any caller's to choose) was read as one: its run's views raised, and its resume (its
    migration) raised where the release before went on (the final checker's h29 N1)."""
    fixed: list[bool] = []
    seen: list[Any] = []

    def z(ctx: Any) -> str:
        seen.append((ctx.last, sorted(ctx.steps)))
        if not fixed:
            raise ValueError("once")
        return "ok"

    flow = cf.define("echo").step("log", lambda ctx: ctx.payload).step("z", z)
    async with runtime(tmp_path, clock, flow) as rt:
        failed = await rt.wait(await rt.trigger("echo", {":caught": "x"}), timeout=5)
        assert failed.status == "failed"
        steps = {s.id: s.output for s in (await rt.inspect(failed.id)).steps}
        assert steps["log"] == {":caught": "x"}
        fixed.append(True)
        resumed = await rt.wait(await rt.replay(failed.id, resume=True), timeout=5)
    assert (resumed.status, resumed.output) == ("completed", "ok")
    assert seen == [({":caught": "x"}, ["log"])] * 2

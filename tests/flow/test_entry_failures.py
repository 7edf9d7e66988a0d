"""A function a construct calls as it begins (a ``for_each``'s or ``batch``'s items, a
``subflow``'s ``input``, a pause's ``description``) that raises while what came before it is
recorded (a step's result, a sleep's end, an event): the construct fails with that error, so its
``on_error`` answers it, and what came before stands. (A call, a ``resume``, is refused instead,
and nothing changes: tests/flow/test_constructs_more.py has the same for conditions.)"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import uuid
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import (
    ConfigurationError,
    InvalidEventError,
    InvalidWorkflowError,
    LeaseLostError,
    PublishInterruptedError,
    RuntimeNotRunningError,
    StoreFailedError,
)
from cronflow_actors.flow.waits import auto_start
from cronflow_actors.http.problems import as_problem
from cronflow_actors.kernel import ManualClock
from cronflow_actors.net.spec import WaitSpec


def _missing(ctx: Any) -> Any:
    return ctx.payload["lines"]


async def _steps(rt: cf.Runtime, run_id: str) -> dict[str, tuple[str, Any]]:
    return {s.id: (str(s.status), s.output) for s in (await rt.inspect(run_id)).steps}


async def test_items_that_raise_after_a_step_fail_the_construct_not_the_step(
    rt: cf.Runtime,
) -> None:
    charged: list[int] = []
    answered = (
        cf.define("answered")
        .step("charge", lambda ctx: charged.append(1) or {"charged": 10})
        .for_each("lines", _missing, lambda item, ctx: item)
        .on_error(lambda ctx: f"fallback: {ctx.error}")
        .step("after", lambda ctx: ctx.last)
    )
    unanswered = (
        cf.define("unanswered")
        .step("charge", lambda ctx: charged.append(1) or {"charged": 10})
        .batch("lines", _missing, 2, lambda item, ctx: item)
    )
    rt.register(answered)
    rt.register(unanswered)

    done_id = await rt.trigger("answered", {})
    done = await rt.wait(done_id, timeout=5)
    failed_id = await rt.trigger("unanswered", {})
    failed = await rt.wait(failed_id, timeout=5)

    error = "on_enabled of task 'lines': KeyError: 'lines'"
    assert (done.status, done.output) == ("completed", f"fallback: {error}")
    assert (await _steps(rt, done_id))["charge"] == ("completed", {"charged": 10})
    assert failed.status == "failed"
    assert failed.error == error
    assert (await _steps(rt, failed_id))["charge"] == ("completed", {"charged": 10})
    assert charged == [1, 1]  # each charge ran once, and is recorded as it went


async def test_a_subflow_input_that_raises_after_a_step_is_answered_by_its_on_error(
    rt: cf.Runtime,
) -> None:
    child = cf.define("child").step("c", lambda ctx: "child ran")
    flow = (
        cf.define("parent")
        .step("a", lambda ctx: "A")
        .subflow("s", child, input=_missing)
        .on_error(lambda ctx: "fallback")
    )
    rt.register(child)
    rt.register(flow)
    run_id = await rt.trigger("parent", {})
    result = await rt.wait(run_id, timeout=5)
    assert (result.status, result.output) == ("completed", "fallback")
    assert (await _steps(rt, run_id))["a"] == ("completed", "A")


async def test_items_that_raise_after_a_sleep_end_the_run_rather_than_leave_it_waiting(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    flow = (
        cf.define("slept")
        .sleep("nap", "10s")
        .for_each("lines", _missing, lambda item, ctx: item)
        .on_error(lambda ctx: "fallback")
    )
    rt.register(flow)
    run_id = await rt.trigger("slept", {})
    await rt.wait_idle()
    clock.advance(11)
    result = await rt.wait(run_id, timeout=5)
    assert (result.status, result.output) == ("completed", "fallback")


async def test_items_that_raise_when_the_event_comes_are_answered_and_the_event_heard(
    rt: cf.Runtime,
) -> None:
    flow = (
        cf.define("heard")
        .wait_for_event("paid", "paid")
        .for_each("lines", lambda ctx: ctx.last["lines"], lambda item, ctx: item)
        .on_error(lambda ctx: "fallback")
    )
    rt.register(flow)
    run_id = await rt.trigger("heard", {})
    await rt.wait_idle()
    assert (await rt.publish_event("paid", {"amount": 3})).delivered == [run_id]
    result = await rt.wait(run_id, timeout=5)
    assert (result.status, result.output) == ("completed", "fallback")


async def test_a_pause_whose_description_raises_fails_the_pause_not_the_step_before(
    rt: cf.Runtime,
) -> None:
    flow = (
        cf.define("asks")
        .step("a", lambda ctx: "A")
        .human_in_the_loop("approve", description=_missing, timeout="1h")
    )
    rt.register(flow)
    run_id = await rt.trigger("asks", {})
    result = await rt.wait(run_id, timeout=5)
    assert result.status == "failed"
    # the callback named, as it is called (conform h39 F6)
    assert str(result.error).endswith(
        "KeyError: 'lines' (raised by the description(ctx) of pause 'approve')"
    )
    steps = await _steps(rt, run_id)
    assert steps["a"] == ("completed", "A")
    assert steps["approve"][0] == "failed"
    assert await rt.list_paused() == []


def _raising(error: BaseException) -> Any:
    def items(ctx: Any) -> Any:
        raise error

    return items


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (KeyError("lines"), "KeyError: 'lines'"),
        # an OSError or a CronflowError of the flow's own code is the flow's, not the runtime's
        (TimeoutError("the rates service did not answer"), "TimeoutError: the rates service"),
        (ConfigurationError("rate", -1, "a rate >= 0"), "ConfigurationError: setting 'rate'"),
    ],
)
async def test_a_listener_whose_start_raises_leaves_the_others_and_the_waiting_runs_to_hear(
    rt: cf.Runtime, error: BaseException, said: str
) -> None:
    broken = (
        cf.define("broken")
        .on_event("ping")
        .for_each("lines", _raising(error), lambda item, ctx: item)
    )
    heard = cf.define("heard").on_event("ping").step("s", lambda ctx: "started by ping")
    waiter = cf.define("waiter").wait_for_event("w", "ping").step("after", lambda ctx: "woken")
    for flow in (broken, heard, waiter):
        rt.register(flow)
    waiting = await rt.trigger("waiter", {})
    await rt.wait_idle()

    result = await rt.publish_event("ping", {"n": 1})

    [started] = result
    assert (await rt.wait(started, timeout=5)).output == "started by ping"
    assert result.delivered == [waiting]
    assert (await rt.wait(waiting, timeout=5)).output == "woken"
    [refusal] = result.refused
    assert refusal.workflow == "broken"
    assert refusal.detail.startswith(f"its start raised {said}")
    assert await rt.list_runs(workflow="broken") == []  # no run recorded for it


async def test_a_publish_the_runtime_cuts_after_a_start_says_what_it_started(
    rt: cf.Runtime,
) -> None:
    # the runtime's own trouble (here: the refusal a stopping runtime gives) cuts the publish
    stopping = RuntimeNotRunningError("start a run", "stopping")
    first = cf.define("a-first").on_event("cut").step("s", lambda ctx: "started")
    second = cf.define("b-second").on_event("cut").for_each("i", _raising(stopping), _echo)
    waiter = cf.define("waiter").wait_for_event("w", "cut").step("after", lambda ctx: "woken")
    for flow in (first, second, waiter):
        rt.register(flow)
    waiting = await rt.trigger("waiter", {})
    await rt.wait_idle()

    with pytest.raises(PublishInterruptedError) as cut:
        await rt.publish_event("cut", {})

    [started] = cut.value.started
    assert (await rt.wait(started, timeout=5)).output == "started"
    assert cut.value.error is stopping
    assert f"started 1 run(s) ({started})" in str(cut.value)
    assert "the flows that started will start again" in str(cut.value)
    assert (await rt.inspect(waiting)).status == "waiting"  # not heard: the call says so
    problem = as_problem(cut.value)
    assert (problem.status, problem.slug, problem.fields) == (
        503,
        "publish-interrupted",
        {"started": [started], "delivered": []},
    )
    # with nothing started yet, the runtime's refusal is the answer as it was: nothing taken on
    rt.register(cf.define("alone").on_event("cut-alone").for_each("i", _raising(stopping), _echo))
    with pytest.raises(RuntimeNotRunningError):
        await rt.publish_event("cut-alone", {})


async def two_waiting(rt: cf.Runtime) -> tuple[str, str]:
    """Two runs of a ``waiter`` flow waiting for the event ``cut``."""
    rt.register(cf.define("waiter").wait_for_event("w", "cut").step("after", lambda c: c.last))
    first, second = await rt.trigger("waiter", {}), await rt.trigger("waiter", {})
    await rt.wait_idle()
    return first, second


def cut_at(rt: cf.Runtime, instance_id: str, trouble: Exception) -> Any:
    """Make the runtime's trouble cut a publish as it reaches ``instance_id``; returns what
    to put back in ``rt.events._send``."""
    send = rt.events._send

    async def cut(to: str, command: Any) -> Any:
        if to == instance_id:
            raise trouble
        return await send(to, command)

    rt.events._send = cut  # type: ignore[method-assign]
    return send


@pytest.mark.parametrize(
    "trouble",
    [
        StoreFailedError("the store", "the disk is full"),
        LeaseLostError("the store", "me", "another"),
        sqlite3.OperationalError("disk I/O error"),  # a driver's own, from a claim, say
    ],
    ids=["store", "lease", "driver"],
)
async def test_a_publish_the_runtime_cuts_while_it_wakes_steps_says_so(
    rt: cf.Runtime, trouble: Exception
) -> None:
    """A process that lost its lease mid-publish answered 202 with nothing delivered (or a
    false filter error): the waiting runs never heard the event, and the publisher was told it
    was done (pg h43 F4). The runtime's trouble cuts the publish: a 503 that says what it did."""
    first, second = await two_waiting(rt)
    send = cut_at(rt, second, trouble)
    with pytest.raises(PublishInterruptedError) as cut:
        await rt.publish_event("cut", {"n": 1})
    assert (cut.value.started, cut.value.delivered, cut.value.error) == ([], [first], trouble)
    assert f"reached the waiting steps of 1 run(s) ({first})" in str(cut.value)
    problem = as_problem(cut.value)
    assert (problem.status, problem.slug) == (503, "publish-interrupted")
    assert (await rt.wait(first, timeout=5)).output == {"n": 1}
    assert (await rt.inspect(second)).status == "waiting"  # did not hear it: it can, sent again
    rt.events._send = send  # type: ignore[method-assign]
    assert (await rt.publish_event("cut", {"n": 2})).delivered == [second]


async def test_a_filter_that_raises_a_database_error_is_the_filter_s_not_the_runtime_s(
    rt: cf.Runtime,
) -> None:
    """A filter that raised a driver's error (it asked a database of its own) was taken for
    the runtime's trouble: every publish of the event was a 503 (review h43 F1)."""

    def asks(payload: Any, ctx: Any) -> bool:
        raise sqlite3.OperationalError("no such table: orders")

    rt.register(cf.define("asks").wait_for_event("w", "cut", filter=asks).step("s", str))
    waiting = await rt.trigger("asks", {})
    await rt.wait_idle()
    published = await rt.publish_event("cut", {"n": 1})
    [raised] = published.filter_errors
    assert (raised.run_id, raised.detail) == (waiting, "OperationalError: no such table: orders")


async def test_a_keyed_publish_reaches_a_step_whose_clock_is_ahead_of_the_publisher_s(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """The first publish of a key skipped the waits made after its own time: a wait another
    process made, its clock ahead, heard nothing (review h43 F3). Only a retry is bounded."""
    rt.register(cf.define("ahead").wait_for_event("w", "tick").step("s", lambda c: c.last))
    waiting = await rt.trigger("ahead", {})
    await rt.wait_idle()

    class Behind:  # the publishing process's clock, 5 s behind the one the wait was made by
        def now(self) -> float:
            return clock.now() - 5

    rt.events._clock = Behind()  # type: ignore[assignment]
    published = await rt.publish_event("tick", {"n": 1}, idempotency_key="t-1")
    assert published.delivered == [waiting]


async def test_a_keyed_publish_cut_while_it_wakes_steps_is_answered_whole_when_sent_again(
    rt: cf.Runtime,
) -> None:
    """Its retry listed only the runs the retry reached, not those the cut attempt had: a
    client that lost the first answer never learnt of them (retest h43 N1)."""
    first, second = await two_waiting(rt)
    send = cut_at(rt, second, StoreFailedError("the store", "the disk is full"))
    with pytest.raises(PublishInterruptedError):
        await rt.publish_event("cut", {"n": 1}, idempotency_key="k-1")
    rt.events._send = send  # type: ignore[method-assign]
    again = await rt.publish_event("cut", {"n": 1}, idempotency_key="k-1")
    assert sorted(again.delivered) == sorted([first, second])
    assert (await rt.wait(second, timeout=5)).output == {"n": 1}


def _echo(item: Any, ctx: Any) -> Any:
    return item


async def test_a_publish_sent_again_with_its_idempotency_key_starts_no_flow_twice(
    rt: cf.Runtime,
) -> None:
    # a publish cut after its first listener started, then sent again with its key: the
    # second listener starts, the first does not start again, and the waiting run hears it once
    cut = [RuntimeNotRunningError("start a run", "stopping")]

    def second_items(ctx: Any) -> Any:
        if cut:
            raise cut.pop()
        return [ctx.payload["n"]]

    first = cf.define("a-first").on_event("paid").step("s", lambda ctx: "first")
    second = cf.define("b-second").on_event("paid").for_each("i", second_items, _echo)
    waiter = cf.define("waiter").wait_for_event("w", "paid").step("after", lambda ctx: ctx.last)
    for flow in (first, second, waiter):
        rt.register(flow)
    waiting = await rt.trigger("waiter", {})
    await rt.wait_idle()
    with pytest.raises(PublishInterruptedError) as interrupted:
        await rt.publish_event("paid", {"n": 7}, idempotency_key="order-7")
    assert "none starts or hears it twice" in str(interrupted.value)
    [started_first] = interrupted.value.started
    again = await rt.publish_event("paid", {"n": 7}, idempotency_key="order-7")
    assert again[0] == started_first  # the same run, named by the key: not started again
    assert len(again) == 2
    assert again.delivered == [waiting]
    third = await rt.publish_event("paid", {"n": 7}, idempotency_key="order-7")
    assert list(third) == list(again)  # and again: nothing new starts
    assert third.delivered == [waiting]  # answered as before (conform h27 M3), and the
    # waiting step heard it once: its run went on once, to its end
    assert (await rt.wait(waiting, timeout=5)).status == "completed"
    assert sorted(r.workflow for r in await rt.list_runs()) == ["a-first", "b-second", "waiter"]
    other = await rt.publish_event("paid", {"n": 8}, idempotency_key="order-8")
    assert len(set(other) - set(third)) == 2  # another key: another publish
    with pytest.raises(ConfigurationError, match="idempotency_key"):
        await rt.publish_event("paid", {}, idempotency_key=["not", "a", "string"])  # type: ignore[arg-type]


async def test_an_event_name_nothing_could_listen_for_is_refused(rt: cf.Runtime) -> None:
    # any string was a 202 with empty lists (a 5,000-character name, control characters): the
    # third hostile client's L5; definitions take the same names only
    rt.register(cf.define("listener").on_event("paid").step("s", lambda ctx: 1))
    for name, said in (
        ("x" * 201, "at most 200 characters, got 201"),
        ("pa\nid", "no control characters"),
        ("pa\x85id", "no control characters"),  # C1, and a line separator (review L7)
        ("pa\u2028id", "line breaks"),
        ("pa\u202eid", "bidi controls"),  # the right-to-left override (hostile h23 L4)
        ("pa\ud800id", "no control characters"),  # half a character (review h23 L3)
        ("", "a non-empty string"),
    ):
        with pytest.raises(ConfigurationError, match=said) as refused:
            await rt.publish_event(name, {})
        said_once = str(refused.value)  # the name once, in a sentence (hostile h31 L3)
        assert "; expected a name that " in said_once
        assert said_once.count(repr(name)[:20]) == 1 or len(name) > 200
    assert await rt.list_runs() == []
    assert len(await rt.publish_event("x" * 200, {})) == 0  # at the limit: published
    assert len(await rt.publish_event("pa\u200fid", {})) == 0  # a mark (RLM), as before
    for flow in (
        cf.define("bad").on_event("a\tb").step("s", lambda ctx: 1),
        cf.define("worse").wait_for_event("w", "e" * 201).step("s", lambda ctx: 1),
    ):
        with pytest.raises(InvalidWorkflowError, match="an event name"):
            rt.register(flow)


async def test_no_caller_takes_the_run_a_keyed_publish_names(rt: cf.Runtime) -> None:
    # its id was 32 hex digits anyone could work out and start first (POST /runs): the publish
    # then took that run for its own (the third hostile client's H1)
    rt.register(cf.define("listener").on_event("paid").step("s", lambda ctx: ctx.payload["n"]))
    digest = hashlib.sha256(b"paid\0listener\0order-7").hexdigest()
    legacy = uuid.uuid5(uuid.UUID("5b0f3d1e-8f2a-4c71-9e3b-2d6a7c4e1f90"), digest).hex
    await rt.trigger("listener", {"n": -1}, instance_id=legacy)
    [started] = await rt.publish_event("paid", {"n": 7}, idempotency_key="order-7")
    assert started == f"event:{legacy}"
    assert (await rt.wait(started, timeout=5)).output == 7
    assert list(await rt.publish_event("paid", {"n": 7}, idempotency_key="order-7")) == [started]


async def test_a_keyed_publish_sent_again_moves_no_run_on_twice(rt: cf.Runtime) -> None:
    """A run that heard a keyed publish and went on to wait for the same event (the next step,
    the next turn of a loop) heard it again when the publish was resent (a lost answer): the
    key kept listeners from starting twice, not waiting steps from taking it twice."""
    twice = (
        cf.define("twice")
        .wait_for_event("first", "paid")
        .wait_for_event("second", "paid")
        .step("after", lambda ctx: ctx.last)
    )
    rt.register(twice)
    run_id = await rt.trigger("twice", {})
    await rt.wait_idle()
    published = await rt.publish_event("paid", {"n": 1}, idempotency_key="pay-1")
    assert published.delivered == [run_id]
    await rt.wait_idle()
    steps = {s.id: str(s.status) for s in (await rt.inspect(run_id)).steps}
    assert steps == {"first": "completed", "second": "waiting"}
    again = await rt.publish_event("paid", {"n": 1}, idempotency_key="pay-1")
    assert again.delivered == [run_id]  # answered as before (conform h27 M3); the second
    # wait, which began after the run heard it, hears nothing
    await rt.wait_idle()
    assert str((await rt.inspect(run_id)).status) == "waiting"
    other = await rt.publish_event("paid", {"n": 2}, idempotency_key="pay-2")
    assert other.delivered == [run_id]  # another publish: heard
    assert (await rt.wait(run_id, timeout=5)).output == {"n": 2}
    unkeyed = await rt.trigger("twice", {})
    await rt.wait_idle()
    for _ in range(2):  # without a key, each publish is a new one, as before
        assert (await rt.publish_event("paid", {"n": 3})).delivered == [unkeyed]
        await rt.wait_idle()
    assert (await rt.wait(unkeyed, timeout=5)).status == "completed"


async def test_a_keyed_publish_sent_again_reaches_no_run_that_began_waiting_since(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """A retry of a keyed publish (its answer lost) woke every run that had begun waiting for
    the event since the first: a retried "day 1 closed" closed day 2's waiters (cronflow h43
    F1). A retry reaches only the steps that waited when it was first published."""
    rt.register(cf.define("close").wait_for_event("w", "closed").step("after", lambda c: c.last))
    day_1 = await rt.trigger("close", {})
    await rt.wait_idle()
    first = await rt.publish_event("closed", {"day": 1}, idempotency_key="close-day-1")
    assert first.delivered == [day_1]
    clock.advance(60)
    day_2 = await rt.trigger("close", {})
    await rt.wait_idle()
    again = await rt.publish_event("closed", {"day": 1}, idempotency_key="close-day-1")
    assert again.delivered == [day_1]  # answered as before
    await rt.wait_idle()
    assert str((await rt.inspect(day_2)).status) == "waiting"
    assert (await rt.wait(day_1, timeout=5)).output == {"day": 1}
    second = await rt.publish_event("closed", {"day": 2}, idempotency_key="close-day-2")
    assert second.delivered == [day_2]
    assert (await rt.wait(day_2, timeout=5)).output == {"day": 2}


async def test_a_step_run_again_after_its_publish_wakes_no_run_that_began_waiting_since(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """A step's publish is keyed by its own key: run again (a retry after it published, a
    restart), it publishes once. Its second attempt's publish woke a run that began waiting
    between the two (cronflow h43 F1, which a kill -9 of ``serve`` showed too)."""
    attempts: list[int] = []

    def ping(ctx: Any) -> str:
        attempts.append(ctx.attempt)
        ctx.publish_event("ping", {"from": ctx.run.id})
        if ctx.attempt == 1:
            raise RuntimeError("the acknowledgement was lost")
        return "sent"

    rt.register(cf.define("waiter").wait_for_event("w", "ping").step("after", lambda c: c.last))
    retry = cf.Retry(attempts=2, backoff="fixed", delay=30)
    rt.register(cf.define("pinger").step("ping", ping, retry=retry))
    early = await rt.trigger("waiter", {})
    await rt.wait_idle()
    pinger = await rt.trigger("pinger", {})
    await rt.wait_idle()
    assert attempts == [1]
    assert str((await rt.inspect(early)).status) == "completed"
    clock.advance(10)
    late = await rt.trigger("waiter", {})  # begins waiting after the ping
    await rt.wait_idle()
    clock.advance(30)  # the step's second attempt publishes the ping again
    assert (await rt.wait(pinger, timeout=5)).status == "completed"
    assert attempts == [1, 2]
    await rt.wait_idle()
    assert str((await rt.inspect(late)).status) == "waiting"


async def test_a_keyed_publish_cut_part_way_reaches_the_rest_when_sent_again(
    rt: cf.Runtime,
) -> None:
    """Two steps of one run wait for the event at once (a net's AND split); the publish reaches
    one, and the other's filter fails (a service it asks is down): sent again with its key, it
    reaches the other, which waited when the run first heard it, and the first not again."""
    down = [ConnectionError("the fraud service did not answer")]

    def flaky(ctx: Any, payload: Any) -> bool:
        if down:
            raise down.pop()
        return True

    def waits(name: str, accept: Any = None) -> net.TaskBuilder:
        wait = WaitSpec(kind="event", event="paid", accept=accept)
        item = net.work_item(name, kind="event", wait=wait)
        return net.task(item.activities(on_initialized=auto_start))

    spec = (
        net.workflow("two-waits")
        .start_condition("start")
        .end_condition("end")
        .dummy_task("fan", net.dummy_task().split("and"))
        .task("plain", waits("plain"))
        .task("guarded", waits("guarded", flaky))
        .dummy_task("join", net.dummy_task().join("and"))
        .connect_condition("start", "fan")
        .connect_task("fan", "plain", "guarded")
        .connect_task("plain", "join")
        .connect_task("guarded", "join")
        .connect_task("join", "end")
        .build()
    )
    rt.register(spec)
    run_id = await rt.start_workflow("two-waits", {})
    await rt.wait_idle()
    first = await rt.publish_event("paid", {"n": 1}, idempotency_key="pay-1")
    assert first.delivered == [run_id]  # the plain step took it; the guarded one's filter raised
    [raised] = first.filter_errors
    assert raised.run_id == run_id
    assert (await rt.task_states(run_id))["guarded"] == "started"
    again = await rt.publish_event("paid", {"n": 1}, idempotency_key="pay-1")
    assert again.delivered == [run_id]  # the guarded step waited then: it takes it now
    await rt.wait_idle()
    assert str((await rt.workflow(run_id)).state) == "completed"


async def test_a_keyed_publish_every_listener_failed_to_start_leaves_its_key_free(
    rt: cf.Runtime,
) -> None:
    """Every listening flow's start raised: the publish was a 202 with nothing started and
    its key named the bad payload for 30 days, so the mended one was refused as a reuse (the
    hostile client's h25 M3). It is refused as a schema refusal is (nothing done), and the key
    stays free."""

    def check(ctx: cf.FlowContext) -> bool:
        return 1 / 0 if ctx.payload.get("bad") else True

    flow = cf.define("picky").on_event("picky.evt").if_("ok", check).step("a", str).end_if()
    rt.register(flow)
    with pytest.raises(InvalidEventError, match="its start raised ZeroDivisionError"):
        await rt.publish_event("picky.evt", {"order": 1, "bad": True}, idempotency_key="k-1")
    mended = await rt.publish_event("picky.evt", {"order": 1}, idempotency_key="k-1")
    [started] = mended
    assert (await rt.wait(started, timeout=5)).status == "completed"


async def test_a_keyed_publish_that_woke_a_step_is_answered_again_when_retried(
    rt: cf.Runtime,
) -> None:
    """Its listener's start raised but a waiting step took it: a 202. Sent again with its key
    (a lost answer), the retry was refused as if nothing had been done and the key freed, so
    another payload under it was then taken (the reviewer's h25 M1): the retry is answered,
    and the key keeps naming its payload."""

    def check(ctx: cf.FlowContext) -> bool:
        return 1 / 0 if ctx.payload.get("bad") else True

    rt.register(cf.define("picky2").on_event("evt2").if_("ok", check).step("a", str).end_if())
    rt.register(cf.define("waiter2").wait_for_event("w", "evt2").step("b", str))
    waiting = await rt.trigger("waiter2")
    await rt.wait_idle()
    first = await rt.publish_event("evt2", {"bad": True}, idempotency_key="k-2")
    assert first.delivered == [waiting]
    again = await rt.publish_event("evt2", {"bad": True}, idempotency_key="k-2")
    assert list(again) == []  # answered: nothing more to do
    with pytest.raises(cf.errors.IdempotencyKeyReusedError):
        await rt.publish_event("evt2", {"x": 2}, idempotency_key="k-2")
    assert (await rt.wait(waiting, timeout=5)).status == "completed"


async def test_a_keyed_publish_that_reached_nothing_keeps_no_key(rt: cf.Runtime) -> None:
    """A keyed publish no flow listened for and no step waited for stored its key's digest for
    30 days all the same (any token holder could fill the table: the hostile client's h25 L2):
    it keeps none, so the key is free, for another payload too."""
    nothing = await rt.publish_event("nobody.listens", {"a": 1}, idempotency_key="k-3")
    assert list(nothing) == []
    assert await rt.store.kv_items("cronflow:publish-keys", now=rt.clock.now()) == {}
    again = await rt.publish_event("nobody.listens", {"b": 2}, idempotency_key="k-3")
    assert list(again) == []


async def test_a_keyed_publish_whose_retry_at_once_started_its_run_keeps_its_key(
    rt: cf.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two attempts of one keyed publish at once: the one that set the key failed its start,
    the other started the run. The first, seeing nothing of its own done, freed the key and
    answered 400; another payload under the key was then answered 202 with the first
    payload's run, its own dropped (hostile h26 M1). The first is answered with the run its
    twin started, the key kept; a run under the key that another payload started answers no
    publish of this one."""
    rt.register(cf.define("orders").on_event("order.paid").step("a", lambda ctx: ctx.payload))
    real = rt.events._trigger

    async def twin_started_it_then_this_one_raised(flow_id: str, payload: Any, **kw: Any) -> str:
        await real(flow_id, payload, **kw)  # the other attempt's start, which took
        raise RuntimeError("transient trouble in this attempt's start")

    monkeypatch.setattr(rt.events, "_trigger", twin_started_it_then_this_one_raised)
    [run] = await rt.publish_event("order.paid", {"order": 1}, idempotency_key="k-9")
    monkeypatch.undo()
    assert (await rt.wait(run, timeout=5)).output["order"] == 1
    with pytest.raises(cf.errors.IdempotencyKeyReusedError):
        await rt.publish_event("order.paid", {"order": 2}, idempotency_key="k-9")
    # the key freed anyway (the twin's own answer came first): the run answers no other payload
    named = hashlib.sha256(b"order.paid\0\0k-9").hexdigest()
    assert await rt.store.kv_delete("cronflow:publish-keys", named)
    with pytest.raises(cf.errors.IdempotencyKeyReusedError):  # a 422, as a reuse is
        await rt.publish_event("order.paid", {"order": 2}, idempotency_key="k-9")
    assert list(await rt.publish_event("order.paid", {"order": 1}, idempotency_key="k-9")) == [run]
    assert [r.id for r in await rt.list_runs("orders")] == [run]


@pytest.mark.parametrize("restart", [False, True])
async def test_a_keyed_publish_sent_again_is_answered_with_the_runs_it_reached(
    tmp_path: Any, restart: bool
) -> None:
    """Sent again with its key (the client lost the answer), a publish that two waiting steps
    heard found them waiting no more and answered ``delivered: []``: its client, told the
    event reached nobody, might publish it under a new key and move both runs on twice
    (conform h27 M3). The retry is answered as before; no run hears it twice."""
    db, clock = tmp_path / "keys.db", ManualClock(start=1_000_000.0)
    heard: list[Any] = []
    flow = (
        cf.define("waiter")
        .wait_for_event("paid", "payment")
        .step("s", lambda ctx: heard.append(ctx.last))
        .pause("later")
    )
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        runs = sorted([await rt.trigger("waiter"), await rt.trigger("waiter")])
        await rt.wait_idle()
        first = await rt.publish_event("payment", {"n": 1}, idempotency_key="K")
        assert sorted(first.delivered) == runs
        await rt.wait_idle()
        if not restart:
            again = await rt.publish_event("payment", {"n": 1}, idempotency_key="K")
    if restart:
        async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
            again = await rt.publish_event("payment", {"n": 1}, idempotency_key="K")
    assert sorted(again.delivered) == runs
    assert (list(again), again.held) == ([], [])
    assert len(heard) == 2


async def test_two_answers_of_one_key_recorded_at_once_are_both_kept(rt: cf.Runtime) -> None:
    """What a keyed publish reached is kept beside its key for its retries, read and written
    again by each call: two calls of one key at once each read the record before the other
    wrote, and the second write dropped the first's runs from every later answer (the
    reviewer's h27 M2). They are recorded one after the other."""
    events = rt.events
    await asyncio.gather(
        events._as_before("payment", "K", ["held-by-one"], ["heard-by-one"]),
        events._as_before("payment", "K", ["held-by-two"], []),
    )
    held, delivered = await events._as_before("payment", "K", [], [])
    assert sorted(held) == ["held-by-one", "held-by-two"]
    assert delivered == ["heard-by-one"]
    assert not events._answering  # (its lock goes with its last user)

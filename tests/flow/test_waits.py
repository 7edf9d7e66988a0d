"""Sleeps, events and humans: durable waits, across restarts of the runtime."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.kernel import ManualClock


async def settle(rt: cf.Runtime, clock: ManualClock, seconds: float = 0) -> None:
    if seconds:
        clock.advance(seconds)
    await rt.wait_idle()


def approval_flow(log: list[Any]) -> cf.Flow:
    async def on_pause(ctx: Any, token: str) -> None:
        log.append(("paused", token, ctx.last))

    def on_timeout(ctx: Any) -> None:
        log.append(("timeout", ctx.run.id))

    return (
        cf.define("approval")
        .step("quote", lambda ctx: {"amount": ctx.payload})
        .human_in_the_loop(
            "approve",
            description="approve the quote",
            timeout="1h",
            on_pause=on_pause,
            on_timeout=on_timeout,
        )
        .step("decide", lambda ctx: "go" if ctx.last["approved"] else f"stop: {ctx.last['status']}")
    )


async def test_sleep_waits_on_a_durable_timer(rt: cf.Runtime, clock: ManualClock) -> None:
    rt.register(
        cf.define("nap")
        .step("a", lambda ctx: "A")
        .sleep("nap", "5m")
        .step("b", lambda ctx: ctx.last)
    )
    run_id = await rt.trigger("nap")
    await settle(rt, clock)
    assert (await rt.inspect(run_id)).status == "waiting"
    assert [s.status for s in (await rt.inspect(run_id)).steps] == ["completed", "waiting"]
    await settle(rt, clock, 299)
    assert (await rt.inspect(run_id)).status == "waiting"
    await settle(rt, clock, 1)
    result = await rt.wait(run_id)
    assert (result.status, result.output) == ("completed", "A")  # a sleep does not change last


async def test_human_in_the_loop_pauses_and_resumes(rt: cf.Runtime, clock: ManualClock) -> None:
    log: list[Any] = []
    rt.register(approval_flow(log))
    first, second = await rt.trigger("approval", 10), await rt.trigger("approval", 20)
    await settle(rt, clock)
    paused = await rt.list_paused()
    assert sorted(p.run_id for p in paused) == sorted([first, second])
    tokens = {p.run_id: p.token for p in paused}
    assert tokens[first] != tokens[second]  # unique per run
    assert sorted(entry[1] for entry in log) == sorted(tokens.values())
    pause = next(p for p in paused if p.run_id == first)
    assert (pause.description, pause.last) == ("approve the quote", {"amount": 10})
    assert pause.expires_at == pause.paused_at + 3600
    await rt.resume(tokens[first], {"approved": True, "approved_by": "ada"})
    result = await rt.wait(first)
    assert (result.status, result.output) == ("completed", "go")
    record = (await rt.inspect(first)).steps[1].output
    assert record["approved_by"] == "ada"
    assert record["status"] == "resumed"
    assert record["timed_out"] is False
    with pytest.raises(cf.ResumeError, match="already ended"):
        await rt.resume(tokens[first], {"approved": True})
    with pytest.raises(cf.ResumeError, match="no run is paused"):
        await rt.resume("nope", {})
    assert [p.run_id for p in await rt.list_paused()] == [second]
    # a payload the store cannot hold is refused, and the pause stays open
    with pytest.raises(cf.errors.InvalidPayloadError, match="cannot be stored"):
        await rt.resume(tokens[second], {"approved": True, "amount": 10**30})
    assert [p.run_id for p in await rt.list_paused()] == [second]
    # fields of the caller's own are kept, a near spelling too when the field itself is given
    mine = {"approved": True, "approver": "ada", "reasons": ["a"], "season": "winter"}
    await rt.resume(tokens[second], mine)
    assert (await rt.wait(second)).status == "completed"
    assert (await rt.inspect(second)).steps[1].output["payload"] == mine


async def test_a_resume_decides_only_by_a_boolean(rt: cf.Runtime, clock: ManualClock) -> None:
    # "false" or 0 read as a truth value would approve: refused, the pause stays open
    rt.register(approval_flow([]))
    run_id = await rt.trigger("approval", 10)
    await settle(rt, clock)
    (pause,) = await rt.list_paused()
    for wrong in ("false", "no", 0, 1, [False], {"yes": True}):
        with pytest.raises(cf.errors.InvalidPayloadError, match=r"'approved' is .*JSON boolean"):
            await rt.resume(pause.token, {"approved": wrong})
    # who approved and why are text: a number or an object there says neither (the hostile
    # client's F8: they were recorded as given)
    for wrong, said in [
        ({"approved": True, "approvedBy": 5}, "'approvedBy' is 5; give a string"),
        ({"approved": True, "approved_by": {"x": 1}}, "'approved_by' is {'x': 1}; give a string"),
        ({"approved": True, "reason": ["ok"]}, "'reason' is ['ok']; give a string"),
        ({"approved_by": "ada", "approvedBy": "bob"}, "give one of 'approved_by', 'approvedBy'"),
        # shown in the console and the CLI: a name that reads as another's, or as two lines
        # (hostile h23 L4: "eve\nFORGED" and U+202E, the right-to-left override)
        ({"approved": True, "approved_by": "eve\nada"}, "give one line, with no control"),
        ({"approved": True, "approved_by": "eve\u202eada"}, "or bidi controls"),
        ({"approved": True, "reason": "ok\x1b[2J"}, "'reason' is 'ok\\x1b[2J': give one line"),
    ]:
        with pytest.raises(cf.errors.InvalidPayloadError, match=re.escape(said)):
            await rt.resume(pause.token, wrong)
    # a misspelt field, or a bare yes, would have been a silent "not approved" (the newcomer's
    # finding 1): refused, with what to send
    for wrong, said in [
        ({"aproved": True}, "'aproved' is not a field of an approval; did you mean 'approved'?"),
        ({"Approved": True}, "'Approved' is not a field of an approval; did you mean 'approved'"),
        ({"approved": True, "Approved-By": "ada"}, "did you mean 'approved_by'?"),
        ({"approved": False, "Reason": "late"}, "did you mean 'reason'?"),
        ({"approve": True}, "did you mean 'approved'?"),
        (True, 'a bare true decides nothing; send {"approved": true}'),
        ("yes", "a bare 'yes' decides nothing"),
        (" Approved ", "a bare ' Approved ' decides nothing"),
        # null is no "left out": it closed the pause as not approved, for good (the hostile
        # client's finding 5)
        ({"approved": None}, "'approved' is null; give true or false"),
        # not an object: it decided nothing, and closed the pause as not approved (the second
        # hostile client's 4)
        (1, 'a resume gives an object, such as {"approved": true}'),
        ([], "(or nothing, for not approved), not []"),
        ([{"approved": True}], "The pause is still open"),
    ]:
        with pytest.raises(cf.errors.InvalidPayloadError, match=re.escape(said)):
            await rt.resume(pause.token, wrong)
    assert [p.token for p in await rt.list_paused()] == [pause.token]
    assert (await rt.inspect(run_id)).status == "waiting"
    await rt.resume(pause.token, {"reason": "no answer"})  # left out: not approved
    result = await rt.wait(run_id)
    assert (result.status, result.output) == ("completed", "stop: resumed")
    assert (await rt.inspect(run_id)).steps[1].output["approved"] is False


async def test_a_pause_times_out_from_the_moment_it_pauses(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    log: list[Any] = []
    rt.register(approval_flow(log))
    clock.advance(7200)  # time before the run does not count
    run_id = await rt.trigger("approval", 5)
    await settle(rt, clock)  # the run reaches its pause
    await settle(rt, clock, 3599)
    assert (await rt.inspect(run_id)).status == "waiting"
    await settle(rt, clock, 1)
    result = await rt.wait(run_id)
    assert (result.status, result.output) == ("completed", "stop: timeout")
    await rt.wait_idle()
    assert [entry[0] for entry in log] == ["paused", "timeout"]
    assert (await rt.inspect(run_id)).steps[1].output["timed_out"] is True


async def test_wait_for_event_with_a_filter_and_a_timeout(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    flow = (
        cf.define("pay")
        .step("order", lambda ctx: ctx.payload)
        .wait_for_event(
            "paid",
            "payment.confirmed",
            filter=lambda event, ctx: event["order"] == ctx.last,
            timeout="1h",
        )
        .step("ship", lambda ctx: ctx.last)
    )
    rt.register(flow)
    waiting = await rt.trigger("pay", 7)
    late = await rt.trigger("pay", 8)
    await settle(rt, clock)
    assert await rt.publish_event("nobody.listens", {}) == []
    refused = await rt.publish_event("payment.confirmed", {"order": 9})
    assert (refused.delivered, refused.held) == ([], [])  # both filters said no
    await rt.wait_idle()
    assert (await rt.inspect(waiting)).status == "waiting"
    taken = await rt.publish_event("payment.confirmed", {"order": 7, "amount": 5})
    assert taken.delivered == [waiting]  # the one whose filter took it
    result = await rt.wait(waiting)
    assert (result.status, result.output) == ("completed", {"order": 7, "amount": 5})
    await settle(rt, clock, 3600)
    timed_out = await rt.wait(late)
    assert timed_out.status == "failed"
    assert "waiting for event 'payment.confirmed'" in (timed_out.error or "")


async def test_a_run_a_wait_timed_out_is_a_warning_in_the_log(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A run failed by a wait's timeout left no line in the server's log, where a step that
    raised leaves an ERROR (the newcomer's M3); a step's failure is not said twice."""
    rt.register(cf.define("pay").wait_for_event("paid", "payment.confirmed", timeout="1h"))
    rt.register(cf.define("bad").step("s", lambda ctx: 1 / 0))
    caplog.set_level(logging.INFO, logger="cronflow_actors")
    late = await rt.trigger("pay")
    await settle(rt, clock, 3600)
    assert (await rt.wait(late)).status == "failed"
    broken = await rt.trigger("bad")
    assert (await rt.wait(broken)).status == "failed"
    runs = [r for r in caplog.records if r.levelno >= logging.WARNING and hasattr(r, "run_id")]
    assert [(r.levelno, r.run_id) for r in runs] == [  # type: ignore[attr-defined]
        (logging.WARNING, late),
        (logging.ERROR, broken),  # its step's ERROR, with the traceback; no second line
    ]
    assert "waiting for event 'payment.confirmed'" in runs[0].getMessage()
    # in the words inspect shows, with the step it failed at (newcomer h22 L2: the engine's
    # "task 'paid': work item '...w2'")
    assert f"run {late} (pay) failed: step 'paid': StepTimeoutError: timed out after" in (
        runs[0].getMessage()
    )
    assert "work item" not in runs[0].getMessage()
    assert runs[0].step == "paid"  # type: ignore[attr-defined]


async def test_on_event_starts_listening_flows(rt: cf.Runtime) -> None:
    rt.register(cf.define("welcome").on_event("user.signup").step("hi", lambda ctx: ctx.payload))
    [run_id] = await rt.publish_event("user.signup", {"user": "u1"})
    output = (await rt.wait(run_id)).output
    assert output["user"] == "u1"
    assert output["event"]["name"] == "user.signup"


async def test_a_run_an_event_started_waits_for_the_next_one(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    # the event a run started from is not the one its wait for that name hears
    rt.register(
        cf.define("tick")
        .on_event("tick")
        .wait_for_event("next", "tick", timeout="1h")
        .step("pair", lambda ctx: [ctx.payload["n"], ctx.last["n"]])
    )
    [first] = await rt.publish_event("tick", {"n": 1})
    await settle(rt, clock)
    assert (await rt.inspect(first)).status == "waiting"
    [second] = await rt.publish_event("tick", {"n": 2})
    assert (await rt.wait(first)).output == [1, 2]
    await settle(rt, clock)
    assert (await rt.inspect(second)).status == "waiting"  # it waits for tick 3


async def test_waiting_runs_continue_on_the_next_runtime(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "waits.db"

    def flows(log: list[Any]) -> list[cf.Flow]:
        return [
            approval_flow(log),
            cf.define("nap").sleep("nap", "10m").step("after", lambda ctx: "woke"),
            cf.define("pay").wait_for_event("paid", "paid").step("ship", lambda ctx: ctx.last),
        ]

    log: list[Any] = []
    async with cf.Runtime(db=db, clock=clock, workflows=flows(log)) as first:
        paused = await first.trigger("approval", 1)
        sleeping = await first.trigger("nap")
        waiting = await first.trigger("pay")
        counter = cf.define("counter").step("c", _count)
        first.register(counter)
        assert (await first.wait(await first.trigger("counter"))).output == 1
        await first.wait_idle()
        [pause] = await first.list_paused()
        clock.advance(300)
    async with cf.Runtime(db=db, clock=clock, workflows=[*flows(log), counter]) as second:
        # Waiting runs are not loaded at start: each is activated by what wakes it.
        assert second.recovered == 0
        assert len(second.instances) == 0
        assert [p.token for p in await second.list_paused()] == [pause.token]
        assert [p.expires_at for p in await second.list_paused()] == [pause.expires_at]
        await second.resume(pause.token, {"approved": True})
        assert (await second.wait(paused)).output == "go"
        await settle(second, clock, 300)
        assert (await second.wait(sleeping)).output == "woke"
        await second.publish_event("paid", {"ok": True})
        assert (await second.wait(waiting)).output == {"ok": True}
        assert (await second.wait(await second.trigger("counter"))).output == 2  # ctx.state kept


async def _count(ctx: Any) -> float:
    return await ctx.state.incr("runs")


async def test_actions_are_dispatched_again_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "actions.db"
    gate, both, runs = asyncio.Event(), asyncio.Event(), []
    redispatched: list[int] = []

    def flow() -> cf.Flow:
        async def send(ctx: Any) -> None:
            runs.append("durable")
            redispatched.append(ctx.redispatches)
            if len(runs) == 2:
                both.set()
            await gate.wait()

        async def best_effort(ctx: Any) -> None:
            runs.append("best-effort")
            if len(runs) == 2:
                both.set()
            await gate.wait()

        return (
            cf.define("mail")
            .step("a", lambda ctx: 1)
            .action("send", send)
            .action("ping", best_effort, durable=False)
            .step("b", lambda ctx: 2)
        )

    async with cf.Runtime(db=db, workflows=[flow()]) as first:
        run_id = await first.trigger("mail")
        assert (await first.wait(run_id)).status == "completed"
        await both.wait()
    assert sorted(runs) == ["best-effort", "durable"]
    runs.clear()
    gate.set()
    async with cf.Runtime(db=db, workflows=[flow()]) as second:
        await second.wait_idle()
        assert runs == ["durable"]
        assert (await second.inspect(run_id)).status == "completed"
    assert redispatched == [0, 1]  # the action knows it was dispatched again, as a step does


async def test_resume_tokens_never_start_with_a_dash(rt: cf.Runtime) -> None:
    """A token is pasted into ``cronflow-actors resume TOKEN``, where a leading ``-`` would be
    read as an option: one in 64 random URL-safe tokens starts with one."""
    rt.register(cf.define("asks").human_in_the_loop("approve", description="ok?"))
    runs = [await rt.trigger("asks", n) for n in range(400)]
    await rt.wait_idle()
    tokens: list[str] = []
    page = await rt.list_paused(limit=1000)
    tokens += [paused.token for paused in page]
    assert len(tokens) == len(runs)
    assert not [token for token in tokens if token.startswith("-")]


def pay_flow() -> cf.Flow:
    return cf.define("pay").wait_for_event("paid", "paid").step("ship", lambda ctx: ctx.last)


async def runs_left_waiting(db: Path, clock: ManualClock, count: int = 1) -> list[str]:
    """``count`` runs of ``pay_flow`` waiting for their event in ``db``, once their runtime
    has stopped (the next runtime may leave the flow out)."""
    async with cf.Runtime(db=db, clock=clock, workflows=[pay_flow()]) as first:
        runs = [await first.trigger("pay") for _ in range(count)]
        await first.wait_idle()
    return runs


async def test_an_event_for_a_run_whose_flow_is_not_registered_is_kept_for_it(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    # the run cannot take it while its flow is missing here: the event is kept in its snapshot
    # (as for a run held because its definition changed), and it hears it once its flow is
    # registered again, at a start or by a registration on a running runtime
    db = tmp_path / "unregistered.db"
    at_start, other = await runs_left_waiting(db, clock, 2)
    async with cf.Runtime(db=db, clock=clock, workflows=[]) as second:
        published = await second.publish_event("paid", {"ok": 1})
        assert sorted(published.held) == sorted([at_start, other])
        assert published.delivered == []
        assert (await second.inspect(at_start)).status == "waiting"
    warnings = [r for r in caplog.records if "is kept until the run runs again" in r.getMessage()]
    assert {r.levelname for r in warnings} == {"WARNING"}
    assert all(any(run in r.getMessage() for r in warnings) for run in (at_start, other))
    assert "'pay'" in warnings[0].getMessage()  # the error names the workflow not registered
    async with cf.Runtime(db=db, clock=clock, workflows=[pay_flow()]) as third:
        assert (await third.wait(at_start, timeout=5)).output == {"ok": 1}
        # both heard the kept event, once: a later one finds no step waiting
        assert (await third.wait(other, timeout=5)).output == {"ok": 1}
        assert (await third.publish_event("paid", {"ok": 2})).delivered == []


async def test_an_event_kept_for_an_unregistered_flow_reaches_it_on_registration(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "register.db"
    [run_id] = await runs_left_waiting(db, clock)
    async with cf.Runtime(db=db, clock=clock, workflows=[]) as second:
        assert (await second.publish_event("paid", {"ok": 3})).held == [run_id]
        second.register(pay_flow())  # its registration loads what has work to run: this run
        assert (await second.wait(run_id, timeout=5)).output == {"ok": 3}


async def test_a_run_whose_flow_is_not_registered_can_be_canceled(
    tmp_path: Path, clock: ManualClock
) -> None:
    # ended without its code (as a held run is): its waits end, so no later event is kept
    db = tmp_path / "cancel.db"
    [run_id] = await runs_left_waiting(db, clock)
    async with cf.Runtime(db=db, clock=clock, workflows=[]) as second:
        await second.cancel(run_id)
        assert (await second.inspect(run_id)).status == "canceled"
        assert (await second.wait(run_id, timeout=5)).status == "canceled"
        published = await second.publish_event("paid", {"ok": 4})
        assert (published.held, published.delivered) == ([], [])
    async with cf.Runtime(db=db, clock=clock, workflows=[pay_flow()]) as third:
        assert (await third.inspect(run_id)).status == "canceled"


async def test_a_timer_of_a_run_whose_flow_is_not_registered_waits_for_it(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    # not a fault: a warning without a traceback, and the timer fires once the flow is back
    db = tmp_path / "timer.db"
    nap = cf.define("nap").sleep("nap", "10m").step("after", lambda ctx: "woke")
    async with cf.Runtime(db=db, clock=clock, workflows=[nap]) as first:
        run_id = await first.trigger("nap")
        await first.wait_idle()

    def warned() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "not delivered to instance" in r.getMessage()]

    async with cf.Runtime(db=db, clock=clock, workflows=[]) as second:
        clock.advance(600)
        async with asyncio.timeout(10):  # the delivery is a task of its own: until it says so
            while not warned():
                await second.wait_idle()
                await asyncio.sleep(0)
    [record] = warned()
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert run_id in record.getMessage()
    async with cf.Runtime(db=db, clock=clock, workflows=[nap]) as third:
        assert (await third.wait(run_id, timeout=5)).output == "woke"


async def test_a_wait_for_event_with_a_retry_waits_again_after_it_timed_out(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    retries: list[tuple[int, float, str]] = []

    def note(ctx: Any, error: BaseException, attempt: int, delay: float) -> None:
        retries.append((attempt, delay, type(error).__name__))

    retry = cf.Retry(attempts=3, delay="5s", backoff="fixed", on_retry=note)
    heard = cf.define("heard").wait_for_event("paid", "paid", timeout="10s").retry(retry)
    given_up = (
        cf.define("given-up")
        .wait_for_event("paid", "never", timeout="10s", retry=retry)
        .on_error(lambda ctx: f"gave up: {type(ctx.error).__name__}")
    )
    rt.register(heard)
    rt.register(given_up)
    heard_id = await rt.trigger("heard", {})
    given_up_id = await rt.trigger("given-up", {})
    await rt.wait_idle()
    for _ in range(2):  # the first wait times out; 5 s later the second begins
        clock.advance(10)
        await rt.wait_idle()
        clock.advance(5)
        await rt.wait_idle()
    assert (await rt.publish_event("paid", {"amount": 3})).delivered == [heard_id]
    result = await rt.wait(heard_id, timeout=5)
    assert (result.status, result.output) == ("completed", {"amount": 3})
    [step] = (await rt.inspect(heard_id)).steps
    assert (str(step.status), step.attempts) == ("completed", 3)

    clock.advance(10)  # the third and last wait of the other run times out: its on_error
    done = await rt.wait(given_up_id, timeout=5)
    assert (done.status, done.output) == ("completed", "gave up: StepFailedError")
    assert retries.count((1, 5.0, "StepTimeoutError")) == 2  # each run's first retry
    assert retries.count((2, 5.0, "StepTimeoutError")) == 2


def test_a_retry_of_a_wait_for_event_needs_its_timeout() -> None:
    flow = cf.define("no-timeout").wait_for_event("w", "e").retry(cf.Retry(attempts=2))
    with pytest.raises(InvalidWorkflowError, match="retry needs a timeout"):
        flow.validate()


async def test_a_step_waiting_out_its_delay_is_listed_as_waiting(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    flow = cf.define("later").step("a", lambda ctx: 1).step("b", lambda ctx: 2, delay="10s")
    rt.register(flow)
    run_id = await rt.trigger("later", {})
    await rt.wait_idle()
    info = await rt.inspect(run_id)
    assert str(info.status) == "waiting"
    assert [(s.id, str(s.status)) for s in info.steps] == [("a", "completed"), ("b", "waiting")]
    clock.advance(11)
    assert (await rt.wait(run_id, timeout=5)).output == 2
    steps = (await rt.inspect(run_id)).steps
    assert [(s.id, str(s.status), s.attempts) for s in steps] == [
        ("a", "completed", 1),
        ("b", "completed", 1),
    ]


async def test_a_notice_the_runtime_stopped_during_is_called_again_while_its_pause_is_open(
    tmp_path: Path,
) -> None:
    db, calls = tmp_path / "notices.db", []
    hang = asyncio.Event()  # set: the calls of the first runtime never end
    both_begun = asyncio.Event()

    async def on_pause(ctx: Any, token: str) -> None:
        calls.append((ctx.run.id, token, ctx.last))
        if len(calls) == 2:
            both_begun.set()
        if hang.is_set():
            await asyncio.Event().wait()

    def flow() -> cf.Flow:
        return (
            cf.define("notice")
            .step("quote", lambda ctx: {"amount": ctx.payload})
            .pause("hold", on_pause=on_pause)
            .step("after", lambda ctx: ctx.last)
        )

    hang.set()
    async with cf.Runtime(db=db, workflows=[flow()]) as first:
        still_open, resumed = await first.trigger("notice", 1), await first.trigger("notice", 2)
        await asyncio.wait_for(both_begun.wait(), 10)  # (and hung)
        tokens = {run: token for run, token, _ in calls}
        await first.resume(tokens[resumed], {"approved": True})  # its pause ends meanwhile
        await first.wait(resumed)
        assert (await first.store.load_snapshot(still_open)).runnable  # its notice is owed
    hang.clear()
    async with cf.Runtime(db=db, workflows=[flow()]) as second:
        await second.wait_idle()
        # called again about the pause still open, with its token; not about the one resumed
        assert calls[2:] == [(still_open, tokens[still_open], {"amount": 1})]
        assert (await second.inspect(still_open)).status == "waiting"
        for run in (still_open, resumed):
            assert not (await second.store.load_snapshot(run)).runnable  # owed no more
    async with cf.Runtime(db=db, workflows=[flow()]) as third:
        await third.wait_idle()
        assert len(calls) == 3  # a notice that ended is not called again


async def test_a_notice_that_ends_after_its_run_left_memory_is_recorded_and_not_called_again(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    release = asyncio.Event()
    begun = asyncio.Event()

    async def on_pause(ctx: Any, token: str) -> None:
        calls.append(token)
        begun.set()
        await release.wait()  # a chat service that answers late

    flow = cf.define("slow-notice").pause("hold", on_pause=on_pause).step("after", _last)
    async with cf.Runtime(db=tmp_path / "late.db", workflows=[flow], max_active_runs=1) as rt:
        run_id = await rt.trigger("slow-notice")
        await asyncio.wait_for(begun.wait(), 10)
        # while its notice runs, the run waits as any pause does: out of memory, not holding
        # the one place max_active_runs gives, and listed as waiting
        assert (await rt.inspect(run_id)).status == "waiting"
        assert run_id not in rt.instances
        other = await rt.trigger("slow-notice")  # it takes the place at once
        assert (await rt.inspect(other)).status == "waiting"
        assert (await rt.store.load_snapshot(run_id)).runnable  # owed until the call ends
        release.set()
        await rt.wait_idle()
        assert len(calls) == 2  # one each: the load that records the end calls nothing again
        for run in (run_id, other):
            assert not (await rt.store.load_snapshot(run)).runnable
        await rt.resume(calls[0], {"approved": True})
        assert (await rt.wait(run_id, timeout=5)).status == "completed"


def _last(ctx: Any) -> Any:
    return ctx.last


async def test_a_notice_of_a_pause_in_a_subflow_is_called_again_after_a_stop(
    tmp_path: Path,
) -> None:
    calls: list[tuple[str, str]] = []
    hang = [True]
    begun = asyncio.Event()

    async def on_pause(ctx: Any, token: str) -> None:
        calls.append((ctx.run.id, token))
        begun.set()
        if hang:
            await asyncio.Event().wait()

    def flows() -> list[cf.Flow]:
        child = cf.define("approve-child").pause("hold", on_pause=on_pause).step("c", _last)
        return [child, cf.define("parent").subflow("approval", "approve-child").step("p", _last)]

    db = tmp_path / "sub.db"
    async with cf.Runtime(db=db, workflows=flows()) as first:
        run_id = await first.trigger("parent")
        await asyncio.wait_for(begun.wait(), 10)
    hang.clear()
    async with cf.Runtime(db=db, workflows=flows()) as second:
        await second.wait_idle()
        assert len(calls) == 2
        assert calls[1][1] == calls[0][1]  # the same pause, the same token
        [pause] = await second.list_paused()
        assert (pause.run_id, pause.token) == (run_id, calls[0][1])
        assert not (await second.store.load_snapshot(run_id)).runnable


async def test_a_run_canceled_while_its_notice_runs_owes_it_no_more(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    release, begun = asyncio.Event(), asyncio.Event()

    async def on_pause(ctx: Any, token: str) -> None:
        begun.set()
        await release.wait()

    flow = cf.define("cancel-notice").pause("hold", on_pause=on_pause).step("after", _last)
    async with cf.Runtime(db=tmp_path / "cancel.db", workflows=[flow]) as rt:
        run_id = await rt.trigger("cancel-notice")
        await asyncio.wait_for(begun.wait(), 10)
        await rt.cancel(run_id)
        snapshot = await rt.store.load_snapshot(run_id)
        assert (snapshot.status, snapshot.runnable) == ("canceled", False)  # its wait ended
        release.set()  # the notice's end finds nothing owed
        await rt.wait_idle()
        assert (await rt.inspect(run_id)).status == "canceled"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_notice_that_ended_here_unrecorded_is_recorded_at_the_next_load_not_called(
    tmp_path: Path,
) -> None:
    calls: list[str] = []

    async def on_pause(ctx: Any, token: str) -> None:
        calls.append(token)

    flow = cf.define("lost-end").pause("hold", on_pause=on_pause).step("after", _last)
    async with cf.Runtime(db=tmp_path / "lost.db", workflows=[flow]) as rt:
        services = rt._services
        deliver, dropped = services.deliver, []

        def drop_the_first_end(instance_id: str, message: Any) -> None:
            if not dropped:  # its end cannot reach the instance (it was held, say)
                dropped.append(message)
                return
            deliver(instance_id, message)

        services.deliver = drop_the_first_end
        run_id = await rt.trigger("lost-end")
        await rt.wait_idle()
        assert (len(calls), len(dropped)) == (1, 1)
        assert (await rt.store.load_snapshot(run_id)).runnable  # still owed: not recorded
        await rt.instances.activate(run_id)  # loaded again in this process
        await rt.wait_idle()
        assert len(calls) == 1  # it ended here: recorded, not called again
        assert not (await rt.store.load_snapshot(run_id)).runnable


async def test_a_drain_waits_for_the_notices_in_flight(tmp_path: Path) -> None:
    begun = asyncio.Event()
    ended: list[str] = []

    async def on_pause(ctx: Any, token: str) -> None:
        begun.set()
        await asyncio.sleep(0.3)  # a chat message on its way
        ended.append(token)

    flow = cf.define("drained").pause("hold", on_pause=on_pause).step("after", _last)
    rt = cf.Runtime(db=tmp_path / "drain.db", workflows=[flow])
    await rt.start()
    run_id = await rt.trigger("drained")
    await asyncio.wait_for(begun.wait(), 10)
    await rt.stop(drain=5)  # the notice ends (and its end is recorded) before the stop
    assert len(ended) == 1
    async with cf.Runtime(db=tmp_path / "drain.db", workflows=[flow]) as again:
        assert not (await again.store.load_snapshot(run_id)).runnable
        await again.wait_idle()
    assert len(ended) == 1  # not called again by the next start


async def test_a_drain_waits_for_a_notices_end_while_its_instance_is_loaded(
    tmp_path: Path,
) -> None:
    """The run left memory while its notice ran (a pause only waits): the notice's end loads it
    again to be recorded. A drain that saw the end on its way only once the instance was in
    memory stopped while it was being loaded (once in a few runs under load): the end was lost,
    and the next start called on_pause again."""
    begun, ended = asyncio.Event(), []

    async def on_pause(ctx: Any, token: str) -> None:
        begun.set()
        await asyncio.sleep(0.2)
        ended.append(token)

    flow = cf.define("reloaded").pause("hold", on_pause=on_pause).step("after", _last)
    rt = cf.Runtime(db=tmp_path / "reload.db", workflows=[flow])
    await rt.start()
    run_id = await rt.trigger("reloaded")
    await asyncio.wait_for(begun.wait(), 10)
    for _ in range(500):  # it leaves memory: it only waits
        if run_id not in rt.instances:
            break
        await asyncio.sleep(0.01)
    assert run_id not in rt.instances
    load = rt.store.load_snapshot

    async def slow_load(instance_id: str) -> Any:
        await asyncio.sleep(0.3)  # a busy disk: the end is on its way all this time
        return await load(instance_id)

    rt.store.load_snapshot = slow_load  # type: ignore[method-assign]
    await rt.stop(drain=5)
    assert len(ended) == 1
    async with cf.Runtime(db=tmp_path / "reload.db", workflows=[flow]) as again:
        assert not (await again.store.load_snapshot(run_id)).runnable
        await again.wait_idle()
    assert len(ended) == 1  # not called again by the next start


async def test_inspect_names_the_event_a_waiting_step_waits_for(rt: cf.Runtime) -> None:
    """A step's id need not be its event's name: inspect says which event wakes it (an
    operator had to read the flow's code to know what to publish)."""
    rt.register(
        cf.define("ship")
        .step("pack", lambda ctx: "box")
        .wait_for_event("await-payment", "payment.confirmed")
    )
    run_id = await rt.trigger("ship")
    await rt.wait_idle()
    pack, wait = (await rt.inspect(run_id)).steps
    assert (wait.status, wait.kind, wait.event) == ("waiting", "event", "payment.confirmed")
    assert pack.event is None
    await rt.publish_event("payment.confirmed", {"ok": True})
    assert (await rt.wait(run_id, timeout=5)).status == "completed"
    assert (await rt.inspect(run_id)).steps[1].event == "payment.confirmed"  # and after


async def test_a_filter_that_raises_is_said_to_the_publisher_and_its_step_waits_on(
    rt: cf.Runtime,
) -> None:
    """The filter is called (payload, ctx); one written (ctx, payload) raised TypeError and the
    publisher heard "woke 0 runs", the error only in the server's log (newcomer h23 M1)."""
    rt.register(
        cf.define("paid")
        .wait_for_event("paid", "order.paid", filter=lambda ctx, event: event["id"] == 1)
        .step("ship", lambda ctx: "shipped")
    )
    run_id = await rt.trigger("paid")
    await rt.wait_idle()
    published = await rt.publish_event("order.paid", {"id": 1})
    assert published.delivered == []
    assert published.held == []
    [raised] = published.filter_errors
    assert raised.run_id == run_id
    assert raised.detail.startswith("TypeError: ")
    assert (await rt.inspect(run_id)).steps[0].status == "waiting"  # it waits on


async def test_the_token_of_a_canceled_runs_pause_says_the_run_was_canceled(
    rt: cf.Runtime,
) -> None:
    rt.register(cf.define("held").pause("approve"))
    run_id = await rt.trigger("held")
    await rt.wait_idle()
    [paused] = await rt.list_paused()
    await rt.cancel(run_id)
    with pytest.raises(cf.errors.ResumeError, match=f"its run {run_id} was canceled at "):
        await rt.resume(paused.token, {"approved": True})

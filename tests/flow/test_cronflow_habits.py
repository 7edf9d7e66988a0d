"""What a user coming from Cronflow writes first, translated word for word, and what they get: the
meaning Cronflow gave it where this API can take it (a chained ``.timeout(d)``, hooks as a dict),
else a refusal that says what to write instead, never a run that quietly does something else
(a duration read in other units, a wait for an event named '1h') nor a Python error that names
neither the method nor the fix."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.kernel import ManualClock


def _problems(flow: cf.Flow) -> str:
    with pytest.raises(InvalidWorkflowError) as refused:
        flow.validate()
    return "\n".join(refused.value.problems)


def _one(ctx: Any) -> int:
    return 1


@pytest.mark.parametrize(
    ("flow", "said"),
    [
        (
            cf.define("nap").sleep("nap", "300"),
            "sleep 'nap' duration '300' has no unit: write '300s' for seconds or '300ms' for "
            "milliseconds (Cronflow read a bare number as milliseconds), or the number 300",
        ),
        (
            cf.define("retried").step("s", _one, retry=cf.Retry(attempts=2, delay="1000")),
            "retry delay '1000' has no unit",
        ),
        (cf.define("cut").step("s", _one, timeout="500"), "step 's' timeout '500' has no unit"),
    ],
)
def test_a_duration_string_without_its_unit_is_refused(flow: cf.Flow, said: str) -> None:
    assert said in _problems(flow)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("flow", "said"),
    [
        (cf.define("a").sleep("s", NAN), "sleep 's' duration must be a finite number"),
        (cf.define("a").sleep("s", INF), "sleep 's' duration must be a finite number"),
        (cf.define("a").step("s", _one, timeout=NAN), "step 's' timeout must be a finite"),
        (cf.define("a", timeout=NAN).step("s", _one), "timeout must be a finite number"),
        (
            cf.define("a").step("s", _one, retry=cf.Retry(attempts=2, delay=NAN)),
            "delay must be a finite number",
        ),
        (
            cf.define("a").human_in_the_loop("h", description="d", timeout=INF),
            "timeout must be a finite number",
        ),
    ],
)
def test_a_duration_that_is_not_finite_is_refused(flow: cf.Flow, said: str) -> None:
    """NaN and inf passed as durations: NaN became a due time the store cannot keep (every
    start of the flow, or the step before, failed with a NOT NULL constraint), inf waited for
    good (conform h26 M1)."""
    assert said in _problems(flow)


async def test_a_computed_duration_that_is_not_finite_fails_its_own_step(rt: cf.Runtime) -> None:
    calls = []

    def ratio(ctx: Any) -> dict[str, float]:
        calls.append(ctx.attempt)
        return {"ratio": NAN}

    flow = cf.define("sn").step("a", ratio, retry=cf.Retry(attempts=3, delay="1s"))
    rt.register(flow.sleep("s", lambda ctx: ctx.last["ratio"] * 10).step("z", _one))
    result = await rt.wait(await rt.trigger("sn"), timeout=5)
    assert result.status == "failed"
    assert "sleep 's'" in (result.error or ""), result.error
    assert "finite" in (result.error or ""), result.error
    assert calls == [1]  # the step before succeeded: not tried again for the sleep's error


def test_cronflow_call_shapes_are_refused_with_what_to_write() -> None:
    waited = cf.define("w").wait_for_event("payment.confirmed", "1h")  # waitForEvent(name, t)
    bare = cf.define("w2").wait_for_event("payment.confirmed", "300")  # Cronflow's milliseconds
    assert "the event '300' reads as a duration" in _problems(bare)
    assert (
        "the event '1h' reads as a duration: the step's id comes first, then the event's name, "
        "and the timeout by name: .wait_for_event('payment.confirmed', 'payment.done', "
        "timeout='1h')"
    ) in _problems(waited)
    # the id, the name and a timeout by position: a bare TypeError (newcomer h35 F8)
    with pytest.raises(InvalidWorkflowError) as three:
        cf.define("w3").wait_for_event("confirm", "ticket.confirmed", "10m")
    assert (
        "wait_for_event('confirm', 'ticket.confirmed', '10m'): it takes the step's id and the "
        "event's name, the timeout by name: .wait_for_event('confirm', 'ticket.confirmed', "
        "timeout='10m')"
    ) in str(three.value)
    paused = cf.define("h").human_in_the_loop({"timeout": "1h", "description": "ok?"})  # type: ignore[arg-type]
    assert (
        ".human_in_the_loop() / .pause(): its id must be a non-empty string, got dict "
        "{'timeout': '1h', 'description': 'ok?'}; the id comes first"
    ) in _problems(paused)
    grouped = cf.define("p").parallel("p", _one)  # type: ignore[arg-type]
    assert "parallel 'p': expected a list of functions, got function" in _problems(grouped)
    hooked = cf.define("k", hooks={"onSucess": _one}).step("s", _one)
    assert "hooks takes cf.Hooks(" in _problems(hooked)
    assert "unknown: 'onSucess'" in _problems(hooked)
    timed = cf.define("t").sleep("nap", "1s").timeout("5s")
    assert ".timeout() must follow one of .step(), .action(); it follows" in _problems(timed)


async def test_hooks_as_a_dict_and_a_chained_timeout_mean_what_they_meant(
    rt: cf.Runtime,
) -> None:
    called: list[str] = []

    async def slow(ctx: Any) -> int:
        await asyncio.sleep(5)
        return 1

    flow = (
        cf.define(
            "habits",
            hooks={"onSuccess": lambda ctx: called.append("ok"), "on_failure": called.append},
        )
        .step("slow", slow)
        .timeout("50ms")  # Cronflow's chained .timeout(d): the step before it
    )
    rt.register(flow)
    failed = await rt.wait(await rt.trigger("habits"), timeout=5)
    assert failed.status == "failed"
    assert "StepTimeoutError" in (failed.error or "")
    await rt.wait_idle()
    assert len(called) == 1  # on_failure, with its ctx
    assert called[0] != "ok"
    flow_ok = cf.define("habits-ok", hooks={"onSuccess": lambda ctx: called.append("ok")})
    rt.register(flow_ok.step("quick", _one).timeout("5s"))
    assert (await rt.wait(await rt.trigger("habits-ok"), timeout=5)).output == 1
    await rt.wait_idle()
    assert called[-1] == "ok"


async def test_retry_and_cache_as_cronflow_dicts_mean_what_they_meant(rt: cf.Runtime) -> None:
    tries: list[int] = []
    computed: list[str] = []

    def flaky(ctx: Any) -> str:
        tries.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("network blip")
        return "ok"

    def priced(ctx: Any) -> int:
        computed.append(ctx.payload["sku"])
        return 42

    flow = (
        cf.define("dicts")
        .step("priced", priced, cache={"key": lambda ctx: ctx.payload["sku"], "ttl": "1h"})
        .step("flaky", flaky)
        .retry({"attempts": 3, "backoff": {"strategy": "fixed", "delay": "0s", "maxDelay": "1s"}})
    )
    rt.register(flow)
    first = await rt.wait(await rt.trigger("dicts", {"sku": "a"}), timeout=5)
    assert (first.status, first.output) == ("completed", "ok")
    assert tries == [1, 2, 3]  # three attempts, as Cronflow's attempts: 3 meant
    second = await rt.wait(await rt.trigger("dicts", {"sku": "a"}), timeout=5)
    assert second.status == "completed"
    assert computed == ["a"]  # the second run's priced came from the cache
    tries.clear()
    flat = {"attempts": 2, "strategy": "linear", "delay": "0s"}  # the fields unnested
    rt.register(cf.define("flat").step("flaky", flaky, retry=flat))
    failed = await rt.wait(await rt.trigger("flat"), timeout=5)
    assert failed.status == "failed"
    assert tries == [1, 2]


def test_cronflow_dicts_of_retry_and_cache_are_checked_key_by_key() -> None:
    bare = cf.define("bare").step("s", _one, retry={"backoff": {"strategy": "fixed", "delay": 500}})
    assert (
        "step 's' retry: delay 500 has no unit: write '500ms' (Cronflow's numbers are "
        "milliseconds) or '500s'"
    ) in _problems(bare)
    unknown = cf.define("unknown").step("s", _one).retry({"attempts": 3, "tries": 2})
    assert "step 's' retry: unknown key 'tries' (it takes 'attempts', 'backoff'" in _problems(
        unknown
    )
    twice = cf.define("twice").action("a", _one, retry={"maxDelay": "1s", "max_delay": "2s"})
    assert "action 'a' retry: max_delay is given twice (by both of its names)" in _problems(twice)
    nested = cf.define("nested").step("s", _one, retry={"backoff": {"attempts": 5}})
    assert "step 's' retry: backoff holds 'strategy', 'delay'" in _problems(nested)
    assert "'attempts' is no key of it" in _problems(nested)
    both = cf.define("both").step("s", _one, retry={"delay": "1s", "backoff": {"delay": "2s"}})
    assert "step 's' retry: delay is given twice (at the top and in backoff)" in _problems(both)
    keyless = cf.define("keyless").step("s", _one, cache={"ttl": "1h"})
    assert "step 's' cache: a cache needs its key" in _problems(keyless)
    strategy = cf.define("strategy").step("s", _one, retry={"backoff": {"strategy": "random"}})
    assert "retry backoff must be one of ['fixed', 'linear', 'exponential']" in _problems(strategy)


async def test_a_steps_options_as_cronflows_third_argument_mean_what_they_meant(
    rt: cf.Runtime,
) -> None:
    tries: list[int] = []

    async def slow_once(ctx: Any) -> str:
        tries.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(5)
        return "ok"

    options = {
        "timeout": "50ms",
        "retry": {"attempts": 2, "backoff": {"strategy": "fixed", "delay": "0s"}},
        "circuitBreaker": {"failureThreshold": 3, "recoveryTimeout": "10s"},
    }
    rt.register(cf.define("third").step("slow", slow_once, options))
    done = await rt.wait(await rt.trigger("third"), timeout=5)
    assert (done.status, done.output) == ("completed", "ok")
    assert tries == [1, 2]  # the first attempt cut at 50 ms, the retry's went through
    described = cf.define("breaker").step("s", _one, options).get_step("s")
    assert described.options["circuit_breaker"] == {"failures": 3, "reset": "10s", "errors": None}


def test_a_steps_options_dict_is_checked_key_by_key() -> None:
    said = _problems(
        cf.define("checked")
        .step("a", _one, {"timeot": "5s"})
        .step("b", _one, {"timeout": "2s"}, timeout="1s")
        .step("c", _one, {"timeout": 5000})
        .step("d", _one, 5)  # type: ignore[arg-type]
    )
    assert "step 'a': unknown option 'timeot' (it takes 'timeout', 'retry', 'cache'" in said
    assert "step 'b': timeout is given twice (by name and in the dict)" in said
    assert (
        "step 'c': timeout 5000 has no unit: write '5000ms' (Cronflow's numbers are "
        "milliseconds) or '5000s'"
    ) in said
    assert "step 'd': its third argument is Cronflow's options dict" in said


def test_a_function_that_cannot_take_what_it_is_called_with_is_refused_at_build() -> None:
    # a hook or handler written for another shape failed every run, at run time (a hook only
    # after its run had ended); each is called with the ctx (on_retry with four arguments)
    def two(ctx: Any, extra: Any) -> int:
        return 1

    said = _problems(
        cf.define("shapes", hooks={"onSuccess": two, "on_failure": lambda: None})
        .step("a", two)
        .step("b", _one, on_error=lambda: 0, retry=cf.Retry(on_retry=_one))
        .step("c", _one, cache=cf.Cache(key=two))
        .action("d", lambda: None)
    )
    for expected in [
        "hooks on_success must take one argument, as in on_success(ctx); it takes (ctx: 'Any', "
        "extra: 'Any')",
        "hooks on_failure must take one argument, as in on_failure(ctx); it takes ()",
        "step 'a': handler must take one argument, as in handler(ctx); it takes (ctx: 'Any', "
        "extra: 'Any')",
        "step 'b': on_error must take one argument, as in fallback(ctx); it takes ()",
        "step 'b': retry on_retry must take 4 arguments, as in on_retry(ctx, error, attempt, "
        "delay); it takes (ctx: 'Any')",
        "step 'c': cache key must take one argument, as in key(ctx) -> str",
        "action 'd': handler must take one argument, as in handler(ctx); it takes ()",
    ]:
        assert expected in said
    # what takes one argument passes: defaults, *args, builtins, bound methods
    fine = cf.define("fine").step("a", lambda ctx, extra=1: 1).step("b", lambda *a: 1)
    fine.step("c", str).step("d", [].append).validate()


async def test_a_per_item_function_mistaken_for_a_builder_says_how_to_build_one(
    rt: cf.Runtime,
) -> None:
    mistaken = cf.define("mistaken").for_each(
        "each", lambda ctx: [1, 2], lambda item, f: f.step("x", _one)
    )
    rt.register(mistaken)
    failed = await rt.wait(await rt.trigger("mistaken"), timeout=5)
    assert failed.status == "failed"
    assert "to build a flow for each item, name its second parameter 'flow'" in (failed.error or "")

    async def builder(item: Any, flow: cf.Flow) -> None:
        flow.step("x", _one)

    awaited = cf.define("awaited").for_each("each", lambda ctx: [1], builder)
    assert "must be a plain def (or a lambda), not async def" in _problems(awaited)


async def test_ctx_cancel_ends_the_run_canceled_with_its_reason(
    rt: cf.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Cronflow's ``ctx.cancel(reason)``: it was an AttributeError, and the run failed."""
    ran: list[str] = []
    hooks: list[str] = []

    def check(ctx: Any) -> str:  # a plain def step, on a pool thread
        if ctx.payload["amount"] <= 0:
            ctx.cancel("nothing to charge")
        return "charged"

    async def guarded(ctx: Any) -> str:  # neither its retries nor its fallback hear of it
        ran.append("guarded")
        ctx.cancel()
        return "unreachable"

    child = cf.define("inner").step("stop", guarded)
    rt.register(
        cf.define(
            "charge",
            hooks={"on_failure": lambda ctx: hooks.append("failure"), "on_complete": hooks.append},
        )
        .step("check", check)
        .step("after", lambda ctx: ran.append("after"))
    )
    rt.register(
        cf.define("outer")
        .step("s", guarded, retry=cf.Retry(attempts=3), on_error=lambda ctx: "fallback")
        .step("after", lambda ctx: ran.append("after"))
    )
    rt.register(cf.define("parent").subflow("sub", child).step("after", lambda ctx: ran.append(1)))

    run_id = await rt.trigger("charge", {"amount": 0})
    result = await rt.wait(run_id, timeout=5)
    assert (result.status, result.error) == ("canceled", "nothing to charge")
    steps = {s.id: str(s.status) for s in (await rt.inspect(run_id)).steps}
    assert steps == {"check": "canceled"}
    assert (await rt.wait(await rt.trigger("charge", {"amount": 5}), timeout=5)).status == (
        "completed"
    )
    assert ran == ["after"]  # only the run that was not canceled went on
    await rt.wait_idle()
    assert "failure" not in hooks  # a canceled run is no failure: on_complete only

    ran.clear()
    guarded_run = await rt.wait(await rt.trigger("outer"), timeout=5)
    assert (guarded_run.status, guarded_run.error) == ("canceled", None)  # no reason given
    assert ran == ["guarded"]  # one attempt: not retried, not answered by on_error
    whole = await rt.wait(await rt.trigger("parent"), timeout=5)
    assert whole.status == "canceled"  # from inside a subflow, the whole run
    assert ran == ["guarded", "guarded"]
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


async def test_ctx_cancel_in_a_condition_or_an_items_function_cancels_the_run(
    rt: cf.Runtime,
) -> None:
    """Not only a step may end its run as canceled: a condition or a for_each's items function
    that calls ctx.cancel() as the step before it is recorded cancels it too (it failed the run
    with CancelRunRequested, and would have called on_failure)."""

    def nothing_left(ctx: Any) -> Any:
        if not ctx.last:
            ctx.cancel("nothing to ship")
        return ctx.last

    rt.register(
        cf.define("by-condition")
        .step("count", lambda ctx: ctx.payload)
        .if_("any", nothing_left)
        .step("ship", lambda ctx: "shipped")
        .end_if()
    )
    rt.register(
        cf.define("by-items")
        .step("count", lambda ctx: ctx.payload)
        .for_each("lines", nothing_left, lambda item, ctx: item)
    )
    for flow in ("by-condition", "by-items"):
        canceled = await rt.wait(await rt.trigger(flow, []), timeout=5)
        assert (canceled.status, canceled.error) == ("canceled", "nothing to ship"), flow
        assert (await rt.wait(await rt.trigger(flow, [1]), timeout=5)).status == "completed"


def test_cronflow_method_names_say_their_names_here() -> None:
    flow = cf.define("named").step("s", _one)
    with pytest.raises(AttributeError, match=r"Cronflow's \.elseIf\(\) is \.elif_\(\) here"):
        flow.elseIf  # noqa: B018
    with pytest.raises(AttributeError, match=r"Cronflow's \.toJSON\(\) is \.to_json\(\) here"):
        flow.toJSON  # noqa: B018
    with pytest.raises(AttributeError, match="'Flow' object has no attribute 'nothing'"):
        flow.nothing  # noqa: B018
    assert "cf.define('orders', name='Orders')" in _problems(cf.define({"id": "x"}))  # type: ignore[arg-type]


async def test_a_forgotten_await_and_a_wait_that_gives_up_say_so(rt: cf.Runtime) -> None:
    async def forgot(ctx: Any) -> Any:
        return {"limit": ctx.state.get("limit", 100)}  # no await: a coroutine in the output

    rt.register(cf.define("forgot").step("s", forgot))
    failed = await rt.wait(await rt.trigger("forgot"), timeout=5)
    assert failed.status == "failed"
    said = re.sub(r"coroutine \(\w+\.kv_get\)", "coroutine (kv_get)", failed.error or "")
    assert said == (
        "step 's': TypeError: the handler's output holds a coroutine (kv_get) that nothing "
        "awaited: await it (in an async def step, ctx.state's calls are awaited)"
    )

    class Receipt:  # a domain object, as a DBOS or Temporal user returns one
        amount = 5

    rt.register(cf.define("object").step("s", lambda ctx: Receipt()))
    failed = await rt.wait(await rt.trigger("object"), timeout=5)
    assert failed.error == (  # msgspec's words alone said nothing of what to return (h42 F10)
        "step 's': TypeError: Encoding objects of type Receipt is unsupported: a handler's "
        "output is recorded as plain data (dicts, lists, strings, numbers, booleans, None, "
        "bytes, dates, a dataclass or a msgspec.Struct): return one, as "
        "dataclasses.asdict(...) or a dict of its fields"
    )
    rt.register(cf.define("held").human_in_the_loop("approve", description="ok?"))
    run_id = await rt.trigger("held")
    with pytest.raises(TimeoutError) as gave_up:
        await rt.wait(run_id, timeout=0.2)
    said = str(gave_up.value)
    assert said.startswith(f"run {run_id} did not end within 0.2 s: it is waiting, at step")
    assert "'approve' (human)" in said
    assert "rt.resume(token, payload)" in said


async def test_canceling_a_run_that_ended_says_it_ended(rt: cf.Runtime) -> None:
    rt.register(cf.define("quick").step("s", _one))
    run_id = await rt.trigger("quick")
    await rt.wait(run_id, timeout=5)
    with pytest.raises(cf.errors.InvalidStateTransitionError) as refused:
        await rt.cancel(run_id)
    assert str(refused.value).endswith(
        "is 'completed' and cannot become 'canceled': it has ended, and nothing changes it any more"
    )  # where it said "from 'completed' it can become []"
    assert str(refused.value).startswith(f"run '{run_id}' is")  # (no "workflow")


async def test_canceling_a_run_that_went_on_elsewhere_names_where(rt: cf.Runtime) -> None:
    """A run canceled for its migration was refused as "'canceled' cannot become 'canceled'",
    saying nothing of the run its work went on in, which can be canceled (chaos h32 F3)."""
    for version in ("v1", "v2"):
        rt.register(cf.define("held", version=version).pause("hold"))
    old = await rt.trigger("held")  # on v2, the newest
    await rt.wait_idle()
    new = await rt.migrate(old, "v1")
    with pytest.raises(cf.errors.InvalidStateTransitionError) as refused:
        await rt.cancel(old)
    assert str(refused.value) == (
        f"run '{old}' is 'canceled' already: it has ended, and nothing changes it any more; its "
        f"work went on in run '{new}' (migrated): cancel that one"
    )
    assert (await rt.inspect(old)).current_run_id == new
    # through a chain: a failed run resumed, its resume failed and resumed in turn, names the
    # chain's end (newcomer h33 F4: it named the resume between, which had ended too)
    tries = {"n": 0}

    def flaky(ctx: Any) -> None:
        tries["n"] += 1
        if tries["n"] <= 2:
            raise ValueError(f"try {tries['n']}")

    rt.register(cf.define("flaky").step("f", flaky).pause("hold"))
    first = await rt.trigger("flaky")
    assert (await rt.wait(first)).status == "failed"
    second = await rt.replay(first, resume=True)
    assert (await rt.wait(second)).status == "failed"
    third = await rt.replay(second, resume=True)
    await rt.wait_idle()
    assert (await rt.inspect(first)).current_run_id == third
    assert (await rt.inspect(third)).current_run_id is None  # it went on nowhere
    with pytest.raises(cf.errors.InvalidStateTransitionError) as refused:
        await rt.cancel(first)
    assert str(refused.value).endswith(
        f"its work went on in run '{third}' (through resumes or migrations): cancel that one"
    )
    await rt.cancel(third)
    with pytest.raises(cf.errors.InvalidStateTransitionError) as refused:
        await rt.cancel(second)
    assert str(refused.value).endswith(
        f"its work went on in run '{third}' (resumed), which has ended too"
    )


async def test_ctx_cancel_in_a_callback_cancels_the_run(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """``ctx.cancel(reason)`` in a step's ``on_retry``, a pause's ``on_pause`` or ``on_timeout``
    was logged as the callback's failure and canceled nothing: the step was tried again, the
    run went on past the pause (conform h28 M1). It cancels the run, with its reason."""
    tried: list[int] = []

    def failing(ctx: Any) -> None:
        tried.append(ctx.attempt)
        raise RuntimeError("the bank is down")

    def stop(ctx: Any, *_: Any) -> None:
        ctx.cancel(f"stopped in {ctx.step_name}")

    retry = cf.Retry(attempts=3, backoff="fixed", delay=0.01, on_retry=stop)
    rt.register(cf.define("by-retry").step("charge", failing, retry=retry))
    rt.register(cf.define("by-pause").human_in_the_loop("ok", description="?", on_pause=stop))
    timing_out = cf.define("by-timeout").human_in_the_loop(
        "ok", description="?", timeout=0.5, on_timeout=stop
    )
    rt.register(timing_out.wait_for_event("next", "never"))
    for flow in ("by-retry", "by-pause", "by-timeout"):
        run_id = await rt.trigger(flow)
        await rt.wait_idle()
        clock.advance(1)  # past the pause's timeout, and the retry's delay
        result = await rt.wait(run_id, timeout=5)
        step = "charge" if flow == "by-retry" else "ok"
        assert (result.status, result.error) == ("canceled", f"stopped in {step}"), flow
    assert tried == [1]  # not tried again
    assert not [r for r in caplog.records if r.levelname == "ERROR"]

    ended: list[str] = []

    def too_late(ctx: Any) -> None:  # the run has ended: nothing to cancel, said so
        ended.append(ctx.step_name or "hook")
        ctx.cancel("too late")

    rt.register(cf.define("by-hook", hooks={"on_success": too_late}).step("s", _one))
    assert (await rt.wait(await rt.trigger("by-hook"), timeout=5)).status == "completed"
    await rt.wait_idle()
    for _ in range(100):
        if "called ctx.cancel('too late')" in caplog.text:
            break
        await asyncio.sleep(0.01)
    assert ended == ["hook"]
    assert "not canceled" in caplog.text


async def test_a_step_publishes_an_event_once_however_often_it_runs(rt: cf.Runtime) -> None:
    """A provider's signed webhook could start a run but not reach one waiting for its event: a
    step could not publish (no ``ctx.publish_event``), so a relay needed an operator's token and
    the server's own URL (newcomer h28 F3). A step publishes as ``rt.publish_event`` does,
    keyed by its own idempotency key: its retry publishes nothing twice."""
    heard: list[Any] = []
    answers: list[Any] = []

    def forward(ctx: Any) -> list[str]:  # a plain def step: the answer itself
        ctx.publish_event("tried", {"attempt": ctx.attempt})  # another payload each attempt
        result = ctx.publish_event("paid", {"order": ctx.payload["order"]})
        answers.append(list(result))
        if ctx.attempt == 1:
            raise RuntimeError("the acknowledgement was lost")
        return list(result.delivered)

    async def forward_async(ctx: Any) -> list[str]:
        result = await ctx.publish_event("paid", {"order": ctx.payload["order"]})
        return list(result.delivered)

    def mine(payload: Any, ctx: Any) -> bool:
        return bool(payload["order"] == ctx.payload["order"])

    waiter = cf.define("order").wait_for_event("paid", "paid", filter=mine)
    rt.register(waiter.step("ship", lambda ctx: heard.append(ctx.last) or ctx.last))
    rt.register(cf.define("audit").on_event("paid").step("log", lambda ctx: ctx.payload))
    rt.register(cf.define("tries").on_event("tried").step("log", lambda ctx: ctx.payload))
    retry = cf.Retry(attempts=2, backoff="fixed", delay=0)
    rt.register(cf.define("relay").step("forward", forward, retry=retry))
    rt.register(cf.define("relay-async").step("forward", forward_async))
    for order, relay in (("o-1", "relay"), ("o-2", "relay-async")):
        waiting = await rt.trigger("order", {"order": order})
        await rt.wait_idle()
        relayed = await rt.wait(await rt.trigger(relay, {"order": order}), timeout=5)
        assert (relayed.status, relayed.output) == ("completed", [waiting]), relay
        assert (await rt.wait(waiting, timeout=5)).status == "completed"
    assert heard == [{"order": "o-1"}, {"order": "o-2"}]
    assert answers[0] == answers[1]  # the retry's publish: its first, the audit run not again
    audits = [r for r in await rt.list_runs(workflow="audit")]
    assert len(audits) == 2
    # a later attempt's publish of another payload is no reuse of the key refused at every
    # retry for good (the verifier's h28 N1), nor a second publish (the second verifier's h28):
    # the first attempt's stands, and the retry is answered as it was
    assert [r.payload["attempt"] for r in await rt.list_runs(workflow="tries")] == [1]


async def relay_at_its_publish(rt: cf.Runtime, payload: Any) -> tuple[str, str, asyncio.Event]:
    """A ``relay`` run whose step publishes ``paid`` (``payload``), which a ``ledger`` flow
    listens for, once the event returned is set: the run, and its step's own key."""
    keys: list[str] = []
    go = asyncio.Event()

    async def forward(ctx: Any) -> str:
        keys.append(ctx.idempotency_key)
        await go.wait()
        await ctx.publish_event("paid", payload)
        return "sent"

    rt.register(cf.define("ledger").on_event("paid").step("log", lambda ctx: ctx.payload))
    rt.register(cf.define("relay").step("forward", forward))
    run = await rt.trigger("relay")
    for _ in range(500):
        if keys:
            break
        await asyncio.sleep(0.01)
    return run, keys[0], go


async def test_a_step_s_own_publish_key_is_none_a_caller_can_take_first(rt: cf.Runtime) -> None:
    """A step's publish was keyed by its work item's id, which any reader sees: a client that
    published first under that key, its own payload, started the listeners with it, and the
    step failed for good, the real event never published (hostile h29 H1)."""
    run, key, forged = await relay_at_its_publish(rt, {"real": True})
    # the key the step's publish was named by, sent first from outside
    await rt.publish_event("paid", {"forged": True}, idempotency_key=f"{key}:paid:0")
    forged.set()
    assert (await rt.wait(run, timeout=5)).status == "completed"
    await rt.wait_idle()
    logged = [r.payload["event"]["payload"] for r in await rt.list_runs(workflow="ledger")]
    assert sorted(logged, key=str) == [{"forged": True}, {"real": True}]
    with pytest.raises(cf.errors.ConfigurationError, match="printable characters"):
        await rt.publish_event("paid", {}, idempotency_key="\x1fstep\x1fx")  # nothing started
    with pytest.raises(cf.errors.ConfigurationError, match="printable characters"):
        await rt.publish_event("paid", {}, idempotency_key="k\x85")  # a C1 control too
    assert len(await rt.list_runs(workflow="ledger")) == 2


async def test_a_step_that_published_before_the_namespace_is_answered_as_before(
    rt: cf.Runtime,
) -> None:
    """A step that published under its key as a release before the namespace made it, and ran
    again after the upgrade (a crash, a retry, a resume), published again under the new key:
    the listeners started twice (the reviewer's h29 H2). A first payload recorded under the
    old key (only a step's publish records one) keeps that key."""
    run, key, ready = await relay_at_its_publish(rt, {"n": 2})  # (the first payload stands)
    old_key = f"{key}:paid:0"  # what a release before published under, as it did it
    await rt.events._first_payload("paid", {"n": 1}, old_key)
    await rt.publish_event("paid", {"n": 1}, idempotency_key=old_key)
    ready.set()
    assert (await rt.wait(run, timeout=5)).status == "completed"
    await rt.wait_idle()
    logged = [r.payload["event"]["payload"] for r in await rt.list_runs(workflow="ledger")]
    assert logged == [{"n": 1}]  # once, with the first attempt's payload


async def test_a_step_publishes_an_event_whose_name_is_long(rt: cf.Runtime) -> None:
    """A name of 163 to 200 characters (a valid one) failed the step: its own key (the step's
    and the name) was held to the 200 characters of a caller's (conform h30 F1)."""
    name = "orders." + "x" * 193
    rt.register(cf.define("listener").on_event(name).step("l", lambda ctx: ctx.payload))
    rt.register(cf.define("pub").step("p", lambda ctx: list(ctx.publish_event(name, 7))))
    result = await rt.wait(await rt.trigger("pub"), timeout=5)
    assert result.status == "completed", result.error
    [started] = result.output
    assert (await rt.wait(started, timeout=5)).output["event"]["payload"] == 7


async def test_a_hook_that_publishes_is_told_to_publish_from_a_step(rt: cf.Runtime) -> None:
    """A hook's ``ctx.publish_event`` asked for an idempotency key, then, given one, said the
    runtime was not serving events while it ran (the reviewer's h28 L2): it says at once where
    a publish works."""
    said: list[str] = []

    def announce(ctx: Any) -> None:
        try:
            ctx.publish_event("order.done", {}, idempotency_key="k1")
        except ValueError as error:
            said.append(str(error))

    rt.register(cf.define("announced", hooks={"on_complete": announce}).step("s", _one))
    await rt.wait(await rt.trigger("announced"), timeout=5)
    for _ in range(100):
        if said:
            break
        await asyncio.sleep(0.01)
    assert said
    assert "works in a run's steps and actions, not in a hook" in said[0]


async def test_a_step_whose_publish_was_cut_publishes_its_first_payload_when_run_again(
    rt: cf.Runtime,
) -> None:
    """A step's first attempt named its publish by its key and was cut before any listener
    started; the next attempt, another payload in hand (a timestamp), was answered with what
    the first had done: nothing, the event lost for good (the final checker's h28 F1). It
    publishes the first attempt's payload, as a retry of that publish."""
    events = rt.events
    start = events._start
    cut = [True]

    async def cut_once(*args: Any, **kwargs: Any) -> Any:
        if cut:
            cut.pop()
            raise ConnectionError("the store went away mid-publish")
        return await start(*args, **kwargs)

    events._start = cut_once  # type: ignore[method-assign]

    def charge(ctx: Any) -> str:
        ctx.publish_event("charged", {"attempt": ctx.attempt})
        return "charged"

    retry = cf.Retry(attempts=2, backoff="fixed", delay=0)
    rt.register(cf.define("charging").step("charge", charge, retry=retry))
    rt.register(cf.define("ledger").on_event("charged").step("log", lambda ctx: ctx.payload))
    assert (await rt.wait(await rt.trigger("charging"), timeout=5)).status == "completed"
    await rt.wait_idle()
    logged = [r.payload["attempt"] for r in await rt.list_runs(workflow="ledger")]
    assert logged == [1]  # the first attempt's payload, published once

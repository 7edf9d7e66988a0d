"""Definitions: every mistake reported at once; cron expressions; retry delays."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import ConfigurationError, InvalidWorkflowError
from cronflow_actors.flow import CronExpression


async def noop(ctx: object) -> None:
    return None


def test_every_mistake_is_reported_in_one_error() -> None:
    flow = (
        cf.define("broken", concurrency=0, timeout="soon")
        .step("a", noop)
        .step("a", noop)
        .end_if()
        .else_()
        .step("b", noop, retry=cf.Retry(attempts=0, backoff="random"))
        .on_schedule("61 * * * *")
        .on_interval("0s")
        .if_("open", lambda ctx: True)
        .step("c", "not a function")  # type: ignore[arg-type]
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.build()
    problems = "\n".join(caught.value.problems)
    for expected in (
        "step id 'a' is used twice",
        "end_if() without an if_",
        "else_() without an if_",
        "retry attempts must be a whole number >= 1",
        "retry backoff must be one of",
        "minute field '61' is not valid",
        "on_interval must be longer than 0",
        "if_('open') has no end_if()",
        "handler must be a function",
        "concurrency must be a whole number >= 1",
        "workflow timeout must be a number of seconds",
    ):
        assert expected in problems, expected


def test_misplaced_options_name_the_methods_a_user_calls() -> None:
    flow = (
        cf.define("placed")
        .parallel("p", [noop])
        .retry(cf.Retry(attempts=2))
        .batch("b", lambda ctx: [1], 1, lambda chunk, ctx: None)
        .cache(key=lambda ctx: 1)
        .if_("c", lambda ctx: True)
        .step("s", noop)
        .end_if()
        .on_error(noop)
        .while_("w", lambda ctx: False, noop, max_iterations=0)
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.build()
    assert caught.value.problems == [
        ".retry() must follow one of .step(), .action(), .wait_for_event(); "
        "it follows .parallel('p')",
        ".cache() must follow .step(); it follows .batch('b')",
        ".on_error() must follow one of .step(), .action(), .while_(), .parallel(), .race(), "
        ".for_each(), .batch(), .subflow(), .wait_for_event(); it follows .if_('c')",
        "while_ 'w': max_iterations must be a whole number >= 1, got 0",
    ]


def test_what_follows_a_cancel_in_its_branch_is_refused_as_it_would_never_run() -> None:
    """``.cancel().step("b")`` was taken, and "b" never ran (devx h40 F11)."""
    flow = cf.define("stops").step("a", noop).cancel("stop").step("b", noop).log("never")
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.build()
    assert caught.value.problems == [
        ".step('b') follows .cancel(), where the run ends as canceled: it would never run; put "
        "it before the cancel, or end the branch first (.end_if())"
    ]
    branch = cf.define("branch").if_("no", lambda ctx: True).cancel("no").end_if().step("b", noop)
    branch.build()  # after the branch: it runs when the branch is not taken


async def test_a_flow_naming_itself_as_its_subflow_is_refused_by_validate_too(
    rt: cf.Runtime,
) -> None:
    tree = (
        cf.define("tree")
        .step("a", lambda ctx: 0)
        .if_("more", lambda ctx: ctx.last < 3)
        .subflow("s", "tree")
        .end_if()
    )
    expected = "subflow 's' names its own flow 'tree': a flow cannot run itself as a subflow"
    with pytest.raises(InvalidWorkflowError, match=expected):
        tree.validate()
    with pytest.raises(InvalidWorkflowError, match=expected):
        rt.register(tree)


def test_a_flow_without_steps_is_refused() -> None:
    with pytest.raises(InvalidWorkflowError, match="no steps"):
        cf.define("empty").build()


def test_a_thing_that_is_no_workflow_is_refused_with_its_place_in_the_list() -> None:
    # an app's workflows list holding a flow's id rather than the flow, say
    flow = cf.define("ok").step("s", lambda ctx: 1)
    with pytest.raises(ConfigurationError) as refused:
        cf.Runtime(workflows=[flow, "order-flow"])
    said = str(refused.value)
    assert said.startswith("setting 'workflows[1]' has the value 'order-flow'; expected a flow ")
    assert "cf.define(...)" in said
    assert "net.workflow(...).build()" in said
    with pytest.raises(ConfigurationError, match=r"expected a flow from cf.define\(\.\.\.\)"):
        cf.Runtime().register("order-flow")  # type: ignore[arg-type]


async def test_register_refuses_a_broken_flow_and_registers_nothing(rt: cf.Runtime) -> None:
    with pytest.raises(InvalidWorkflowError):
        rt.register(cf.define("bad").step("x", noop).on_error(noop).on_error(noop).end_if())
    assert rt.registry.names() == []


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def iso(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("0 2 * * *", "2026-11-21 10:00:00", "2026-11-22 02:00:00"),
        ("*/15 * * * *", "2026-11-21 10:07:30", "2026-11-21 10:15:00"),
        ("*/10 * * * * *", "2026-11-21 10:00:05", "2026-11-21 10:00:10"),
        ("0 9 * * mon-fri", "2026-11-21 10:00:00", "2026-11-23 09:00:00"),  # 21st is a Saturday
        ("0 0 1 jan *", "2026-11-21 10:00:00", "2027-01-01 00:00:00"),
        ("30 12 13 * 5", "2026-11-21 10:00:00", "2026-11-27 12:30:00"),  # a Friday or the 13th
        ("0 0 29 2 *", "2026-03-01 00:00:00", "2028-02-29 00:00:00"),
    ],
)
def test_cron_next_tick(cron: str, after: str, expected: str) -> None:
    assert iso(CronExpression.parse(cron).next_after(at(after))) == expected


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "has 4 fields"),
        ("* * 32 * *", "day-of-month field '32'"),
        ("5-1 * * * *", "minute field '5-1'"),
        ("*/0 * * * *", "minute field '\\*/0'"),
        ("* * * foo *", "month field 'foo'"),
    ],
)
def test_bad_cron_expressions_say_what_is_wrong(cron: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CronExpression.parse(cron)


def test_retry_delays_per_backoff() -> None:
    fixed = cf.Retry(backoff="fixed", delay="100ms")
    linear = cf.Retry(backoff="linear", delay=1)
    exponential = cf.Retry(backoff="exponential", delay="1s", max_delay="5s")
    assert [fixed.delay_before(n) for n in (1, 2, 3)] == [0.1, 0.1, 0.1]
    assert [linear.delay_before(n) for n in (1, 2, 3)] == [1, 2, 3]
    assert [exponential.delay_before(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    # a multiplier for linear is Cronflow's: delay * (1 + (n - 1) * m), where it was ignored
    # (h24 conformance L1)
    steeper = cf.Retry(backoff="linear", delay="1s", multiplier=3)
    assert [steeper.delay_before(n) for n in (1, 2, 3)] == [1, 4, 7]
    tripled = cf.Retry(backoff="exponential", delay=1, multiplier=3)
    assert [tripled.delay_before(n) for n in (1, 2, 3)] == [1, 3, 9]
    for jitter in ("lots", -5, None):  # (taken as on: devx h40 F13)
        [problem] = cf.Retry(jitter=jitter).problems("step 's'")  # type: ignore[arg-type]
        assert problem == f"step 's': retry jitter must be True or False, got {jitter!r}"
    for bad in (0.5, True, "2"):
        [problem] = cf.Retry(multiplier=bad).problems("step 's'")  # type: ignore[arg-type]
        assert problem == f"step 's': retry multiplier must be a number >= 1, got {bad!r}"
    jittered = cf.Retry(backoff="fixed", delay=2, jitter=True)
    assert jittered.delay_before(1, rng=lambda: 0.0) == 1.0
    assert jittered.delay_before(1, rng=lambda: 0.99) == pytest.approx(2.98)
    only_io = cf.Retry(retry_on=(OSError,))
    assert only_io.should_retry(ConnectionError())
    assert not only_io.should_retry(ValueError())
    assert cf.Retry(retry_on=lambda e: "blip" in str(e)).should_retry(RuntimeError("net blip"))


async def _no_retry(error: BaseException) -> bool:
    return False


class _AsyncFilter:
    async def __call__(self, error: BaseException) -> bool:
        return False


def test_an_async_retry_on_is_refused_where_it_was_never_awaited() -> None:
    """An ``async def`` filter was called, its coroutine never awaited and read as "retry":
    a filter that said "do not retry" retried every attempt (devx h40 F2)."""
    flow = cf.define("async-filter").step(
        "charge", lambda ctx: 1, retry=cf.Retry(attempts=3, retry_on=_no_retry)
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.validate()
    [problem] = caught.value.problems
    assert problem.startswith("step 'charge': retry_on must be a plain function, fn(error) -> ")
    assert "not an async one" in problem
    assert cf.Retry(retry_on=functools.partial(_no_retry)).problems("step 's'")
    assert cf.Retry(retry_on=_AsyncFilter()).problems("step 's'")
    with pytest.raises(TypeError, match="give a plain function"):  # taken without its check
        cf.Retry(retry_on=_AsyncFilter()).should_retry(ValueError())


async def test_two_definitions_under_one_id_and_version_are_refused_by_name() -> None:
    """A copied flow whose id was not changed (the newcomer's finding 10: the error spoke of a
    'setting' and read as if a new version were wanted)."""
    first = cf.define("orders").step("a", lambda ctx: 1)
    second = cf.define("orders").step("b", lambda ctx: 2)
    with pytest.raises(cf.errors.DuplicateWorkflowError) as refused:
        async with cf.Runtime(workflows=[first, second]):
            pass
    said = str(refused.value)
    assert said.startswith("workflow 'orders' version 'v1' is registered already")
    assert "Rename one (cf.define(id), net.workflow(name))" in said
    assert isinstance(refused.value, cf.errors.ConfigurationError)  # serve exits 2 on it


def test_an_interval_is_written_as_flows_and_fire_print_it_too() -> None:
    """``flows`` and ``fire`` name an interval ``every 600 s``, which ``on_interval`` refused
    (newcomer h32 F5): what the tools print can be pasted back."""
    for written in ("every 600 s", "every 10m", " every  600s ", "Every 10m", "10m", 600):
        flow = cf.define("tick").on_interval(written).step("s", str)
        flow.build()
        assert flow.intervals == [600.0], written
    for wrong in ("every", "every other minute", "everyday 10m"):
        with pytest.raises(InvalidWorkflowError, match="on_interval must be") as refused:
            cf.define("tick").on_interval(wrong).step("s", str).build()
        assert repr(wrong) in str(refused.value)  # as written (review h32 F14: "got ''")


def test_header_lists_that_are_no_lists_of_names_are_refused() -> None:
    """``required_headers={"x-api-key": "s3cret"}`` was taken, and only the header's presence
    checked: any key passed, an open webhook its author thought guarded. A string was split
    into its characters, every request refused (newcomer h31 F1). Both are refused, the secret
    not repeated in the error."""
    with pytest.raises(InvalidWorkflowError) as refused:
        (
            cf.define("hook")
            .on_webhook("/a", required_headers={"x-api-key": "s3cret"})
            .on_webhook("/b", required_headers="X-Shop")
            .on_webhook("/c", keep_headers=["X-Shop", 3])
            .step("s", str)
            .build()
        )
    said = str(refused.value)
    assert "required_headers is a list of header names a request must carry, and checks no " in said
    assert "got a mapping of ['x-api-key']. To check a shared secret, use require_token" in said
    assert "s3cret" not in said
    assert "required_headers must be a list of header names, got the string 'X-Shop'" in said
    assert "(a single one is written ['X-Shop'])" in said
    assert "keep_headers must be a list of header names, got ('X-Shop', 3)" in said
    fine = cf.define("fine").on_webhook("/d", required_headers=("X-Shop",)).step("s", str)
    fine.build()
    assert fine.webhooks[0].required_headers == ("x-shop",)


def test_header_names_no_request_could_carry_are_refused_and_those_never_kept_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``required_headers=["X Tenant"]`` built, then refused every request; ``keep_headers=
    ["Authorization"]`` was dropped unsaid; ``keep_headers=b"x-a"`` was said as the numbers of
    its bytes (conform h32 F7, hostile h32 L4)."""
    with pytest.raises(InvalidWorkflowError) as refused:
        (
            cf.define("hook")
            .on_webhook("/a", required_headers=["X Tenant", ""])
            .on_webhook("/b", keep_headers=["Authorization", "x-ok"], idempotency_key="my key")
            .on_webhook("/c", keep_headers=b"x-a")
            .on_webhook("/d", hmac_secret="s", keep_headers=["X-Signature-256"])
            .step("s", str)
            .build()
        )
    said = str(refused.value)
    assert "required_headers holds 'X Tenant', which is no header name" in said
    assert "required_headers holds '', which is no header name" in said
    assert "idempotency_key names the header 'my key', which is no header name" in said
    assert "keep_headers must be a list of header names, got b'x-a'" in said
    warned = caplog.text
    assert "keep_headers holds ['Authorization'], which a run never keeps" in warned
    assert "keep_headers holds the signature header 'X-Signature-256'" in warned
    assert "x-ok" not in said
    fine = cf.define("fine").on_webhook(
        "/e", required_headers=["Authorization"], keep_headers=["X-Trace_Id.2"]
    )
    fine.step("s", str).build()  # (requiring Authorization is checking it is there)


def test_a_function_a_decorator_wraps_is_checked_as_the_wrapper() -> None:
    """A condition wrapped by a decorator that fills in its argument ran before the arity
    checks, and was refused by them, which read the inner function (review h40 F3)."""

    def with_threshold(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(ctx: Any) -> Any:
            return fn(ctx, 10)

        return wrapper

    @with_threshold
    def big(ctx: Any, threshold: int) -> bool:
        return bool(ctx.payload > threshold)

    cf.define("wrapped").if_("big", big).step("a", lambda ctx: 1).end_if().validate()


def test_functions_of_every_construct_are_checked_for_what_they_are_called_with() -> None:
    """A condition, a parallel's function, a loop's, a for_each's, a subflow's input, an
    event's filter and a pause's callbacks written for another shape were taken, and failed
    each run that reached them (a one-argument event filter: every publish, the run waiting
    for good); they are refused with the shape they are called with (devx h40 F3)."""
    flow = (
        cf.define("shapes")
        .if_("big", lambda: True)
        .step("a", lambda ctx: 1)
        .end_if()
        .parallel("p", [lambda ctx: 1, lambda: 2])
        .while_("w", lambda: False, lambda ctx: None)
        .for_each("e", lambda ctx: [1], lambda item: item)
        .subflow("s", cf.define("child").step("c", lambda ctx: 0), input=lambda: {})
        .wait_for_event("paid", "order.paid", filter=lambda payload: True)
        .human_in_the_loop("ok", on_pause=lambda ctx: None, on_timeout=lambda ctx, x: None)
        .sleep("nap", lambda: "1s")
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.validate()
    assert [p.split(" must take ")[0] for p in caught.value.problems] == [
        "if_ 'big': the condition of 'big'",
        "parallel 'p': function 2",
        "while_ 'w': condition",
        "for_each 'e': function",
        "subflow 's': input",
        "wait_for_event 'paid': filter",
        "human_in_the_loop 'ok': on_pause",
        "human_in_the_loop 'ok': on_timeout",
        "sleep 'nap': duration",
    ]
    assert caught.value.problems[3].endswith(
        "must take 2 arguments, as in fn(item, ctx), or fn(item, flow) to build a flow; it "
        "takes (item)"
    )


async def test_a_registered_flow_cannot_change(tmp_path: Path) -> None:
    """A step added to a flow a running runtime had registered was taken without a word: its
    runs never ran it, and the next start held the runs waiting in it as edited without a
    version bump (devx h40 F7). Its test harness still runs it as registered."""
    child = cf.define("part").step("p", lambda ctx: 0)
    flow = cf.define("pinned").step("a", lambda ctx: 1).subflow("s", child)
    flow.step("b", lambda ctx: ctx.steps["a"])
    async with cf.Runtime(db=tmp_path / "pinned.db", workflows=[flow]) as rt:
        for change in (
            lambda: flow.step("late", lambda ctx: 2),
            lambda: flow.retry(cf.Retry(attempts=2)),
            lambda: flow.on_schedule("@daily"),
            flow.end_if,
            # a refused call's own problem stays behind neither (review h40 F9)
            lambda: flow.step("typo", lambda ctx: 2, retry={"attemps": 2}),
        ):
            with pytest.raises(InvalidWorkflowError) as caught:
                change()
            [problem] = caught.value.problems
            assert problem.startswith("flow 'pinned' version 'v1' is registered with a runtime")
            assert "define the new shape as a new version" in problem
        with pytest.raises(InvalidWorkflowError, match="flow 'part' version 'v1' is registered"):
            child.step("late", lambda ctx: 2)  # a subflow's too (review h40 F7)
        assert [step.id for step in flow.get_steps()] == ["a", "s", "b"]
        assert (await rt.wait(await rt.trigger("pinned", None))).output == 1
    assert (await flow.test().trigger(None).run()).output == 1
    assert (await flow.test().trigger(None).run()).output == 1  # (and again)


def test_an_event_wait_s_retry_on_that_raises_at_definition_is_a_problem() -> None:
    """An event wait's retry_on is asked once, where the flow is built (whether a timed-out
    wait waits again): one that raised there was a bare TypeError (review h40 F6)."""

    async def later(error: BaseException) -> bool:
        return False

    def hands_back_a_coroutine(error: BaseException) -> Any:
        return later(error)

    flow = cf.define("ev").wait_for_event(
        "paid", "order.paid", timeout="1h", retry=cf.Retry(retry_on=hands_back_a_coroutine)
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.validate()
    [problem] = caught.value.problems
    assert problem.startswith("wait_for_event 'paid': its retry_on raised TypeError: retry_on ")

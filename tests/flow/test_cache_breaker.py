"""A step's cache and circuit breaker: shared by the flow's runs, kept in the store (a restart
keeps them), on the runtime's clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.kernel import ManualClock


async def test_a_cached_step_answers_from_the_cache_until_its_ttl(
    tmp_path: Path, clock: ManualClock
) -> None:
    calls: list[str] = []

    def rate(ctx: cf.FlowContext) -> dict[str, Any]:
        calls.append(ctx.payload["currency"])
        return {"currency": ctx.payload["currency"], "rate": len(calls)}

    flow = (
        cf.define("rates")
        .step("rate", rate)
        .cache(key=lambda ctx: ctx.payload["currency"], ttl="1h")
        .step("use", lambda ctx: ctx.last["rate"])
    )
    db = tmp_path / "cache.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        first = await rt.wait(await rt.trigger("rates", {"currency": "EUR"}), timeout=5)
        again = await rt.wait(await rt.trigger("rates", {"currency": "EUR"}), timeout=5)
        other = await rt.wait(await rt.trigger("rates", {"currency": "USD"}), timeout=5)
        assert (first.output, again.output, other.output) == (1, 1, 2)
        assert calls == ["EUR", "USD"]
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:  # kept in the store
        assert (
            await rt.wait(await rt.trigger("rates", {"currency": "EUR"}), timeout=5)
        ).output == 1
        clock.advance(3601)
        assert (
            await rt.wait(await rt.trigger("rates", {"currency": "EUR"}), timeout=5)
        ).output == 3
    assert calls == ["EUR", "USD", "EUR"]


async def test_a_failed_step_caches_nothing(tmp_path: Path, clock: ManualClock) -> None:
    calls: list[int] = []

    def flaky(ctx: cf.FlowContext) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("down")
        return len(calls)

    flow = cf.define("c").step("s", flaky, cache=cf.Cache(key=lambda ctx: "k"))
    async with cf.Runtime(db=tmp_path / "c.db", clock=clock, workflows=[flow]) as rt:
        assert (await rt.wait(await rt.trigger("c"), timeout=5)).status == "failed"
        assert (await rt.wait(await rt.trigger("c"), timeout=5)).output == 2
        assert (await rt.wait(await rt.trigger("c"), timeout=5)).output == 2
    assert len(calls) == 2


async def test_the_circuit_breaker_opens_fails_fast_and_closes_after_a_good_trial(
    tmp_path: Path, clock: ManualClock
) -> None:
    calls: list[int] = []
    healthy = False

    def call_api(ctx: cf.FlowContext) -> str:
        calls.append(1)
        if not healthy:
            raise ConnectionError("the API is down")
        return "ok"

    breaker = cf.CircuitBreaker(failures=3, reset="30s")
    flow = cf.define("api").step("call", call_api, circuit_breaker=breaker)
    db = tmp_path / "breaker.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        for _ in range(3):
            assert (await rt.wait(await rt.trigger("api"), timeout=5)).status == "failed"
        assert len(calls) == 3
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:  # still open
        fast = await rt.wait(await rt.trigger("api"), timeout=5)
        assert fast.status == "failed"
        assert "circuit breaker of step 'call'" in (fast.error or "")
        assert "CircuitOpenError" in (fast.error or "")
        assert len(calls) == 3  # not run
        clock.advance(30)
        assert (await rt.wait(await rt.trigger("api"), timeout=5)).status == "failed"  # trial
        assert len(calls) == 4
        assert (await rt.wait(await rt.trigger("api"), timeout=5)).status == "failed"  # open
        assert len(calls) == 4
        clock.advance(30)
        healthy = True
        assert (await rt.wait(await rt.trigger("api"), timeout=5)).output == "ok"  # closes
        assert (await rt.wait(await rt.trigger("api"), timeout=5)).output == "ok"
        assert len(calls) == 6


async def test_only_the_errors_named_count(tmp_path: Path, clock: ManualClock) -> None:
    def broken(ctx: cf.FlowContext) -> None:
        raise ValueError("bad input, not an outage")

    breaker = cf.CircuitBreaker(failures=1, reset="1m", errors=[ConnectionError])
    flow = cf.define("v").step("s", broken, circuit_breaker=breaker)
    async with cf.Runtime(db=tmp_path / "v.db", clock=clock, workflows=[flow]) as rt:
        for _ in range(3):
            result = await rt.wait(await rt.trigger("v"), timeout=5)
            assert "ValueError" in (result.error or "")  # never the breaker


def test_bad_cache_and_breaker_options_are_reported() -> None:
    flow = (
        cf.define("bad")
        .step("a", str, cache=cf.Cache(key="not a function", ttl="0s"))
        .step("b", str, circuit_breaker=cf.CircuitBreaker(failures=0, reset="soon"))
        .step("c", str, cache=[str])  # type: ignore[arg-type]
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        flow.build()
    text = str(caught.value)
    assert "cache key must be a function" in text
    assert "cache ttl must be longer than 0" in text
    assert "circuit_breaker failures must be a whole number >= 1" in text
    assert "circuit_breaker reset" in text
    assert "cache must be a cf.Cache(...)" in text


async def test_a_retry_on_filter_or_a_cache_key_that_raises_is_said_and_not_the_steps_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The filter's or the key's exception was recorded as the step's, the step's own error
    lost, its on_error not called (and for the key, the function never run, no retry):
    conform h39 F2. A broken filter takes no retry; a broken key runs the step uncached."""
    calls: list[Any] = []

    def charge(ctx: Any) -> str:
        calls.append(("charge", ctx.attempt))
        raise TimeoutError("gateway timeout")

    def refund(ctx: Any) -> str:
        calls.append(("refund", str(ctx.error)))
        return "refunded"

    def is_transient(error: Any) -> bool:
        return bool(error.status >= 500)  # TimeoutError has no status: a bug in the filter

    filtered = cf.Retry(attempts=3, retry_on=is_transient)
    ro = cf.define("ro").step("charge", charge, retry=filtered).on_error(refund)
    result = await ro.test().trigger({}).run()
    assert (result.status, result.output) == ("completed", "refunded")
    assert calls == [("charge", 1), ("refund", "gateway timeout")]
    assert "the retry_on of step 'charge' raised AttributeError" in caplog.text
    assert "asked about TimeoutError: gateway timeout: no retry" in caplog.text

    calls.clear()
    keyed = cf.Cache(key=lambda ctx: ctx.payload["currency"], ttl="1h")
    ck = cf.define("ck").step("charge", charge, retry=cf.Retry(attempts=2), cache=keyed)
    result = await ck.on_error(refund).test().trigger({}).run()
    assert (result.status, result.output) == ("completed", "refunded")
    assert calls == [("charge", 1), ("charge", 2), ("refund", "gateway timeout")]
    assert "the cache key of step 'charge' raised KeyError: 'currency'" in caplog.text


async def test_the_warning_of_a_retry_on_that_raised_masks_the_flow_s_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its warning quoted the step's error, API key and all (review h39 F2)."""

    def call(ctx: Any) -> None:
        raise ConnectionError(f"https://pay.example/?key={ctx.secrets['key']}")

    def broken(error: Any) -> bool:
        return bool(error.status)  # a bug in the filter

    retry = cf.Retry(attempts=3, retry_on=broken)
    flow = cf.define("keyed", secrets={"key": "sk-live-77c1aa"}).step("call", call, retry=retry)
    result = await flow.test().trigger({}).run()
    assert result.status == "failed"
    assert "the retry_on of step 'call' raised AttributeError" in caplog.text
    assert "https://pay.example/?key=***" in caplog.text
    assert "sk-live-77c1aa" not in caplog.text

"""How a step's function is called: on the loop or the thread pool, within its timeout, behind
its cache and circuit breaker, with its retries (a failed attempt asks the engine for another
one on a durable timer) and its ``on_error`` fallbacks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from cronflow_actors.calls import call_logged, call_user, settle
from cronflow_actors.errors import (
    INFRASTRUCTURE,
    CancelRunRequested,
    CircuitOpenError,
    RetryRequested,
    RunFailedError,
    StepFailedError,
    StepTimeoutError,
    class_name,
    described,
)
from cronflow_actors.flow.context import FlowContext
from cronflow_actors.flow.options import CircuitBreaker
from cronflow_actors.messages import storable_attributes, without_secrets
from cronflow_actors.net.durations import parse_duration

__all__ = ["call_step", "describe", "fall_back", "step_handler"]

logger = logging.getLogger(__name__)

_MISS = object()


def call_step(
    ectx: Any, fn: Any, *args: Any, limit: float | None = None, step: str = ""
) -> Awaitable[Any]:
    """``fn(*args)`` for a work item, to await: ``calls.call_user`` with the item's blocking
    pool (a plain function runs there, a coroutine function on the loop), within ``limit``
    seconds when given (``StepTimeoutError`` naming ``step`` once they pass). Without a limit,
    ``call_user``'s own coroutine (a coroutine around it would be one more on every step)."""
    call = call_user(fn, *args, run_blocking=ectx.run_blocking)
    if limit is None:
        return call
    return _within(call, limit, step)


async def again(ectx: Any) -> None:
    """Return once a handler may call user code again within its attempt (a fallback, an
    ``on_retry``, an action's next try): its runtime's lease still renewed. A process paused
    past it (SIGSTOP, a frozen VM) wakes with the call due, which the process that took its run
    over has made by now: it waits for its heartbeat's word, and never makes the call once the
    lease is lost (crash h41 F1: a compensation ran twice, 18 s after the run completed)."""
    if ectx.admitted is not None:  # (None: a context made outside a runtime's handler)
        await ectx.admitted()


async def _within(call: Awaitable[Any], limit: float, step: str) -> Any:
    try:
        return await asyncio.wait_for(call, limit)
    except TimeoutError:
        raise StepTimeoutError(step, limit) from None


def describe(error: BaseException) -> str:
    """``Type: message``; a failure read back from its record (a caught group's or subflow's)
    in the words it was recorded in, which name its type already."""
    if isinstance(error, RunFailedError):
        return str(error)
    return described(error)


def step_handler(
    node: Any, step_ids: frozenset[str], flow_id: str, *, iterations: int | None = None
) -> Any:
    """The work item handler of a step-like node (a step, an action, a loop's body): its
    function with the node's options; a plain step pays for none it does not use.
    ``iterations``: a ``while_`` body's limit, past which an iteration fails (as the body's
    own error would: its ``on_error`` answers it)."""
    handler = node.handler
    retry = getattr(node, "retry", None)
    timeout = getattr(node, "timeout", None)
    cache = getattr(node, "cache", None)
    breaker = getattr(node, "circuit_breaker", None)

    fallbacks = bool(node.on_error) and iterations is None  # called here, in the step

    async def run(ectx: Any) -> Any:
        fctx = FlowContext.of(ectx, step_ids)
        if fallbacks and ectx.redispatches:  # cut in a fallback? its failure is kept
            failure = await _kept_failure(ectx, flow_id)
            if failure is not None:
                return await fall_back(node, fctx, failure, ectx)
        key = None if cache is None else await _cache_key(cache, fctx, node.id)
        if key is not None:
            hit = await ectx.state.sibling(f"cronflow:cache:{flow_id}").get(key, _MISS)
            if hit is not _MISS:
                return hit
        try:
            if iterations is not None and ectx.work_item.generation > iterations:
                raise RuntimeError(
                    f"while_ {node.id!r} exceeded {iterations} iterations (its max_iterations=)"
                )
            if breaker is None:
                output = await call_step(ectx, handler, fctx, limit=timeout, step=node.id)
            else:
                guard = _Guard(breaker, ectx.state, flow_id, node.id)
                await guard.enter()
                output = await call_step(ectx, handler, fctx, limit=timeout, step=node.id)
                await guard.succeeded()
        except Exception as error:
            if isinstance(error, (CancelRunRequested, *INFRASTRUCTURE)):
                raise  # ctx.cancel(): no failure (no breaker, retry or fallback hears of it);
                # nor the runtime's own failure met in the step's call (retest h41, crash F2)
            if breaker is not None and not isinstance(error, CircuitOpenError):
                await guard.failed(error)
            attempt = ectx.attempt or 1
            if retry is not None and attempt < retry.attempts:
                await again(ectx)  # its retry_on and on_retry are user code (review h41 F2)
                if _retries(retry, error, node.id, fctx.secrets):
                    delay = retry.delay_before(attempt)
                    if retry.on_retry is not None:  # one that raises is logged; retries go on
                        what = f"on_retry of step {node.id!r}"
                        asked = await call_logged(
                            retry.on_retry, fctx, error, attempt, delay, what=what
                        )
                        if asked is not None:  # its ctx.cancel(): the step ends the run
                            raise asked from error
                    raise RetryRequested(delay, describe(error)) from error
            if not fallbacks:
                raise  # (a loop's body: its task catches it, its fallback ends the loop)
            await _keep_failure(ectx, flow_id, error)
            return await fall_back(node, fctx, error, ectx)
        if key is not None and cache is not None:
            cached = ectx.state.sibling(f"cronflow:cache:{flow_id}")
            await cached.set(key, output, ttl=cache.ttl)
        return output

    return run


async def _cache_key(cache: Any, fctx: FlowContext, step: str) -> str | None:
    """The step's key in its cache; None, logged, when its key function raised: the step runs
    without its cache. Its error was the step's own, in the step's name (no retry, no fallback,
    the function never called: conform h39 F2), as a broken ``on_retry`` is no failure either."""
    try:
        return f"{step}:{await settle(cache.key(fctx))}"
    except Exception as error:
        logger.warning(
            "the cache key of step %r raised %s: the step runs without its cache",
            step,
            without_secrets(describe(error), fctx.secrets),
        )
        return None


def _retries(retry: Any, error: BaseException, step: str, secrets: Any) -> bool:
    """Whether ``retry`` takes another attempt after ``error``; a ``retry_on`` filter that
    raised takes none, logged, and the step's own error goes on to its fallbacks and its
    record (the filter's was recorded in its place, and no fallback ran: conform h39 F2)."""
    try:
        return bool(retry.should_retry(error))
    except Exception as raised:
        logger.warning(  # (each masked: a secret in either is in no log line, review h39 F2)
            "the retry_on of step %r raised %s, asked about %s: no retry",
            step,
            without_secrets(describe(raised), secrets),
            without_secrets(describe(error), secrets),
        )
        return False


_KEPT_FOR = 30 * 86_400
"""How long a step's failure is kept for its fallbacks (seconds): past any restart's wait."""


async def _keep_failure(ectx: Any, flow_id: str, error: BaseException) -> None:
    """A step's failure, durable before its first fallback starts: a restart that finds the
    step cut in one runs its fallbacks again, and not the step, whose failure was read here (a
    compensation gone out, then the step run again and succeeding: conform h39 F1). Kept under
    the work item's id in the flow's engine state: not its idempotency key, which a resume's
    item keeps (it read the old run's failure, review h39 F3), nor its attempt, which an
    action's dispatch after a restart counts up (retest h39 R1); only its last attempt falls
    back."""
    secrets = ectx.secrets
    data = without_secrets(storable_attributes(error), secrets)
    failure = {"error": without_secrets(describe(error), secrets), "type": class_name(error)}
    failure["data"] = data
    kept = ectx.state.sibling(f"cronflow:failed:{flow_id}")
    await kept.set(ectx.work_item.id, failure, ttl=_KEPT_FOR)


async def _kept_failure(ectx: Any, flow_id: str) -> StepFailedError | None:
    """The failure ``_keep_failure`` kept for this item, as its fallbacks read it then."""
    kept = ectx.state.sibling(f"cronflow:failed:{flow_id}")
    failure = await kept.get(ectx.work_item.id)
    if failure is None:
        return None
    return StepFailedError(failure["error"], type=failure["type"], attributes=failure["data"])


async def fall_back(node: Any, fctx: FlowContext, error: BaseException, ectx: Any) -> Any:
    """The node's ``on_error`` fallbacks in order, each with the error of the one before; the
    first that returns gives the output (and the error it answered is the work item's, beside
    it), the last one's error fails the step."""
    *earlier, last = node.on_error
    for fallback in earlier:
        fctx.error = error
        await again(ectx)
        try:
            output = await call_step(ectx, fallback, fctx)
            answered(ectx, error)
            return output
        except Exception as failed:
            error = failed
    fctx.error = error
    await again(ectx)
    try:
        output = await call_step(ectx, last, fctx)
    finally:  # (raised: what it was answering, said beside its own error: conform h31 F6)
        answered(ectx, error)
    return output


def answered(ectx: Any, error: BaseException) -> None:
    """Keep the error an ``on_error`` answered on the handler's context: its words, and its
    class (conform h35 F5: inspect showed the words only), a recorded failure's own."""
    ectx.answered_error = describe(error)
    recorded = error.type if isinstance(error, RunFailedError) else None
    ectx.answered_type = recorded or class_name(error)


class _Guard:
    """One attempt of a step behind its circuit breaker, whose state (failures in a row, when
    it opened) is kept in the store, shared by every run of the flow."""

    def __init__(self, breaker: CircuitBreaker, state: Any, flow_id: str, step: str) -> None:
        self._breaker = breaker
        self._state = state.sibling(f"cronflow:breaker:{flow_id}")
        self._flow = flow_id
        self._step = step
        self._failures = 0
        self._opened: float | None = None

    async def enter(self) -> None:
        """Let the attempt through, or raise ``CircuitOpenError`` while the breaker is open."""
        self._failures = int(await self._state.get(f"{self._step}:failures", 0))
        self._opened = await self._state.get(f"{self._step}:opened")
        if self._opened is None:
            return
        reset = parse_duration(self._breaker.reset, "circuit_breaker reset")
        remaining = self._opened + reset - self._state.now()
        if remaining > 0:
            raise CircuitOpenError(self._flow, self._step, self._failures, remaining)
        # half open: this attempt is the trial

    async def succeeded(self) -> None:
        if self._failures or self._opened is not None:
            await self._state.delete(f"{self._step}:failures")
            await self._state.delete(f"{self._step}:opened")

    async def failed(self, error: BaseException) -> None:
        if not self._breaker.counts(error):
            return
        failures = await self._state.incr(f"{self._step}:failures")
        if failures >= self._breaker.failures or self._opened is not None:
            await self._state.set(f"{self._step}:opened", self._state.now())

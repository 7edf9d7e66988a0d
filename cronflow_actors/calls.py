"""Calling user code that may be a plain function or a coroutine function: the one place that
decides where it runs.

``async def`` functions run on the event loop. Plain functions run on the blocking pool when
the caller has one (``run_blocking``: a step's or an action's handler, a run's hooks and its
callbacks after a commit), so a blocking one never stalls the loop, and on the loop otherwise
(conditions, routers and activities, inside a run's turn, which must be quick). A call given up
while it waits for a pool thread never runs. ``InOrder`` calls a run's callbacks one after
another. A plain function that returns an awaitable has it awaited. Like ``errors`` this module
is a leaf every layer may import: it uses nothing but the standard library and ``errors``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from types import CoroutineType, FunctionType
from typing import Any

from cronflow_actors.errors import CancelRunRequested

__all__ = [
    "BlockingRunner",
    "InOrder",
    "call_logged",
    "call_user",
    "callback_problem",
    "settle",
]

BlockingRunner = Callable[..., Awaitable[Any]]

logger = logging.getLogger("cronflow_actors")


async def settle(value: Any) -> Any:
    """``value``, awaited when it is awaitable (what a plain function may hand back)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def call_user(
    fn: Callable[..., Any], *args: Any, run_blocking: BlockingRunner | None = None
) -> Any:
    """``fn(*args)``: a coroutine function on the loop, a plain one on ``run_blocking`` when
    given (else on the loop); an awaitable result is awaited."""
    # where it runs: inspect.iscoroutinefunction(fn), with a shortcut for an ``async def``
    # function (a step's, every call: the flag on its code says so), written out here
    if (
        run_blocking is None
        or (type(fn) is FunctionType and fn.__code__.co_flags & inspect.CO_COROUTINE)
        or inspect.iscoroutinefunction(fn)
    ):
        value = fn(*args)
    else:
        pending = run_blocking(fn, *args)
        try:
            value = await pending
        except asyncio.CancelledError:  # (a timeout, a stop): not to run late, if not begun
            give_up = getattr(pending, "give_up", None)
            if give_up is not None:
                give_up()
            raise
    # settle(value), inline: a coroutine (what an async def returns) is awaited at once
    if type(value) is CoroutineType or inspect.isawaitable(value):
        return await value
    return value


async def call_logged(
    fn: Callable[..., Any],
    *args: Any,
    what: str = "a callback",
    run_blocking: BlockingRunner | None = None,
) -> CancelRunRequested | None:
    """``call_user(fn, *args, run_blocking=run_blocking)`` whose failure is logged, never
    raised (for callbacks after a commit, whose failure must not undo what is durable). A
    ``ctx.cancel(reason)`` it made is no failure: it is returned, for its caller to cancel the
    run (conform h28 M1: logged as a failure, it canceled nothing)."""
    try:
        await call_user(fn, *args, run_blocking=run_blocking)
    except CancelRunRequested as asked:
        return asked
    except Exception:
        logger.exception("%s failed", what)
    return None


class InOrder:
    """Calls the callbacks of one key (a run's hooks, ``on_pause``, ``on_timeout``) one after
    another, in the order given, each through ``call_logged``: a plain function on the
    blocking pool (so none stalls the loop), and still a run's ``on_start`` ends before its
    ``on_success`` begins. A callback's place is taken when its call begins: tasks created in
    order begin in order. It waits ``patience`` seconds at most for the one before (which may
    hang: a chat service that never answers), then goes on (logged). A callback that calls
    ``ctx.cancel(reason)`` cancels the run its key names, through ``cancel_run``."""

    def __init__(self, patience: float = 10.0) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}
        self._patience = patience
        self.cancel_run: Callable[[str, str], Awaitable[None]] | None = None
        """Cancels run ``key`` with a reason (the runtime's ``cancel``, wired at its start)."""

    async def call(
        self,
        key: str,
        fn: Callable[..., Any],
        *args: Any,
        what: str,
        run_blocking: BlockingRunner | None = None,
    ) -> None:
        before = self._last.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last[key] = done
        try:
            if before is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(before), self._patience)
                except TimeoutError:
                    logger.warning(
                        "%s: the callback before it has run %g s; it does not wait longer",
                        what,
                        self._patience,
                    )
            asked = await call_logged(fn, *args, what=what, run_blocking=run_blocking)
        finally:
            done.set_result(None)
            if self._last.get(key) is done:
                del self._last[key]
        if asked is not None:  # after its turn: the cancel's own hooks come after it
            await self._cancel(key, asked.reason, what)

    async def _cancel(self, key: str, reason: str, what: str) -> None:
        """``ctx.cancel(reason)`` in ``what``: run ``key`` is canceled; one that has ended (a
        hook of its end) or that cannot be is left as it is, logged."""
        try:
            if self.cancel_run is None:
                raise RuntimeError("no runtime cancels runs here")
            await self.cancel_run(key, reason)
        except Exception as error:
            logger.warning(
                "%s called ctx.cancel(%r): run %s not canceled: %s", what, reason, key, error
            )
            return
        logger.info("%s canceled run %s: %s", what, key, reason or "(no reason)")


def callback_problem(fn: Any, arity: int, where: str, shape: str) -> str | None:
    """What is wrong with ``fn`` as user code called with ``arity`` positional arguments, or
    None: checked where a definition is built, as a function written for another shape fails
    each run that reaches it. (Builtins whose signature Python cannot tell are taken on trust.)"""
    if not callable(fn):
        return f"{where} must be a function, {shape}; got {fn!r}"
    try:
        signature = inspect.signature(fn, follow_wrapped=False)  # (a wrapper may fill in some)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*range(arity))
    except TypeError:
        count = "one argument" if arity == 1 else f"{arity} arguments"
        return f"{where} must take {count}, as in {shape}; it takes {signature}"
    return None

"""Calling user code that may be a plain function or a coroutine function: the one place that
decides where it runs.

``async def`` functions run on the event loop. Plain functions run on the blocking pool when
the caller has one (``run_blocking``: a step's or an action's handler, a run's hooks and its
callbacks after a commit), so a blocking one never stalls the loop, and on the loop otherwise
(conditions, routers and activities, inside a run's turn, which must be quick). A call given up
while it waits for a pool thread never runs. ``InOrder`` calls a run's callbacks one after
another. A plain function that returns an awaitable has it awaited. Like ``errors`` this module
is a leaf every layer may import: it uses nothing but the standard library.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from types import CoroutineType, FunctionType
from typing import Any

__all__ = ["BlockingRunner", "InOrder", "call_logged", "call_user", "settle"]

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
) -> None:
    """``call_user(fn, *args, run_blocking=run_blocking)`` whose failure is logged, never
    raised (for callbacks after a commit, whose failure must not undo what is durable)."""
    try:
        await call_user(fn, *args, run_blocking=run_blocking)
    except Exception:
        logger.exception("%s failed", what)


class InOrder:
    """Calls the callbacks of one key (a run's hooks, ``on_pause``, ``on_timeout``) one after
    another, in the order given, each through ``call_logged``: a plain function on the
    blocking pool (so none stalls the loop), and still a run's ``on_start`` ends before its
    ``on_success`` begins. A callback's place is taken when its call begins: tasks created in
    order begin in order. It waits ``patience`` seconds at most for the one before (which may
    hang: a chat service that never answers), then goes on (logged)."""

    def __init__(self, patience: float = 10.0) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}
        self._patience = patience

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
            await call_logged(fn, *args, what=what, run_blocking=run_blocking)
        finally:
            done.set_result(None)
            if self._last.get(key) is done:
                del self._last[key]

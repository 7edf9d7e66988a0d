"""Which instance's transaction the running code is inside, so that a call of the runtime's API
on that same instance, made from there, is refused at once (``ReentrantCallError``) instead of
waiting for the transaction it runs in, for ever (h42 net F5: an async activity that awaited
``rt.initialize_work_item`` on its own instance held it, every later call queued behind, and the
runtime's stop hung).

``workflow_actor`` opens a ``Turn`` (``within_turn``) around a transaction's body (where
activities, callbacks, policies and routers run) and closes it after. A task the body starts
copies the context, and so the turn: closed, it no longer refuses that task's calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from cronflow_actors.errors import ReentrantCallError

__all__ = ["CURRENT", "Turn", "calling", "within_turn"]

A = TypeVar("A")
R = TypeVar("R")


class Turn:
    """One transaction's body, open while it runs."""

    __slots__ = ("instance_id", "open")

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.open = True


CURRENT: ContextVar[Turn | None] = ContextVar("cronflow_turn", default=None)


_AWAITING: dict[str, list[str]] = {}
"""The instances whose open turn awaits a call of the API, and the instances those calls are
to: a call that would close a cycle of them (A's activity calls B, whose activity calls A) is
refused as a call on the caller's own instance is (retest h42 N1: the two waited for each other
for ever). Within this process: a call forwarded to another process is not followed."""


@contextmanager
def calling(instance_id: str, operation: str) -> Iterator[None]:
    """Around a call of the API on ``instance_id``: ``ReentrantCallError`` if the caller runs
    inside a transaction of that instance, or of one the call would wait for in turn; while it
    runs, the caller's turn is known to await that instance."""
    turn = CURRENT.get()
    if turn is None or not turn.open:
        yield
        return
    caller = turn.instance_id
    through = _path(instance_id, caller)
    if through is not None:
        raise ReentrantCallError(instance_id, operation, through)
    _AWAITING.setdefault(caller, []).append(instance_id)
    try:
        yield
    finally:
        waits = _AWAITING[caller]
        waits.remove(instance_id)
        if not waits:
            del _AWAITING[caller]


def _path(start: str, goal: str) -> list[str] | None:
    """The instances from ``start`` to ``goal`` through the calls their turns await (``[goal]``
    when they are one), or None."""
    seen: set[str] = set()
    paths = [[start]]
    while paths:
        path = paths.pop()
        if path[-1] == goal:
            return path
        if path[-1] not in seen:
            seen.add(path[-1])
            paths.extend([*path, after] for after in _AWAITING.get(path[-1], ()))
    return None


async def within_turn(instance_id: str, body: Callable[[A], Awaitable[R]], tx: A) -> R:
    """``body(tx)``, a transaction's body of ``instance_id``, inside its turn."""
    turn = Turn(instance_id)
    reset = CURRENT.set(turn)
    try:
        return await body(tx)
    finally:
        turn.open = False
        CURRENT.reset(reset)

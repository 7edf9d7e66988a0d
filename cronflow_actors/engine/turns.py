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

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

from cronflow_actors.errors import ReentrantCallError

__all__ = ["CURRENT", "Turn", "refuse_reentry", "within_turn"]

A = TypeVar("A")
R = TypeVar("R")


class Turn:
    """One transaction's body, open while it runs."""

    __slots__ = ("instance_id", "open")

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.open = True


CURRENT: ContextVar[Turn | None] = ContextVar("cronflow_turn", default=None)


def refuse_reentry(instance_id: str, operation: str) -> None:
    """``ReentrantCallError`` if the caller runs inside a transaction of ``instance_id``."""
    turn = CURRENT.get()
    if turn is not None and turn.open and turn.instance_id == instance_id:
        raise ReentrantCallError(instance_id, operation)


async def within_turn(instance_id: str, body: Callable[[A], Awaitable[R]], tx: A) -> R:
    """``body(tx)``, a transaction's body of ``instance_id``, inside its turn."""
    turn = Turn(instance_id)
    reset = CURRENT.set(turn)
    try:
        return await body(tx)
    finally:
        turn.open = False
        CURRENT.reset(reset)

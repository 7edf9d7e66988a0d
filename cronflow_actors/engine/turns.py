"""Which instance's transaction a task is running the body of, so that a call of the runtime's
API on that same instance, made from there, is refused at once (``ReentrantCallError``) instead
of waiting for the transaction it runs in, for ever (h42 net F5: an async activity that awaited
``rt.initialize_work_item`` on its own instance held it, every later call queued behind, and the
runtime's stop hung); so is a call that closes a cycle of such waits between instances (retest
h42 N1: X's activity called Y, whose activity called X).

``workflow_actor`` notes its task in ``IN_BODY`` while a transaction's body runs (where
activities, callbacks, policies and routers run): a dictionary entry, where a context variable
set and reset for every transaction cost 1% of a plain run's instructions (and a coroutine
around the body, 0.6%). A call made from a task the body starts is not the body's own: it is
served once the transaction is over (a body that awaits such a task, calling its own instance,
is not told: it waits, as a body that awaits any call it blocks does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cronflow_actors.errors import ReentrantCallError

__all__ = ["IN_BODY", "calling"]

IN_BODY: dict[asyncio.Task[Any] | None, str] = {}
"""The tasks running a transaction's body, and the instance each is of."""

_AWAITING: dict[str, list[str]] = {}
"""The instances whose transaction's body awaits a call of the API, and the instances those
calls are to (within this process: a call forwarded to another process is not followed)."""


@contextmanager
def calling(instance_id: str, operation: str) -> Iterator[None]:
    """Around a call of the API on ``instance_id``: ``ReentrantCallError`` if the caller is the
    body of a transaction of that instance, or of one the call would wait for in turn; while it
    runs, the caller's instance is known to await that one."""
    task = asyncio.current_task()
    caller = IN_BODY.get(task) if task is not None else None
    if caller is None:
        yield
        return
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
    """The instances from ``start`` to ``goal`` through the calls their bodies await
    (``[goal]`` when they are one), or None."""
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

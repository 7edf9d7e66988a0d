"""``running_loop()``: the running event loop, without a system call on Python 3.11.

CPython 3.11's ``asyncio.get_running_loop()`` (and ``current_task()`` and the other functions
that look the loop up) calls ``getpid()`` every time, to notice a fork; 3.12 dropped that. In a
virtual machine a system call costs microseconds, and the engine looked the loop up six times a
run: 4% of the loop thread's time (py-spy, three-step runs, 500 in flight, asyncio's own loop).
On 3.11 ``running_loop()`` keeps the ``BaseEventLoop`` it last found and gives it back while
that loop runs on the calling thread (``BaseEventLoop`` records which; a loop runs on one thread
at a time); otherwise (another kind of loop, such as uvloop's, which says nothing of its thread;
a child after a fork) it asks asyncio. On 3.12 and later it is ``asyncio.get_running_loop``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

__all__ = ["running_loop"]

_get_ident = threading.get_ident


class _LastFound:
    """The ``BaseEventLoop`` ``running_loop()`` found last."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: asyncio.BaseEventLoop | None = None

    def forget(self) -> None:
        self.loop = None


_last_found = _LastFound()


def _running_loop_311() -> asyncio.AbstractEventLoop:
    """The event loop running on this thread; ``RuntimeError`` if none is (as asyncio's)."""
    last = _last_found.loop
    # BaseEventLoop sets _thread_id while run_forever() runs, to the thread it runs on
    if last is not None and last._thread_id == _get_ident():  # type: ignore[attr-defined]
        return last
    loop = asyncio.get_running_loop()
    if isinstance(loop, asyncio.BaseEventLoop):
        _last_found.loop = loop
    return loop


if sys.version_info >= (3, 12):
    running_loop = asyncio.get_running_loop
else:
    running_loop = _running_loop_311
    os.register_at_fork(after_in_child=_last_found.forget)

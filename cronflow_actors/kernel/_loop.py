"""``running_loop()``: the running event loop, without a system call.

CPython's ``asyncio.get_running_loop()`` (and ``current_task()``, ``create_task()`` and the
other functions that look the loop up) calls ``getpid()`` every time, to notice a fork. In a
virtual machine a system call costs microseconds, and the engine looked the loop up six times a
run: 4% of the loop thread's time (py-spy, three-step runs, 500 in flight). ``running_loop()``
keeps the loop it last found and gives it back while that loop runs on the calling thread (a
loop runs on one thread at a time, and ``BaseEventLoop`` records which); otherwise, or in a
child after a fork, it asks asyncio.
"""

from __future__ import annotations

import asyncio
import os
import threading

__all__ = ["running_loop"]

_get_ident = threading.get_ident


class _Kept:
    """The loop ``running_loop()`` found last (only a ``BaseEventLoop``: it says its thread)."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: asyncio.BaseEventLoop | None = None

    def forget(self) -> None:
        self.loop = None


_kept = _Kept()
os.register_at_fork(after_in_child=_kept.forget)


def running_loop() -> asyncio.AbstractEventLoop:
    """The event loop running on this thread; ``RuntimeError`` if none is (as asyncio's)."""
    last = _kept.loop
    # BaseEventLoop sets _thread_id while run_forever() runs, to the thread it runs on
    if last is not None and last._thread_id == _get_ident():  # type: ignore[attr-defined]
        return last
    loop = asyncio.get_running_loop()
    if isinstance(loop, asyncio.BaseEventLoop):  # another kind of loop is asked every time
        _kept.loop = loop
    return loop

"""Work in flight on one event loop: what ``ActorSystem.wait_idle()`` waits for.

Each scheduled mailbox drain, each task of an actor or of the system, and each blocking call
made from the loop counts as one unit while it is pending. A task that sleeps on a clock is
*parked*: it stops counting until the clock wakes it, so ``wait_idle()`` waits for work in
flight and not for timers (a run sleeping for a day, a schedule, a heartbeat).

An ``ActorSystem`` owns one ``WorkInFlight`` and hands it to what it runs: its actors count
their drains here, its blocking pool its calls, and a clock that parks sleepers reports them
here (``WorkInFlight`` is the ``clock.SleepListener`` a clock is attached to).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["WorkInFlight"]

T = TypeVar("T")


class WorkInFlight:
    """A count of pending work on one loop, the tasks that make part of it, and the waiter of
    ``wait_idle()``. Bound to its loop by ``bind()``; every method but ``done_threadsafe()``
    runs on that loop's thread."""

    __slots__ = ("_idle_waiter", "count", "loop", "tasks", "thread_id")

    def __init__(self) -> None:
        self.count = 0
        """Units of pending work now."""
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.thread_id: int | None = None
        self.tasks: dict[asyncio.Task[Any], set[asyncio.Task[Any]] | None] = {}
        """The tasks started with ``create_task`` that have not finished, each with the set of
        its owner's tasks (``create_task(owner=...)``) it leaves when it finishes."""
        self._idle_waiter: asyncio.Future[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Count work on ``loop``; called on its thread."""
        self.loop = loop
        self.thread_id = threading.get_ident()

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self.thread_id

    def started(self) -> None:
        """One more unit of work is pending."""
        self.count += 1

    def done(self) -> None:
        """A unit of work finished; wakes ``wait_idle()`` when none is left."""
        self.count -= 1
        if not self.count and self._idle_waiter is not None:
            waiter, self._idle_waiter = self._idle_waiter, None
            if not waiter.done():
                waiter.set_result(None)

    def done_threadsafe(self) -> None:
        """``done()``, from any thread (run on the loop); nothing once the loop has closed (a
        pool call its stop did not wait for, returning after its system's loop ended)."""
        try:
            self.loop.call_soon_threadsafe(self.done)
        except RuntimeError:
            if not self.loop.is_closed():
                raise

    def create_task(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        owner: set[asyncio.Task[Any]] | None = None,
        context: contextvars.Context | None = None,
        plain: bool = False,
    ) -> asyncio.Task[T]:
        """Run ``coro`` on the loop as a unit of work until it finishes; it is in ``owner``
        (an actor's set of tasks) until then (or from ``own``). One done callback does both
        (each one is a handle of its own on the loop). ``context``: the one it runs in (by
        default a copy of the current one). ``plain``: an ``asyncio.Task`` whatever the loop's
        task factory (one that runs a task's first step inside ``create_task``, as 3.12's
        ``eager_task_factory`` does, would take a step ``EagerTask`` took already)."""
        loop = self.loop
        if plain or loop.get_task_factory() is None:
            # what the loop's create_task makes, named as it is made: uvloop's create_task
            # makes the task, whose constructor formats a "Task-<n>" name, and then renames it
            # (some 2,400 instructions a task, four tasks a run); asyncio's names it so too
            task: asyncio.Task[T] = asyncio.Task(coro, loop=loop, name=name, context=context)
        else:
            task = loop.create_task(coro, name=name, context=context)
        self.count += 1
        self.tasks[task] = owner
        if owner is not None:
            owner.add(task)
        task.add_done_callback(self._task_done)
        return task

    def own(self, task: asyncio.Task[Any], owner: set[asyncio.Task[Any]]) -> None:
        """``task`` (made by ``create_task``, not done) is in ``owner`` from now until it
        finishes: an actor takes over a task made before it was spawned."""
        if task in self.tasks:
            self.tasks[task] = owner
            owner.add(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        owner = self.tasks.pop(task, None)
        if owner is not None:
            owner.discard(task)
        self.done()

    # -- clock.SleepListener ------------------------------------------------------------------

    def parked(self, task: asyncio.Task[Any] | None) -> bool:
        """``task`` now sleeps on a clock: if it is one of ours, it stops counting (True)."""
        if task is not None and task in self.tasks:
            self.done()
            return True
        return False

    def unparked(self) -> None:
        """A task that ``parked()`` took out of the count is awake again."""
        self.count += 1

    # -- idleness -----------------------------------------------------------------------------

    async def wait_idle(self) -> None:
        """Return once nothing is pending (see the module's docstring)."""
        while True:
            # Wake-ups sent from other threads (call_soon_threadsafe) are already queued on the
            # loop but not yet counted: one pass of the loop runs them before idleness is judged.
            await asyncio.sleep(0)
            if not self.count:
                return
            if self._idle_waiter is None:
                self._idle_waiter = self.loop.create_future()
            await asyncio.shield(self._idle_waiter)

    async def cancel_tasks(self) -> None:
        """Cancel every task still running and wait until each has ended."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

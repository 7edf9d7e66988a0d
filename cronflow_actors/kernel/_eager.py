"""EagerTask: a coroutine whose first step runs at once, as the task it runs in.

A handler that finishes without ever waiting (a step that computes and returns) costs a task,
an actor around it and two rounds of the loop (its task's first step, then its report's
wake-up of the one who waits for it) for nothing but a call. Python 3.12's eager tasks
(``asyncio.eager_task_factory``) run such a coroutine to its first suspension inside
``create_task``; 3.11 has none, and a loop-wide factory would change every task of the
process. ``EagerTask`` does the same for one coroutine: the task is made (it is what
``asyncio.current_task()`` is while the coroutine runs, so ``asyncio.timeout``, a task group
or a context variable bind to it as they would in any task, and it counts as work in flight
until its step ends), then the coroutine's first step runs at once, in the task's context and
as its current task. If the coroutine returned, ``done`` is True and ``result`` is what it
returned: the task's own step, on the next round, ends it at once. If it waits, the task
goes on from where it waits, exactly as if it had run it from the start, and ``then`` (set
by the caller meanwhile) is called with what it returns.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from cronflow_actors.kernel._work import WorkInFlight

__all__ = ["EagerTask"]


class EagerTask:
    """``coro`` made a task of ``work`` (named ``name``), its first step taken at once (see
    the module's docstring). A coroutine that raises a BaseException that is no Exception
    (a cancellation, an exit) in its first step raises it in its task's step, as it would have
    there; ``done`` stays False."""

    __slots__ = ("_coro", "_raised", "_yielded", "done", "result", "task", "then")

    def __init__(self, work: WorkInFlight, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._coro: Coroutine[Any, Any, Any] | None = coro
        self._yielded: Any = None
        self._raised: BaseException | None = None
        self.done = False
        self.result: Any = None
        self.then: Callable[[Any], None] | None = None
        """Called with what the coroutine returns, if it did not in its first step; set it
        before the loop runs the task (at once, as ``done`` is read)."""
        loop = work.loop
        context = contextvars.copy_context()
        task = self.task = work.create_task(self._rest(), name=name, context=context)
        outer = asyncio.current_task(loop)
        if outer is not None:
            _leave_task(loop, outer)
        _enter_task(loop, task)
        try:
            self._yielded = context.run(coro.send, None)
        except StopIteration as returned:
            self.done, self.result, self._coro = True, returned.value, None
        except BaseException as error:  # raised again in the task's step
            self._raised = error
        finally:
            _leave_task(loop, task)
            if outer is not None:
                _enter_task(loop, outer)

    async def _rest(self) -> Any:
        if self.done:
            return self.result
        coro, yielded, raised, then = self._coro, self._yielded, self._raised, self.then
        self._coro = self._yielded = self._raised = self.then = None
        # nothing of this object in the frames its task runs from here on: it holds the task,
        # and the traceback of an exception the task keeps (its cancellation) holds the frames
        del self
        if raised is not None:
            raise raised
        assert coro is not None
        result = await _GoOn(coro, yielded)
        if then is not None:
            then(result)
        return result


class _GoOn:
    """Awaiting it goes on with ``coro`` from where its first step waited (on ``yielded``): what
    a task's steps would have done with it (``yield from`` the coroutine, whose first value was
    taken already)."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._yielded
        self._yielded = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as error:  # a cancellation, thrown in by the task
                try:
                    value = coro.throw(error)
                except StopIteration as returned:
                    return returned.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as returned:
                    return returned.value

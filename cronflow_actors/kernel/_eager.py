"""EagerTask: a coroutine whose first step runs at once, as the task it runs in.

A handler that finishes without ever waiting (a step that computes and returns) costs a task,
an actor around it and two rounds of the loop (its task's first step, then its report's
wake-up of the one who waits for it) for nothing but a call. Python 3.12's eager tasks
(``asyncio.eager_task_factory``) run such a coroutine to its first suspension inside
``create_task``; 3.11 has none, and a loop-wide factory would change every task of the
process. ``EagerTask`` does the same for one coroutine: the task is made (a plain
``asyncio.Task``, whatever the loop's factory; it is what ``asyncio.current_task()`` is while
the coroutine runs, so ``asyncio.timeout``, a task group or a context variable bind to it as
they would in any task, and it counts as work in flight until it ends), then the coroutine's
first step runs at once, in the task's context and as its current task. If the coroutine
returned, ``done`` is True and ``result`` is what it returned: the task's own step, on the next
round, ends it at once. If it waits, the task goes on from where it waits, exactly as if it had
run it from the start (a cancellation before the task's first round reaches the coroutine
where it waits), and ``then`` (set by the caller meanwhile) is called with what it returns.
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
    the module's docstring). What the first step raises (any exception) is raised in the
    task's first round, as it would have been there; ``done`` stays False."""

    __slots__ = ("done", "result", "task", "then")

    def __init__(self, work: WorkInFlight, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self.done = False
        self.result: Any = None
        self.then: Callable[[Any], None] | None = None
        """Called with what the coroutine returns, if it did not in its first step; set it
        before the loop runs the task (at once, as ``done`` is read)."""
        loop = work.loop
        context = contextvars.copy_context()
        rest = _Rest(coro, self)
        task = self.task = work.create_task(rest, name=name, context=context, plain=True)
        outer = asyncio.current_task(loop)
        if outer is not None:
            _leave_task(loop, outer)
        _enter_task(loop, task)
        try:
            rest.first = context.run(coro.send, None)
        except StopIteration as returned:
            self.done, self.result = True, returned.value
            rest.ended = True
        except BaseException as error:  # raised again in the task's first round, from where
            # it was raised (not from this frame, whose locals would hold it in a cycle)
            traceback = error.__traceback__
            rest.raised = error.with_traceback(traceback.tb_next if traceback else None)
        finally:
            _leave_task(loop, task)
            if outer is not None:
                _enter_task(loop, outer)


class _Rest(Coroutine[Any, Any, Any]):
    """The coroutine the task runs: ``coro`` from where its first step (taken by ``EagerTask``)
    left it. The task's first round gives back what that step yielded (or ends as it ended);
    every ``throw``, a cancellation before the first round too, goes to ``coro`` where it
    waits, as a task's rounds would have thrown it; ``then`` hears what it returns."""

    __slots__ = ("_coro", "_owner", "_then", "ended", "first", "raised")

    def __init__(self, coro: Coroutine[Any, Any, Any], owner: EagerTask) -> None:
        self._coro = coro
        self._owner: EagerTask | None = owner
        """Until the task's first round, which takes its ``then`` (set by then) and lets it go:
        it holds the task, which holds this."""
        self._then: Callable[[Any], None] | None = None
        self.first: Any = None
        """What the first step yielded: the task's first round yields it (the future the
        coroutine waits on, or None to be run again)."""
        self.ended = False
        """The first step returned (its ``EagerTask`` has the result)."""
        self.raised: BaseException | None = None
        """What the first step raised, raised in the task's first round."""

    # What raises out of these methods (the coroutine's end, its exception, a cancellation
    # thrown in) keeps their frames in its traceback: each lets go of its locals first (a
    # local that is the exception, or the task's objects, would be a cycle for the collector).

    def send(self, value: Any) -> Any:
        owner = self._owner
        if owner is None:
            return self._step(self._coro.send, value)
        self._owner, self._then = None, owner.then  # the task's first round
        first, raised, self.first, self.raised = self.first, self.raised, None, None
        try:
            if self.ended:
                raise StopIteration(owner.result)
            if raised is not None:
                raise raised
            return first
        finally:
            owner = raised = first = None

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        error: BaseException | None = _exception(typ, val, tb)
        typ = val = tb = None
        try:
            owner = self._owner
            if owner is not None:  # before the task's first round
                self._owner, self._then, self.first = None, owner.then, None
                owner = None
                if self.ended or self.raised is not None:  # nothing waits: the task ends so
                    self.raised = None
                    raise error  # type: ignore[misc]
            return self._step(self._coro.throw, error)
        finally:
            error = None

    def close(self) -> None:
        self._owner = self._then = self.first = None
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:  # pragma: no cover - its task's only
        raise TypeError("the coroutine of an EagerTask is run by its task, never awaited")

    def _step(self, step: Callable[[Any], Any], value: Any) -> Any:
        try:
            return step(value)
        except StopIteration as returned:
            then, self._then = self._then, None
            if then is not None:
                then(returned.value)
            raise
        finally:
            value = None


def _exception(typ: Any, val: Any, tb: Any) -> BaseException:
    """What ``throw(typ, val, tb)`` throws, in either of its forms (an exception, or its type
    and value)."""
    if isinstance(typ, BaseException):
        return typ
    error = val if isinstance(val, BaseException) else typ() if val is None else typ(val)
    return error.with_traceback(tb) if tb is not None else error

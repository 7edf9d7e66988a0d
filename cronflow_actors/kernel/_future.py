"""LoopFuture: a pykka future that an event loop can await without blocking.

pykka's own futures block the calling thread in ``get()``, and their ``__await__`` calls ``get()``:
awaiting one on an event loop stops every coroutine on that loop until the answer arrives. A
LoopFuture keeps pykka's contract (``get(timeout=...)``, ``set``, ``set_exception``, ``map``,
``filter``, ``join``, ``reduce``, a second ``set`` raises ``queue.Full``) and adds:

- ``await future`` suspends only the awaiting coroutine; the setter wakes it directly when it runs
  on the loop's own thread, and through ``call_soon_threadsafe`` from any other thread;
- ``get()`` from a thread that does not run an event loop blocks that thread, as in pykka;
- ``get()`` on a thread that runs an event loop raises ``WouldBlockLoopError`` instead of
  deadlocking that loop;
- ``add_done_callback(fn)`` for chaining without blocking anybody.

``map``, ``filter``, ``join`` and ``reduce`` are computed when their sources complete rather than
when ``get()`` is called (pykka computes them lazily in a get hook); the values and the exceptions
they produce are the same, and they can be awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pykka

from cronflow_actors.errors import WouldBlockLoopError
from cronflow_actors.kernel._loop import running_loop

if TYPE_CHECKING:
    from pykka._types import OptExcInfo

__all__ = ["LoopFuture", "wrap_future"]

T = TypeVar("T")
J = TypeVar("J")
M = TypeVar("M")
R = TypeVar("R")

_PENDING = 0
_VALUE = 1
_ERROR = 2

# One lock guards the short hand-over between a setter on one thread and a waiter registering on
# another. Critical sections are a few attribute stores, so one lock for all futures is cheaper
# than allocating one per future and is practically never contended.
_LOCK = threading.Lock()

DoneCallback = Callable[["LoopFuture[Any]"], None]

_get_running_loop = asyncio._get_running_loop  # the C fast path; None outside a running loop


class _AsyncWaiter:
    """Wakes one asyncio future on its own loop when a LoopFuture completes."""

    __slots__ = ("loop", "thread_id", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]) -> None:
        self.loop = loop
        self.waiter = waiter
        self.thread_id = threading.get_ident()

    def __call__(self, _future: LoopFuture[Any]) -> None:
        if threading.get_ident() == self.thread_id:
            _wake(self.waiter)
        else:
            try:
                self.loop.call_soon_threadsafe(_wake, self.waiter)
            except RuntimeError:
                if not self.loop.is_closed():
                    raise  # (closed: its awaiter is gone with it)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LoopFuture(pykka.Future[T]):
    """A pykka ``Future`` that is awaitable on asyncio and thread-safe to set and get."""

    __slots__ = ("_callbacks", "_exc_info", "_state", "_value")

    def __init__(self) -> None:
        # pykka.Future.__init__ only sets these two; doing it here saves a call per ask.
        self._get_hook = None
        self._get_hook_result = pykka._future._Unset()
        self._state = _PENDING
        self._value: Any = None
        self._exc_info: OptExcInfo | None = None
        self._callbacks: list[DoneCallback] | None = None

    def __repr__(self) -> str:
        state = {_PENDING: "pending", _VALUE: "done", _ERROR: "failed"}[self._state]
        return f"<LoopFuture {state}>"

    # -- completion -------------------------------------------------------------------------------

    def done(self) -> bool:
        """Whether a value or an exception has been set."""
        return self._state != _PENDING

    def set(self, value: T | None = None) -> None:
        with _LOCK:
            if self._state != _PENDING or self._get_hook is not None:
                raise queue.Full
            self._value = value
            self._state = _VALUE
            callbacks = self._callbacks
            self._callbacks = None
        if callbacks:
            for callback in callbacks:
                callback(self)

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        assert len(exc_info) == 3
        with _LOCK:
            if self._state != _PENDING or self._get_hook is not None:
                raise queue.Full
            self._exc_info = exc_info
            self._state = _ERROR
            callbacks = self._callbacks
            self._callbacks = None
        if callbacks:
            for callback in callbacks:
                callback(self)

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        with _LOCK:
            if self._state != _PENDING:
                raise queue.Full
            super().set_get_hook(func)

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Call ``callback(future)`` once the future is done (at once if it already is).

        The callback runs on the thread that completes the future; it must not block.
        """
        with _LOCK:
            if self._state == _PENDING:
                if self._callbacks is None:
                    self._callbacks = [callback]
                else:
                    self._callbacks.append(callback)
                return
        callback(self)

    # -- reading ----------------------------------------------------------------------------------

    def _result(self) -> T:
        if self._state == _VALUE:
            return cast("T", self._value)
        exc_info = self._exc_info
        assert exc_info is not None
        exc_type, exc_value, exc_traceback = exc_info
        assert exc_type is not None
        if exc_value is None:
            exc_value = exc_type()
        if exc_value.__traceback__ is not exc_traceback:
            raise exc_value.with_traceback(exc_traceback)
        raise exc_value

    def exception(self) -> BaseException | None:
        """The exception the future failed with, or None (also None while pending)."""
        if self._state == _ERROR and self._exc_info is not None:
            return self._exc_info[1]
        return None

    def get(self, *, timeout: float | None = None) -> T:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if self._state != _PENDING:
            return self._result()
        if _get_running_loop() is not None:
            if timeout is not None and timeout <= 0:
                raise pykka.Timeout(f"{timeout} seconds")
            raise WouldBlockLoopError("LoopFuture.get()")
        event = threading.Event()
        self.add_done_callback(lambda _future: event.set())
        if not event.wait(timeout):
            raise pykka.Timeout(f"{timeout} seconds")
        return self._result()

    def __await__(self) -> Generator[Any, None, T]:
        if self._state == _PENDING:
            if self._get_hook is not None:
                # A get hook can block (pykka's own stop() converter does): run it off the loop.
                loop = asyncio.get_running_loop()
                result = yield from loop.run_in_executor(None, self.get).__await__()
                return result
            loop = running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self.add_done_callback(_AsyncWaiter(loop, waiter))
            yield from waiter.__await__()
        elif self._get_hook is not None:
            return self.get()
        return self._result()

    __iter__ = __await__

    # -- combinators (eager, so they stay awaitable) ----------------------------------------------

    def _derive(
        self, compute: Callable[[], M], sources: Iterable[LoopFuture[Any]]
    ) -> LoopFuture[M]:
        derived: LoopFuture[M] = LoopFuture()
        pending = list(sources)
        remaining = [len(pending)]

        def on_source_done(source: LoopFuture[Any]) -> None:
            if source._state == _ERROR:
                if not derived.done():
                    with contextlib.suppress(queue.Full):  # another source failed first
                        derived.set_exception(source._exc_info)
                return
            with _LOCK:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last and not derived.done():
                try:
                    value = compute()
                except Exception:
                    derived.set_exception()
                else:
                    derived.set(value)

        for source in pending:
            source.add_done_callback(on_source_done)
        return derived

    def map(self, func: Callable[[T], M]) -> LoopFuture[M]:
        return self._derive(lambda: func(self._result()), [self])

    def filter(self: LoopFuture[Iterable[J]], func: Callable[[J], bool]) -> LoopFuture[Iterable[J]]:
        return self._derive(lambda: list(filter(func, self._result())), [self])

    def join(self: LoopFuture[Any], *futures: pykka.Future[Any]) -> LoopFuture[Iterable[Any]]:
        sources = [self, *(wrap_future(f) for f in futures)]
        return self._derive(lambda: [s._result() for s in sources], sources)

    def reduce(self: LoopFuture[Iterable[J]], func: Callable[[R, J], R], *args: R) -> LoopFuture[R]:
        return self._derive(lambda: functools.reduce(func, self._result(), *args), [self])


def wrap_future(future: pykka.Future[T]) -> LoopFuture[T]:
    """Return ``future`` as a LoopFuture, so any pykka future can be awaited on the loop.

    A LoopFuture is returned as it is. Any other pykka future (a ``ThreadingFuture`` from a
    ``ThreadingActor`` ask, say) is waited for on a helper thread, never on the loop.
    """
    if isinstance(future, LoopFuture):
        return future
    wrapped: LoopFuture[T] = LoopFuture()

    def wait() -> None:
        try:
            value = future.get()
        except BaseException:
            wrapped.set_exception()
        else:
            wrapped.set(value)

    threading.Thread(target=wait, name="cronflow-future-bridge", daemon=True).start()
    return wrapped

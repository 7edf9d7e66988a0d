"""BlockingPool: a bounded set of pykka ThreadingActors that run blocking callables.

User handlers written as plain ``def`` may block (a database driver, ``time.sleep``, a CPU-heavy
loop). They run here, on a fixed number of threads, so they never stall the event loop. Each
worker is an ordinary pykka ``ThreadingActor`` whose futures are LoopFutures: the loop awaits a
result without blocking, and another thread can still ``.get()`` it. A call made from the loop
counts as work in flight (``WorkInFlight``) until it returns, so ``wait_idle()`` waits for it.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import msgspec
import pykka

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.kernel._future import LoopFuture
from cronflow_actors.kernel._work import WorkInFlight
from cronflow_actors.messages import Message

__all__ = ["BlockingCall", "BlockingPool", "PoolStatistics", "RunBlocking"]

T = TypeVar("T")


class RunBlocking(Message, frozen=True, kw_only=True):
    """Ask a pool worker to call ``fn(*args, **kwargs)`` and answer with its result."""

    fn: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    answer_errors: bool = False
    """Answer what ``fn`` raises as a value (``BlockingPool.submit``'s way) rather than raise it
    to the asker, which pykka logs (at INFO, with the traceback) before passing it on."""


class PoolStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """How a ``BlockingPool`` is used at one moment."""

    threads: int = 0
    busy: int = 0
    """Threads running a call."""
    queued: int = 0
    """Calls submitted to a thread that is still busy with an earlier one."""


class BlockingWorker(pykka.ThreadingActor):
    """One pool thread. Its asks answer with LoopFutures, so the loop can await them."""

    use_daemon_thread = True

    @staticmethod
    def _create_future() -> LoopFuture[Any]:
        return LoopFuture()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RunBlocking):
            if not message.answer_errors:
                return message.fn(*message.args, **message.kwargs)
            try:
                return message.fn(*message.args, **message.kwargs)
            except Exception as error:  # answered, not raised: pykka would log it at INFO
                return _Raised(error)
        return super().on_receive(message)


class _Raised:
    """What a call raised, as a worker answers it (``submit`` raises it to the caller): an
    exception raised in ``on_receive`` is logged by pykka, traceback and all, with nothing of
    the run it belongs to, beside the caller's own record of the failure."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _unwrap(answer: Any) -> Any:
    if isinstance(answer, _Raised):
        raise answer.error
    return answer


class BlockingCall(LoopFuture[T]):
    """The future of a call submitted to the pool: ``give_up()`` withdraws the call while it
    still waits for a thread (its caller stopped waiting: a step's timeout, a canceled run), so
    it never runs late, and awaiting it then raises ``CancelledError``; a call already running
    runs to its end (a thread cannot be stopped)."""

    __slots__ = ("_queued",)

    def __init__(self, queued: _Queued) -> None:
        super().__init__()
        self._queued = queued

    def give_up(self) -> None:
        self._queued.given_up = True


Admits = Callable[[], bool | None]
"""Whether a call may start now: True; False, never (it is given up); None, not yet (asked
again shortly, on the worker's thread)."""


class _Queued:
    """A call on its way to a worker: run in a copy of the caller's context variables, unless
    given up before a thread took it, or refused by the pool's ``admits`` when a thread did."""

    __slots__ = ("admits", "context", "given_up")

    def __init__(self, admits: Admits | None) -> None:
        self.context = contextvars.copy_context()
        self.given_up = False
        self.admits = admits

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        admits = self.admits
        while admits is not None and not self.given_up:
            verdict = admits()
            if verdict is None:
                time.sleep(0.02)  # not yet: the one who decides has not said (see admits)
                continue
            self.given_up = not verdict
            break
        if self.given_up:
            return _GIVEN_UP
        return self.context.run(fn, *args, **kwargs)


_GIVEN_UP = object()
"""What a worker answers for a call given up before it ran (a BaseException raised there
would stop the worker, as pykka stops an actor whose handler raised one)."""


class BlockingPool:
    """A fixed number of ``BlockingWorker`` threads; each call goes to the least loaded one."""

    def __init__(self, work: WorkInFlight, size: int) -> None:
        if not isinstance(size, int) or size < 1:
            raise ConfigurationError("blocking_workers", size, "a whole number of at least 1")
        self._work = work
        self.admits: Admits | None = None
        """Asked on the worker's thread as a queued call is about to start (a runtime's lease:
        a process paused past it must not start the calls it had queued, which another
        process may be running by then)."""
        self._lock = threading.Lock()
        self._in_flight = [0] * size
        self._workers = [BlockingWorker.start() for _ in range(size)]

    @property
    def size(self) -> int:
        return len(self._workers)

    @property
    def in_flight(self) -> int:
        """Calls submitted and not yet finished."""
        return sum(self._in_flight)

    def statistics(self) -> PoolStatistics:
        """Threads, busy threads and queued calls now; safe from any thread."""
        with self._lock:
            in_flight = list(self._in_flight)
        busy = sum(1 for calls in in_flight if calls)
        return PoolStatistics(threads=len(in_flight), busy=busy, queued=sum(in_flight) - busy)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> BlockingCall[T]:
        """Run ``fn(*args, **kwargs)`` on a worker thread, in a copy of the caller's context
        variables (as ``asyncio.to_thread`` does); the future carries its result, and gives
        the call up (``give_up``) while it waits for a thread."""
        with self._lock:
            index = min(range(len(self._in_flight)), key=self._in_flight.__getitem__)
            self._in_flight[index] += 1
        work = self._work
        on_loop = work.on_loop_thread()
        if on_loop:
            work.started()
        queued = _Queued(self.admits)
        message = RunBlocking(fn=queued.run, args=(fn, *args), kwargs=kwargs, answer_errors=True)
        answer = cast("LoopFuture[Any]", self._workers[index].ask(message, block=False))
        future: BlockingCall[T] = BlockingCall(queued)

        def finished(answered: LoopFuture[Any]) -> None:
            with self._lock:
                self._in_flight[index] -= 1
            try:
                value = _unwrap(answered.get())
                if value is _GIVEN_UP:
                    raise asyncio.CancelledError("given up while it waited for a thread")
            except BaseException:
                future.set_exception()
            else:
                future.set(value)
            if on_loop:
                work.done_threadsafe()

        answer.add_done_callback(finished)
        return future

    async def stop(self, *, leave_running: bool = False) -> None:
        """Stop every worker after the calls already queued to it. With ``leave_running``, a
        worker still running a call is not waited for: its thread (a daemon: it never holds
        the process) stops once the call returns, which nothing awaits any more (a drain gave
        up on the step, whose caller was cancelled with its actor, and which runs again at the
        next start); waiting would hold a deploy's SIGTERM for as long as user code blocks."""
        workers, self._workers = self._workers, []
        with self._lock:
            busy = [bool(calls) and leave_running for calls in self._in_flight]

        def stop_all() -> None:
            for worker, running in zip(workers, busy, strict=True):
                worker.stop(block=not running)

        await asyncio.get_running_loop().run_in_executor(None, stop_all)

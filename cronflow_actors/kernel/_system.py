"""ActorSystem: spawns LoopActors on one event loop, keeps their registry, stops them in order.

pykka keeps one global registry, a list whose removal is O(n): with thousands of per-instance
actors alive, every stop would scan it. The system keeps its own registry (a dict by URN and one
by name), so per-instance actors never enter pykka's, and so two systems in one process do not
see each other's actors.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pykka

from cronflow_actors.errors import ActorNameTakenError, ActorSystemNotRunningError
from cronflow_actors.kernel._actor import LoopActor
from cronflow_actors.kernel._blocking import BlockingPool, PoolStatistics
from cronflow_actors.kernel.clock import Clock, SystemClock

if TYPE_CHECKING:
    from cronflow_actors.kernel._future import LoopFuture
    from cronflow_actors.messages import ChildFailed

__all__ = ["ActorSystem", "current_system"]

A = TypeVar("A", bound=LoopActor)
T = TypeVar("T")

_current: contextvars.ContextVar[ActorSystem | None] = contextvars.ContextVar(
    "cronflow_actor_system", default=None
)


def current_system() -> ActorSystem:
    """The actor system started in the current context (by ``async with ActorSystem()``)."""
    system = _current.get()
    if system is None or system.state != "running":
        raise ActorSystemNotRunningError(
            system.name if system else "<none>",
            system.state if system else "not started",
            "spawn an actor with Actor.start()",
        )
    return system


class ActorSystem:
    """Owns the LoopActors of one event loop, a pool of threads for blocking code, and a clock.

    Use as ``async with ActorSystem() as system:``; leaving the block stops every actor (each
    after the messages already in its inbox) and then the thread pool.
    """

    def __init__(
        self,
        name: str = "cronflow",
        *,
        blocking_workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.state = "created"
        self.unhandled_failures: list[ChildFailed] = []
        self._blocking_workers = blocking_workers
        self._blocking: BlockingPool | None = None
        self._actors: dict[str, pykka.ActorRef[Any]] = {}
        self._names: dict[str, pykka.ActorRef[Any]] = {}
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._thread_id: int | None = None
        self._busy = 0
        self._idle_waiter: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._context_token: contextvars.Token[ActorSystem | None] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> ActorSystem:
        """Bind the system to the running event loop. Must be called from a coroutine."""
        if self.state != "created":
            raise ActorSystemNotRunningError(self.name, self.state, "start the actor system")
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._context_token = _current.set(self)
        attach = getattr(self.clock, "attach", None)
        if attach is not None:
            attach(self)
        self.state = "running"
        return self

    async def __aenter__(self) -> ActorSystem:
        return self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop every actor after the messages already in its inbox, then the thread pool.

        Asks that are still pending when an actor stops fail with ``pykka.ActorDeadError``.
        With a ``grace_period`` (seconds), actors still running when it ends are stopped at once.
        """
        if self.state in ("stopping", "stopped"):
            return
        if self.state == "created":
            self.state = "stopped"
            return
        self.state = "stopping"
        stops = [cast("LoopFuture[bool]", ref.stop(block=False)) for ref in self._actors.values()]
        if stops:
            waiting = asyncio.gather(*(_awaitable(f) for f in stops))
            try:
                await asyncio.wait_for(waiting, grace_period)
            except TimeoutError:
                for ref in list(self._actors.values()):
                    actor = ref._actor_weakref()
                    if isinstance(actor, LoopActor):
                        actor._stop()
                        actor._actor_loop_teardown()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._blocking is not None:
            await self._blocking.stop()
        detach = getattr(self.clock, "detach", None)
        if detach is not None:
            detach(self)
        if self._context_token is not None:
            try:
                _current.reset(self._context_token)
            except ValueError:  # stopped from another context than the one that started it
                _current.set(None)
        self.state = "stopped"

    def _abort(self) -> None:
        """Stop every actor at once (a BaseException escaped a handler)."""
        for ref in list(self._actors.values()):
            actor = ref._actor_weakref()
            if isinstance(actor, LoopActor):
                actor._stop()
        self.state = "stopped"

    # -- spawning and the registry ----------------------------------------------------------------

    def spawn(
        self,
        actor_class: type[A],
        *args: Any,
        parent: pykka.ActorRef[Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> pykka.ActorRef[A]:
        """Create and start an actor; its ``__init__`` gets ``*args`` and ``**kwargs``.

        ``parent`` makes it a child: its failure reaches the parent as ``ChildFailed`` and it is
        stopped when the parent stops. ``name`` registers it for ``get_by_name`` (unique).
        """
        if self.state != "running":
            raise ActorSystemNotRunningError(self.name, self.state, f"spawn {actor_class.__name__}")
        if name is not None and name in self._names:
            raise ActorNameTakenError(self.name, name)
        actor = actor_class(*args, **kwargs)
        actor._system = self
        actor.actor_name = name
        ref = actor.actor_ref
        urn = actor.actor_urn
        self._actors[urn] = ref
        if name is not None:
            self._names[name] = ref
        if parent is not None:
            parent_actor = parent._actor_weakref()
            if not isinstance(parent_actor, LoopActor) or not parent.is_alive():
                del self._actors[urn]
                if name is not None:
                    del self._names[name]
                raise pykka.ActorDeadError(f"cannot spawn a child of {parent}: it is not alive")
            actor._parent = parent
            if parent_actor._children is None:
                parent_actor._children = {}
            parent_actor._children[urn] = ref
        actor._start_actor_loop()
        return ref

    def _unregister(self, actor: LoopActor) -> None:
        self._actors.pop(actor.actor_urn, None)
        if actor.actor_name is not None:
            self._names.pop(actor.actor_name, None)

    def get_by_urn(self, urn: str) -> pykka.ActorRef[Any] | None:
        """The live actor with this URN, or None."""
        return self._actors.get(urn)

    def get_by_name(self, name: str) -> pykka.ActorRef[Any] | None:
        """The live actor spawned with this name, or None."""
        return self._names.get(name)

    def get_by_class(self, actor_class: type[A]) -> list[pykka.ActorRef[A]]:
        """Live actors that are instances of ``actor_class`` (or of a subclass)."""
        return [ref for ref in self._actors.values() if issubclass(ref.actor_class, actor_class)]

    def get_all(self) -> list[pykka.ActorRef[Any]]:
        """Every live actor."""
        return list(self._actors.values())

    def __len__(self) -> int:
        return len(self._actors)

    def actor_counts(self) -> dict[str, tuple[int, int]]:
        """Live actors by class name: (how many, messages waiting in their mailboxes). Read on
        the system's loop (the registry changes there)."""
        counts: dict[str, tuple[int, int]] = {}
        for ref in self._actors.values():
            actor = ref._actor_weakref()
            depth = actor.mailbox_depth if isinstance(actor, LoopActor) else 0
            kind = ref.actor_class.__name__
            alive, waiting = counts.get(kind, (0, 0))
            counts[kind] = (alive + 1, waiting + depth)
        return counts

    def blocking_statistics(self) -> PoolStatistics:
        """How the pool for blocking code is used (its configured size, idle, before its first
        use starts it)."""
        if self._blocking is None:
            return PoolStatistics(threads=self._blocking_workers)
        return self._blocking.statistics()

    # -- supervision ------------------------------------------------------------------------------

    def _record_unhandled_failure(self, failure: ChildFailed) -> None:
        self.unhandled_failures.append(failure)

    # -- blocking code ----------------------------------------------------------------------------

    @property
    def blocking(self) -> BlockingPool:
        """The pool of pykka ThreadingActors for blocking callables (started on first use)."""
        if self._blocking is None:
            if self.state != "running":
                raise ActorSystemNotRunningError(self.name, self.state, "run blocking code")
            self._blocking = BlockingPool(self, self._blocking_workers)
        return self._blocking

    def run_blocking(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> LoopFuture[T]:
        """Run ``fn(*args, **kwargs)`` on a pool thread; await the future for its result."""
        return self.blocking.submit(fn, *args, **kwargs)

    # -- tasks and idleness -----------------------------------------------------------------------

    def create_task(
        self, coro: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> asyncio.Task[T]:
        """Run a coroutine as a task of the system (not of one actor): it counts as work for
        ``wait_idle()`` until it finishes, and is cancelled when the system stops."""
        return self._track_task(coro, name=name)

    def _track_task(
        self, coro: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> asyncio.Task[T]:
        task = self._loop.create_task(coro, name=name)
        self._busy += 1
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._busy_done()

    def _task_parked(self, task: asyncio.Task[Any] | None) -> bool:
        """A tracked task now waits on the manual clock; it no longer counts as busy."""
        if task is not None and task in self._tasks:
            self._busy_done()
            return True
        return False

    def _task_unparked(self) -> None:
        self._busy += 1

    def _busy_done(self) -> None:
        self._busy -= 1
        if not self._busy and self._idle_waiter is not None:
            waiter, self._idle_waiter = self._idle_waiter, None
            if not waiter.done():
                waiter.set_result(None)

    @property
    def busy(self) -> int:
        """Units of pending work: scheduled mailboxes, running actor tasks, blocking calls."""
        return self._busy

    async def wait_idle(self) -> None:
        """Return once no actor has a message to process, no actor task runs and no blocking call
        is pending. A task that waits on a ``ManualClock`` counts as idle until the clock wakes it.
        """
        while True:
            # Wake-ups sent from other threads (call_soon_threadsafe) are already queued on the
            # loop but not yet counted: one pass of the loop runs them before idleness is judged.
            await asyncio.sleep(0)
            if not self._busy:
                return
            if self._idle_waiter is None:
                self._idle_waiter = self._loop.create_future()
            await asyncio.shield(self._idle_waiter)


async def _awaitable(future: LoopFuture[Any]) -> Any:
    return await future

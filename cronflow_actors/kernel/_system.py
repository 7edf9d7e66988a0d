"""ActorSystem: spawns LoopActors on one event loop, keeps their registry, stops them in order.

pykka keeps one global registry, a list whose removal is O(n): with thousands of per-instance
actors alive, every stop would scan it. The system keeps its own registry (a dict by URN and one
by name), so per-instance actors never enter pykka's, and so two systems in one process do not
see each other's actors.

The system implements ``ActorHost``, the one interface its actors use, and touches an actor only
through ``_bind``, ``_start_actor_loop``, ``_kill`` and ``mailbox_depth``. Its count of work in
flight (``WorkInFlight``) is shared with its blocking pool and, as a ``SleepListener``, with its
clock when the clock is a ``ParkingClock``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pykka

from cronflow_actors.errors import ActorNameTakenError, ActorSystemNotRunningError
from cronflow_actors.kernel._actor import LoopActor, current_host
from cronflow_actors.kernel._blocking import Admits, BlockingPool, PoolStatistics
from cronflow_actors.kernel._work import WorkInFlight
from cronflow_actors.kernel.clock import Clock, ParkingClock, SystemClock

if TYPE_CHECKING:
    from cronflow_actors.kernel._future import LoopFuture
    from cronflow_actors.messages import ChildFailed

__all__ = ["ActorSystem", "current_system"]

A = TypeVar("A", bound=LoopActor)
T = TypeVar("T")


def current_system() -> ActorSystem:
    """The actor system started in the current context (by ``async with ActorSystem()``)."""
    system = current_host.get()
    if not isinstance(system, ActorSystem):
        raise ActorSystemNotRunningError(
            "<none>", "not started", "spawn an actor with Actor.start()"
        )
    if system.state != "running":
        raise ActorSystemNotRunningError(
            system.name, system.state, "spawn an actor with Actor.start()"
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
        self._admits: Admits | None = None
        self._actors: dict[str, pykka.ActorRef[Any]] = {}
        self._names: dict[str, pykka.ActorRef[Any]] = {}
        self.work = WorkInFlight()
        """The count of work in flight on the system's loop, shared with its actors, its
        blocking pool and its clock (a plain attribute: every spawn reads it)."""
        self._context_token: contextvars.Token[Any] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> ActorSystem:
        """Bind the system to the running event loop. Must be called from a coroutine."""
        if self.state != "created":
            raise ActorSystemNotRunningError(self.name, self.state, "start the actor system")
        self.work.bind(asyncio.get_running_loop())
        self._context_token = current_host.set(self)
        if isinstance(self.clock, ParkingClock):
            self.clock.attach(self.work)
        self.state = "running"
        return self

    async def __aenter__(self) -> ActorSystem:
        return self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def stop(self, grace_period: float | None = None, *, leave_running: bool = False) -> None:
        """Stop every actor after the messages already in its inbox, then the thread pool.

        Asks that are still pending when an actor stops fail with ``pykka.ActorDeadError``.
        With a ``grace_period`` (seconds), actors still running when it ends are stopped at once.
        ``leave_running``: the pool's calls still running are not waited for (``BlockingPool``).
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
                self._kill_all()
        await self.work.cancel_tasks()
        if self._blocking is not None:
            await self._blocking.stop(leave_running=leave_running)
        if isinstance(self.clock, ParkingClock):
            self.clock.detach(self.work)
        if self._context_token is not None:
            try:
                current_host.reset(self._context_token)
            except ValueError:  # stopped from another context than the one that started it
                current_host.set(None)
        self.state = "stopped"

    def abort(self) -> None:
        """Stop every actor at once, answering what waits in their inboxes with
        ``ActorDeadError`` (a BaseException escaped a handler)."""
        self._kill_all()
        self.state = "stopped"

    def _kill_all(self) -> None:
        for ref in list(self._actors.values()):
            actor = ref._actor_weakref()
            if isinstance(actor, LoopActor):
                actor._kill()

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
        self._may_spawn(actor_class, name)
        return self._start_made(actor_class(*args, **kwargs), parent, name)

    def spawn_made(
        self,
        actor: A,
        *,
        parent: pykka.ActorRef[Any] | None = None,
        name: str | None = None,
    ) -> pykka.ActorRef[A]:
        """Start ``actor``, made by the caller and never started, as ``spawn`` starts the
        actor it makes (an actor whose work began before it needed to be one: a handler that
        waits, ``engine.handlers.start_handler``)."""
        self._may_spawn(type(actor), name)
        return self._start_made(actor, parent, name)

    def _may_spawn(self, actor_class: type[Any], name: str | None) -> None:
        """Refuse a spawn while the system is not running, or under a name taken."""
        if self.state != "running":
            raise ActorSystemNotRunningError(self.name, self.state, f"spawn {actor_class.__name__}")
        if name is not None and name in self._names:
            raise ActorNameTakenError(self.name, name)

    def _start_made(
        self, actor: A, parent: pykka.ActorRef[Any] | None, name: str | None
    ) -> pykka.ActorRef[A]:
        actor._bind(self, name, parent)
        ref = actor._actor_ref  # (not the property: a call)
        self._actors[actor.actor_urn] = ref
        if name is not None:
            self._names[name] = ref
        actor._start_actor_loop()
        return ref

    def unregister(self, actor: LoopActor) -> None:
        """``actor`` has stopped: it leaves the registry (called by the actor)."""
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

    def record_unhandled_failure(self, failure: ChildFailed) -> None:
        """An actor failed and no parent heard of it (called by the actor): kept in
        ``unhandled_failures``."""
        self.unhandled_failures.append(failure)

    # -- blocking code ----------------------------------------------------------------------------

    @property
    def blocking(self) -> BlockingPool:
        """The pool of pykka ThreadingActors for blocking callables (started on first use)."""
        if self._blocking is None:
            if self.state != "running":
                raise ActorSystemNotRunningError(self.name, self.state, "run blocking code")
            self._blocking = BlockingPool(self.work, self._blocking_workers)
            self._blocking.admits = self._admits
        return self._blocking

    def admit_blocking(self, admits: Admits | None) -> None:
        """Ask ``admits`` before each call of the blocking pool starts (``BlockingPool.admits``),
        and before a handler's code begins on the loop (``admitted``): a runtime's lease, so
        that a process paused past it begins none of the work it had committed meanwhile."""
        self._admits = admits
        if self._blocking is not None:
            self._blocking.admits = admits

    def admitted(self) -> bool | None:
        """Whether work may begin now: ``admit_blocking``'s ``admits`` says (True with none)."""
        admits = self._admits
        return True if admits is None else admits()

    async def wait_admitted(self) -> None:
        """Return once ``admitted`` says work may begin: its lease's renewal overdue (a process
        paused past it, SIGSTOP or a frozen VM or a loop blocked, wakes with work it committed
        before, which another process may be running by now, before its heartbeat can tell),
        asked again until the heartbeat renews it or finds it lost; ``CancelledError`` if it
        is lost: the work never begins here (the process is stopping; the owner that took over
        does it)."""
        while True:
            verdict = self.admitted()
            if verdict is None:
                await asyncio.sleep(0.02)  # the heartbeat renews it or finds it lost meanwhile
                continue
            if not verdict:
                raise asyncio.CancelledError("the lease is lost: another process owns this work")
            return

    def run_blocking(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> LoopFuture[T]:
        """Run ``fn(*args, **kwargs)`` on a pool thread; await the future for its result."""
        return self.blocking.submit(fn, *args, **kwargs)

    # -- tasks and idleness -----------------------------------------------------------------------

    def create_task(
        self, coro: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> asyncio.Task[T]:
        """Run a coroutine as a task of the system (not of one actor): it counts as work for
        ``wait_idle()`` until it finishes, and is cancelled when the system stops."""
        return self.work.create_task(coro, name=name)

    @property
    def busy(self) -> int:
        """Units of pending work: scheduled mailboxes, running actor tasks, blocking calls."""
        return self.work.count

    async def wait_idle(self) -> None:
        """Return once no actor has a message to process, no actor task runs and no blocking call
        is pending. A task that waits on a ``ManualClock`` counts as idle until the clock wakes it.
        """
        await self.work.wait_idle()


async def _awaitable(future: LoopFuture[Any]) -> Any:
    return await future

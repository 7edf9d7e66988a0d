"""LoopActor: a pykka actor whose inbox is drained on an asyncio event loop.

pykka runs each actor on an OS thread of its own. A LoopActor plugs into pykka's three seams
(``_create_actor_inbox``, ``_create_future``, ``_start_actor_loop``) so that thousands of actors
share one event loop: the inbox is a deque, and a burst of messages is drained by one
``loop.call_soon`` with plain function calls. Everything pykka documents holds: ``tell``, ``ask``,
proxies, ``on_start``/``on_stop``/``on_failure``, asks still pending when the actor stops fail
with ``ActorDeadError``, and a ``ThreadingActor`` talks to a LoopActor through the same
``ActorRef`` from its own thread.

Handlers run on the loop thread and must not block; they are state transitions. To run a
coroutine (user code), call ``self.create_task(coro)``: the task belongs to the actor and is
cancelled when the actor stops. To run blocking code, use ``self.system.run_blocking(fn)``.
(For handlers that are coroutines themselves, one message at a time, see ``CoroutineActor``.)

An actor and its system talk through one explicit interface, both ways: the actor needs of its
system only what ``ActorHost`` lists (``ActorSystem`` implements it), and the system touches the
actor only through ``_bind`` (as it spawns it), pykka's ``_start_actor_loop``, ``_kill`` and
``mailbox_depth``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar

import pykka
from pykka._envelope import Envelope
from pykka.messages import ProxyCall, ProxyGetAttr, ProxySetAttr, _ActorStop

from cronflow_actors.errors import ActorSystemNotRunningError
from cronflow_actors.kernel._future import LoopFuture
from cronflow_actors.kernel._mailbox import LoopInbox, StopFlag
from cronflow_actors.kernel._ref import LoopActorRef
from cronflow_actors.kernel._work import WorkInFlight
from cronflow_actors.kernel.clock import Clock
from cronflow_actors.messages import ChildFailed, ChildStopped

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ActorHost", "LoopActor", "LoopActorRef", "current_host"]

A = TypeVar("A", bound="LoopActor")
T = TypeVar("T")

logger = logging.getLogger("cronflow_actors.kernel")

# Messages per drain before the actor yields the loop to others, so one busy actor cannot
# starve the rest.
_BURST = 512

_PYKKA_MESSAGES = frozenset({_ActorStop, ProxyCall, ProxyGetAttr, ProxySetAttr})

# URNs are unique per process by a counter and across processes by a random prefix: a uuid4 per
# actor costs more than the rest of spawning.
_URN_PREFIX = f"urn:cronflow-actor:{uuid.uuid4().hex}:"
_urn_counter = itertools.count(1)


class ActorHost(Protocol):
    """What a LoopActor needs of the system that spawned it (``ActorSystem`` is the one
    implementation). Actor code reaches it as ``self.system``."""

    clock: Clock

    state: str
    """``created``, ``running`` (the one state in which it spawns), ``stopping``, ``stopped``."""

    work: WorkInFlight
    """The count of work in flight on the system's loop (drains, tasks, blocking calls)."""

    def spawn(
        self,
        actor_class: type[A],
        *args: Any,
        parent: pykka.ActorRef[Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> pykka.ActorRef[A]: ...

    def create_task(
        self, coro: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> asyncio.Task[T]: ...

    def spawn_made(
        self,
        actor: A,
        *,
        parent: pykka.ActorRef[Any] | None = None,
        name: str | None = None,
    ) -> pykka.ActorRef[A]: ...

    def run_blocking(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> LoopFuture[T]: ...

    def admitted(self) -> bool | None:
        """Whether work may begin now (``ActorSystem.admit_blocking``'s word): True, False
        (never: the lease is lost) or None (not yet said)."""
        ...

    async def wait_admitted(self) -> None:
        """Return once work may begin; ``CancelledError`` if it never may here."""

    def unregister(self, actor: LoopActor) -> None:
        """``actor`` has stopped: it leaves the registry."""
        ...

    def record_unhandled_failure(self, failure: ChildFailed) -> None:
        """``actor`` failed and no parent heard of it."""
        ...

    def abort(self) -> None:
        """A BaseException escaped a handler: stop every actor at once."""
        ...


current_host: contextvars.ContextVar[ActorHost | None] = contextvars.ContextVar(
    "cronflow_actor_system", default=None
)
"""The actor system started in the current context; ``LoopActor.start()`` spawns there."""


class LoopActor(pykka.Actor):
    """A pykka actor that lives on the event loop of an ``ActorSystem``.

    Spawn with ``system.spawn(MyActor, *args, parent=ref, name="...")``, or with pykka's
    ``MyActor.start(*args)`` inside a running system. Override ``on_receive`` for plain messages
    and write methods for proxy calls, exactly as for a pykka ``ThreadingActor``; handlers run on
    the loop thread and must not block.

    A child's failure reaches its parent as a ``ChildFailed`` message, its normal stop as
    ``ChildStopped`` (unless the parent says it does not hear them, ``hears_child_stops``);
    stopping a parent stops its children.
    """

    actor_inbox: LoopInbox
    actor_stopped: StopFlag  # type: ignore[assignment]

    system: ActorHost
    """The actor system this actor lives in (from its spawn on). A plain attribute, not a
    property: actors read it on every step they take (a handler's pool, a spawn)."""

    hears_child_stops: ClassVar[bool] = True
    """Whether a child's normal stop reaches this actor as a ``ChildStopped`` message. An actor
    that does nothing with them (it spawns many short-lived children and learns what it needs
    from their reports) sets it False: each would cost a message through its inbox. A child's
    failure (``ChildFailed``) reaches it either way."""

    start_at_once: ClassVar[bool] = False
    """Run ``on_start`` as the actor is spawned on the loop's thread, rather than on a first
    drain scheduled for it: for short-lived actors whose ``on_start`` only starts their work
    (a handler's task), which saves a round through the loop per actor. Spawned from another
    thread, the actor starts on its first drain as usual."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        # pykka's Actor.__init__ builds a uuid4 URN and a threading.Event per actor; these
        # cheaper equivalents keep spawning fast with the same public fields.
        self.actor_urn = f"{_URN_PREFIX}{next(_urn_counter)}"
        inbox = self._create_actor_inbox()
        inbox.actor = self
        self.actor_inbox = inbox
        self.actor_stopped = StopFlag()
        self._actor_ref = LoopActorRef(self)
        self._system: ActorHost | None = None
        self._in_flight: WorkInFlight = None  # type: ignore[assignment]  # set by _bind
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._scheduled = False
        self._started = False
        self._parent: pykka.ActorRef[Any] | None = None
        self._children: dict[str, pykka.ActorRef[Any]] | None = None
        self._tasks: set[asyncio.Task[Any]] | None = None
        self.actor_name: str | None = None

    # -- pykka seams ------------------------------------------------------------------------------

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        """Spawn the actor in the actor system that runs on the current event loop."""
        host = current_host.get()
        if host is None:
            raise ActorSystemNotRunningError(
                "<none>", "not started", "spawn an actor with Actor.start()"
            )
        return host.spawn(cls, *args, **kwargs)

    @staticmethod
    def _create_actor_inbox() -> LoopInbox:
        return LoopInbox()

    @staticmethod
    def _create_future() -> LoopFuture[Any]:
        return LoopFuture()

    def _bind(self, host: ActorHost, name: str | None, parent: pykka.ActorRef[Any] | None) -> None:
        """Called by the host as it spawns the actor, before ``_start_actor_loop``: the actor
        learns its system, name and parent, and joins the parent's children. Raises
        ``ActorDeadError`` (and changes nothing) if the parent is not alive."""
        parent_actor = None
        if parent is not None:
            parent_actor = parent._actor_weakref()
            # whether it is a LoopActor, by its MRO: an ABC's isinstance is three calls (pykka's
            # Actor is an ABC), and its stop flag read here rather than through is_alive()
            if (
                parent_actor is None
                or LoopActor not in type(parent_actor).__mro__
                or parent_actor.actor_stopped._set
            ):
                raise pykka.ActorDeadError(f"cannot spawn a child of {parent}: it is not alive")
        self._system = self.system = host
        self._in_flight = host.work
        self.actor_name = name
        if parent_actor is not None:
            self._parent = parent
            if parent_actor._children is None:
                parent_actor._children = {}
            parent_actor._children[self.actor_urn] = self._actor_ref

    def _start_actor_loop(self) -> None:
        if self._system is None:
            raise RuntimeError(f"{self} was not spawned by an ActorSystem; use system.spawn()")
        work = self._in_flight
        self._thread_id = work.thread_id
        self._loop = work.loop
        if threading.get_ident() == self._thread_id:
            if self.start_at_once and not self.actor_inbox.queue:
                self._started = True
                self._actor_loop_setup()
                if self.actor_stopped._set:
                    self._let_go_unless_scheduled()
            else:
                self._schedule_drain()
        else:
            work.loop.call_soon_threadsafe(self._ensure_scheduled)

    # -- properties -------------------------------------------------------------------------------

    @property
    def parent(self) -> pykka.ActorRef[Any] | None:
        """The parent's ref, or None for a top-level actor."""
        return self._parent

    @property
    def children(self) -> list[pykka.ActorRef[Any]]:
        """Refs of the children that are still alive."""
        return list(self._children.values()) if self._children else []

    @property
    def mailbox_depth(self) -> int:
        """Messages waiting in the inbox."""
        return len(self.actor_inbox.queue)

    def create_task(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run a coroutine on the loop as this actor's task; it is cancelled when the actor stops.

        The task counts as work for ``ActorSystem.wait_idle()`` until it finishes.
        """
        if self._tasks is None:
            self._tasks = set()
        return self._in_flight.create_task(coro, name=name, owner=self._tasks)

    def adopt_task(self, task: asyncio.Task[Any]) -> None:
        """``task``, made on the system's loop (``WorkInFlight.create_task``) before this actor
        was spawned, is this actor's task from now on, as if ``create_task`` had made it."""
        if self._tasks is None:
            self._tasks = set()
        self._in_flight.own(task, self._tasks)

    # -- the drain loop ---------------------------------------------------------------------------

    def _schedule_drain(self) -> None:
        self._scheduled = True
        assert self._loop is not None
        self._in_flight.started()
        self._loop.call_soon(self._drain)

    def _ensure_scheduled(self) -> None:
        if self.actor_stopped._set:
            # A message from another thread arrived while the actor was stopping: answer it.
            self._actor_loop_teardown()
        elif not self._scheduled:
            self._schedule_drain()

    def _drain(self) -> None:
        if not self._started:
            self._started = True
            self._actor_loop_setup()
        queue = self.actor_inbox.queue
        stopped = self.actor_stopped
        process = self._process
        budget = _BURST
        while queue and not stopped._set:
            process(queue.popleft())
            budget -= 1
            if not budget:
                break
        if stopped._set:
            self._actor_loop_teardown()
            self._scheduled = False
            self._in_flight.done()
            # Break the actor <-> inbox cycle so a stopped actor is freed by reference counting
            # rather than by the cyclic GC; a message that still reaches the inbox (from another
            # thread, racing the stop) is answered with ActorDeadError by the inbox itself.
            self.actor_inbox.actor = None
            return
        if queue:
            assert self._loop is not None
            self._loop.call_soon(self._drain)
            return
        self._scheduled = False
        self._in_flight.done()

    def _process(self, envelope: Envelope[Any]) -> None:
        reply_to = envelope.reply_to
        try:
            response = self._handle_receive(envelope.message)
        except Exception:
            self._handler_raised(reply_to)
            return
        except BaseException:
            self._handler_aborted()
            raise
        if reply_to is not None:
            reply_to.set(response)

    def _handler_raised(self, reply_to: pykka.Future[Any] | None) -> None:
        """A handler raised (called in the ``except`` block): the asker gets the exception; a
        told message's exception is a failure, and the actor stops (as in pykka)."""
        if reply_to is not None:
            logger.info("Exception returned from %s to caller:", self, exc_info=sys.exc_info())
            reply_to.set_exception()
            return
        exc_info = sys.exc_info()
        self._handle_failure(*exc_info)
        try:
            self.on_failure(*exc_info)
        except Exception:
            self._handle_failure(*sys.exc_info())
        self._finish(exc_info[1])

    def _handler_aborted(self) -> None:
        """As in pykka: KeyboardInterrupt or SystemExit in a handler stops everything."""
        logger.debug("%r in %s; stopping its actor system", sys.exc_info()[1], self)
        self._stop()
        if self._system is not None:
            self._system.abort()

    def _handle_receive(self, message: Any) -> Any:
        if type(message) in _PYKKA_MESSAGES:
            return super()._handle_receive(message)
        return self.on_receive(message)

    def _actor_loop_setup(self) -> None:
        try:
            self.on_start()
        except Exception:
            exc_info = sys.exc_info()
            self._handle_failure(*exc_info)
            self._finish(exc_info[1])

    # -- stopping ---------------------------------------------------------------------------------

    def stop_now(self, current: asyncio.Task[Any] | None = None) -> None:
        """Stop at once, from a message handler or from one of the actor's own tasks: no later
        message is handled (one that arrives is answered with ``ActorDeadError``), ``on_stop``
        runs, children stop and the parent hears of it. The actor's other tasks are
        cancelled; the task that calls this is not (it is finishing). ``current``: that task,
        if the caller knows it (else it is looked up)."""
        if self._tasks:
            if current is None:
                current = asyncio.current_task(self._loop)  # given: no lookup (3.11: a syscall)
            if current is not None:
                self._tasks.discard(current)
        self._stop()
        self._let_go_unless_scheduled()

    def _let_go_unless_scheduled(self) -> None:
        """The actor has stopped: unless a drain is due (which does it), answer what waits in
        the inbox and let go of it now (a stop from one of the actor's own tasks, with no
        message pending, would otherwise leave the actor <-> inbox cycle to the cyclic GC)."""
        if not self._scheduled:
            inbox = self.actor_inbox
            if inbox.queue:  # (pykka's teardown asks empty() first: two calls for nothing)
                self._actor_loop_teardown()
            inbox.actor = None

    def _kill(self) -> None:
        """Stop at once and answer what waits in the inbox with ``ActorDeadError`` (the system
        ran out of patience, or is aborting)."""
        self._stop()
        self._actor_loop_teardown()

    def _stop(self) -> None:
        """Stop now, without processing the rest of the inbox (pykka's ``_stop``)."""
        if self.actor_stopped._set:
            return
        self.actor_stopped.set()
        if self._system is not None:
            self._system.unregister(self)
        if logger.isEnabledFor(logging.DEBUG):  # (what debug() asks first: its call saved)
            logger.debug("Stopped %s", self)
        try:
            self.on_stop()
        except Exception:
            self._handle_failure(*sys.exc_info())
        self._finish(None)

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        logger.error(
            "Unhandled exception in %s:",
            self,
            exc_info=(exception_type, exception_value, traceback),  # type: ignore[arg-type]
        )
        if self._system is not None:
            self._system.unregister(self)
        self.actor_stopped.set()

    def _finish(self, error: BaseException | None) -> None:
        """After the actor stopped: cancel its tasks, stop its children, tell its parent."""
        if self._tasks:
            for task in list(self._tasks):
                task.cancel()
        if self._children:
            for child in list(self._children.values()):
                with contextlib.suppress(pykka.ActorDeadError):  # it stopped on its own
                    child.tell(_ActorStop())
        system = self._system
        if system is None:
            return
        parent = self._parent
        # a parent is a LoopActor (_bind refuses any other), or gone
        loop_parent: LoopActor | None = parent._actor_weakref() if parent is not None else None
        if loop_parent is not None and loop_parent._children is not None:
            loop_parent._children.pop(self.actor_urn, None)
        if error is None:
            if parent is None:
                return
            if loop_parent is not None and not loop_parent.hears_child_stops:
                return
            notice: ChildFailed | ChildStopped = ChildStopped(
                child_urn=self.actor_urn, child_class=type(self).__name__
            )
        else:
            notice = ChildFailed(
                child_urn=self.actor_urn,
                child_class=type(self).__name__,
                error_type=type(error).__name__,
                error_message=str(error),
                error=error,
            )
        if parent is not None:
            try:
                parent.tell(notice)
                return
            except pykka.ActorDeadError:
                pass
        if isinstance(notice, ChildFailed):
            system.record_unhandled_failure(notice)

    # -- default handlers -------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Handle a plain (non-proxy) message; the default ignores kernel notices about children.

        ``ChildStopped`` is dropped; ``ChildFailed`` is logged as a warning, since a parent that
        spawns children it cannot supervise should know. Anything else is logged as pykka does.
        """
        if isinstance(message, ChildStopped):
            return None
        if isinstance(message, ChildFailed):
            logger.warning(
                "%s: child %s (%s) failed with %s: %s; override on_receive to handle ChildFailed",
                self,
                message.child_class,
                message.child_urn,
                message.error_type,
                message.error_message,
            )
            return None
        return super().on_receive(message)

    def __str__(self) -> str:
        if self.actor_name is not None:
            return f"{type(self).__name__} {self.actor_name!r} ({self.actor_urn})"
        return f"{type(self).__name__} ({self.actor_urn})"

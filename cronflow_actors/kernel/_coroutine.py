"""CoroutineActor: a LoopActor whose handler is a coroutine, run one message at a time.

A LoopActor's handlers are plain calls. Some actors must await while they handle a message (a
workflow instance awaits its commit) and must still take one message at a time, because the
next message has to see what the last one did. A CoroutineActor has one mailbox and nothing
else that queues: while ``handle`` awaits, later messages wait in the inbox, so
``mailbox_depth`` counts them, and an ``ask`` resolves to what ``handle`` returned (or raised)
once it is done, with one await.

The messages are taken by one task per busy period (the actor's *turn*), started when a message
arrives at an idle actor and ending when the inbox is empty, unless the actor expects another
message soon (``keeps_turn``): then the turn waits for it, out of the work in flight, and a
stop ends it. pykka's own messages (stop, proxy calls) take their turn in order too:
``ref.stop()`` stops the actor after the messages before it.

Queries are the one exception: messages whose type is in ``queries`` jump the queue and are
answered at once by ``on_query``, a plain method, even while a handler awaits. They must only
read the actor's state.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from typing import Any, ClassVar

import pykka
from pykka._envelope import Envelope
from pykka.messages import ProxyCall, ProxyGetAttr, ProxySetAttr, _ActorStop

from cronflow_actors.kernel._actor import LoopActor
from cronflow_actors.kernel._mailbox import LoopInbox

__all__ = ["CoroutineActor"]

logger = logging.getLogger("cronflow_actors.kernel")

_PYKKA_MESSAGES = frozenset({_ActorStop, ProxyCall, ProxyGetAttr, ProxySetAttr})

# Messages per turn before the turn lets other tasks run, for handlers that never suspend.
_BURST = 512


class _TurnInbox(LoopInbox):
    """A LoopInbox with a second lane for queries, which are answered before anything else."""

    __slots__ = ("queries", "urgent")

    def __init__(self, queries: frozenset[type[Any]]) -> None:
        super().__init__()
        self.queries = queries
        self.urgent: deque[Envelope[Any]] = deque()

    def put(self, envelope: Envelope[Any], /) -> None:
        if type(envelope.message) in self.queries:
            self.urgent.append(envelope)
        else:
            self.queue.append(envelope)
        self.wake(envelope)

    def get(self) -> Envelope[Any]:
        return self.urgent.popleft() if self.urgent else self.queue.popleft()

    def empty(self) -> bool:
        return not self.urgent and not self.queue

    def __len__(self) -> int:
        return len(self.urgent) + len(self.queue)


class CoroutineActor(LoopActor):
    """A LoopActor that handles each message with ``await self.handle(message)``, one at a time,
    in the order they arrived.

    - ``ask`` resolves to ``handle``'s result or exception (logged at debug level only); a
      told message whose handler raises stops the actor with ``on_failure``, as in pykka.
    - ``on_idle()`` runs in the actor's turn after a message when no other waits.
    - Asks that wait when the actor stops, and the ask whose handler a stop cancels, fail with
      ``ActorDeadError``.
    """

    queries: ClassVar[frozenset[type[Any]]] = frozenset()
    """Message types answered at once by ``on_query``, ahead of the messages that wait."""

    actor_inbox: _TurnInbox

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turn: asyncio.Task[None] | None = None
        self._turn_name: str | None = None
        self._waiter: asyncio.Future[None] | None = None
        """Set while the turn waits for the next message (``keeps_turn``)."""

    @classmethod
    def _create_actor_inbox(cls) -> _TurnInbox:
        return _TurnInbox(cls.queries)

    @property
    def mailbox_depth(self) -> int:
        """Messages waiting in the inbox (not the one being handled)."""
        return len(self.actor_inbox)

    async def handle(self, message: Any) -> Any:
        """Handle one message (not a query); the default is ``LoopActor.on_receive``'s (drop
        ``ChildStopped``, log ``ChildFailed`` and anything else)."""
        return LoopActor.on_receive(self, message)

    def on_query(self, message: Any) -> Any:
        """Answer a message whose type is in ``queries``, at once; it must not change state."""
        return LoopActor.on_receive(self, message)

    def on_idle(self) -> None:
        """Runs in the actor's turn after a message when no other waits (e.g. to stop); if it
        raises, the actor fails."""

    def keeps_turn(self) -> bool:
        """Asked after ``on_idle`` when the inbox is empty: True to have the turn wait for the
        next message rather than end, for an actor that expects one soon (an instance whose
        steps run and will report). A waiting turn costs no work in flight (``wait_idle()``
        does not wait for it) and saves starting a task for that message; it holds a task's
        memory while it waits. The default ends the turn."""
        return False

    def tell_self_first(self, message: Any) -> None:
        """Put ``message`` at the head of this actor's own inbox, ahead of the messages that
        wait: for work the actor owes itself before anything else (from ``on_start``, a
        handler or ``on_idle``)."""
        envelope: Envelope[Any] = Envelope(message)
        self.actor_inbox.queue.appendleft(envelope)
        self.actor_inbox.wake(envelope)

    # -- the drain and the turn -------------------------------------------------------------------

    def _handle_receive(self, message: Any) -> Any:
        if type(message) in _PYKKA_MESSAGES:
            return pykka.Actor._handle_receive(self, message)
        return self.on_query(message)

    def _schedule_drain(self) -> None:
        inbox = self.actor_inbox
        if self._started and not inbox.urgent and not self.actor_stopped._set:
            # A message, no query waiting, and the actor has started: the turn takes it. Start
            # the turn now if none runs (a running turn takes every message before it ends). A
            # drain scheduled only for that would cost a round of the loop (and a Handle) per
            # message; the turn's first step runs on the next round either way.
            if self._turn is None:
                if inbox.queue:
                    self._start_turn()
            elif self._waiter is not None:
                self._wake_turn()
            return
        super()._schedule_drain()

    def _start_turn(self) -> None:
        if self._turn_name is None:  # named once: str(self) is not cheap, and turns are many
            self._turn_name = f"turn of {self}"
        if self._tasks is None:
            self._tasks = set()
        # LoopActor.create_task, written out (every message to an idle actor starts a turn)
        self._turn = self._in_flight.create_task(
            self._take_turns(), name=self._turn_name, owner=self._tasks
        )

    def _wake_turn(self) -> None:
        """A message for the turn that waits: it counts as work in flight again from here (not
        from when it resumes, or ``wait_idle()`` could see nothing pending in between)."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            self._in_flight.count += 1
            waiter.set_result(None)

    def _waiter_for_next(self) -> asyncio.Future[None] | None:
        """The inbox is empty: None if the turn ends, else the future it awaits until the next
        message (``_wake_turn``), out of the work in flight meanwhile."""
        if self.actor_stopped._set:
            return None
        try:
            if not self.keeps_turn():
                return None
        except Exception:
            self._handler_raised(None)  # as from on_idle: the actor fails
            return None
        waiter: asyncio.Future[None] = self._loop.create_future()  # type: ignore[union-attr]
        self._waiter = waiter
        self._in_flight.done()
        return waiter

    def _drain(self) -> None:
        if not self._started:
            self._started = True
            self._actor_loop_setup()
        inbox = self.actor_inbox
        stopped = self.actor_stopped
        urgent = inbox.urgent
        while urgent and not stopped._set:
            self._process(urgent.popleft())
        if inbox.queue and not stopped._set:
            # a message that came while this drain was due (it scheduled nothing itself)
            if self._turn is None:
                self._start_turn()
            elif self._waiter is not None:
                self._wake_turn()
        self._scheduled = False
        if stopped._set and self._turn is None:
            self._let_go()
        self._in_flight.done()

    async def _take_turns(self) -> None:
        queue = self.actor_inbox.queue
        stopped = self.actor_stopped
        budget = _BURST
        try:
            while True:
                if not queue:
                    waiter = self._waiter_for_next()
                    if waiter is None:
                        break  # the turn ends
                    try:
                        await waiter
                    except BaseException:
                        if self._waiter is waiter:  # cancelled as it waited (a stop)
                            self._waiter = None
                            self._in_flight.count += 1
                        raise
                    continue
                if stopped._set:
                    break
                envelope = queue.popleft()
                message = envelope.message
                if type(message) in _PYKKA_MESSAGES:
                    self._process(envelope)
                else:
                    # _handle_one, written out: one coroutine frame less on every message
                    reply_to = envelope.reply_to
                    try:
                        result = await self.handle(message)
                    except BaseException:
                        if not self._handler_failed(reply_to):
                            raise
                    else:
                        if reply_to is not None:
                            reply_to.set(result)
                if not queue and not stopped._set:
                    try:
                        self.on_idle()
                    except Exception:
                        self._handler_raised(None)
                budget -= 1
                if not budget:
                    budget = _BURST
                    await asyncio.sleep(0)
        finally:
            self._turn = None
            if stopped._set:
                self._let_go()
            elif queue and not self._scheduled:
                self._schedule_drain()  # the turn was cancelled, not the actor: go on

    def _handler_failed(self, reply_to: pykka.Future[Any] | None) -> bool:
        """``handle`` raised (called in the ``except`` block); False if the turn must end with
        the exception: a stop cancelled it, or a KeyboardInterrupt or SystemExit."""
        error = sys.exc_info()[1]
        if isinstance(error, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                if reply_to is not None:
                    dead = pykka.ActorDeadError(f"{self} stopped while handling the message")
                    reply_to.set_exception((pykka.ActorDeadError, dead, None))
                return False
            # else: let out by the handler, not a stop of ours: an error like any other
        elif not isinstance(error, Exception):
            self._handler_aborted()
            return False
        if reply_to is not None:
            # The answer, for the asker to handle (a refused command is an ordinary answer
            # here): logged without the traceback pykka logs for it.
            logger.debug("%s answers %r", self, error)
            reply_to.set_exception()
        else:
            self._handler_raised(None)
        return True

    def _let_go_unless_scheduled(self) -> None:
        if self._turn is None:  # else the turn lets go as it ends
            self._let_go()

    def _let_go(self) -> None:
        """The actor has stopped and no turn runs: answer what waits, and let go of the inbox
        (a message that still arrives is answered by the inbox itself)."""
        inbox = self.actor_inbox
        if inbox.queue or inbox.urgent:  # (pykka's teardown asks empty() first: two calls)
            self._actor_loop_teardown()
        inbox.actor = None

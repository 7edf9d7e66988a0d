"""The mailbox of a LoopActor: its inbox (a deque that wakes its owner on the loop) and its
cheap stop flag.

The inbox knows of its owner only what ``Owner`` lists: where and whether its drain is
scheduled, and how to schedule it. A stopped owner lets go of its inbox; a message that still
arrives (from another thread, racing the stop) is answered with ``ActorDeadError`` here.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any, Protocol

import pykka
from pykka._envelope import Envelope

__all__ = ["LoopInbox", "Owner", "StopFlag", "answer_dead"]


class Owner(Protocol):
    """What an inbox needs of the actor it belongs to."""

    _loop: asyncio.AbstractEventLoop | None
    _thread_id: int | None
    _scheduled: bool

    def _schedule_drain(self) -> None:
        """Drain soon (called on the loop's thread)."""
        ...

    def _ensure_scheduled(self) -> None:
        """Drain soon unless a drain is scheduled (run on the loop, sent from another thread)."""
        ...


class StopFlag:
    """The ``actor_stopped`` flag: the part of ``threading.Event`` that pykka uses, made cheap.

    A real ``threading.Event`` (a Condition and a Lock) is built only if a thread waits.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        if self._event is None:
            self._event = threading.Event()
            if self._set:
                return True
        return self._event.wait(timeout)


class LoopInbox:
    """A deque that schedules its actor's drain on the loop when a message arrives."""

    __slots__ = ("actor", "queue")

    def __init__(self) -> None:
        self.queue: deque[Envelope[Any]] = deque()
        self.actor: Owner | None = None

    def put(self, envelope: Envelope[Any], /) -> None:
        self.queue.append(envelope)
        # wake(), written out: this is every message's path
        actor = self.actor
        if actor is None:
            answer_dead(envelope)  # the actor has stopped and let go of its inbox
            return
        if actor._loop is None:
            return  # not started yet: _start_actor_loop schedules the first drain
        if threading.get_ident() == actor._thread_id:
            if not actor._scheduled:
                actor._schedule_drain()
        else:
            actor._loop.call_soon_threadsafe(actor._ensure_scheduled)

    def wake(self, envelope: Envelope[Any]) -> None:
        """``envelope`` was just queued (by a subclass's ``put``): have the owner drain it, or
        answer it if the owner has stopped."""
        actor = self.actor
        if actor is None:
            answer_dead(envelope)  # the actor has stopped and let go of its inbox
            return
        if actor._loop is None:
            return  # not started yet: _start_actor_loop schedules the first drain
        if threading.get_ident() == actor._thread_id:
            if not actor._scheduled:
                actor._schedule_drain()
        else:
            actor._loop.call_soon_threadsafe(actor._ensure_scheduled)

    def get(self) -> Envelope[Any]:
        return self.queue.popleft()

    def empty(self) -> bool:
        return not self.queue

    def __len__(self) -> int:
        return len(self.queue)


def answer_dead(envelope: Envelope[Any]) -> None:
    if envelope.reply_to is not None:
        error = pykka.ActorDeadError("the actor stopped before handling the message")
        envelope.reply_to.set_exception((pykka.ActorDeadError, error, None))

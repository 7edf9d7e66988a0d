"""LoopActorRef: the ``ActorRef`` of a LoopActor, pykka's API with waits that suit a loop.

A blocking ``ask`` or ``stop`` on a thread that runs an event loop would stop the loop that has
to answer; it is refused with ``WouldBlockLoopError``. ``stop(block=False)`` returns a
``LoopFuture`` the loop can await.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pykka
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from cronflow_actors.errors import WouldBlockLoopError
from cronflow_actors.kernel._future import LoopFuture, _get_running_loop
from cronflow_actors.kernel._mailbox import StopFlag

__all__ = ["LoopActorRef"]

A = TypeVar("A", bound=pykka.Actor)


class LoopActorRef(pykka.ActorRef[A]):
    """The ``ActorRef`` of a LoopActor: pykka's API, with a stop future that can be awaited."""

    actor_stopped: StopFlag  # type: ignore[assignment]  # its actor's (LoopActor.actor_stopped)

    def tell(self, message: Any) -> None:
        if self.actor_stopped._set:  # (not is_set(): a call on every message)
            raise pykka.ActorDeadError(f"{self} not found")
        self.actor_inbox.put(Envelope(message))

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """pykka's ``ask``; ``block=True`` on a thread that runs an event loop is refused.

        Waiting there would stop the loop that has to answer, so the message is not sent and
        ``WouldBlockLoopError`` is raised; use ``await ref.ask(message, block=False)``.
        """
        if block:
            if _get_running_loop() is not None:
                raise WouldBlockLoopError(
                    f"ask({type(message).__name__}) with block=True on {self}"
                )
            return super().ask(message, block=True, timeout=timeout)
        # pykka's ask without blocking, written out (every command to an instance comes this
        # way): its stop flag read rather than is_alive(), and no call into pykka's ask
        future = self.actor_class._create_future()
        if self.actor_stopped._set:
            try:
                raise pykka.ActorDeadError(f"{self} not found")
            except pykka.ActorDeadError:
                future.set_exception()
        else:
            self.actor_inbox.put(Envelope(message, reply_to=future))
        return future

    def stop(self, *, block: bool = True, timeout: float | None = None) -> Any:
        """Ask the actor to stop after the messages already in its inbox.

        Returns True if the actor stopped or was stopping, False if it was already dead; with
        ``block=False`` a LoopFuture of that, which can be awaited on the loop.
        """
        if block and _get_running_loop() is not None:
            raise WouldBlockLoopError(f"stop(block=True) on {self}")
        asked: LoopFuture[Any] = self.ask(_ActorStop(), block=False)
        stopped: LoopFuture[bool] = LoopFuture()

        def convert(future: LoopFuture[Any]) -> None:
            stopped.set(not isinstance(future.exception(), pykka.ActorDeadError))

        asked.add_done_callback(convert)
        if block:
            return stopped.get(timeout=timeout)
        return stopped

"""Events: ``publish_event(name, payload)`` starts the flows listening for ``name`` and wakes the
steps waiting for it.

The waiting steps are found through their durable wake-up rows (``kind="event"``, key the event
name), a page at a time, so only the matching waits are touched and the waiting instances need
not be in memory. Each one gets a ``DeliverEvent`` on its own turn, where its filter decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cronflow_actors.errors import EngineError
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import Message, WaitRecord
from cronflow_actors.messages.engine import DeliverEvent
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.store import Store

__all__ = ["Events"]

logger = logging.getLogger(__name__)

_PAGE = 200


class Events:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        store: Store,
        clock: Clock,
        trigger: Callable[..., Awaitable[str]],
        send: Callable[[str, Message], Awaitable[Any]],
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._clock = clock
        self._trigger = trigger
        self._send = send

    async def publish(self, name: str, payload: Any = None) -> list[str]:
        """Start every flow listening with ``on_event(name)`` and wake every step waiting for
        ``name`` whose filter accepts the payload. Returns the ids of the runs started."""
        started = []
        event = {"name": name, "payload": payload, "timestamp": self._clock.now()}
        for flow in self._catalog.listening(name):
            run_payload = (
                {"event": event, **payload} if isinstance(payload, dict) else {"event": event}
            )
            started.append(await self._trigger(flow.id, run_payload, kind="event"))
        after = None
        while True:
            waits = await self._store.open_waits("event", key=name, after=after, limit=_PAGE)
            await asyncio.gather(*(self._deliver(wait, name, payload) for wait in waits))
            if len(waits) < _PAGE:
                return started
            after = (waits[-1].created_at, waits[-1].wait_id)

    async def _deliver(self, wait: WaitRecord, name: str, payload: Any) -> None:
        command = DeliverEvent(work_item_id=wait.wait_id, event=name, payload=payload)
        try:
            await self._send(wait.instance_id, command)
        except EngineError as error:
            logger.debug("event %s not delivered to %s: %s", name, wait.wait_id, error)
        except Exception:
            logger.exception("the filter of %s raised; the event is not delivered", wait.wait_id)

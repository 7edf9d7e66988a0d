"""Cron schedules and intervals of registered flows, fired while the runtime runs.

Each tick starts one run whose instance id is derived from (flow, schedule, tick), so a tick that
was already started (before a crash, say) is not started again: one run per tick, even across a
restart. Ticks missed while no runtime was running are not made up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from cronflow_actors.errors import InstanceExistsError
from cronflow_actors.kernel import Clock
from cronflow_actors.runtime.catalog import FlowCatalog

__all__ = ["Schedules"]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6c1f3a2e-8f6d-4c59-9b0e-2b8f0f7a9d11")


class Schedules:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        clock: Clock,
        trigger: Callable[..., Awaitable[str]],
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]],
        on_fired: Callable[[str, float], None],
    ) -> None:
        self._catalog = catalog
        self._clock = clock
        self._trigger = trigger
        self._spawn = spawn
        self._on_fired = on_fired
        self._task: asyncio.Task[None] | None = None
        self.fired = 0

    def _entries(self) -> list[tuple[str, str, str, Callable[[float], float]]]:
        entries: list[tuple[str, str, str, Callable[[float], float]]] = []
        for name in sorted(self._catalog.roots):
            flow = self._catalog.flows[name]
            for index, cron in enumerate(flow.schedules):
                entries.append((name, f"cron{index}", cron.text, cron.next_after))
            for index, seconds in enumerate(flow.intervals):
                entries.append((name, f"every{index}", f"every {seconds:g} s", _aligned(seconds)))
        return entries

    def restart(self) -> None:
        """(Re)plan after a start or a registration (the runtime calls it while running)."""
        self.stop()
        if self._entries():
            self._task = self._spawn(self._loop(), "schedules")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _loop(self) -> None:
        clock = self._clock
        while True:
            now = clock.now()
            plan = [
                (next_after(now), name, key, text)
                for name, key, text, next_after in self._entries()
            ]
            due = min(tick for tick, *_ in plan)
            await clock.sleep_until(due)
            for tick, name, key, text in plan:
                if tick == due:
                    await self._fire(name, key, text, tick)

    async def _fire(self, name: str, key: str, text: str, tick: float) -> None:
        """Start the run of one tick; ``on_fired(name, lag)`` hears of it with how late after
        the tick it started."""
        instance_id = uuid.uuid5(_NAMESPACE, f"{name}|{key}|{tick}").hex
        payload = {
            "trigger_type": "schedule",
            "schedule": text,
            "scheduled_at": tick,
            "workflow_id": name,
        }
        try:
            await self._trigger(name, payload, kind="schedule", instance_id=instance_id)
            self.fired += 1
            self._on_fired(name, self._clock.now() - tick)
        except InstanceExistsError:
            pass  # this tick was started before
        except Exception:
            logger.exception("schedule %s of %s could not start a run at %s", text, name, tick)


def _aligned(seconds: float) -> Callable[[float], float]:
    def next_after(when: float) -> float:
        return (math.floor(when / seconds) + 1) * seconds

    return next_after

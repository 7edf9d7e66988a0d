"""``on_poll`` triggers: while the runtime runs, each poll function is called at every multiple
of its interval (on the runtime's clock), and one run is started per new item it returns.

An item is new when its key (``key(item)``) was never seen for its flow. Seeing is durable and
lives where the data is:

- the run's instance id is derived from (flow, key), so the store refuses to start an item a
  second time whatever happened in between (a crash after the start, two polls racing);
- once its run exists, the key is marked in the store's key-value state (namespace
  ``cronflow:polls:<flow>``, no expiry), so later polls skip the item without trying, also
  after the run itself was pruned by the retention.

Keys are per flow, shared by its polls. A poll that raises, or returns something that is not
a list of items, is logged and counted; an item whose key cannot be read, or whose run cannot
start, is logged and counted too, and is tried again by the next poll (it was not marked).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import msgspec

from cronflow_actors.calls import call_user
from cronflow_actors.engine.state_access import StateAccess
from cronflow_actors.errors import InstanceExistsError
from cronflow_actors.flow.compiled import CompiledFlow
from cronflow_actors.flow.context import PollContext
from cronflow_actors.flow.triggers import PollSpec
from cronflow_actors.kernel import Clock
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.ids import derived_run_id
from cronflow_actors.store import MISSING, Store

__all__ = ["PollStats", "Polls"]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("3f6d2c1a-97b4-4e0a-8c55-1d2e7b9a4f60")
_encode = msgspec.json.Encoder().encode


class PollStats(msgspec.Struct, kw_only=True):
    """What the polls of one flow did since the runtime started."""

    polls: int = 0
    """Poll calls that returned a list of items."""
    failures: int = 0
    """Poll calls that raised or returned something else (each one logged)."""
    started: int = 0
    """Runs started for new items."""
    seen: int = 0
    """Items skipped because their key was seen before."""
    refused: int = 0
    """Items whose key could not be read or whose run could not start (each one logged)."""


class Polls:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        store: Store,
        clock: Clock,
        trigger: Callable[..., Awaitable[str]],
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]],
        run_blocking: Callable[..., Awaitable[Any]],
        on_poll: Callable[[str, str], None] = lambda flow, outcome: None,
        on_item: Callable[[str, str], None] = lambda flow, outcome: None,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._clock = clock
        self._trigger = trigger
        self._spawn = spawn
        self._run_blocking = run_blocking
        self._on_poll = on_poll
        self._on_item = on_item
        self._tasks: dict[tuple[str, int], tuple[CompiledFlow, asyncio.Task[None]]] = {}
        self.stats: dict[str, PollStats] = {}
        """What each flow's polls did, by flow id."""

    def restart(self) -> None:
        """Poll every registered flow's polls (after a start or a registration): the polls
        already running go on; a flow registered again in a new definition starts over."""
        for name in sorted(self._catalog.roots):
            flow = self._catalog.compiled[name]
            for index, spec in enumerate(flow.triggers.polls):
                running = self._tasks.get((name, index))
                if running is not None and running[0] is flow and not running[1].done():
                    continue
                if running is not None:
                    running[1].cancel()
                # the first tick is fixed now, not when the task first runs
                due = _next_tick(self._clock.now(), spec.interval)
                task = self._spawn(self._run(name, spec, due), f"poll {name}#{index}")
                self._tasks[name, index] = (flow, task)

    def stop(self) -> None:
        for _flow, task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _run(self, flow: str, spec: PollSpec, due: float) -> None:
        clock = self._clock
        state = StateAccess(self._store, clock, f"workflow:{flow}")
        while True:
            await clock.sleep_until(due)
            ctx = PollContext(
                workflow_id=flow, state=state, now=clock.now(), interval=spec.interval
            )
            await self._poll(flow, spec, ctx)
            # a poll that outlasted its interval skips the ticks that went by meanwhile
            due = _next_tick(max(due, clock.now()), spec.interval)

    async def _poll(self, flow: str, spec: PollSpec, ctx: PollContext) -> None:
        """One poll: call the function, start a run for each new item."""
        stats = self.stats.setdefault(flow, PollStats())
        try:
            # as step handlers run: coroutine functions on the loop, plain ones on the pool
            items = await call_user(spec.fn, ctx, run_blocking=self._run_blocking)
            if items is None:
                items = []
            if isinstance(items, str | bytes | Mapping) or not isinstance(items, list | tuple):
                raise TypeError(
                    f"a poll function returns a list of items (or None); it returned {items!r}"
                )
        except Exception:
            stats.failures += 1
            self._on_poll(flow, "failed")
            logger.exception(
                "the poll of %s failed; the next one is due in %g s", flow, spec.interval
            )
            return
        stats.polls += 1
        self._on_poll(flow, "ok")
        for item in items:
            outcome = await self._start(flow, spec, item, ctx.now)
            setattr(stats, outcome, getattr(stats, outcome) + 1)
            self._on_item(flow, outcome)

    async def _start(self, flow: str, spec: PollSpec, item: Any, now: float) -> str:
        """Start ``item``'s run unless its key was seen: ``"started"``, ``"seen"`` or
        ``"refused"``."""
        try:
            key = _key_text(spec.key(item) if spec.key is not None else _default_key(item))
        except Exception:
            logger.exception("poll of %s: no key for item %.200r; it is skipped", flow, item)
            return "refused"
        namespace = f"cronflow:polls:{flow}"
        try:
            if await self._store.kv_get(namespace, key, now=now) is not MISSING:
                return "seen"
        except Exception:
            logger.exception("poll of %s: whether item %s was seen is unknown; skipped", flow, key)
            return "refused"
        run_id = derived_run_id("poll", _NAMESPACE, f"{flow}|{key}")
        outcome = "started"
        try:
            await self._trigger(flow, _payload(item), kind="poll", instance_id=run_id, derived=True)
        except InstanceExistsError:
            outcome = "seen"  # started before its mark was written (a crash in between)
        except Exception:
            logger.exception("poll of %s: the run of item %s could not start", flow, key)
            return "refused"
        try:
            await self._store.kv_set(namespace, key, {"run_id": run_id, "at": now}, now=now)
        except Exception:
            # Its run id still guards it: the next poll finds the run and marks it then.
            logger.exception("poll of %s: item %s started, but its mark was not saved", flow, key)
        return outcome


def _next_tick(after: float, interval: float) -> float:
    return (math.floor(after / interval) + 1) * interval


def _default_key(item: Any) -> Any:
    if isinstance(item, Mapping):
        if "id" not in item:
            raise ValueError('an item that is a mapping needs an "id", or give on_poll a key=')
        return item["id"]
    return item


def _key_text(key: Any) -> str:
    """A key as stored: its JSON text, so 7 and "7" stay two keys."""
    if isinstance(key, bool) or not isinstance(key, str | int) or key == "":
        raise TypeError(f"a poll key is a non-empty string or an int, got {key!r}")
    return _encode(key).decode()


def _payload(item: Any) -> Any:
    """The run's payload: the item, or the payload of Cronflow's ``{"id", "payload"}``."""
    if isinstance(item, Mapping) and set(item) == {"id", "payload"}:
        return item["payload"]
    return item

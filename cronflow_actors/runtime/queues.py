"""Concurrency limits: a flow with ``concurrency=N`` runs at most N runs at once; the others wait
in a durable FIFO queue.

A queued run is a row in the store (its id, payload and place), nothing in memory: its id is
taken (a second start of it is refused) and it survives a restart. When a run of the flow ends,
the first queued one starts, and its start deletes its row in the same transaction, so a crash
can neither lose it nor start it twice. The runs counted as active are this flow's unfinished
instances (running or waiting), read from the store at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec

from cronflow_actors.errors import DuplicateInstanceError, InstanceExistsError
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import QueuedRun, encode
from cronflow_actors.store import MISSING, Store

__all__ = ["ConcurrencyQueues"]

logger = logging.getLogger(__name__)

_decode = msgspec.msgpack.Decoder().decode
_LEGACY = "cronflow:queues"
"""Where queues were kept before version 2 of the schema (moved into the queue table)."""

Start = Callable[[str, Any, str | None, bool], Awaitable[str]]
"""``start(workflow, payload, instance_id, dequeued) -> run id``."""


class ConcurrencyQueues:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        start: Start,
        new_id: Callable[[], str],
        spawn: Callable[[Coroutine[Any, Any, None], str], Any],
    ) -> None:
        self._store = store
        self._clock = clock
        self._start = start
        self._new_id = new_id
        self._spawn = spawn
        self._limits: dict[str, int] = {}
        self._active: dict[str, set[str]] = {}
        self._queued: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._started: dict[str, asyncio.Future[None]] = {}
        """Queued runs someone waits for -> resolved when they start."""

    def limit(self, workflow: str, concurrency: int | None) -> None:
        if concurrency is None:
            self._limits.pop(workflow, None)
        else:
            self._limits[workflow] = concurrency

    def limited(self, workflow: str) -> bool:
        return workflow in self._limits

    async def restore(self, workflow: str) -> None:
        """After a start or a registration: count the flow's unfinished runs, and start queued
        ones while there is room."""
        if workflow not in self._limits:
            return
        async with self._lock(workflow):
            await self._adopt_legacy_queue(workflow)
            self._active[workflow] = set(await self._store.unfinished_ids(workflow))
            self._queued[workflow] = await self._store.queue_length(workflow)
        await self._drain(workflow)

    async def trigger(self, workflow: str, payload: Any, instance_id: str | None) -> str:
        """Start a run now if there is room under the limit and nobody waits before it, or put
        it at the end of the queue; returns its id either way."""
        async with self._lock(workflow):
            active = self._active.setdefault(workflow, set())
            if len(active) < self._limits[workflow] and not self._queued.get(workflow):
                run_id = await self._start(workflow, payload, instance_id, False)
                active.add(run_id)
                return run_id
            run_id = instance_id or self._new_id()
            run = QueuedRun(
                queue=workflow,
                instance_id=run_id,
                workflow=workflow,
                payload=encode(payload),
                queued_at=self._clock.now(),
            )
            try:
                await self._store.enqueue(run)
            except DuplicateInstanceError:
                raise InstanceExistsError(run_id) from None
            self._queued[workflow] = self._queued.get(workflow, 0) + 1
            return run_id

    def finished(self, workflow: str, run_id: str) -> None:
        """A run of ``workflow`` ended: its place goes to the first queued run."""
        if workflow not in self._limits:
            return
        self._active.setdefault(workflow, set()).discard(run_id)
        if self._queued.get(workflow):
            self._spawn(self._drain(workflow), f"queue {workflow}")

    async def wait_started(self, run_id: str) -> bool:
        """If ``run_id`` is queued, wait until it starts and return True; else False."""
        if await self._store.queued_run(run_id) is None:
            return False
        started = self._started.get(run_id)
        if started is None:
            started = self._started[run_id] = asyncio.get_running_loop().create_future()
        if await self._store.queued_run(run_id) is None:  # it started meanwhile
            self._started.pop(run_id, None)
            return True
        await asyncio.shield(started)
        return True

    async def _drain(self, workflow: str) -> None:
        async with self._lock(workflow):
            active = self._active.setdefault(workflow, set())
            while self._queued.get(workflow) and len(active) < self._limits[workflow]:
                head = await self._store.queued(workflow, limit=1)
                if not head:
                    self._queued[workflow] = 0
                    return
                run = head[0]
                try:
                    await self._start(workflow, _decode(run.payload), run.instance_id, True)
                except Exception:
                    logger.exception(
                        "queued run %s of %s could not start; it stays queued",
                        run.instance_id,
                        workflow,
                    )
                    return
                active.add(run.instance_id)
                self._queued[workflow] -= 1
                started = self._started.pop(run.instance_id, None)
                if started is not None and not started.done():
                    started.set_result(None)

    async def _adopt_legacy_queue(self, workflow: str) -> None:
        legacy = await self._store.kv_get(_LEGACY, workflow, now=self._clock.now())
        if legacy is MISSING:
            return
        for entry in legacy:
            run = QueuedRun(
                queue=workflow,
                instance_id=entry["id"],
                workflow=workflow,
                payload=encode(entry["payload"]),
                queued_at=entry["queued_at"],
            )
            # a duplicate started before the upgrade; only its removal was lost
            with contextlib.suppress(DuplicateInstanceError):
                await self._store.enqueue(run)
        await self._store.kv_delete(_LEGACY, workflow)

    def _lock(self, workflow: str) -> asyncio.Lock:
        return self._locks.setdefault(workflow, asyncio.Lock())

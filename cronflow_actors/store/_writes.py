"""What a store with a group writer does through it, whatever the database: every write, the
lease, commit statistics, and the end of a close.

``SQLiteStore`` and ``PostgresStore`` open their own writer and connections; each write is one
item submitted to that writer, which batches it with the others into one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol, Self

import msgspec

from cronflow_actors.errors import StoreClosedError
from cronflow_actors.messages import LeaseRecord, Mutation, QueuedRun, encode
from cronflow_actors.store._ops import (
    KvDelete,
    KvIncr,
    KvPurge,
    KvSet,
    KvSetDefault,
    LeaseAcquire,
    LeaseRelease,
    LeaseRenew,
    Prune,
)
from cronflow_actors.store._protocol import (
    CommitObserver,
    StoreStatistics,
    check_amount,
    check_page,
    check_ttl,
)

__all__ = ["GroupWrites"]

logger = logging.getLogger("cronflow_actors.store")
_decode_value = msgspec.msgpack.Decoder().decode


class _Writer(Protocol):
    observer: CommitObserver | None
    stats: StoreStatistics

    async def submit(self, item: Any, operation: str) -> Any: ...


class GroupWrites(ABC):
    """The writes of a store whose ``_writer`` batches them (None before ``open`` and after
    ``close``); ``open`` and ``close`` are the store's own."""

    _writer: Any
    _closing: bool
    _observer: CommitObserver | None
    _closed: asyncio.Future[None] | None = None
    """The close, once one has begun (every later caller waits for it)."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and start the writer."""

    async def close(self) -> None:
        """Write what was submitted, then close. Closes at once (a signal's and a ``with``
        block's) share one: a second close of the connections would queue behind the first
        one's and, with aiosqlite, never run."""
        if self._closed is None:
            self._closed = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closed)

    @abstractmethod
    async def _close(self) -> None:
        """Write what was submitted, then close the connections (run once)."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _close_steps(self, steps: list[Callable[[], Awaitable[Any]]]) -> None:
        """Run each step of a close, bounded; one that fails is logged and the next runs."""
        for step in steps:
            try:
                await asyncio.wait_for(step(), 10)
            except Exception as error:
                logger.warning("closing %r: %s: %s", self, type(error).__name__, error)

    def watch_commits(self, observer: CommitObserver | None) -> None:
        self._observer = observer
        if self._writer is not None:
            self._writer.observer = observer

    def _require_writer(self, operation: str) -> _Writer:
        if self._writer is None or self._closing:
            raise StoreClosedError(repr(self), operation)
        writer: _Writer = self._writer
        return writer

    def commit(self, mutation: Mutation) -> Awaitable[None]:
        # the writer's future itself: no coroutine between the instance and its commit
        return self._require_writer("commit a mutation").submit(mutation, "commit a mutation")

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        now: float,
        ttl: float | None = None,
        keeps: bool = False,
    ) -> None:
        check_ttl(ttl)
        expires_at = None if ttl is None else now + ttl
        operation = f"set key {key!r}"
        await self._require_writer(operation).submit(
            KvSet(namespace, key, encode(value), expires_at, keeps), operation
        )

    async def kv_setdefault(
        self, namespace: str, key: str, value: Any, *, now: float, ttl: float | None = None
    ) -> Any:
        check_ttl(ttl)
        expires_at = None if ttl is None else now + ttl
        operation = f"set key {key!r} if absent"
        op = KvSetDefault(namespace, key, encode(value), now, expires_at)
        stored = await self._require_writer(operation).submit(op, operation)
        return value if stored is None else _decode_value(stored)

    async def kv_incr(
        self,
        namespace: str,
        key: str,
        amount: float = 1,
        *,
        now: float,
        ttl: float | None = None,
    ) -> float:
        check_ttl(ttl)
        check_amount(namespace, key, amount)
        operation = f"incr key {key!r}"
        result: float = await self._require_writer(operation).submit(
            KvIncr(namespace, key, amount, now, ttl), operation
        )
        return result

    async def kv_delete(self, namespace: str, key: str) -> bool:
        operation = f"delete key {key!r}"
        deleted: bool = await self._require_writer(operation).submit(
            KvDelete(namespace, key), operation
        )
        return deleted

    async def kv_purge_expired(self, now: float) -> int:
        operation = "purge expired keys"
        purged: int = await self._require_writer(operation).submit(KvPurge(now), operation)
        return purged

    async def prune(
        self,
        *,
        finished_before: float,
        limit: int = 1000,
        keep: Collection[str] = (),
        keep_keys_of: str = "",
    ) -> int:
        check_page(limit)
        operation = "prune finished runs"
        pruned: int = await self._require_writer(operation).submit(
            Prune(finished_before, limit, tuple(keep), keep_keys_of), operation
        )
        return pruned

    async def enqueue(self, run: QueuedRun) -> int:
        operation = f"queue run {run.instance_id!r}"
        seq: int = await self._require_writer(operation).submit(run, operation)
        return seq

    async def acquire_lease(self, lease: LeaseRecord) -> LeaseRecord:
        operation = "take the database lease"
        await self._require_writer(operation).submit(LeaseAcquire(lease), operation)
        return lease

    async def renew_lease(self, scope: str, owner: str, *, now: float, expires_at: float) -> None:
        operation = "renew the database lease"
        await self._require_writer(operation).submit(
            LeaseRenew(scope, owner, now, expires_at), operation
        )

    async def release_lease(self, scope: str, owner: str) -> None:
        operation = "release the database lease"
        await self._require_writer(operation).submit(LeaseRelease(scope, owner), operation)

    def statistics(self) -> StoreStatistics:
        return self._writer.stats if self._writer is not None else StoreStatistics()

"""MemoryStore: the in-memory twin of SQLiteStore, for tests and for runs that need no durability.

Same contract as the SQLite store (the same contract tests run against both): newest snapshot
wins by revision, journal entries are recorded once per (instance, work item, attempt), a journal
entry or timer needs its instance's snapshot, and a rejected mutation writes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from cronflow_actors.errors import MutationRejectedError, StoreClosedError
from cronflow_actors.messages import JournalEntry, Mutation, SnapshotRecord, TimerRecord, encode
from cronflow_actors.store._batch import coalesce
from cronflow_actors.store._protocol import (
    MISSING,
    StoreStatistics,
    check_amount,
    check_limit,
    check_ttl,
    incremented,
    is_live,
)

__all__ = ["MemoryStore"]

_decode_value = msgspec.msgpack.Decoder().decode


class MemoryStore:
    """Keeps everything in dictionaries; nothing survives the process."""

    def __init__(self) -> None:
        self._open = False
        self._snapshots: dict[str, SnapshotRecord] = {}
        self._journal: dict[str, list[JournalEntry]] = {}
        self._journal_keys: set[tuple[str, str, int]] = set()
        self._timers: dict[str, TimerRecord] = {}
        self._kv: dict[tuple[str, str], tuple[Any, float | None]] = {}
        self._stats = StoreStatistics()

    def __repr__(self) -> str:
        return "MemoryStore()"

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def __aenter__(self) -> MemoryStore:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _require_open(self, operation: str) -> None:
        if not self._open:
            raise StoreClosedError(repr(self), operation)

    # -- writes -----------------------------------------------------------------------------------

    async def commit(self, mutation: Mutation) -> None:
        self._require_open("commit a mutation")
        batch = coalesce([mutation])
        known = self._snapshots.keys() | batch.snapshots.keys()
        for entry in batch.journal:
            if entry.instance_id not in known:
                raise MutationRejectedError(
                    entry.instance_id, f"instance {entry.instance_id!r} has no snapshot"
                )
        for timer in batch.timers_set.values():
            if timer.instance_id not in known:
                raise MutationRejectedError(
                    timer.instance_id, f"instance {timer.instance_id!r} has no snapshot"
                )
        written = 0
        for snapshot in batch.snapshots.values():
            current = self._snapshots.get(snapshot.instance_id)
            if current is None or snapshot.revision >= current.revision:
                self._snapshots[snapshot.instance_id] = snapshot
            written += 1
        for entry in batch.journal:
            key = (entry.instance_id, entry.work_item_id, entry.attempt)
            if key not in self._journal_keys:
                self._journal_keys.add(key)
                self._journal.setdefault(entry.instance_id, []).append(entry)
        for timer_id in batch.timers_cancel:
            self._timers.pop(timer_id, None)
        self._timers.update(batch.timers_set)
        stats = self._stats
        self._stats = StoreStatistics(
            batches=stats.batches + 1,
            mutations=stats.mutations + 1,
            snapshots_written=stats.snapshots_written + written,
            largest_batch=max(stats.largest_batch, 1),
        )
        await asyncio.sleep(0)  # a commit is a suspension point, as it is for the real store

    async def kv_set(
        self, namespace: str, key: str, value: Any, *, now: float, ttl: float | None = None
    ) -> None:
        self._require_open(f"set key {key!r}")
        check_ttl(ttl)
        # Stored as the SQLite store stores it (msgpack), so both accept and return the same
        # values and a caller mutating its object afterwards changes nothing stored.
        stored = _decode_value(encode(value))
        self._kv[(namespace, key)] = (stored, None if ttl is None else now + ttl)

    async def kv_incr(
        self,
        namespace: str,
        key: str,
        amount: float = 1,
        *,
        now: float,
        ttl: float | None = None,
    ) -> float:
        self._require_open(f"incr key {key!r}")
        check_ttl(ttl)
        check_amount(namespace, key, amount)
        value, expires_at = incremented(
            namespace, key, self._kv.get((namespace, key)), amount=amount, now=now, ttl=ttl
        )
        self._kv[(namespace, key)] = (value, expires_at)
        return value

    async def kv_delete(self, namespace: str, key: str) -> bool:
        self._require_open(f"delete key {key!r}")
        return self._kv.pop((namespace, key), None) is not None

    async def kv_purge_expired(self, now: float) -> int:
        self._require_open("purge expired keys")
        expired = [k for k, (_, exp) in self._kv.items() if not is_live(exp, now)]
        for k in expired:
            del self._kv[k]
        return len(expired)

    # -- reads ------------------------------------------------------------------------------------

    async def load_snapshot(self, instance_id: str) -> SnapshotRecord | None:
        self._require_open("load a snapshot")
        return self._snapshots.get(instance_id)

    async def list_snapshots(
        self,
        *,
        terminal: bool | None = None,
        workflow: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SnapshotRecord]:
        self._require_open("list snapshots")
        check_limit(limit, offset)
        found = sorted(
            (
                s
                for s in self._snapshots.values()
                if (terminal is None or s.terminal == terminal)
                and (workflow is None or s.workflow == workflow)
                and (status is None or s.status == status)
            ),
            key=lambda s: (-s.updated_at, s.instance_id),  # as SQLite orders them
        )
        end = None if limit is None else offset + limit
        return found[offset:end]

    async def load_journal(self, instance_id: str) -> list[JournalEntry]:
        self._require_open("load a journal")
        return list(self._journal.get(instance_id, ()))

    async def load_timers(self, *, instance_id: str | None = None) -> list[TimerRecord]:
        self._require_open("load timers")
        timers = [t for t in self._timers.values() if instance_id in (None, t.instance_id)]
        return sorted(timers, key=lambda t: (t.due_at, t.timer_id))

    async def due_timers(self, now: float, *, limit: int = 1000) -> list[TimerRecord]:
        check_limit(limit, 0)
        return [t for t in await self.load_timers() if t.due_at <= now][:limit]

    async def kv_get(self, namespace: str, key: str, *, now: float, default: Any = MISSING) -> Any:
        self._require_open(f"get key {key!r}")
        entry = self._kv.get((namespace, key))
        if entry is None or not is_live(entry[1], now):
            return default
        return entry[0]

    def statistics(self) -> StoreStatistics:
        return self._stats

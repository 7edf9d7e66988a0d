"""MemoryStore: the in-memory twin of SQLiteStore, for tests and for runs that need no durability.

Same contract as the SQLite store (the same contract tests run against both): revision 1 is a
new instance and revision n replaces n - 1 only, journal entries (the audit log) are recorded
once per (instance, work item, attempt) and read back in order, a journal entry, timer or wait
needs its instance's snapshot, and a rejected mutation writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

import msgspec

from cronflow_actors.errors import (
    DuplicateInstanceError,
    LeaseHeldError,
    LeaseLostError,
    MutationRejectedError,
    RevisionConflictError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.messages import (
    JournalEntry,
    LeaseRecord,
    Mutation,
    QueuedRun,
    SnapshotRecord,
    TimerRecord,
    WaitRecord,
)
from cronflow_actors.store._batch import coalesce
from cronflow_actors.store._memory_kv import MemoryKv
from cronflow_actors.store._memory_queue import MemoryQueue
from cronflow_actors.store._memory_spans import MemorySpans
from cronflow_actors.store._protocol import (
    CommitObserver,
    Cursor,
    JournalRecord,
    StoreStatistics,
    check_limit,
    check_page,
    journal_record,
)

__all__ = ["MemoryStore", "prunable"]

logger = logging.getLogger(__name__)

_decode_value = msgspec.msgpack.Decoder().decode


def prunable(snapshot: SnapshotRecord, finished_before: float) -> bool:
    """Whether a store's prune deletes the run ``snapshot`` is of, but for the runs it is told to
    keep: ended (not an ended run still owing its hooks) before ``finished_before``. The SQL
    stores' ``PRUNE`` statements say it in SQL; ``runtime/pruning.py`` asks it of one run."""
    return (
        snapshot.terminal
        and not snapshot.runnable
        and snapshot.status in ("completed", "failed", "canceled")
        and snapshot.created_at < finished_before
        and snapshot.updated_at < finished_before
    )


class MemoryStore(MemorySpans, MemoryQueue, MemoryKv):
    """Keeps everything in dictionaries; nothing survives the process."""

    def __init__(self) -> None:
        MemorySpans.__init__(self)
        MemoryQueue.__init__(self)
        MemoryKv.__init__(self)
        self._open = False
        self._snapshots: dict[str, SnapshotRecord] = {}
        self._journal: dict[str, list[tuple[int, JournalEntry, int | None]]] = {}
        """Per instance: (seq, entry, revision of the snapshot written with it)."""
        self._journal_keys: set[tuple[str, str, int]] = set()
        self._journal_seq = 0
        self._timers: dict[str, TimerRecord] = {}
        self._waits: dict[str, WaitRecord] = {}
        self._leases: dict[str, LeaseRecord] = {}
        self._owner: str | None = None
        self._failure: BaseException | None = None
        self._stats = StoreStatistics()
        self._observer: CommitObserver | None = None

    def exclusive(
        self, name: str, waiting: Callable[[], None]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """None needed: a memory store is one process's."""
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        return "MemoryStore()"

    def watch_commits(self, observer: CommitObserver | None) -> None:
        self._observer = observer

    def _committed(self, started: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer(time.perf_counter() - started, 1)
        except Exception:
            logger.exception("the commit observer of %r failed", self)

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

    def _require_writable(self, operation: str) -> None:
        self._require_open(operation)
        if self._failure is not None:
            raise StoreFailedError(repr(self), str(self._failure))

    # -- writes -----------------------------------------------------------------------------------

    async def commit(self, mutation: Mutation) -> None:
        self._require_writable("commit a mutation")
        started = time.perf_counter()
        batch = coalesce([mutation])
        for instance_id, snapshot in batch.snapshots.items():
            self._check_snapshot(snapshot, batch.bases[instance_id], batch.dequeued)
        known = self._snapshots.keys() | batch.snapshots.keys()
        referenced = [e.instance_id for e, _ in batch.journal]
        referenced += [t.instance_id for t in batch.timers_set.values()]
        referenced += [w.instance_id for w in batch.waits_set.values()]
        for instance_id in referenced:
            if instance_id not in known:
                raise MutationRejectedError(
                    instance_id, f"instance {instance_id!r} has no snapshot"
                )
        self._check_spans(batch, known)
        for instance_id in batch.dequeued:
            self._queue.pop(instance_id, None)
        for snapshot in batch.snapshots.values():
            self._snapshots[snapshot.instance_id] = snapshot
        for entry, revision in batch.journal:
            key = (entry.instance_id, entry.work_item_id, entry.attempt)
            if key not in self._journal_keys:
                self._journal_keys.add(key)
                self._journal_seq += 1
                entries = self._journal.setdefault(entry.instance_id, [])
                entries.append((self._journal_seq, entry, revision))
        self._keep_spans(batch)
        for timer_id in batch.timers_cancel:
            self._timers.pop(timer_id, None)
        self._timers.update(batch.timers_set)
        self._waits.update(batch.waits_set)
        for wait_id in batch.waits_end:
            wait = self._waits.get(wait_id)
            if wait is not None:
                self._waits[wait_id] = msgspec.structs.replace(wait, ended=True)
        stats = self._stats
        self._stats = StoreStatistics(
            batches=stats.batches + 1,
            mutations=stats.mutations + 1,
            snapshots_written=stats.snapshots_written + len(batch.snapshots),
            largest_batch=max(stats.largest_batch, 1),
        )
        self._committed(started)
        await asyncio.sleep(0)  # a commit is a suspension point, as it is for the real store

    def _check_snapshot(self, snapshot: SnapshotRecord, base: int, dequeued: list[str]) -> None:
        """The rules the SQLite store's statements enforce: lease, insert, compare-and-set."""
        instance_id = snapshot.instance_id
        if self._owner is not None:
            holder = self._leases.get("runtime")
            if holder is None or holder.owner != self._owner:
                lost = LeaseLostError(repr(self), self._owner, holder.owner if holder else None)
                self._failure = lost
                raise lost
        current = self._snapshots.get(instance_id)
        if base == 0:
            queued = instance_id in self._queue and instance_id not in dequeued
            if current is not None or queued:
                raise DuplicateInstanceError(instance_id)
        elif current is None or current.revision != base:
            raise RevisionConflictError(
                instance_id, base, current.revision if current is not None else None
            )

    def write_waiting(self) -> float:
        return 0.0

    async def check(self) -> None:
        self._require_open("check the store")
        if self._failure is not None:
            raise StoreFailedError(repr(self), str(self._failure))

    async def prune(
        self,
        *,
        finished_before: float,
        limit: int = 1000,
        keep: Collection[str] = (),
        keep_keys_of: str = "",
    ) -> int:
        self._require_writable("prune finished runs")
        check_page(limit)
        keyed = {key for namespace, key in self._kv if namespace == keep_keys_of}
        done = [
            s.instance_id
            for s in self._snapshots.values()
            if prunable(s, finished_before)
            and s.instance_id not in keep
            and s.instance_id not in keyed
        ][:limit]
        for instance_id in done:
            del self._snapshots[instance_id]
            self._journal.pop(instance_id, None)
            self._spans.pop(instance_id, None)
            self._journal_keys = {k for k in self._journal_keys if k[0] != instance_id}
            self._timers = {t: r for t, r in self._timers.items() if r.instance_id != instance_id}
            self._waits = {w: r for w, r in self._waits.items() if r.instance_id != instance_id}
        return len(done)

    async def enqueue(self, run: QueuedRun) -> int:
        self._require_writable(f"queue run {run.instance_id!r}")
        if run.instance_id in self._snapshots or run.instance_id in self._queue:
            raise DuplicateInstanceError(run.instance_id)
        self._queue_seq += 1
        self._queue[run.instance_id] = msgspec.structs.replace(run, seq=self._queue_seq)
        await asyncio.sleep(0)
        return self._queue_seq

    async def acquire_lease(self, lease: LeaseRecord) -> LeaseRecord:
        self._require_writable("take the database lease")
        holder = self._leases.get(lease.scope)
        if holder is not None and holder.owner != lease.owner:
            remaining = holder.expires_at - lease.acquired_at
            if remaining > 0:
                raise LeaseHeldError(repr(self), holder.owner, holder.host, holder.pid, remaining)
        self._leases[lease.scope] = lease
        if lease.scope == "runtime":
            self._owner = lease.owner
        return lease

    async def renew_lease(self, scope: str, owner: str, *, now: float, expires_at: float) -> None:
        self._require_writable("renew the database lease")
        holder = self._leases.get(scope)
        if holder is None or holder.owner != owner:
            lost = LeaseLostError(repr(self), owner, holder.owner if holder else None)
            self._failure = lost
            raise lost
        self._leases[scope] = msgspec.structs.replace(holder, renewed_at=now, expires_at=expires_at)

    async def release_lease(self, scope: str, owner: str) -> None:
        self._require_writable("release the database lease")
        holder = self._leases.get(scope)
        if holder is not None and holder.owner == owner:
            del self._leases[scope]
        if scope == "runtime" and self._owner == owner:
            self._owner = None

    async def current_lease(self, scope: str = "runtime") -> LeaseRecord | None:
        self._require_open("read the database lease")
        return self._leases.get(scope)

    # -- reads ------------------------------------------------------------------------------------

    async def load_snapshot(self, instance_id: str) -> SnapshotRecord | None:
        self._require_open("load a snapshot")
        return self._snapshots.get(instance_id)

    async def instance_exists(self, instance_id: str) -> bool:
        self._require_open("look an instance up")
        return instance_id in self._snapshots or instance_id in self._queue

    async def existing_among(self, instance_ids: Sequence[str]) -> set[str]:
        self._require_open("look instances up")
        return {i for i in instance_ids if i in self._snapshots or i in self._queue}

    async def list_snapshots(
        self,
        *,
        terminal: bool | None = None,
        workflow: str | None = None,
        status: str | None = None,
        runnable: bool | None = None,
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
                and (runnable is None or s.runnable == runnable)
            ),
            key=lambda s: (-s.updated_at, s.instance_id),  # as SQLite orders them
        )
        end = None if limit is None else offset + limit
        return found[offset:end]

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: Cursor | None = None,
        max_bytes: int | None = None,
    ) -> list[SnapshotRecord]:
        self._require_open("list runs")
        check_page(limit)
        found = sorted(
            (
                s
                for s in self._snapshots.values()
                if (workflow is None or s.workflow == workflow)
                and (status is None or s.status == status)
                and (before is None or (s.created_at, s.instance_id) < before)
            ),
            key=lambda s: (s.created_at, s.instance_id),
            reverse=True,
        )[:limit]
        return found if max_bytes is None else _bounded(found, max_bytes, lambda s: s.body)

    async def unfinished_ids(self, workflow: str) -> list[str]:
        self._require_open("list unfinished instances")
        return [
            s.instance_id
            for s in self._snapshots.values()
            if s.workflow == workflow and s.status in ("running", "waiting", "blocked")
        ]

    async def run_starts(self, workflow: str, *, since: float, limit: int) -> list[float]:
        self._require_open("read recent run starts")
        check_page(limit)
        found = sorted(
            (
                (s.created_at, s.instance_id)
                for s in self._snapshots.values()
                if s.workflow == workflow and s.created_at > since
            ),
            reverse=True,
        )
        return [created_at for created_at, _ in found[:limit]]

    async def load_journal(self, instance_id: str) -> list[JournalEntry]:
        self._require_open("load a journal")
        return [entry for _, entry, _ in self._journal.get(instance_id, ())]

    async def read_journal(
        self, instance_id: str, *, after: int = 0, limit: int = 100
    ) -> list[JournalRecord]:
        self._require_open("read a journal")
        check_page(limit)
        entries = self._journal.get(instance_id, ())
        page = [entry for entry in entries if entry[0] > after][:limit]
        return [journal_record(*entry) for entry in page]

    async def load_timers(
        self,
        *,
        instance_id: str | None = None,
        after: Cursor | None = None,
        limit: int | None = None,
    ) -> list[TimerRecord]:
        self._require_open("load timers")
        if limit is not None:
            check_page(limit)
        timers = sorted(
            (
                t
                for t in self._timers.values()
                if instance_id in (None, t.instance_id)
                and (after is None or (t.due_at, t.timer_id) > after)
            ),
            key=lambda t: (t.due_at, t.timer_id),
        )
        return timers if limit is None else timers[:limit]

    async def due_timers(self, now: float, *, limit: int = 1000) -> list[TimerRecord]:
        check_limit(limit, 0)
        return [t for t in await self.load_timers() if t.due_at <= now][:limit]

    async def find_wait(self, kind: str, key: str) -> WaitRecord | None:
        self._require_open("find a wait")
        found = [w for w in self._waits.values() if w.kind == kind and w.key == key]
        found.sort(key=lambda w: (w.ended, -w.created_at))
        return found[0] if found else None

    async def open_waits(
        self,
        kind: str,
        *,
        key: str | None = None,
        instance_id: str | None = None,
        after: Cursor | None = None,
        limit: int = 100,
        max_bytes: int | None = None,
    ) -> list[WaitRecord]:
        self._require_open("list waits")
        check_page(limit)
        found = sorted(
            (
                w
                for w in self._waits.values()
                if w.kind == kind
                and not w.ended
                and (key is None or w.key == key)
                and (instance_id is None or w.instance_id == instance_id)
                and (after is None or (w.created_at, w.wait_id) > after)
            ),
            key=lambda w: (w.created_at, w.wait_id),
        )[:limit]
        return found if max_bytes is None else _bounded(found, max_bytes, lambda w: w.data)

    async def count_open_waits(self, kind: str) -> int:
        self._require_open("count waits")
        return sum(1 for w in self._waits.values() if w.kind == kind and not w.ended)

    async def count_in_flight(self) -> dict[tuple[str, str], int]:
        self._require_open("count runs in flight")
        paused = {w.instance_id for w in self._waits.values() if w.kind == "pause" and not w.ended}
        counts: dict[tuple[str, str], int] = {}
        for snapshot in self._snapshots.values():
            status = snapshot.status
            if status not in ("running", "waiting"):
                continue
            if status == "waiting" and snapshot.instance_id in paused:
                status = "paused"
            key = (snapshot.workflow, status)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def statistics(self) -> StoreStatistics:
        return self._stats


T = TypeVar("T")


def _bounded(found: list[T], max_bytes: int, data: Callable[[T], bytes]) -> list[T]:
    """The first of ``found`` up to the one whose ``data`` brings their bytes to ``max_bytes``
    (it included: a page is never empty), as the SQLite store's pages end."""
    page: list[T] = []
    size = 0
    for item in found:
        if page and size >= max_bytes:
            break
        page.append(item)
        size += len(data(item))
    return page

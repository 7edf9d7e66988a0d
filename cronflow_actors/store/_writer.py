"""The SQLite store's one writer: group commit over one aiosqlite connection.

Callers queue an item (a mutation, a key-value operation, a queued run) and wait on a future;
the writer takes everything queued, writes it in one ``BEGIN IMMEDIATE`` transaction (only the
newest snapshot of each instance, checked against the revision it was based on), commits, and
wakes every caller of the batch. The batch's statements run on the connection's thread in one
hand-off (``_batch_sql``): it is posted as soon as the writer is free, takes what is queued
when the thread starts it, and the thread answers the callers' loop itself (no writer task
wakes in between). While one batch commits the next one fills, so throughput grows
with the number of concurrent writers while each caller still returns only once its write is
durable. If a batch fails (one mutation breaks a constraint, say), it is rolled back and its
items are written one by one, so only the offending caller gets the error.

Lease operations run alone, each in its own transaction (the operations are in ``_ops.py``).
Once the lease is held, snapshot writes are fenced by it (see ``_sql``); a lost lease fails the
writer: it accepts nothing more.

A failure that is not one item's fault (the disk is full or read-only, the database file was
removed or replaced, the file is damaged) fails the writer as a whole: every waiting caller and
every later one gets ``StoreFailedError``, and nothing more is written. Before each commit the
writer checks that the file it writes is still the database's file.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import aiosqlite

from cronflow_actors.errors import (
    DuplicateInstanceError,
    LeaseHeldError,
    LeaseLostError,
    MutationRejectedError,
    RevisionConflictError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.messages import LeaseRecord, Mutation, QueuedRun
from cronflow_actors.store import _sql as sql
from cronflow_actors.store._batch import BrokenChainError, Coalesced, coalesce
from cronflow_actors.store._batch_sql import (
    _Refused,
    post_to_connection,
    run_on_connection,
    write_batch,
)
from cronflow_actors.store._group import Failure, GroupAnswers, take_batch
from cronflow_actors.store._ops import (
    LEASE_OPS,
    BatchOp,
    Item,
    LeaseAcquire,
    LeaseOp,
    LeaseRelease,
    LeaseRenew,
    is_fatal,
)
from cronflow_actors.store._protocol import CommitObserver, StoreStatistics

__all__ = ["GroupWriter"]

logger = logging.getLogger(__name__)

_SQLITE_BUSY = 5
"""SQLite's primary result code for a lock another connection holds past the busy timeout."""


class GroupWriter(GroupAnswers):
    """Owns the writer connection and the queue in front of it."""

    _is_fatal = staticmethod(is_fatal)

    def __init__(
        self,
        connection: aiosqlite.Connection,
        name: str,
        max_batch: int,
        *,
        check_file: Callable[[], None] | None = None,
    ) -> None:
        self._connection = connection
        self._check_file = check_file
        self._name = name
        self._max_batch = max_batch
        self._queue: list[Item] = []
        self._lock = threading.Lock()
        """Guards taking from the queue: a batch is taken on the connection's thread, the whole
        queue (a failure) in the loop. Adding (``submit``) takes no lock: a ``list.append`` is
        one atomic step, and a batch taken meanwhile is the items before it all the same
        (``take_batch`` takes from the front); nor does ``_next``, run only while no batch is
        being taken (it starts the next one)."""
        self._busy = False
        """Something is being written (a batch on the connection's thread, or a slow path)."""
        self._slow: asyncio.Task[None] | None = None
        """The slow path in progress (a lease operation, a refused batch, a vacuum): held
        here so that the task is not collected while it runs."""
        self._idle: asyncio.Future[None] | None = None
        """What ``close`` waits on while the writer is busy."""
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.owner: str | None = None
        """The lease owner whose lease fences snapshot writes (None: no lease held)."""
        self.failure: BaseException | None = None
        self.stats = StoreStatistics()
        self.observer: CommitObserver | None = None
        """Told of each batch once its callers are answered (the store's ``watch_commits``)."""

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        """Write everything already queued, then stop."""
        self._closing = True
        while self._busy:
            if self._idle is None or self._idle.done():  # one future for every closer
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)

    def submit(self, payload: BatchOp | LeaseOp, operation: str) -> asyncio.Future[Any]:
        if self._closing:
            raise StoreClosedError(self._name, operation)
        failure = self.failure
        if failure is not None:  # (its reason once, not "failed: failed: ...")
            reason = failure.reason if isinstance(failure, StoreFailedError) else str(failure)
            raise StoreFailedError(self._name, reason)
        assert self._loop is not None, "the writer is not started"
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.append((payload, future))  # (no lock: see ``_lock``)
        if not self._busy:
            self._next()
        return future

    # -- dispatch: what is queued goes to the connection's thread as soon as it is free ----------

    def _next(self) -> None:
        """Start writing what is queued, if anything (the writer is not busy: nothing takes
        from the queue on the connection's thread now, so no lock, ``_lock``)."""
        queue = self._queue
        head = queue[0] if queue else None
        # (asked once; a mutation's type first: an isinstance of message classes goes through
        # their metaclass)
        lease = (
            head is not None and type(head[0]) is not Mutation and isinstance(head[0], LEASE_OPS)
        )
        if lease:
            del queue[0]
        if head is None:
            self._busy = False
            if self._idle is not None and not self._idle.done():
                self._idle.set_result(None)
            return
        self._busy = True
        if lease:
            self._run_slow(self._lease_op(head))
        else:
            self._post()

    def _take(self) -> list[Item]:
        """The next batch: what is queued before the first lease operation (at most
        ``max_batch`` items). Taken on the connection's thread when it starts the batch, so
        that everything queued until then joins it."""
        with self._lock:
            return take_batch(self._queue, self._max_batch)

    def _run_slow(self, work: Coroutine[Any, Any, None]) -> None:
        """``work`` (what takes several round trips: a lease operation, a batch refused or
        failed, a vacuum) in a task; the queue goes on when it is done."""

        async def then_next() -> None:
            cancelled = False
            try:
                await work
            except asyncio.CancelledError:  # the loop is shutting down: start nothing more
                cancelled = True
                raise
            finally:
                self._slow = None
                if not cancelled:
                    self._next()

        self._slow = asyncio.get_running_loop().create_task(
            then_next(), name=f"cronflow-store-writer:{self._name}"
        )

    def _post(self) -> None:
        """Hand the next batch to the connection's thread; ``_written`` hears, in the loop, how
        it went. One hand-off each way: the thread answers the callers' loop directly, without
        a writer task in between (each task wake-up is one more turn of the loop on the latency
        of every commit)."""
        loop, check_file = self._loop, self._check_file
        assert loop is not None

        def job(db: sqlite3.Connection) -> None:
            started = time.perf_counter()
            items = self._take()
            if not items:  # the writer failed meanwhile and answered them
                loop.call_soon_threadsafe(self._next)
                return
            batch: Coalesced | None = None
            outcome: Any
            try:
                batch = coalesce(p for p, _ in items if isinstance(p, Mutation))
                outcome = write_batch(db, items, batch, self.owner, check_file)
            except BaseException as error:  # reported to the loop, never raised on the thread
                outcome = Failure(error)
            loop.call_soon_threadsafe(self._written, items, batch, outcome, started)

        try:
            post_to_connection(self._connection, job)
        except sqlite3.Error as error:  # the connection is closed: the writer fails (fatal)
            items = self._take()
            loop.call_soon(self._written, items, None, Failure(error), time.perf_counter())

    def _written(
        self, items: list[Item], batch: Coalesced | None, outcome: Any, started: float
    ) -> None:
        """The batch ``items`` is back from the thread (``started`` then): ``outcome`` is
        ``write_batch``'s result, None if the lease was lost, or a ``Failure``; ``batch`` is
        None if the batch never reached ``write_batch``. Written: the callers are answered
        and the queue goes on; otherwise the slow path finds out why."""
        if batch is None or outcome is None or isinstance(outcome, Failure):
            self._run_slow(self._recover(items, outcome, started))
            return
        results, vacuum_due = outcome
        self._answer(items, results, len(batch.snapshots), batch.snapshots_seen, started)
        if vacuum_due:
            self._run_slow(self._vacuum())
        else:
            self._next()

    # -- batches --------------------------------------------------------------------------------

    def _take_queue(self) -> list[Item]:
        with self._lock:  # the connection's thread may be taking a batch
            return super()._take_queue()

    async def _recover(self, items: list[Item], outcome: Failure | None, started: float) -> None:
        """The batch ``items`` was not written: the lease is lost (``outcome`` None), the
        writer cannot go on, or an item was refused (then they are written one by one, so that
        only the caller whose item is at fault gets the error)."""
        try:
            if outcome is None:
                await self._lost_lease()
            else:
                raise outcome.error
        except BaseException as error:
            if not isinstance(error, Exception) or is_fatal(error):
                self._fail_batch(items, error)
                if not isinstance(error, Exception):
                    raise
                return
        results, written, seen = await self._one_by_one(items)
        self._answer(items, results, written, seen, started)

    async def _lost_lease(self) -> NoReturn:
        """``LeaseLostError``: a batch found that ``owner`` no longer holds the lease (nothing
        was written); the writer accepts nothing more."""
        owner = self.owner
        assert owner is not None
        holder = await self._holder("runtime")
        lost = LeaseLostError(self._name, owner, holder.owner if holder else None)
        self.failure = lost
        raise lost

    async def _transaction(self, items: list[Item]) -> tuple[list[Any], int, int]:
        """Write ``items`` as one batch, in one round trip (the one-by-one path)."""
        batch = coalesce(payload for payload, _ in items if isinstance(payload, Mutation))
        written = await run_on_connection(
            self._connection, write_batch, items, batch, self.owner, self._check_file
        )
        if written is None:
            await self._lost_lease()
        results, vacuum_due = written
        if vacuum_due:
            await self._vacuum()
        return results, len(batch.snapshots), batch.snapshots_seen

    async def _vacuum(self) -> None:
        """Pruning freed pages: give them back to the file system (a file made before
        incremental vacuum reuses them instead). A script, outside the transaction: a plain
        execute steps the pragma once, freeing one page."""
        try:
            await self._connection.executescript(sql.VACUUM_SOME)
        except sqlite3.Error as error:  # the batch is committed; the next write will tell
            logger.warning("%s: giving pruned pages back failed: %s", self._name, error)

    async def _explain(self, payload: Any, error: Exception) -> BaseException:
        """Turn an error on one item into one that says which instance and why."""
        if isinstance(error, DuplicateInstanceError | LeaseLostError):
            return error
        if isinstance(payload, QueuedRun) and isinstance(error, sqlite3.IntegrityError):
            return DuplicateInstanceError(payload.instance_id)
        if not isinstance(payload, Mutation):
            return error
        snapshot = payload.snapshot
        if isinstance(error, _Refused | BrokenChainError) or (
            snapshot is not None
            and snapshot.revision == 1
            and isinstance(error, sqlite3.IntegrityError)
            and "instances" in str(error)
        ):
            assert snapshot is not None
            found = await self._stored_revision(snapshot.instance_id)
            if snapshot.revision == 1:
                return DuplicateInstanceError(snapshot.instance_id)
            return RevisionConflictError(snapshot.instance_id, snapshot.revision - 1, found)
        if not isinstance(error, sqlite3.IntegrityError):
            return error
        referenced = {j.instance_id for j in payload.journal}
        referenced |= {t.instance_id for t in payload.timers_set}
        referenced |= {w.instance_id for w in payload.waits_set}
        if payload.spans is not None:
            referenced.add(payload.spans.trace_id)
        if snapshot is not None:
            referenced.discard(snapshot.instance_id)
        missing = []
        for instance_id in sorted(referenced):
            if await self._stored_revision(instance_id) is None:
                missing.append(instance_id)
        if missing:
            return MutationRejectedError(missing[0], f"instance {missing[0]!r} has no snapshot")
        named = snapshot.instance_id if snapshot else "<none>"
        return MutationRejectedError(named, str(error))

    async def _stored_revision(self, instance_id: str) -> int | None:
        rows = await self._connection.execute_fetchall(
            "SELECT revision FROM instances WHERE instance_id = ?", (instance_id,)
        )
        row = next(iter(rows), None)
        return None if row is None else int(row[0])

    async def _holder(self, scope: str) -> LeaseRecord | None:
        rows = await self._connection.execute_fetchall(sql.SELECT_LEASE, (scope,))
        row = next(iter(rows), None)
        return None if row is None else sql.lease_of(row)

    # -- the lease ------------------------------------------------------------------------------

    async def _lease_op(self, item: Item) -> None:
        op, future = item
        try:
            result = await self._lease(op)
        except Exception as error:
            if is_fatal(error) and not isinstance(error, LeaseLostError):
                error = self.fail(error)
            if not future.done():
                future.set_exception(error)
        else:
            if not future.done():
                future.set_result(result)

    async def _lease(self, op: Any) -> Any:
        connection = self._connection
        match op:
            case LeaseAcquire(lease):
                try:
                    await connection.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as busy:
                    # the write lock is taken past the busy timeout: by the holder paused inside
                    # a write, most likely (or another program): held, not a failed store
                    if getattr(busy, "sqlite_errorcode", 0) & 0xFF != _SQLITE_BUSY:
                        raise
                    holder = await self._holder(lease.scope)
                    if holder is None or holder.owner == lease.owner:
                        raise
                    left = max(holder.expires_at - lease.acquired_at, 0.0)
                    raise LeaseHeldError(
                        self._name, holder.owner, holder.host, holder.pid, left
                    ) from busy
                try:
                    holder = await self._holder(lease.scope)
                    now = lease.acquired_at
                    if (
                        holder is not None
                        and holder.owner != lease.owner
                        and holder.expires_at > now
                    ):
                        raise LeaseHeldError(
                            self._name,
                            holder.owner,
                            holder.host,
                            holder.pid,
                            holder.expires_at - now,
                        )
                    await connection.execute(sql.UPSERT_LEASE, sql.lease_row(lease))
                    await connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        await connection.execute("ROLLBACK")
                    raise
                if lease.scope == "runtime":
                    await connection.execute(sql.FENCE_TABLE)
                    self.owner = lease.owner
                return holder
            case LeaseRenew(scope, owner, now, expires_at):
                cursor = await connection.execute(sql.RENEW_LEASE, (now, expires_at, scope, owner))
                if cursor.rowcount != 1:
                    holder = await self._holder(scope)
                    lost = LeaseLostError(self._name, owner, holder.owner if holder else None)
                    self.failure = lost
                    raise lost
                return None
            case LeaseRelease(scope, owner):
                await connection.execute(sql.RELEASE_LEASE, (scope, owner))
                if scope == "runtime" and self.owner == owner:
                    self.owner = None
                return None
        raise AssertionError(f"unknown lease operation {op!r}")

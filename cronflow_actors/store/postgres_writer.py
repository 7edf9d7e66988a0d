"""The PostgreSQL store's one writer per process: group commit over one asyncpg connection.

As in the SQLite store (``_writer.py``): callers queue an item and wait on a future; the writer
takes everything queued and writes it in one transaction (only the newest snapshot of each
instance, checked against the revision it was based on), commits, and wakes every caller of the
batch; a refused batch is written again item by item so that only the caller at fault hears of
it. Each kind of row is written by one statement over arrays (``postgres_sql``).

Snapshot writes are fenced twice: by the ``runtime`` lease when this process took it (one
runtime per database), and, on a database shared by several processes, by each instance's
owner (``InstanceMovedError`` for a row another process owns now). A transaction that lost a
deadlock or a serialization race against another process is tried again.

A lost connection is connected again (``postgres_reconnect.py``). A failure that is not one
item's fault (the connection not back in time, the disk full) fails the writer: every waiting
and later caller gets ``StoreFailedError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import msgspec

from cronflow_actors.errors import (
    DuplicateInstanceError,
    LeaseHeldError,
    LeaseLostError,
    MutationRejectedError,
    RevisionConflictError,
    StateValueError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.messages import LeaseRecord, Mutation, QueuedRun, encode
from cronflow_actors.store import _sql
from cronflow_actors.store import postgres_sql as sql
from cronflow_actors.store._batch import BrokenChainError, Coalesced, coalesce
from cronflow_actors.store._group import take_batch
from cronflow_actors.store._ops import (
    LEASE_OPS,
    BatchOp,
    Item,
    KvDelete,
    KvIncr,
    KvPurge,
    KvSet,
    KvSetDefault,
    LeaseAcquire,
    LeaseOp,
    LeaseRelease,
    LeaseRenew,
    Prune,
)
from cronflow_actors.store._protocol import CommitObserver, StoreStatistics, incremented
from cronflow_actors.store._spans import pack
from cronflow_actors.store.postgres_reconnect import Connect, Reconnecting, is_fatal

__all__ = ["PostgresWriter"]

logger = logging.getLogger(__name__)

_decode_value = msgspec.msgpack.Decoder().decode
_RETRIES = 5
SLOW = 5.0
"""Seconds a write waits for the database before the log says so (and /readyz: a table an
operator locked, a hung backend held every start with nothing said, retest h45 N7)."""


class _Refused(Exception):
    """A snapshot statement wrote fewer rows than it was given."""


def _retryable(error: BaseException) -> bool:
    """A deadlock or serialization failure against another process: the batch may go again."""
    return isinstance(error, asyncpg.TransactionRollbackError)


class PostgresWriter(Reconnecting):
    """Owns the writer connection and the queue in front of it."""

    _is_fatal = staticmethod(is_fatal)

    def __init__(
        self,
        connection: asyncpg.Connection,
        name: str,
        max_batch: int,
        *,
        connect: Connect | None = None,
        reconnect_for: float = 30.0,
    ) -> None:
        self._connection = connection
        self._connect = connect
        self._reconnect_for = reconnect_for
        self._in_flight: tuple[int, list[Any], int, int] | None = None
        self._name = name
        self._max_batch = max_batch
        self._queue: list[Item] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.owner: str | None = None
        """The holder of the ``runtime`` lease (one runtime per database), once taken."""
        self.node: str | None = None
        """This process, on a database shared by several: the owner its snapshots write."""
        self.failure: BaseException | None = None
        self.since: float | None = None
        """When the write under way began (``time.monotonic``), None between writes."""
        self.stats = StoreStatistics()
        self.observer: CommitObserver | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"cronflow-store-writer:{self._name}"
        )

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def submit(self, payload: BatchOp | LeaseOp, operation: str) -> asyncio.Future[Any]:
        if self._closing:
            raise StoreClosedError(self._name, operation)
        if self.failure is not None:
            raise StoreFailedError(self._name, str(self.failure))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((payload, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            items = [self._queue.pop(0)]
            self.since = time.monotonic()
            late = asyncio.get_running_loop().call_later(SLOW, self._slow)
            try:
                if isinstance(items[0][0], LEASE_OPS):
                    await self._lease_op(items[0])
                    continue
                items += take_batch(self._queue, self._max_batch - 1)
                await self._write(items)
            except Exception as error:  # (an item's explanation that raised, the connection
                # lost while it was asked: the task ended, every caller waiting for good and
                # /readyz saying the store was fine: review h40 F5); the writer fails
                self._fail_batch(items, error)
            finally:
                late.cancel()
                if time.monotonic() - self.since >= SLOW:  # (answered, or failed: review h45 F10)
                    waited = time.monotonic() - self.since
                    logger.warning(
                        "a write that waited for the database ended after %.1f s", waited
                    )
                self.since = None

    def _slow(self) -> None:
        logger.warning(
            "a write has waited %g s for the database %s (a table locked by another session, "
            "a hung backend?): every start and step waits (/readyz says so once it has waited "
            "the lease's duration)",
            SLOW,
            self._name,
        )

    # -- batches --------------------------------------------------------------------------------

    async def _write(self, items: list[Item]) -> None:
        started = time.perf_counter()
        try:
            results, written, seen = await self._transaction(items)
        except Exception as error:
            if self._lost(error):
                outcome = await self._after_lost(items, error)
                if outcome is None:
                    return
                results, written, seen = outcome
            elif is_fatal(error):
                self._fail_batch(items, error)
                return
            else:
                results, written, seen = await self._one_by_one(items)
        self._answer(items, results, written, seen, started)

    async def _transaction(self, items: list[Item]) -> tuple[list[Any], int, int]:
        batch = coalesce(payload for payload, _ in items if isinstance(payload, Mutation))
        for attempt in range(_RETRIES):
            try:
                self._in_flight = None
                async with self._connection.transaction():
                    if self.owner is not None:
                        await self._check_lease(self.owner)
                    xid = await self._write_batch(batch)
                    if xid is None:  # no snapshot told it: asked (a batch of state calls)
                        xid = await self._connection.fetchval("SELECT txid_current()")
                    results: list[Any] = []
                    for payload, _future in items:
                        if isinstance(payload, Mutation):
                            results.append(None)
                        else:
                            results.append(await self._apply(payload))
                    done = results, len(batch.snapshots), batch.snapshots_seen
                    self._in_flight = (xid, *done)  # its commit is sent as the block ends
                self._in_flight = None
                return done
            except Exception as error:
                if not _retryable(error) or attempt == _RETRIES - 1:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _write_batch(self, batch: Coalesced) -> int | None:
        """Write ``batch``'s rows; the transaction's id, as its snapshots' rows said it (None
        for a batch without one)."""
        connection = self._connection
        xid = None
        node = self.node
        if batch.dequeued:
            await connection.execute(sql.DEQUEUE, batch.dequeued)
        inserts = []
        updates = []
        for instance_id, snapshot in batch.snapshots.items():
            base = batch.bases[instance_id]
            if base == 0:
                inserts.append(snapshot)
            else:
                updates.append((snapshot, base))
        if inserts:
            rows = await connection.fetch(sql.INSERT_SNAPSHOTS, *sql.insert_args(inserts, node))
            if len(rows) != len(inserts):
                raise _Refused
            xid = rows[0][1]
        if updates:
            rows = await connection.fetch(sql.UPDATE_SNAPSHOTS, *sql.update_args(updates, node))
            if len(rows) != len(updates):
                raise _Refused
            xid = rows[0][1]
        if batch.journal:
            await connection.execute(sql.INSERT_JOURNAL, *sql.journal_args(batch.journal))
        if batch.spans:
            commits = batch.spans  # one row each
            await connection.execute(
                sql.INSERT_SPANS,
                [c.trace_id for c in commits],
                [c.revision for c in commits],
                [pack(c) for c in commits],
            )
        if batch.timers_cancel:
            await connection.execute(sql.DELETE_TIMERS, list(batch.timers_cancel))
        if batch.timers_set:
            await connection.execute(
                sql.UPSERT_TIMERS, *sql.timer_args(list(batch.timers_set.values()))
            )
        if batch.waits_set:
            await connection.execute(
                sql.UPSERT_WAITS, *sql.wait_args(list(batch.waits_set.values()))
            )
        if batch.waits_end:
            await connection.execute(sql.END_WAITS, list(batch.waits_end))
        return xid

    async def _check_lease(self, owner: str) -> None:
        """The ``runtime`` lease is still ``owner``'s; held (FOR SHARE) until the commit, so a
        takeover waits for this transaction, and a lost lease fails the writer."""
        row = await self._connection.fetchrow(
            "SELECT owner FROM leases WHERE scope = 'runtime' FOR SHARE"
        )
        if row is None or row[0] != owner:
            lost = LeaseLostError(self._name, owner, None if row is None else row[0])
            self.failure = lost
            raise lost

    async def _apply(self, op: Any) -> Any:
        connection = self._connection
        match op:
            case KvSet(namespace, key, value, expires_at, keeps):
                if keeps:
                    await connection.execute(sql.KEPT, namespace)
                await connection.execute(sql.UPSERT_KV, namespace, key, value, expires_at)
                return None
            case KvSetDefault(namespace, key, value, now, expires_at):
                args = (namespace, key, value, expires_at, now)
                if await connection.fetchrow(sql.SETDEFAULT_KV, *args) is not None:
                    return None  # set: none was there, or only an expired one
                kept: bytes = await connection.fetchval(
                    "SELECT value FROM kv WHERE namespace = $1 AND key = $2", namespace, key
                )
                return kept
            case KvIncr(namespace, key, amount, now, ttl):
                row = await connection.fetchrow(
                    "SELECT value, expires_at FROM kv WHERE namespace = $1 AND key = $2 FOR UPDATE",
                    namespace,
                    key,
                )
                stored = None if row is None else (_decode_value(row[0]), row[1])
                total, expires_at = incremented(
                    namespace, key, stored, amount=amount, now=now, ttl=ttl
                )
                await connection.execute(sql.UPSERT_KV, namespace, key, encode(total), expires_at)
                return total
            case KvDelete(namespace, key):
                status = await connection.execute(
                    "DELETE FROM kv WHERE namespace = $1 AND key = $2", namespace, key
                )
                return _count(status) > 0
            case KvPurge(now):
                status = await connection.execute(
                    "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1", now
                )
                return _count(status)
            case Prune(before, limit, keep, keep_keys_of):
                if keep_keys_of:
                    await connection.execute(sql.KEEPING, keep_keys_of)
                pruned = await connection.execute(
                    sql.PRUNE, before, limit, list(keep), keep_keys_of
                )
                return _count(pruned)
            case QueuedRun() as run:
                row = await connection.fetchrow(
                    sql.ENQUEUE,
                    run.queue,
                    run.instance_id,
                    run.workflow,
                    run.payload,
                    run.queued_at,
                )
                if row is None:
                    raise DuplicateInstanceError(run.instance_id)
                return int(row[0])
        raise AssertionError(f"unknown store operation {op!r}")

    async def _explain(self, payload: Any, error: Exception) -> BaseException:
        """Turn an error on one item into one that says which instance and why."""
        if isinstance(error, DuplicateInstanceError | LeaseLostError | StateValueError):
            return error
        if isinstance(payload, QueuedRun) and isinstance(
            error, asyncpg.IntegrityConstraintViolationError
        ):
            return DuplicateInstanceError(payload.instance_id)
        if not isinstance(payload, Mutation):
            return error
        snapshot = payload.snapshot
        if isinstance(error, _Refused | BrokenChainError):
            assert snapshot is not None
            if snapshot.revision == 1:
                return DuplicateInstanceError(snapshot.instance_id)
            stored = await self._connection.fetchrow(
                "SELECT revision, owner FROM instances WHERE instance_id = $1",
                snapshot.instance_id,
            )
            found = None if stored is None else int(stored[0])
            if (
                stored is not None
                and found == snapshot.revision - 1
                and stored[1] not in (None, self.node)
            ):
                return _moved(snapshot.instance_id, snapshot.revision - 1, stored[1])
            return RevisionConflictError(snapshot.instance_id, snapshot.revision - 1, found)
        if not isinstance(error, asyncpg.PostgresError):
            return error
        referenced = {j.instance_id for j in payload.journal}
        referenced |= {t.instance_id for t in payload.timers_set}
        referenced |= {w.instance_id for w in payload.waits_set}
        if payload.spans is not None:
            referenced.add(payload.spans.trace_id)
        if snapshot is not None:
            referenced.discard(snapshot.instance_id)
        for instance_id in sorted(referenced):
            exists = await self._connection.fetchval(
                "SELECT 1 FROM instances WHERE instance_id = $1", instance_id
            )
            if exists is None:
                return MutationRejectedError(
                    instance_id, f"instance {instance_id!r} has no snapshot"
                )
        named = snapshot.instance_id if snapshot else "<none>"
        return MutationRejectedError(named, str(error))

    # -- the runtime lease ----------------------------------------------------------------------

    async def _lease_op(self, item: Item) -> None:
        op, future = item
        try:
            try:
                result = await self._lease(op)
            except Exception as error:  # each is idempotent: asked again on a new connection
                if not (self._lost(error) and await self._reconnect(error)):
                    raise
                result = await self._lease(op)
        except Exception as error:
            if is_fatal(error) and not isinstance(error, LeaseLostError):
                error = self.fail(error)
            if not future.done():
                future.set_exception(error)
        else:
            if not future.done():
                future.set_result(result)

    async def _holder(self, scope: str, *, lock: bool = False) -> LeaseRecord | None:
        query = sql.SELECT_LEASE + (" FOR UPDATE" if lock else "")
        row = await self._connection.fetchrow(query, scope)
        return None if row is None else _sql.lease_of(row)

    async def _lease(self, op: Any) -> Any:
        connection = self._connection
        match op:
            case LeaseAcquire(lease):
                async with connection.transaction():
                    # the row lock (or, for a first lease, the advisory lock) orders takers
                    await connection.execute(
                        "SELECT pg_advisory_xact_lock(hashtext('cronflow-lease:' || $1))",
                        lease.scope,
                    )
                    holder = await self._holder(lease.scope, lock=True)
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
                    await connection.execute(sql.UPSERT_LEASE, *_sql.lease_row(lease))
                if lease.scope == "runtime":
                    self.owner = lease.owner
                return holder
            case LeaseRenew(scope, owner, now, expires_at):
                status = await connection.execute(sql.RENEW_LEASE, now, expires_at, scope, owner)
                if _count(status) != 1:
                    holder = await self._holder(scope)
                    lost = LeaseLostError(self._name, owner, holder.owner if holder else None)
                    self.failure = lost
                    raise lost
                return None
            case LeaseRelease(scope, owner):
                await connection.execute(sql.RELEASE_LEASE, scope, owner)
                if scope == "runtime" and self.owner == owner:
                    self.owner = None
                return None
        raise AssertionError(f"unknown lease operation {op!r}")


def _moved(instance_id: str, base: int, owner: str) -> RevisionConflictError:
    """A conflict of ownership, not of revisions: the actor that wrote goes stale as for any
    conflict, and the caller reads who has the instance now."""
    moved = RevisionConflictError(instance_id, base, base)
    moved.args = (
        f"the mutation for instance {instance_id!r} was rejected and nothing of it was written: "
        f"process {owner} owns it now (this process's lease on it expired); that process goes "
        "on with it",
    )
    return moved


def _count(status: str) -> int:
    """The row count of a command's status (``DELETE 3``, ``UPDATE 1``)."""
    return int(status.rsplit(" ", 1)[-1])

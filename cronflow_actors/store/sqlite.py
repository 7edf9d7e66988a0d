"""SQLiteStore: the embedded, durable store on aiosqlite.

One writer connection and one reader connection, in WAL mode, so reads never see a transaction
that is not committed and never wait for the writer. Every write goes through one writer task:
callers queue their mutation and wait; the writer takes everything queued, writes it in one
``BEGIN IMMEDIATE`` transaction (only the newest snapshot of each instance), commits, and wakes
every caller of the batch. While one batch commits the next one fills, so throughput grows with
the number of concurrent writers while each caller still returns only once its write is durable.

If a batch fails (one mutation breaks a constraint, say), it is rolled back and its items are
written one by one, so only the offending caller gets the error.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from typing import Any

import aiosqlite
import msgspec

from cronflow_actors.errors import (
    ConfigurationError,
    MutationRejectedError,
    SchemaVersionError,
    StoreClosedError,
)
from cronflow_actors.messages import JournalEntry, Mutation, SnapshotRecord, TimerRecord, encode
from cronflow_actors.store._batch import coalesce
from cronflow_actors.store._migrations import MIGRATIONS, latest_version
from cronflow_actors.store._protocol import (
    MISSING,
    StoreStatistics,
    check_amount,
    check_limit,
    check_ttl,
    incremented,
    is_live,
)

__all__ = ["SQLiteStore"]

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")

_decode_value = msgspec.msgpack.Decoder().decode

_UPSERT_SNAPSHOT = """
    INSERT INTO instances
        (instance_id, workflow, version, status, terminal, revision, updated_at, parent_id, body)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (instance_id) DO UPDATE SET
        workflow = excluded.workflow, version = excluded.version, status = excluded.status,
        terminal = excluded.terminal, revision = excluded.revision,
        updated_at = excluded.updated_at, parent_id = excluded.parent_id, body = excluded.body
    WHERE excluded.revision >= instances.revision
"""
_INSERT_JOURNAL = """
    INSERT OR IGNORE INTO journal
        (instance_id, work_item_id, attempt, step_id, outcome, output, error, recorded_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPSERT_TIMER = """
    INSERT INTO timers (timer_id, instance_id, due_at, kind, payload) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (timer_id) DO UPDATE SET
        instance_id = excluded.instance_id, due_at = excluded.due_at,
        kind = excluded.kind, payload = excluded.payload
"""
_UPSERT_KV = """
    INSERT INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (namespace, key) DO UPDATE SET
        value = excluded.value, expires_at = excluded.expires_at
"""
_SNAPSHOT_COLUMNS = (
    "instance_id, workflow, version, status, terminal, revision, updated_at, parent_id, body"
)
_TIMER_COLUMNS = "timer_id, instance_id, due_at, kind, payload"


class _KvSet(msgspec.Struct, frozen=True):
    namespace: str
    key: str
    value: bytes
    expires_at: float | None


class _KvIncr(msgspec.Struct, frozen=True):
    namespace: str
    key: str
    amount: float
    now: float
    ttl: float | None


class _KvDelete(msgspec.Struct, frozen=True):
    namespace: str
    key: str


class _KvPurge(msgspec.Struct, frozen=True):
    now: float


_KvOp = _KvSet | _KvIncr | _KvDelete | _KvPurge
_Item = tuple[Mutation | _KvOp, "asyncio.Future[Any]"]


def _snapshot_row(s: SnapshotRecord) -> tuple[Any, ...]:
    return (
        s.instance_id,
        s.workflow,
        s.version,
        s.status,
        int(s.terminal),
        s.revision,
        s.updated_at,
        s.parent_id,
        s.body,
    )


def _snapshot_of(row: Any) -> SnapshotRecord:
    return SnapshotRecord(
        instance_id=row[0],
        workflow=row[1],
        version=row[2],
        status=row[3],
        terminal=bool(row[4]),
        revision=row[5],
        updated_at=row[6],
        parent_id=row[7],
        body=row[8],
    )


def _timer_of(row: Any) -> TimerRecord:
    return TimerRecord(
        timer_id=row[0], instance_id=row[1], due_at=row[2], kind=row[3], payload=row[4]
    )


class SQLiteStore:
    """The durable store on one SQLite file (WAL, ``BEGIN IMMEDIATE``, group commit).

    ``synchronous`` is SQLite's durability level: ``FULL`` (default) survives power loss,
    ``NORMAL`` survives a process crash but may lose the last commits on power loss.
    ``":memory:"`` gives a private in-memory database (not durable; for tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        max_batch: int = 10_000,
    ) -> None:
        level = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if level not in SYNCHRONOUS_LEVELS:
            raise ConfigurationError("synchronous", synchronous, f"one of {SYNCHRONOUS_LEVELS}")
        if not isinstance(busy_timeout, int | float) or busy_timeout < 0:
            raise ConfigurationError("busy_timeout", busy_timeout, "a number of seconds >= 0")
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigurationError("max_batch", max_batch, "a whole number >= 1")
        self.path = os.fspath(path)
        self.synchronous: str = level
        self.busy_timeout = float(busy_timeout)
        self.max_batch = max_batch
        self._in_memory = self.path == ":memory:"
        self._target = (
            f"file:cronflow-{uuid.uuid4().hex}?mode=memory&cache=shared"
            if self._in_memory
            else self.path
        )
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: list[_Item] = []
        self._wakeup: asyncio.Event | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False
        self._stats = StoreStatistics()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- lifecycle --------------------------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(
            self._target, isolation_level=None, uri=self._in_memory
        )
        await connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        await connection.execute("PRAGMA foreign_keys = ON")
        return connection

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self._closing:
            raise StoreClosedError(repr(self), "reopen a closed store (create a new one)")
        writer = await self._connect()
        try:
            if not self._in_memory:
                async with writer.execute("PRAGMA journal_mode = WAL") as cursor:
                    row = await cursor.fetchone()
                if row is None or str(row[0]).lower() != "wal":
                    raise ConfigurationError(
                        "journal_mode", row, "WAL (the file system refused it)"
                    )
            await writer.execute(f"PRAGMA synchronous = {self.synchronous}")
            await self._migrate(writer)
            reader = await self._connect()
        except BaseException:
            await writer.close()
            raise
        self._writer = writer
        self._reader = reader
        self._wakeup = asyncio.Event()
        self._writer_task = asyncio.get_running_loop().create_task(
            self._run_writer(), name=f"cronflow-store-writer:{self.path}"
        )

    async def _migrate(self, connection: aiosqlite.Connection) -> None:
        await connection.execute("BEGIN IMMEDIATE")
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            async with connection.execute("SELECT MAX(version) FROM schema_version") as cursor:
                row = await cursor.fetchone()
            current = (row[0] if row else None) or 0
            if current > latest_version():
                raise SchemaVersionError(self.path, current, latest_version())
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    await connection.execute(statement)
                await connection.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (version, description, time.time()),
                )
            await connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                await connection.execute("ROLLBACK")
            raise

    async def schema_version(self) -> int:
        """The schema version of the open database."""
        reader = self._require_reader("read the schema version")
        async with reader.execute("SELECT MAX(version) FROM schema_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def close(self) -> None:
        if self._writer is None:
            self._closing = True
            return
        self._closing = True
        assert self._wakeup is not None
        self._wakeup.set()
        if self._writer_task is not None:
            await self._writer_task
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if not self._in_memory:
            await writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        if reader is not None:
            await reader.close()
        await writer.close()

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _require_reader(self, operation: str) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreClosedError(repr(self), operation)
        return self._reader

    # -- the writer -------------------------------------------------------------------------------

    def _submit(self, payload: Mutation | _KvOp, operation: str) -> asyncio.Future[Any]:
        if self._writer is None or self._closing:
            raise StoreClosedError(repr(self), operation)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((payload, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return future

    async def _run_writer(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            items = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            await self._write(items)

    async def _write(self, items: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            results, written, seen = await self._transaction(items)
        except Exception:
            # Something in the batch was refused: write the items one by one so that only the
            # caller whose item is at fault gets the error.
            results = []
            written = seen = 0
            for item in items:
                try:
                    (result,), one_written, one_seen = await self._transaction([item])
                except Exception as error:
                    result = _Failure(await self._explain(item[0], error))
                else:
                    written += one_written
                    seen += one_seen
                results.append(result)
        for (_payload, future), result in zip(items, results, strict=True):
            if future.done():  # the caller was cancelled; its write happened all the same
                continue
            if isinstance(result, _Failure):
                future.set_exception(result.error)
            else:
                future.set_result(result)
        stats = self._stats
        self._stats = StoreStatistics(
            batches=stats.batches + 1,
            mutations=stats.mutations + len(items),
            snapshots_written=stats.snapshots_written + written,
            snapshots_coalesced=stats.snapshots_coalesced + (seen - written),
            largest_batch=max(stats.largest_batch, len(items)),
            last_batch_seconds=time.perf_counter() - started,
        )

    async def _transaction(self, items: list[_Item]) -> tuple[list[Any], int, int]:
        connection = self._writer
        assert connection is not None
        mutations = [payload for payload, _ in items if isinstance(payload, Mutation)]
        batch = coalesce(mutations)
        await connection.execute("BEGIN IMMEDIATE")
        try:
            if batch.snapshots:
                await connection.executemany(
                    _UPSERT_SNAPSHOT, [_snapshot_row(s) for s in batch.snapshots.values()]
                )
            if batch.journal:
                await connection.executemany(
                    _INSERT_JOURNAL,
                    [
                        (
                            j.instance_id,
                            j.work_item_id,
                            j.attempt,
                            j.step_id,
                            j.outcome,
                            j.output,
                            j.error,
                            j.recorded_at,
                        )
                        for j in batch.journal
                    ],
                )
            if batch.timers_cancel:
                await connection.executemany(
                    "DELETE FROM timers WHERE timer_id = ?", [(t,) for t in batch.timers_cancel]
                )
            if batch.timers_set:
                await connection.executemany(
                    _UPSERT_TIMER,
                    [
                        (t.timer_id, t.instance_id, t.due_at, t.kind, t.payload)
                        for t in batch.timers_set.values()
                    ],
                )
            results: list[Any] = []
            for payload, _future in items:
                if isinstance(payload, Mutation):
                    results.append(None)
                else:
                    results.append(await self._apply_kv(connection, payload))
            await connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                await connection.execute("ROLLBACK")
            raise
        return results, len(batch.snapshots), batch.snapshots_seen

    async def _apply_kv(self, connection: aiosqlite.Connection, op: _KvOp) -> Any:
        match op:
            case _KvSet(namespace, key, value, expires_at):
                await connection.execute(_UPSERT_KV, (namespace, key, value, expires_at))
                return None
            case _KvIncr(namespace, key, amount, now, ttl):
                async with connection.execute(
                    "SELECT value, expires_at FROM kv WHERE namespace = ? AND key = ?",
                    (namespace, key),
                ) as cursor:
                    row = await cursor.fetchone()
                stored = None if row is None else (_decode_value(row[0]), row[1])
                total, expires_at = incremented(
                    namespace, key, stored, amount=amount, now=now, ttl=ttl
                )
                await connection.execute(_UPSERT_KV, (namespace, key, encode(total), expires_at))
                return total
            case _KvDelete(namespace, key):
                cursor = await connection.execute(
                    "DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
                )
                return cursor.rowcount > 0
            case _KvPurge(now):
                cursor = await connection.execute(
                    "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
                )
                return cursor.rowcount
        raise AssertionError(f"unknown key-value operation {op!r}")

    async def _explain(self, payload: Mutation | _KvOp, error: Exception) -> BaseException:
        """Turn a database error on one item into an error that says which instance and why."""
        if not (isinstance(payload, Mutation) and isinstance(error, sqlite3.IntegrityError)):
            return error
        referenced = {j.instance_id for j in payload.journal}
        referenced |= {t.instance_id for t in payload.timers_set}
        if payload.snapshot is not None:
            referenced.discard(payload.snapshot.instance_id)
        missing = sorted(referenced)
        if missing:
            marks = ", ".join("?" * len(missing))
            rows = await self._fetchall(
                f"SELECT instance_id FROM instances WHERE instance_id IN ({marks})",
                tuple(missing),
                "explain a rejected mutation",
            )
            missing = [i for i in missing if i not in {row[0] for row in rows}]
        if missing:
            return MutationRejectedError(missing[0], f"instance {missing[0]!r} has no snapshot")
        named = payload.snapshot.instance_id if payload.snapshot else "<none>"
        return MutationRejectedError(named, str(error))

    # -- writes -----------------------------------------------------------------------------------

    async def commit(self, mutation: Mutation) -> None:
        await self._submit(mutation, "commit a mutation")

    async def kv_set(
        self, namespace: str, key: str, value: Any, *, now: float, ttl: float | None = None
    ) -> None:
        check_ttl(ttl)
        expires_at = None if ttl is None else now + ttl
        await self._submit(_KvSet(namespace, key, encode(value), expires_at), f"set key {key!r}")

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
        result: float = await self._submit(
            _KvIncr(namespace, key, amount, now, ttl), f"incr key {key!r}"
        )
        return result

    async def kv_delete(self, namespace: str, key: str) -> bool:
        deleted: bool = await self._submit(_KvDelete(namespace, key), f"delete key {key!r}")
        return deleted

    async def kv_purge_expired(self, now: float) -> int:
        purged: int = await self._submit(_KvPurge(now), "purge expired keys")
        return purged

    # -- reads ------------------------------------------------------------------------------------

    async def _fetchall(self, sql: str, params: tuple[Any, ...], operation: str) -> list[Any]:
        reader = self._require_reader(operation)
        async with reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def load_snapshot(self, instance_id: str) -> SnapshotRecord | None:
        rows = await self._fetchall(
            f"SELECT {_SNAPSHOT_COLUMNS} FROM instances WHERE instance_id = ?",
            (instance_id,),
            "load a snapshot",
        )
        return _snapshot_of(rows[0]) if rows else None

    async def list_snapshots(
        self,
        *,
        terminal: bool | None = None,
        workflow: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SnapshotRecord]:
        check_limit(limit, offset)
        where: list[str] = []
        params: list[Any] = []
        if terminal is not None:
            where.append("terminal = ?")
            params.append(int(terminal))
        if workflow is not None:
            where.append("workflow = ?")
            params.append(workflow)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = f"SELECT {_SNAPSHOT_COLUMNS} FROM instances"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_at DESC, instance_id LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
        rows = await self._fetchall(sql, tuple(params), "list snapshots")
        return [_snapshot_of(row) for row in rows]

    async def load_journal(self, instance_id: str) -> list[JournalEntry]:
        rows = await self._fetchall(
            "SELECT instance_id, work_item_id, attempt, step_id, outcome, output, error, "
            "recorded_at FROM journal WHERE instance_id = ? ORDER BY seq",
            (instance_id,),
            "load a journal",
        )
        return [
            JournalEntry(
                instance_id=r[0],
                work_item_id=r[1],
                attempt=r[2],
                step_id=r[3],
                outcome=r[4],
                output=r[5],
                error=r[6],
                recorded_at=r[7],
            )
            for r in rows
        ]

    async def load_timers(self, *, instance_id: str | None = None) -> list[TimerRecord]:
        if instance_id is None:
            sql = f"SELECT {_TIMER_COLUMNS} FROM timers ORDER BY due_at, timer_id"
            params: tuple[Any, ...] = ()
        else:
            sql = (
                f"SELECT {_TIMER_COLUMNS} FROM timers WHERE instance_id = ? "
                "ORDER BY due_at, timer_id"
            )
            params = (instance_id,)
        return [_timer_of(row) for row in await self._fetchall(sql, params, "load timers")]

    async def due_timers(self, now: float, *, limit: int = 1000) -> list[TimerRecord]:
        check_limit(limit, 0)
        rows = await self._fetchall(
            f"SELECT {_TIMER_COLUMNS} FROM timers WHERE due_at <= ? ORDER BY due_at, timer_id "
            "LIMIT ?",
            (now, limit),
            "load due timers",
        )
        return [_timer_of(row) for row in rows]

    async def kv_get(self, namespace: str, key: str, *, now: float, default: Any = MISSING) -> Any:
        rows = await self._fetchall(
            "SELECT value, expires_at FROM kv WHERE namespace = ? AND key = ?",
            (namespace, key),
            f"get key {key!r}",
        )
        if not rows or not is_live(rows[0][1], now):
            return default
        return _decode_value(rows[0][0])

    def statistics(self) -> StoreStatistics:
        return self._stats


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

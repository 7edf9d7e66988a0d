"""SQLiteStore: the embedded, durable store on aiosqlite.

One writer connection and one reader connection, in WAL mode, so reads never see a transaction
that is not committed and never wait for the writer. Every write goes through the group-commit
writer (``_writer.py``); reads run on the reader connection's thread, never on the event loop.
The SQL itself is in ``_sql.py``, the schema in ``_migrations.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

import aiosqlite
import msgspec

from cronflow_actors.errors import ConfigurationError, SchemaVersionError, StoreClosedError
from cronflow_actors.messages import (
    JournalEntry,
    LeaseRecord,
    Mutation,
    QueuedRun,
    SnapshotRecord,
    TimerRecord,
    WaitRecord,
    encode,
)
from cronflow_actors.store import _sql as sql
from cronflow_actors.store._migrations import MIGRATIONS, latest_version
from cronflow_actors.store._protocol import (
    MISSING,
    CommitObserver,
    Cursor,
    StoreStatistics,
    check_amount,
    check_limit,
    check_page,
    check_ttl,
    is_live,
)
from cronflow_actors.store._writer import (
    FileGoneError,
    GroupWriter,
    KvDelete,
    KvIncr,
    KvPurge,
    KvSet,
    LeaseAcquire,
    LeaseRelease,
    LeaseRenew,
    Prune,
)

__all__ = ["SQLiteStore"]

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")

logger = logging.getLogger(__name__)


def _identity(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


_decode_value = msgspec.msgpack.Decoder().decode


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
        self._writer: GroupWriter | None = None
        self._identity: tuple[int, int] | None = None
        self._writer_connection: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._closing = False
        self._observer: CommitObserver | None = None

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
        connection = await self._connect()
        try:
            if not self._in_memory:
                # A new file frees the pages of pruned runs as it goes (incremental vacuum);
                # this must be said before its first table. An older file reuses them instead.
                tables = await connection.execute_fetchall("SELECT COUNT(*) FROM sqlite_master")
                if next(iter(tables))[0] == 0:
                    await connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
                async with connection.execute("PRAGMA journal_mode = WAL") as cursor:
                    row = await cursor.fetchone()
                if row is None or str(row[0]).lower() != "wal":
                    raise ConfigurationError(
                        "journal_mode", row, "WAL (the file system refused it)"
                    )
            await connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            await self._migrate(connection)
            reader = await self._connect()
        except BaseException:
            await connection.close()
            raise
        self._writer_connection = connection
        self._reader = reader
        check = None
        if not self._in_memory:
            self._identity = _identity(self.path)
            check = self._check_file
        self._writer = GroupWriter(connection, self.path, self.max_batch, check_file=check)
        self._writer.observer = self._observer
        self._writer.start()

    def _check_file(self) -> None:
        """``FileGoneError`` if the database file is not the one this store opened."""
        try:
            found = _identity(self.path)
        except FileNotFoundError:
            raise FileGoneError(f"the database file {self.path} was removed") from None
        if found != self._identity:
            raise FileGoneError(f"the database file {self.path} was replaced by another file")

    async def check(self) -> None:
        writer = self._writer
        if writer is None or self._closing:
            raise StoreClosedError(repr(self), "check the store")
        if writer.failure is None and not self._in_memory:
            try:
                self._check_file()
            except FileGoneError as gone:
                writer.fail(gone)
        if writer.failure is not None:
            raise writer.failure

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
        rows = await self._fetchall(
            "SELECT MAX(version) FROM schema_version", (), "read the schema version"
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def close(self) -> None:
        """Write what was submitted, then close. A broken database (removed, full, read-only)
        does not keep the close from ending: what cannot be done is logged."""
        self._closing = True
        writer, connection, reader = self._writer, self._writer_connection, self._reader
        if writer is None or connection is None:
            return
        await writer.close()
        self._writer = self._writer_connection = self._reader = None
        steps: list[Any] = []
        if not self._in_memory and writer.failure is None:
            steps.append(lambda: connection.execute("PRAGMA wal_checkpoint(PASSIVE)"))
        if reader is not None:
            steps.append(reader.close)
        steps.append(connection.close)
        for step in steps:
            try:
                await asyncio.wait_for(step(), 10)
            except Exception as error:
                logger.warning("closing %r: %s: %s", self, type(error).__name__, error)

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def watch_commits(self, observer: CommitObserver | None) -> None:
        self._observer = observer
        if self._writer is not None:
            self._writer.observer = observer

    def _require_writer(self, operation: str) -> GroupWriter:
        if self._writer is None or self._closing:
            raise StoreClosedError(repr(self), operation)
        return self._writer

    # -- writes -----------------------------------------------------------------------------------

    async def commit(self, mutation: Mutation) -> None:
        await self._require_writer("commit a mutation").submit(mutation, "commit a mutation")

    async def kv_set(
        self, namespace: str, key: str, value: Any, *, now: float, ttl: float | None = None
    ) -> None:
        check_ttl(ttl)
        expires_at = None if ttl is None else now + ttl
        operation = f"set key {key!r}"
        await self._require_writer(operation).submit(
            KvSet(namespace, key, encode(value), expires_at), operation
        )

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

    async def prune(self, *, finished_before: float, limit: int = 1000) -> int:
        check_page(limit)
        operation = "prune finished runs"
        pruned: int = await self._require_writer(operation).submit(
            Prune(finished_before, limit), operation
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

    # -- reads ------------------------------------------------------------------------------------

    async def _fetchall(self, query: str, params: tuple[Any, ...], operation: str) -> list[Any]:
        reader = self._reader
        if reader is None:
            raise StoreClosedError(repr(self), operation)
        # One round trip: the statement runs to its end on the reader's thread. With a cursor
        # per step, concurrent reads interleave, one statement stays open across another's,
        # and the connection's read transaction (its snapshot of the database) never ends.
        return list(await reader.execute_fetchall(query, params))

    async def load_snapshot(self, instance_id: str) -> SnapshotRecord | None:
        rows = await self._fetchall(
            f"SELECT {sql.SNAPSHOT_COLUMNS} FROM instances WHERE instance_id = ?",
            (instance_id,),
            "load a snapshot",
        )
        return sql.snapshot_of(rows[0]) if rows else None

    async def instance_exists(self, instance_id: str) -> bool:
        rows = await self._fetchall(
            "SELECT EXISTS (SELECT 1 FROM instances WHERE instance_id = ?) "
            "OR EXISTS (SELECT 1 FROM run_queue WHERE instance_id = ?)",
            (instance_id, instance_id),
            "look an instance up",
        )
        return bool(rows[0][0])

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
        check_limit(limit, offset)
        where, params = _filters(
            terminal=None if terminal is None else int(terminal),
            workflow=workflow,
            status=status,
            runnable=None if runnable is None else int(runnable),
        )
        query = f"SELECT {sql.SNAPSHOT_COLUMNS} FROM instances{where} "
        query += "ORDER BY updated_at DESC, instance_id LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
        rows = await self._fetchall(query, tuple(params), "list snapshots")
        return [sql.snapshot_of(row) for row in rows]

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: Cursor | None = None,
        max_bytes: int | None = None,
    ) -> list[SnapshotRecord]:
        check_page(limit)
        where, params = _filters(workflow=workflow, status=status)
        if before is not None:
            where += " AND " if where else " WHERE "
            where += "(created_at, instance_id) < (?, ?)"
            params += [before[0], before[1]]
        order = "ORDER BY created_at DESC, instance_id DESC"
        if max_bytes is None:
            query = f"SELECT {sql.SNAPSHOT_COLUMNS} FROM instances{where} {order} LIMIT ?"
            rows = await self._fetchall(query, (*params, limit), "list runs")
            return [sql.snapshot_of(row) for row in rows]
        # The page's ids first, with the running total of their bodies' sizes (length() of a
        # blob reads its header, not the blob); then the bodies of those within the budget.
        query = (
            "WITH page AS (SELECT instance_id, created_at, SUM(length(body)) OVER "
            f"({order} ROWS UNBOUNDED PRECEDING) - length(body) AS before_it "
            f"FROM instances{where} {order} LIMIT ?) "
            f"SELECT {sql.SNAPSHOT_COLUMNS} FROM instances WHERE instance_id IN "
            "(SELECT instance_id FROM page WHERE before_it < ? OR before_it = 0) "
            f"{order}"
        )
        rows = await self._fetchall(query, (*params, limit, max_bytes), "list runs")
        return [sql.snapshot_of(row) for row in rows]

    async def unfinished_ids(self, workflow: str) -> list[str]:
        rows = await self._fetchall(
            "SELECT instance_id FROM instances WHERE workflow = ? "
            "AND status IN ('running', 'waiting')",
            (workflow,),
            "list unfinished instances",
        )
        return [row[0] for row in rows]

    async def run_starts(self, workflow: str, *, since: float, limit: int) -> list[float]:
        check_page(limit)
        rows = await self._fetchall(
            "SELECT created_at FROM instances WHERE workflow = ? AND created_at > ? "
            "ORDER BY created_at DESC, instance_id DESC LIMIT ?",
            (workflow, since, limit),
            "read recent run starts",
        )
        return [float(row[0]) for row in rows]

    async def load_journal(self, instance_id: str) -> list[JournalEntry]:
        rows = await self._fetchall(
            "SELECT instance_id, work_item_id, attempt, step_id, outcome, output, error, "
            "recorded_at FROM journal WHERE instance_id = ? ORDER BY seq",
            (instance_id,),
            "load a journal",
        )
        return [sql.journal_of(row) for row in rows]

    async def load_timers(
        self,
        *,
        instance_id: str | None = None,
        after: Cursor | None = None,
        limit: int | None = None,
    ) -> list[TimerRecord]:
        if limit is not None:
            check_page(limit)
        where: list[str] = []
        params: list[Any] = []
        if instance_id is not None:
            where.append("instance_id = ?")
            params.append(instance_id)
        if after is not None:
            where.append("(due_at, timer_id) > (?, ?)")
            params += [after[0], after[1]]
        query = f"SELECT {sql.TIMER_COLUMNS} FROM timers"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY due_at, timer_id LIMIT ?"
        params.append(-1 if limit is None else limit)
        rows = await self._fetchall(query, tuple(params), "load timers")
        return [sql.timer_of(row) for row in rows]

    async def due_timers(self, now: float, *, limit: int = 1000) -> list[TimerRecord]:
        check_limit(limit, 0)
        rows = await self._fetchall(
            f"SELECT {sql.TIMER_COLUMNS} FROM timers WHERE due_at <= ? "
            "ORDER BY due_at, timer_id LIMIT ?",
            (now, limit),
            "load due timers",
        )
        return [sql.timer_of(row) for row in rows]

    async def find_wait(self, kind: str, key: str) -> WaitRecord | None:
        rows = await self._fetchall(
            f"SELECT {sql.WAIT_COLUMNS} FROM waits WHERE kind = ? AND key = ? "
            "ORDER BY ended, created_at DESC LIMIT 1",
            (kind, key),
            "find a wait",
        )
        return sql.wait_of(rows[0]) if rows else None

    async def open_waits(
        self,
        kind: str,
        *,
        key: str | None = None,
        after: Cursor | None = None,
        limit: int = 100,
    ) -> list[WaitRecord]:
        check_page(limit)
        where = "kind = ? AND ended = 0"
        params: list[Any] = [kind]
        if key is not None:
            where += " AND key = ?"
            params.append(key)
        if after is not None:
            where += " AND (created_at, wait_id) > (?, ?)"
            params += [after[0], after[1]]
        rows = await self._fetchall(
            f"SELECT {sql.WAIT_COLUMNS} FROM waits WHERE {where} "
            "ORDER BY created_at, wait_id LIMIT ?",
            (*params, limit),
            "list waits",
        )
        return [sql.wait_of(row) for row in rows]

    async def count_open_waits(self, kind: str) -> int:
        rows = await self._fetchall(
            "SELECT COUNT(*) FROM waits WHERE kind = ? AND ended = 0", (kind,), "count waits"
        )
        return int(rows[0][0])

    async def count_in_flight(self) -> dict[tuple[str, str], int]:
        rows = await self._fetchall(sql.COUNT_IN_FLIGHT, (), "count runs in flight")
        counts: dict[tuple[str, str], int] = {}
        for workflow, status, count in rows:
            counts[workflow, status] = counts.get((workflow, status), 0) + int(count)
        for (workflow, status), count in list(counts.items()):
            if status == "paused":  # also counted as waiting by the first half of the query
                counts[workflow, "waiting"] -= count
                if not counts[workflow, "waiting"]:
                    del counts[workflow, "waiting"]
        return counts

    async def queue_lengths(self) -> dict[str, int]:
        rows = await self._fetchall(
            "SELECT queue, COUNT(*) FROM run_queue GROUP BY queue", (), "count queued runs"
        )
        return {queue: int(count) for queue, count in rows}

    async def queued(self, queue: str, *, limit: int = 100, after: int = 0) -> list[QueuedRun]:
        check_page(limit)
        rows = await self._fetchall(
            f"SELECT {sql.QUEUE_COLUMNS} FROM run_queue WHERE queue = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (queue, after, limit),
            "list queued runs",
        )
        return [sql.queued_of(row) for row in rows]

    async def queued_run(self, instance_id: str) -> QueuedRun | None:
        rows = await self._fetchall(
            f"SELECT {sql.QUEUE_COLUMNS} FROM run_queue WHERE instance_id = ?",
            (instance_id,),
            "find a queued run",
        )
        return sql.queued_of(rows[0]) if rows else None

    async def queue_length(self, queue: str) -> int:
        rows = await self._fetchall(
            "SELECT COUNT(*) FROM run_queue WHERE queue = ?", (queue,), "count queued runs"
        )
        return int(rows[0][0])

    async def current_lease(self, scope: str = "runtime") -> LeaseRecord | None:
        rows = await self._fetchall(sql.SELECT_LEASE, (scope,), "read the database lease")
        return sql.lease_of(rows[0]) if rows else None

    async def kv_get(self, namespace: str, key: str, *, now: float, default: Any = MISSING) -> Any:
        rows = await self._fetchall(
            "SELECT value, expires_at FROM kv WHERE namespace = ? AND key = ?",
            (namespace, key),
            f"get key {key!r}",
        )
        if not rows or not is_live(rows[0][1], now):
            return default
        return _decode_value(rows[0][0])

    async def kv_stats(self, now: float) -> dict[str, tuple[int, int]]:
        rows = await self._fetchall(
            "SELECT namespace, COUNT(*), "
            "SUM(CASE WHEN expires_at IS NOT NULL AND expires_at <= ? THEN 1 ELSE 0 END) "
            "FROM kv GROUP BY namespace",
            (now,),
            "count keys",
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in rows}

    def statistics(self) -> StoreStatistics:
        return self._writer.stats if self._writer is not None else StoreStatistics()


def _filters(**columns: Any) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b = ?`` for the columns given a value (not None), and the values."""
    where = [f"{name} = ?" for name, value in columns.items() if value is not None]
    params = [value for value in columns.values() if value is not None]
    return (" WHERE " + " AND ".join(where) if where else ""), params

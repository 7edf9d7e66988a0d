"""The SQLite store's reads: every query runs on the reader connection's thread, never on the
event loop, and (in WAL mode) sees only committed transactions, never waiting for the writer.

Listings page by keyset over indexes (``Cursor``: the (time, id) of the previous page's last
row), so a page costs the same however many rows came before it. Row mappings are in ``_sql``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
import msgspec

from cronflow_actors.errors import StoreClosedError
from cronflow_actors.messages import (
    JournalEntry,
    LeaseRecord,
    QueuedRun,
    SnapshotRecord,
    TimerRecord,
    WaitRecord,
)
from cronflow_actors.messages.audit import AuditSpan
from cronflow_actors.store import _sql as sql
from cronflow_actors.store._protocol import (
    MISSING,
    Cursor,
    JournalRecord,
    check_limit,
    check_page,
    is_live,
)
from cronflow_actors.store._spans import page, position

__all__ = ["SQLiteReads"]

_decode_value = msgspec.msgpack.Decoder().decode

_BROKEN = frozenset({11, 26})
"""SQLITE_CORRUPT and SQLITE_NOTADB: the file is not the database it was (written over in place,
say by a copy of a backup onto it while the store had it open), whichever connection finds it."""


class SQLiteReads:
    """The reading half of ``SQLiteStore``: the queries of the ``Store`` protocol."""

    _reader: aiosqlite.Connection | None

    def _broken(self, error: sqlite3.DatabaseError) -> BaseException:
        """The error a read gets when the file is broken: the store's (``SQLiteStore``)."""
        return error

    async def schema_version(self) -> int:
        """The schema version of the open database."""
        rows = await self._fetchall(
            "SELECT MAX(version) FROM schema_version", (), "read the schema version"
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def _fetchall(self, query: str, params: tuple[Any, ...], operation: str) -> list[Any]:
        reader = self._reader
        if reader is None:
            raise StoreClosedError(repr(self), operation)
        # One round trip: the statement runs to its end on the reader's thread. With a cursor
        # per step, concurrent reads interleave, one statement stays open across another's,
        # and the connection's read transaction (its snapshot of the database) never ends.
        try:
            return list(await reader.execute_fetchall(query, params))
        except sqlite3.DatabaseError as error:
            if getattr(error, "sqlite_errorcode", 0) & 0xFF not in _BROKEN:  # (extended codes)
                raise
            raise self._broken(error) from error

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

    async def existing_among(self, instance_ids: Sequence[str]) -> set[str]:
        if not instance_ids:
            return set()
        marks = ", ".join("?" * len(instance_ids))
        rows = await self._fetchall(
            f"SELECT instance_id FROM instances WHERE instance_id IN ({marks}) "
            f"UNION SELECT instance_id FROM run_queue WHERE instance_id IN ({marks})",
            (*instance_ids, *instance_ids),
            "look instances up",
        )
        return {row[0] for row in rows}

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
        query = sql.page_within(
            sql.SNAPSHOT_COLUMNS,
            "instances",
            key="instance_id",
            size="length(body)",
            where=where,
            order=order,
            limit="?",
            budget="?",
        )
        rows = await self._fetchall(query, (*params, limit, max_bytes), "list runs")
        return [sql.snapshot_of(row) for row in rows]

    async def unfinished_ids(self, workflow: str) -> list[str]:
        # each arm through its own index (the in-flight one is partial: running and waiting)
        rows = await self._fetchall(
            "SELECT instance_id FROM instances WHERE workflow = ? "
            "AND status IN ('running', 'waiting') UNION ALL "
            "SELECT instance_id FROM instances WHERE status = 'blocked' AND workflow = ?",
            (workflow, workflow),
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

    async def read_journal(
        self, instance_id: str, *, after: int = 0, limit: int = 100
    ) -> list[JournalRecord]:
        check_page(limit)
        rows = await self._fetchall(
            f"SELECT {sql.JOURNAL_COLUMNS} FROM journal WHERE instance_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (instance_id, after, limit),
            "read a journal",
        )
        return [sql.journal_record_of(row) for row in rows]

    async def read_spans(
        self, trace_id: str, *, after: str | None = None, limit: int = 1000
    ) -> list[AuditSpan]:
        check_page(limit)
        start = position(after)
        rows = await self._fetchall(
            sql.SELECT_SPANS, (trace_id, start[0], limit + 1), "read an audit trail"
        )
        return page(trace_id, rows, start, limit)

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
        instance_id: str | None = None,
        after: Cursor | None = None,
        limit: int = 100,
        max_bytes: int | None = None,
    ) -> list[WaitRecord]:
        check_page(limit)
        where = "kind = ? AND ended = 0"
        params: list[Any] = [kind]
        if key is not None:
            where += " AND key = ?"
            params.append(key)
        if instance_id is not None:
            where += " AND instance_id = ?"
            params.append(instance_id)
        if after is not None:
            where += " AND (created_at, wait_id) > (?, ?)"
            params += [after[0], after[1]]
        order = "ORDER BY created_at, wait_id"
        # one run's waits: through its own index (a few rows), not the open waits by time,
        # which the planner takes for the order and scans whole (44 ms at 200,000 pauses)
        table = "waits" if instance_id is None else "waits INDEXED BY waits_by_instance"
        if max_bytes is None:
            query = f"SELECT {sql.WAIT_COLUMNS} FROM {table} WHERE {where} {order} LIMIT ?"
            rows = await self._fetchall(query, (*params, limit), "list waits")
            return [sql.wait_of(row) for row in rows]
        # (a pause's data holds its description, metadata and the step's output before it,
        # of any size)
        query = sql.page_within(
            sql.WAIT_COLUMNS,
            "waits",
            key="wait_id",
            size="length(data)",
            where=f" WHERE {where}",
            order=order,
            limit="?",
            budget="?",
            scan=table,
        )
        rows = await self._fetchall(query, (*params, limit, max_bytes), "list waits")
        return [sql.wait_of(row) for row in rows]

    async def count_open_waits(self, kind: str) -> int:
        rows = await self._fetchall(
            "SELECT COUNT(*) FROM waits WHERE kind = ? AND ended = 0", (kind,), "count waits"
        )
        return int(rows[0][0])

    async def count_in_flight(self) -> dict[tuple[str, str], int]:
        rows = await self._fetchall(sql.COUNT_IN_FLIGHT, (), "count runs in flight")
        return sql.in_flight_of(rows)

    async def queue_lengths(self) -> dict[str, int]:
        rows = await self._fetchall(
            "SELECT queue, COUNT(*) FROM run_queue GROUP BY queue", (), "count queued runs"
        )
        return {queue: int(count) for queue, count in rows}

    async def queued_by_workflow(self) -> dict[str, int]:
        rows = await self._fetchall(
            "SELECT workflow, COUNT(*) FROM run_queue GROUP BY workflow", (), "count queued runs"
        )
        return {workflow: int(count) for workflow, count in rows}

    async def queued(self, queue: str, *, limit: int = 100, after: int = 0) -> list[QueuedRun]:
        check_page(limit)
        rows = await self._fetchall(
            f"SELECT {sql.QUEUE_COLUMNS} FROM run_queue WHERE queue = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (queue, after, limit),
            "list queued runs",
        )
        return [sql.queued_of(row) for row in rows]

    async def list_queued(
        self, *, workflow: str | None = None, limit: int = 50, before: Cursor | None = None
    ) -> list[QueuedRun]:
        check_page(limit)
        where, params = _filters(workflow=workflow)
        if before is not None:
            where += " AND " if where else " WHERE "
            where += "(queued_at, instance_id) < (?, ?)"
            params += [before[0], before[1]]
        rows = await self._fetchall(
            f"SELECT {sql.QUEUE_COLUMNS} FROM run_queue{where} "
            "ORDER BY queued_at DESC, instance_id DESC LIMIT ?",
            (*params, limit),
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
            sql.SELECT_KV,
            (namespace, key),
            f"get key {key!r}",
        )
        if not rows or not is_live(rows[0][1], now):
            return default
        return _decode_value(rows[0][0])

    async def kv_items(self, namespace: str, *, now: float) -> dict[str, Any]:
        rows = await self._fetchall(
            "SELECT key, value, expires_at FROM kv WHERE namespace = ?",
            (namespace,),
            f"list the keys of {namespace!r}",
        )
        return {row[0]: _decode_value(row[1]) for row in rows if is_live(row[2], now)}

    async def kv_stats(self, now: float) -> dict[str, tuple[int, int]]:
        rows = await self._fetchall(
            "SELECT namespace, COUNT(*), "
            "SUM(CASE WHEN expires_at IS NOT NULL AND expires_at <= ? THEN 1 ELSE 0 END) "
            "FROM kv GROUP BY namespace",
            (now,),
            "count keys",
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in rows}


def _filters(**columns: Any) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b = ?`` for the columns given a value (not None), and the values."""
    where = [f"{name} = ?" for name, value in columns.items() if value is not None]
    params = [value for value in columns.values() if value is not None]
    return (" WHERE " + " AND ".join(where) if where else ""), params

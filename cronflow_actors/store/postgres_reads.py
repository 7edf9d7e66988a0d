"""The PostgreSQL store's reads: the queries of the ``Store`` protocol, each on a connection of
the store's read pool (never the writer's), seeing only committed transactions.

The same queries as the SQLite store's (``_reads.py``), with PostgreSQL's placeholders; the
row-to-record mappings are shared (``_sql``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
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
from cronflow_actors.store import _sql
from cronflow_actors.store import postgres_sql as sql
from cronflow_actors.store._protocol import (
    MISSING,
    Cursor,
    JournalRecord,
    check_limit,
    check_page,
    is_live,
)
from cronflow_actors.store._spans import page, position

__all__ = ["PostgresReads"]

_decode_value = msgspec.msgpack.Decoder().decode


class _Where:
    """A WHERE clause built a condition at a time, numbering its placeholders."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []

    def add(self, condition: str, *values: Any) -> None:
        """``condition`` with ``{}`` for each value's placeholder."""
        numbers = []
        for value in values:
            self.params.append(value)
            numbers.append(f"${len(self.params)}")
        self.conditions.append(condition.format(*numbers))

    def next(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def __str__(self) -> str:
        return " WHERE " + " AND ".join(self.conditions) if self.conditions else ""


class PostgresReads:
    """The reading half of ``PostgresStore``."""

    _pool: asyncpg.Pool | None

    async def _fetch(self, query: str, params: tuple[Any, ...], operation: str) -> list[Any]:
        pool = self._pool
        if pool is None:
            raise StoreClosedError(repr(self), operation)
        if any(_holds_nul(param) for param in params):
            return []  # PostgreSQL's text refuses a NUL, so no row holds one (review h33 F3)
        return list(await pool.fetch(query, *params))

    async def schema_version(self) -> int:
        """The schema version of the open database."""
        rows = await self._fetch(
            "SELECT MAX(version) FROM schema_version", (), "read the schema version"
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def load_snapshot(self, instance_id: str) -> SnapshotRecord | None:
        rows = await self._fetch(
            f"SELECT {sql.SNAPSHOT_COLUMNS} FROM instances WHERE instance_id = $1",
            (instance_id,),
            "load a snapshot",
        )
        return _sql.snapshot_of(rows[0]) if rows else None

    async def instance_exists(self, instance_id: str) -> bool:
        rows = await self._fetch(
            "SELECT EXISTS (SELECT 1 FROM instances WHERE instance_id = $1) "
            "OR EXISTS (SELECT 1 FROM run_queue WHERE instance_id = $1)",
            (instance_id,),
            "look an instance up",
        )
        return bool(rows and rows[0][0])  # (none: an id no row can hold)

    async def existing_among(self, instance_ids: Sequence[str]) -> set[str]:
        ids = [i for i in instance_ids if "\x00" not in i]  # (no row can hold one)
        if not ids:
            return set()
        rows = await self._fetch(
            "SELECT instance_id FROM instances WHERE instance_id = ANY($1) "
            "UNION SELECT instance_id FROM run_queue WHERE instance_id = ANY($1)",
            (ids,),
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
        where = _filters(terminal=terminal, workflow=workflow, status=status, runnable=runnable)
        query = f"SELECT {sql.SNAPSHOT_COLUMNS} FROM instances{where} "
        query += f"ORDER BY updated_at DESC, instance_id LIMIT {where.next(limit)} "
        query += f"OFFSET {where.next(offset)}"
        rows = await self._fetch(query, tuple(where.params), "list snapshots")
        return [_sql.snapshot_of(row) for row in rows]

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
        where = _filters(workflow=workflow, status=status)
        if before is not None:
            where.add("(created_at, instance_id) < ({}, {})", before[0], before[1])
        order = "ORDER BY created_at DESC, instance_id DESC"
        if max_bytes is None:
            query = f"SELECT {sql.SNAPSHOT_COLUMNS} FROM instances{where} {order} "
            query += f"LIMIT {where.next(limit)}"
            rows = await self._fetch(query, tuple(where.params), "list runs")
            return [_sql.snapshot_of(row) for row in rows]
        at_most, budget = where.next(limit), where.next(max_bytes)
        query = _sql.page_within(
            sql.SNAPSHOT_COLUMNS,
            "instances",
            key="instance_id",
            size="octet_length(body)",
            where=str(where),
            order=order,
            limit=at_most,
            budget=budget,
        )
        rows = await self._fetch(query, tuple(where.params), "list runs")
        return [_sql.snapshot_of(row) for row in rows]

    async def unfinished_ids(self, workflow: str) -> list[str]:
        # each arm through its own index (the in-flight one is partial: running and waiting)
        rows = await self._fetch(
            "SELECT instance_id FROM instances WHERE workflow = $1 "
            "AND status IN ('running', 'waiting') UNION ALL "
            "SELECT instance_id FROM instances WHERE status = 'blocked' AND workflow = $1",
            (workflow,),
            "list unfinished instances",
        )
        return [row[0] for row in rows]

    async def run_starts(self, workflow: str, *, since: float, limit: int) -> list[float]:
        check_page(limit)
        rows = await self._fetch(
            "SELECT created_at FROM instances WHERE workflow = $1 AND created_at > $2 "
            "ORDER BY created_at DESC, instance_id DESC LIMIT $3",
            (workflow, since, limit),
            "read recent run starts",
        )
        return [float(row[0]) for row in rows]

    async def load_journal(self, instance_id: str) -> list[JournalEntry]:
        rows = await self._fetch(
            "SELECT instance_id, work_item_id, attempt, step_id, outcome, output, error, "
            "recorded_at FROM journal WHERE instance_id = $1 ORDER BY seq",
            (instance_id,),
            "load a journal",
        )
        return [_sql.journal_of(row) for row in rows]

    async def read_journal(
        self, instance_id: str, *, after: int = 0, limit: int = 100
    ) -> list[JournalRecord]:
        check_page(limit)
        rows = await self._fetch(
            f"SELECT {sql.JOURNAL_COLUMNS} FROM journal WHERE instance_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            (instance_id, after, limit),
            "read a journal",
        )
        return [_sql.journal_record_of(row) for row in rows]

    async def read_spans(
        self, trace_id: str, *, after: str | None = None, limit: int = 1000
    ) -> list[AuditSpan]:
        check_page(limit)
        start = position(after)
        rows = await self._fetch(
            sql.SELECT_SPANS, (trace_id, start[0], limit + 1), "read an audit trail"
        )
        return page(trace_id, [(row[0], bytes(row[1])) for row in rows], start, limit)

    async def load_timers(
        self,
        *,
        instance_id: str | None = None,
        after: Cursor | None = None,
        limit: int | None = None,
    ) -> list[TimerRecord]:
        if limit is not None:
            check_page(limit)
        where = _Where()
        if instance_id is not None:
            where.add("instance_id = {}", instance_id)
        if after is not None:
            where.add("(due_at, timer_id) > ({}, {})", after[0], after[1])
        query = f"SELECT {sql.TIMER_COLUMNS} FROM timers{where} ORDER BY due_at, timer_id "
        query += f"LIMIT {where.next(limit)}"
        rows = await self._fetch(query, tuple(where.params), "load timers")
        return [_sql.timer_of(row) for row in rows]

    async def due_timers(self, now: float, *, limit: int = 1000) -> list[TimerRecord]:
        check_limit(limit, 0)
        rows = await self._fetch(
            f"SELECT {sql.TIMER_COLUMNS} FROM timers WHERE due_at <= $1 "
            "ORDER BY due_at, timer_id LIMIT $2",
            (now, limit),
            "load due timers",
        )
        return [_sql.timer_of(row) for row in rows]

    async def find_wait(self, kind: str, key: str) -> WaitRecord | None:
        rows = await self._fetch(
            f"SELECT {sql.WAIT_COLUMNS} FROM waits WHERE kind = $1 AND key = $2 "
            "ORDER BY ended, created_at DESC LIMIT 1",
            (kind, key),
            "find a wait",
        )
        return _sql.wait_of(rows[0]) if rows else None

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
        where = _Where()
        where.add("kind = {} AND NOT ended", kind)
        if key is not None:
            where.add("key = {}", key)
        if instance_id is not None:
            where.add("instance_id = {}", instance_id)
        if after is not None:
            where.add("(created_at, wait_id) > ({}, {})", after[0], after[1])
        order = "ORDER BY created_at, wait_id"
        if max_bytes is None:
            query = f"SELECT {sql.WAIT_COLUMNS} FROM waits{where} {order} "
            query += f"LIMIT {where.next(limit)}"
            rows = await self._fetch(query, tuple(where.params), "list waits")
            return [_sql.wait_of(row) for row in rows]
        at_most, budget = where.next(limit), where.next(max_bytes)
        query = _sql.page_within(
            sql.WAIT_COLUMNS,
            "waits",
            key="wait_id",
            size="octet_length(data)",
            where=str(where),
            order=order,
            limit=at_most,
            budget=budget,
        )
        rows = await self._fetch(query, tuple(where.params), "list waits")
        return [_sql.wait_of(row) for row in rows]

    async def count_open_waits(self, kind: str) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM waits WHERE kind = $1 AND NOT ended", (kind,), "count waits"
        )
        return int(rows[0][0]) if rows else 0

    async def count_in_flight(self) -> dict[tuple[str, str], int]:
        rows = await self._fetch(sql.COUNT_IN_FLIGHT, (), "count runs in flight")
        return _sql.in_flight_of(rows)

    async def queue_lengths(self) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT queue, COUNT(*) FROM run_queue GROUP BY queue", (), "count queued runs"
        )
        return {queue: int(count) for queue, count in rows}

    async def queued_by_workflow(self) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT workflow, COUNT(*) FROM run_queue GROUP BY workflow", (), "count queued runs"
        )
        return {workflow: int(count) for workflow, count in rows}

    async def queued(self, queue: str, *, limit: int = 100, after: int = 0) -> list[QueuedRun]:
        check_page(limit)
        rows = await self._fetch(
            f"SELECT {sql.QUEUE_COLUMNS} FROM run_queue WHERE queue = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            (queue, after, limit),
            "list queued runs",
        )
        return [_sql.queued_of(row) for row in rows]

    async def list_queued(
        self, *, workflow: str | None = None, limit: int = 50, before: Cursor | None = None
    ) -> list[QueuedRun]:
        check_page(limit)
        where = _filters(workflow=workflow)
        if before is not None:
            where.add("(queued_at, instance_id) < ({}, {})", before[0], before[1])
        query = f"SELECT {sql.QUEUE_COLUMNS} FROM run_queue{where} "
        query += f"ORDER BY queued_at DESC, instance_id DESC LIMIT {where.next(limit)}"
        rows = await self._fetch(query, tuple(where.params), "list queued runs")
        return [_sql.queued_of(row) for row in rows]

    async def queued_run(self, instance_id: str) -> QueuedRun | None:
        rows = await self._fetch(
            f"SELECT {sql.QUEUE_COLUMNS} FROM run_queue WHERE instance_id = $1",
            (instance_id,),
            "find a queued run",
        )
        return _sql.queued_of(rows[0]) if rows else None

    async def queue_length(self, queue: str) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM run_queue WHERE queue = $1", (queue,), "count queued runs"
        )
        return int(rows[0][0]) if rows else 0

    async def current_lease(self, scope: str = "runtime") -> LeaseRecord | None:
        rows = await self._fetch(sql.SELECT_LEASE, (scope,), "read the database lease")
        return _sql.lease_of(rows[0]) if rows else None

    async def kv_get(self, namespace: str, key: str, *, now: float, default: Any = MISSING) -> Any:
        rows = await self._fetch(
            "SELECT value, expires_at FROM kv WHERE namespace = $1 AND key = $2",
            (namespace, key),
            f"get key {key!r}",
        )
        if not rows or not is_live(rows[0][1], now):
            return default
        return _decode_value(rows[0][0])

    async def kv_items(self, namespace: str, *, now: float) -> dict[str, Any]:
        rows = await self._fetch(
            "SELECT key, value, expires_at FROM kv WHERE namespace = $1",
            (namespace,),
            f"list the keys of {namespace!r}",
        )
        return {row[0]: _decode_value(row[1]) for row in rows if is_live(row[2], now)}

    async def kv_stats(self, now: float) -> dict[str, tuple[int, int]]:
        rows = await self._fetch(
            "SELECT namespace, COUNT(*), "
            "SUM(CASE WHEN expires_at IS NOT NULL AND expires_at <= $1 THEN 1 ELSE 0 END) "
            "FROM kv GROUP BY namespace",
            (now,),
            "count keys",
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in rows}


def _filters(**columns: Any) -> _Where:
    """``column = $n`` for each column given a value (not None)."""
    where = _Where()
    for name, value in columns.items():
        if value is not None:
            where.add(f"{name} = {{}}", value)
    return where


def _holds_nul(param: Any) -> bool:
    """Whether a query's parameter is text with a NUL, or a list with such text (an id a caller
    sent: ``GET /runs/a%00b`` was a 500 here where SQLite answers "no such run")."""
    if isinstance(param, str):
        return "\x00" in param
    return isinstance(param, list) and any(isinstance(p, str) and "\x00" in p for p in param)

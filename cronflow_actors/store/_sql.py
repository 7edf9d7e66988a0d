"""The SQL the SQLite store runs, and the mapping between its rows and the persisted records.

Fenced writes: once a runtime owns the database, every transaction of its writer begins by
checking that the lease is still its own (``FENCE``), in the same round trip as the
``BEGIN IMMEDIATE``: a runtime that lost its lease writes nothing more. One check covers the
whole transaction, because the transaction holds SQLite's write lock and taking the lease over
is a write.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cronflow_actors.messages import (
    JournalEntry,
    LeaseRecord,
    QueuedRun,
    SnapshotRecord,
    TimerRecord,
    WaitRecord,
)
from cronflow_actors.store._protocol import JournalRecord

SNAPSHOT_COLUMNS = (
    "instance_id, workflow, version, status, terminal, revision, updated_at, parent_id, body, "
    "created_at, runnable"
)
TIMER_COLUMNS = "timer_id, instance_id, due_at, kind, payload"
WAIT_COLUMNS = (
    "wait_id, instance_id, kind, key, workflow, step, created_at, expires_at, data, ended"
)
QUEUE_COLUMNS = "seq, queue, instance_id, workflow, payload, queued_at"
LEASE_COLUMNS = "scope, owner, host, pid, acquired_at, renewed_at, expires_at"

FENCE_TABLE = "CREATE TEMP TABLE IF NOT EXISTS fence (held INTEGER CHECK (held))"
"""On the writer's connection only: a row that says the lease is not held breaks the CHECK."""


FENCE = (
    "INSERT INTO temp.fence (held) SELECT 0 WHERE NOT EXISTS "
    "(SELECT 1 FROM main.leases WHERE scope = 'runtime' AND owner = ?)"
)
"""Run right after ``BEGIN IMMEDIATE`` with the owner: fails (the CHECK constraint) unless that
owner still holds the lease. A prepared statement, kept in the connection's cache: a script
would be parsed again on every commit."""


INSERT_SNAPSHOT = (
    f"INSERT INTO instances ({SNAPSHOT_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
    "WHERE NOT EXISTS (SELECT 1 FROM run_queue WHERE instance_id = ?)"
)
"""A new instance row; none is written when the id is queued; a stored id fails the key."""

UPDATE_SNAPSHOT = (
    "UPDATE instances SET status = ?, terminal = ?, revision = ?, updated_at = ?, body = ?, "
    "runnable = ? WHERE instance_id = ? AND revision = ?"
)
"""Replace revision n - 1 by revision n (no row changed when the stored one differs). An
instance's workflow, version, parent and creation time never change, so they are not set
again: every column set is an index entry rewritten."""

UPDATE_BODY = (
    "UPDATE instances SET revision = ?, updated_at = ?, body = ? "
    "WHERE instance_id = ? AND revision = ? AND status = ? AND terminal = ? AND runnable = ?"
)
"""``UPDATE_SNAPSHOT`` for a revision whose indexed columns (status, terminal, runnable) are
the stored ones: most commits of a run (a step done, the next one started). SQLite rewrites
the entry of every index on a column the statement sets, whether its value changed or not, so
this one writes the row's page only, where ``UPDATE_SNAPSHOT`` writes four more (about 16 KB
to the WAL instead of 4). No row changes when the stored indexed columns differ, as when the
revision differs: the writer then runs ``UPDATE_SNAPSHOT``."""


COUNT_IN_FLIGHT = """
SELECT workflow, status, COUNT(*) FROM instances
 WHERE status IN ('running', 'waiting') GROUP BY workflow, status
UNION ALL
SELECT i.workflow, 'paused', COUNT(DISTINCT w.instance_id)
  FROM waits AS w JOIN instances AS i ON i.instance_id = w.instance_id
 WHERE w.kind = 'pause' AND w.ended = 0 AND i.status = 'waiting'
 GROUP BY i.workflow
"""
"""Instances in flight by (workflow, status) through the status index, and the waiting ones
with an open pause through the open-waits index, in one statement (one read snapshot); the
caller takes the paused ones out of the waiting count."""

INSERT_JOURNAL = """
    INSERT OR IGNORE INTO journal
        (instance_id, work_item_id, attempt, step_id, outcome, output, error, recorded_at,
         revision, seq)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
            coalesce(?10, (SELECT ifnull(max(seq), 0) + 1 FROM journal WHERE instance_id = ?1)))
"""
"""An entry of the audit log; the first record of an attempt is kept. Its ``seq`` is made of
the snapshot revision it was written with (``journal_rows``); one written with none (the store's
API, never the engine) is numbered after its run's last entry, which reads its run's rows."""

SEQ_SHIFT = 20
"""A journal entry's ``seq``: its revision shifted by this, plus its place among the entries of
its run written with that revision (fewer than 2**20 in one commit)."""
JOURNAL_COLUMNS = (
    "seq, instance_id, outcome, work_item_id, step_id, attempt, recorded_at, revision, output, "
    "error"
)
INSERT_SPANS = "INSERT INTO audit (trace_id, revision, spans) VALUES (?, ?, ?)"
"""The spans of one commit of a run (a second row for one revision is refused)."""
SELECT_SPANS = (
    "SELECT revision, spans FROM audit WHERE trace_id = ? AND revision >= ? "
    "ORDER BY revision LIMIT ?"
)
UPSERT_TIMER = """
    INSERT INTO timers (timer_id, instance_id, due_at, kind, payload) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (timer_id) DO UPDATE SET
        instance_id = excluded.instance_id, due_at = excluded.due_at,
        kind = excluded.kind, payload = excluded.payload
"""
DELETE_TIMER = "DELETE FROM timers WHERE timer_id = ?"
UPSERT_WAIT = f"""
    INSERT INTO waits ({WAIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (wait_id) DO UPDATE SET
        instance_id = excluded.instance_id, kind = excluded.kind, key = excluded.key,
        workflow = excluded.workflow, step = excluded.step, created_at = excluded.created_at,
        expires_at = excluded.expires_at, data = excluded.data, ended = excluded.ended
"""
END_WAIT = "UPDATE waits SET ended = 1 WHERE wait_id = ?"
DEQUEUE = "DELETE FROM run_queue WHERE instance_id = ?"
ENQUEUE = (
    "INSERT INTO run_queue (queue, instance_id, workflow, payload, queued_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
SELECT_KV = "SELECT value, expires_at FROM kv WHERE namespace = ? AND key = ?"
UPSERT_KV = """
    INSERT INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (namespace, key) DO UPDATE SET
        value = excluded.value, expires_at = excluded.expires_at
"""
UPSERT_LEASE = f"""
    INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (scope) DO UPDATE SET
        owner = excluded.owner, host = excluded.host, pid = excluded.pid,
        acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at,
        expires_at = excluded.expires_at
"""
PRUNE = """
    DELETE FROM instances WHERE instance_id IN (
        SELECT instance_id FROM instances
        WHERE status IN ('completed', 'failed', 'canceled') AND created_at < ?
            AND updated_at < ? AND terminal = 1 AND runnable = 0
            AND instance_id NOT IN (SELECT value FROM json_each(?))
            AND instance_id NOT IN (SELECT key FROM kv WHERE namespace = ?)
        LIMIT ?
    )
"""
"""A page of finished instances that owe nothing more (their hooks called), with their journal,
audit trail, timers and waits (foreign keys cascade), found through the (status, created_at)
index, but those a JSON list of ids keeps (one parameter, however many: SQLite limits the
number of parameters) and those a key of a kv namespace names (in this statement: a key
written before it keeps its instance, as a resume's link does, runtime/pruning.py)."""

VACUUM_SOME = "PRAGMA incremental_vacuum(2000);"

RENEW_LEASE = "UPDATE leases SET renewed_at = ?, expires_at = ? WHERE scope = ? AND owner = ?"
RELEASE_LEASE = "DELETE FROM leases WHERE scope = ? AND owner = ?"
SELECT_LEASE = f"SELECT {LEASE_COLUMNS} FROM leases WHERE scope = ?"


def insert_row(s: SnapshotRecord) -> tuple[Any, ...]:
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
        s.created_at,
        int(s.runnable),
        s.instance_id,
    )


def update_row(s: SnapshotRecord, base: int) -> tuple[Any, ...]:
    return (
        s.status,
        int(s.terminal),
        s.revision,
        s.updated_at,
        s.body,
        int(s.runnable),
        s.instance_id,
        base,
    )


def body_row(s: SnapshotRecord, base: int) -> tuple[Any, ...]:
    return (
        s.revision,
        s.updated_at,
        s.body,
        s.instance_id,
        base,
        s.status,
        int(s.terminal),
        int(s.runnable),
    )


def journal_rows(journal: list[tuple[JournalEntry, int | None]]) -> list[tuple[Any, ...]]:
    """The rows of a batch's journal entries, each with its ``seq``: ``revision << SEQ_SHIFT``
    plus its place among its run's entries of that revision, so that a run's entries number in
    the order they were written without a look at what it wrote before (the revision grows by
    one a commit); None for an entry with no revision (``INSERT_JOURNAL`` numbers it)."""
    rows: list[tuple[Any, ...]] = []
    places: dict[tuple[str, int], int] = {}
    for j, revision in journal:
        seq = None
        if revision is not None:
            key = (j.instance_id, revision)
            place = places[key] = places.get(key, -1) + 1
            seq = (revision << SEQ_SHIFT) + place
        rows.append(
            (
                j.instance_id,
                j.work_item_id,
                j.attempt,
                j.step_id,
                j.outcome,
                j.output,
                j.error,
                j.recorded_at,
                revision,
                seq,
            )
        )
    return rows


def timer_row(t: TimerRecord) -> tuple[Any, ...]:
    return (t.timer_id, t.instance_id, t.due_at, t.kind, t.payload)


def wait_row(w: WaitRecord) -> tuple[Any, ...]:
    return (
        w.wait_id,
        w.instance_id,
        w.kind,
        w.key,
        w.workflow,
        w.step,
        w.created_at,
        w.expires_at,
        w.data,
        int(w.ended),
    )


def lease_row(lease: LeaseRecord) -> tuple[Any, ...]:
    return (
        lease.scope,
        lease.owner,
        lease.host,
        lease.pid,
        lease.acquired_at,
        lease.renewed_at,
        lease.expires_at,
    )


def snapshot_of(row: Any) -> SnapshotRecord:
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
        created_at=row[9],
        runnable=bool(row[10]),
    )


def timer_of(row: Any) -> TimerRecord:
    return TimerRecord(
        timer_id=row[0], instance_id=row[1], due_at=row[2], kind=row[3], payload=row[4]
    )


def wait_of(row: Any) -> WaitRecord:
    return WaitRecord(
        wait_id=row[0],
        instance_id=row[1],
        kind=row[2],
        key=row[3],
        workflow=row[4],
        step=row[5],
        created_at=row[6],
        expires_at=row[7],
        data=row[8],
        ended=bool(row[9]),
    )


def queued_of(row: Any) -> QueuedRun:
    return QueuedRun(
        seq=row[0],
        queue=row[1],
        instance_id=row[2],
        workflow=row[3],
        payload=row[4],
        queued_at=row[5],
    )


def lease_of(row: Any) -> LeaseRecord:
    return LeaseRecord(
        scope=row[0],
        owner=row[1],
        host=row[2],
        pid=row[3],
        acquired_at=row[4],
        renewed_at=row[5],
        expires_at=row[6],
    )


def journal_of(row: Any) -> JournalEntry:
    return JournalEntry(
        instance_id=row[0],
        work_item_id=row[1],
        attempt=row[2],
        step_id=row[3],
        outcome=row[4],
        output=row[5],
        error=row[6],
        recorded_at=row[7],
    )


def journal_record_of(row: Any) -> JournalRecord:
    return JournalRecord(
        seq=row[0],
        instance_id=row[1],
        kind=row[2],
        element=row[3],
        step=row[4],
        attempt=row[5],
        at=row[6],
        revision=row[7],
        output=row[8],
        error=row[9],
    )


def in_flight_of(rows: Iterable[Any]) -> dict[tuple[str, str], int]:
    """(workflow, status) -> runs, from the rows of ``COUNT_IN_FLIGHT`` (either dialect's)."""
    counts: dict[tuple[str, str], int] = {}
    for workflow, status, count in rows:
        counts[workflow, status] = counts.get((workflow, status), 0) + int(count)
    for (workflow, status), count in list(counts.items()):
        if status == "paused":  # also counted as waiting by the first half of the query
            counts[workflow, "waiting"] -= count
            if not counts[workflow, "waiting"]:
                del counts[workflow, "waiting"]
    return counts


def page_within(
    columns: str,
    table: str,
    *,
    key: str,
    size: str,
    where: str,
    order: str,
    limit: str,
    budget: str,
    scan: str | None = None,
) -> str:
    """A page of ``table``'s rows (``where``, ``order``, at most ``limit``) that ends once the
    ``size`` of their data reaches ``budget``, the row that reaches it the last (never none):
    the page's keys first, with the running total of their sizes (``length()`` of a blob reads
    its header, not the blob), then the rows of those within the budget. ``limit`` and
    ``budget`` are the statement's placeholders (SQLite's ``?``, PostgreSQL's ``$n``, in that
    order); ``scan``: how the keys are read (a table with an index named), ``table`` if None."""
    return (
        f"WITH page AS (SELECT {key}, SUM({size}) OVER "
        f"({order} ROWS UNBOUNDED PRECEDING) - {size} AS before_it "
        f"FROM {scan or table}{where} {order} LIMIT {limit}) "
        f"SELECT {columns} FROM {table} WHERE {key} IN "
        f"(SELECT {key} FROM page WHERE before_it < {budget} OR before_it = 0) {order}"
    )

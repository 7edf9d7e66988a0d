"""The SQL the PostgreSQL store runs, and its rows as arguments (the row-to-record mappings are
``_sql``'s: an asyncpg record is read by position like a SQLite row).

A batch writes each kind of row in one statement over arrays (``unnest``), so a group commit
costs a few round trips however many instances it holds. Snapshot statements return the ids
they wrote: an id missing from the answer was refused (a stored id, a queued one, a revision
that moved on, or an instance another process owns now).

Instance ownership (several processes on one database): a snapshot that leaves its instance
with work to run (``runnable``) is written with the writing process as its ``owner``; one that
only waits or has finished is written with no owner, so any process may claim the instance when
something wakes it, and nothing extra is written when an instance leaves memory. A write is
fenced: it replaces a row only if the row has no owner or is the writer's own.
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.messages import JournalEntry, SnapshotRecord, TimerRecord, WaitRecord
from cronflow_actors.store._sql import (
    JOURNAL_COLUMNS,
    LEASE_COLUMNS,
    QUEUE_COLUMNS,
    SNAPSHOT_COLUMNS,
    TIMER_COLUMNS,
    WAIT_COLUMNS,
)

__all__ = [
    "DB_NOW",
    "JOURNAL_COLUMNS",
    "LEASE_COLUMNS",
    "QUEUE_COLUMNS",
    "SNAPSHOT_COLUMNS",
    "TIMER_COLUMNS",
    "WAIT_COLUMNS",
]

DB_NOW = "extract(epoch from clock_timestamp())"
"""The database's clock: every process of a cluster measures leases by the same one."""

INSERT_SNAPSHOTS = f"""
    INSERT INTO instances ({SNAPSHOT_COLUMNS}, owner)
    SELECT u.*, CASE WHEN u.runnable THEN $12::text END
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::int[],
                  $7::float8[], $8::text[], $9::bytea[], $10::float8[], $11::bool[])
           AS u(instance_id, workflow, version, status, terminal, revision, updated_at,
                parent_id, body, created_at, runnable)
     WHERE NOT EXISTS (SELECT 1 FROM run_queue AS q WHERE q.instance_id = u.instance_id)
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING instance_id, txid_current()
"""
"""Each row inserted, with the transaction's id (asked after if the connection is lost as it
commits: ``postgres_reconnect.py``), which costs no round trip of its own."""

UPDATE_SNAPSHOTS = """
    UPDATE instances AS i
       SET status = u.status, terminal = u.terminal, revision = u.revision,
           updated_at = u.updated_at, body = u.body, runnable = u.runnable,
           owner = CASE WHEN u.runnable THEN $9::text END
      FROM unnest($1::text[], $2::text[], $3::bool[], $4::int[], $5::float8[], $6::bytea[],
                  $7::bool[], $8::int[])
           AS u(instance_id, status, terminal, revision, updated_at, body, runnable, base)
     WHERE i.instance_id = u.instance_id AND i.revision = u.base
       AND (i.owner IS NULL OR $9::text IS NULL OR i.owner = $9::text)
    RETURNING i.instance_id, txid_current()
"""

INSERT_JOURNAL = """
    INSERT INTO journal
        (instance_id, work_item_id, attempt, step_id, outcome, output, error, recorded_at, revision)
    SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bytea[],
                         $7::text[], $8::float8[], $9::int[])
    ON CONFLICT (instance_id, work_item_id, attempt) DO NOTHING
"""

INSERT_SPANS = """
    INSERT INTO audit (trace_id, revision, spans)
    SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])
"""
"""The spans of each commit of a batch (a second row for one revision is refused)."""
SELECT_SPANS = (
    "SELECT revision, spans FROM audit WHERE trace_id = $1 AND revision >= $2 "
    "ORDER BY revision LIMIT $3"
)
UPSERT_TIMERS = f"""
    INSERT INTO timers ({TIMER_COLUMNS})
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::bytea[])
    ON CONFLICT (timer_id) DO UPDATE SET
        instance_id = excluded.instance_id, due_at = excluded.due_at,
        kind = excluded.kind, payload = excluded.payload
"""
DELETE_TIMERS = "DELETE FROM timers WHERE timer_id = ANY($1::text[])"

UPSERT_WAITS = f"""
    INSERT INTO waits ({WAIT_COLUMNS})
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::float8[], $8::float8[], $9::bytea[], $10::bool[])
    ON CONFLICT (wait_id) DO UPDATE SET
        instance_id = excluded.instance_id, kind = excluded.kind, key = excluded.key,
        workflow = excluded.workflow, step = excluded.step, created_at = excluded.created_at,
        expires_at = excluded.expires_at, data = excluded.data, ended = excluded.ended
"""
END_WAITS = "UPDATE waits SET ended = TRUE WHERE wait_id = ANY($1::text[])"
DEQUEUE = "DELETE FROM run_queue WHERE instance_id = ANY($1::text[])"
ENQUEUE = (
    "INSERT INTO run_queue (queue, instance_id, workflow, payload, queued_at) "
    "SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS "
    "(SELECT 1 FROM instances WHERE instance_id = $2) RETURNING seq"
)
UPSERT_KV = """
    INSERT INTO kv (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (namespace, key) DO UPDATE SET
        value = excluded.value, expires_at = excluded.expires_at
"""
SETDEFAULT_KV = """
    INSERT INTO kv (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (namespace, key) DO UPDATE SET
        value = excluded.value, expires_at = excluded.expires_at
        WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= $5
    RETURNING value
"""
"""``kv_setdefault``: set unless a live value is there; no row back when one is (the conflict
locks that row, which the same transaction then reads)."""
PRUNE = """
    DELETE FROM instances WHERE instance_id IN (
        SELECT instance_id FROM instances
        WHERE status IN ('completed', 'failed', 'canceled') AND created_at < $1
            AND updated_at < $1 AND terminal AND NOT runnable
            AND NOT (instance_id = ANY($3::text[]))
            AND NOT EXISTS (
                SELECT 1 FROM kv WHERE kv.namespace = $4 AND kv.key = instances.instance_id
            )
        LIMIT $2
    )
"""
KEEPING = "SELECT pg_advisory_xact_lock(hashtext('cronflow-keep:' || $1))"
"""Taken by a ``Prune`` that keeps the instances a kv namespace's keys name, before its delete,
until its commit; ``KEPT`` (shared) by a ``kv_set`` of such a key (``keeps``). Under READ
COMMITTED a delete reads the keys as its statement began: a key another process committed while
the delete ran was not seen, and the run it kept went (retest3 h42 N1). So a delete begins once
every such set under way has committed, and a set waits for a delete under way to commit."""
KEPT = "SELECT pg_advisory_xact_lock_shared(hashtext('cronflow-keep:' || $1))"
TAKE_TURN = "SELECT pg_try_advisory_lock(hashtext($1))"
"""``PostgresStore.exclusive``: a session's lock, held until its session ends."""
UPSERT_LEASE = f"""
    INSERT INTO leases ({LEASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (scope) DO UPDATE SET
        owner = excluded.owner, host = excluded.host, pid = excluded.pid,
        acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at,
        expires_at = excluded.expires_at
"""
RENEW_LEASE = "UPDATE leases SET renewed_at = $1, expires_at = $2 WHERE scope = $3 AND owner = $4"
RELEASE_LEASE = "DELETE FROM leases WHERE scope = $1 AND owner = $2"
SELECT_LEASE = f"SELECT {LEASE_COLUMNS} FROM leases WHERE scope = $1"

COUNT_IN_FLIGHT = """
SELECT workflow, status, COUNT(*) FROM instances
 WHERE status IN ('running', 'waiting') GROUP BY workflow, status
UNION ALL
SELECT i.workflow, 'paused', COUNT(DISTINCT w.instance_id)
  FROM waits AS w JOIN instances AS i ON i.instance_id = w.instance_id
 WHERE w.kind = 'pause' AND NOT w.ended AND i.status = 'waiting'
 GROUP BY i.workflow
"""


def insert_args(snapshots: list[SnapshotRecord], owner: str | None) -> tuple[Any, ...]:
    return (
        [s.instance_id for s in snapshots],
        [s.workflow for s in snapshots],
        [s.version for s in snapshots],
        [s.status for s in snapshots],
        [s.terminal for s in snapshots],
        [s.revision for s in snapshots],
        [s.updated_at for s in snapshots],
        [s.parent_id for s in snapshots],
        [s.body for s in snapshots],
        [s.created_at for s in snapshots],
        [s.runnable for s in snapshots],
        owner,
    )


def update_args(rows: list[tuple[SnapshotRecord, int]], owner: str | None) -> tuple[Any, ...]:
    return (
        [s.instance_id for s, _ in rows],
        [s.status for s, _ in rows],
        [s.terminal for s, _ in rows],
        [s.revision for s, _ in rows],
        [s.updated_at for s, _ in rows],
        [s.body for s, _ in rows],
        [s.runnable for s, _ in rows],
        [base for _, base in rows],
        owner,
    )


def journal_args(entries: list[tuple[JournalEntry, int | None]]) -> tuple[Any, ...]:
    return (
        [j.instance_id for j, _ in entries],
        [j.work_item_id for j, _ in entries],
        [j.attempt for j, _ in entries],
        [j.step_id for j, _ in entries],
        [j.outcome for j, _ in entries],
        [j.output for j, _ in entries],
        [_without_nul(j.error) for j, _ in entries],
        [j.recorded_at for j, _ in entries],
        [revision for _, revision in entries],
    )


def _without_nul(text: str | None) -> str | None:
    """A text column's value as PostgreSQL takes it: a NUL, which its text cannot hold, as the
    four characters ``\\x00`` (a step's error quoting a sender's payload held one, and the
    commit that recorded the failure was refused: the run failed with the store's error, its
    retries and fallback never ran; hostile h33 M1). The snapshot keeps the text as it was."""
    return text.replace("\x00", "\\x00") if text and "\x00" in text else text


def timer_args(timers: list[TimerRecord]) -> tuple[Any, ...]:
    return (
        [t.timer_id for t in timers],
        [t.instance_id for t in timers],
        [t.due_at for t in timers],
        [t.kind for t in timers],
        [t.payload for t in timers],
    )


def wait_args(waits: list[WaitRecord]) -> tuple[Any, ...]:
    return (
        [w.wait_id for w in waits],
        [w.instance_id for w in waits],
        [w.kind for w in waits],
        [w.key for w in waits],
        [w.workflow for w in waits],
        [w.step for w in waits],
        [w.created_at for w in waits],
        [w.expires_at for w in waits],
        [w.data for w in waits],
        [w.ended for w in waits],
    )

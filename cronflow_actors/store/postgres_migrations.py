"""Numbered, append-only schema migrations for the PostgreSQL store.

The same logical schema as the SQLite store's (``_migrations.py``), with numbers of its own: a
PostgreSQL database starts at 1 with everything the SQLite store had reached by then, and grows
only by new migrations at the end. Never edit or renumber one that has shipped. Each migration is
applied in one transaction with its row in ``schema_version``, under an advisory lock, so
processes that start together on a new database migrate it once.
"""

from __future__ import annotations

__all__ = ["MIGRATION_LOCK", "OUTPUTS_ONCE", "POSTGRES_MIGRATIONS", "latest_postgres_version"]

MIGRATION_LOCK = 0x63726F6E666C6F77  # "cronflow": the advisory lock migrations run under

OUTPUTS_ONCE = 6
"""The version from which snapshots write a step's output once: no process of an older
version may run beside it (``processes``, from version 2, says which are live)."""

POSTGRES_MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "instances, journal, timers, waits, queued runs, leases and key-value state",
        (
            """
            CREATE TABLE instances (
                instance_id TEXT PRIMARY KEY,
                workflow    TEXT NOT NULL,
                version     TEXT NOT NULL DEFAULT '',
                status      TEXT NOT NULL,
                terminal    BOOLEAN NOT NULL DEFAULT FALSE,
                revision    INTEGER NOT NULL,
                updated_at  DOUBLE PRECISION NOT NULL,
                parent_id   TEXT,
                body        BYTEA NOT NULL,
                created_at  DOUBLE PRECISION NOT NULL DEFAULT 0,
                runnable    BOOLEAN NOT NULL DEFAULT FALSE
            )
            """,
            "CREATE INDEX instances_runnable ON instances (runnable) WHERE runnable",
            "CREATE INDEX instances_by_created ON instances (created_at, instance_id)",
            """
            CREATE INDEX instances_by_workflow_created
                ON instances (workflow, created_at, instance_id)
            """,
            """
            CREATE INDEX instances_by_status_created
                ON instances (status, created_at, instance_id)
            """,
            """
            CREATE INDEX instances_in_flight ON instances (status, workflow)
                WHERE status IN ('running', 'waiting')
            """,
            """
            CREATE TABLE journal (
                seq          BIGSERIAL PRIMARY KEY,
                instance_id  TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                work_item_id TEXT NOT NULL,
                attempt      INTEGER NOT NULL,
                step_id      TEXT NOT NULL DEFAULT '',
                outcome      TEXT NOT NULL,
                output       BYTEA,
                error        TEXT,
                recorded_at  DOUBLE PRECISION NOT NULL,
                revision     INTEGER,
                UNIQUE (instance_id, work_item_id, attempt)
            )
            """,
            """
            CREATE TABLE timers (
                timer_id    TEXT PRIMARY KEY,
                instance_id TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                due_at      DOUBLE PRECISION NOT NULL,
                kind        TEXT NOT NULL,
                payload     BYTEA NOT NULL
            )
            """,
            "CREATE INDEX timers_by_due ON timers (due_at, timer_id)",
            "CREATE INDEX timers_by_instance ON timers (instance_id)",
            """
            CREATE TABLE waits (
                wait_id     TEXT PRIMARY KEY,
                instance_id TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                kind        TEXT NOT NULL,
                key         TEXT NOT NULL,
                workflow    TEXT NOT NULL,
                step        TEXT NOT NULL,
                created_at  DOUBLE PRECISION NOT NULL,
                expires_at  DOUBLE PRECISION,
                data        BYTEA NOT NULL,
                ended       BOOLEAN NOT NULL DEFAULT FALSE
            )
            """,
            "CREATE INDEX waits_by_instance ON waits (instance_id)",
            "CREATE UNIQUE INDEX waits_tokens ON waits (key) WHERE kind = 'pause'",
            "CREATE INDEX waits_open ON waits (kind, key, created_at, wait_id) WHERE NOT ended",
            """
            CREATE INDEX waits_open_by_time ON waits (kind, created_at, wait_id) WHERE NOT ended
            """,
            """
            CREATE TABLE run_queue (
                seq         BIGSERIAL PRIMARY KEY,
                queue       TEXT NOT NULL,
                instance_id TEXT NOT NULL UNIQUE,
                workflow    TEXT NOT NULL,
                payload     BYTEA NOT NULL,
                queued_at   DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX run_queue_order ON run_queue (queue, seq)",
            """
            CREATE TABLE leases (
                scope       TEXT PRIMARY KEY,
                owner       TEXT NOT NULL,
                host        TEXT NOT NULL,
                pid         INTEGER NOT NULL,
                acquired_at DOUBLE PRECISION NOT NULL,
                renewed_at  DOUBLE PRECISION NOT NULL,
                expires_at  DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE kv (
                namespace  TEXT NOT NULL,
                key        TEXT NOT NULL,
                value      BYTEA NOT NULL,
                expires_at DOUBLE PRECISION,
                PRIMARY KEY (namespace, key)
            )
            """,
            "CREATE INDEX kv_by_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL",
        ),
    ),
    (
        2,
        "several processes: their heartbeats, each instance's owner, work for another process",
        (
            # One row per serve process: its heartbeat renews, in one row, the lease of every
            # instance it owns (an instance's lease lives as long as its owner's row).
            """
            CREATE TABLE processes (
                owner      TEXT PRIMARY KEY,
                host       TEXT NOT NULL,
                pid        INTEGER NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                renewed_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
            """,
            "ALTER TABLE instances ADD COLUMN owner TEXT",
            "CREATE INDEX instances_owned ON instances (owner) WHERE owner IS NOT NULL",
            # Work for an instance another process owns: recorded here, its owner woken by
            # NOTIFY (or its poll), the answer written back to the row for the sender.
            """
            CREATE TABLE inbox (
                id          TEXT PRIMARY KEY,
                target      TEXT NOT NULL,
                sender      TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                body        BYTEA NOT NULL,
                taken       BOOLEAN NOT NULL DEFAULT FALSE,
                done        BOOLEAN NOT NULL DEFAULT FALSE,
                reply       BYTEA,
                created_at  DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX inbox_waiting ON inbox (target, created_at) WHERE NOT taken",
        ),
    ),
    (
        3,
        "the audit trail: the spans of each commit of a run, read back in order",
        (
            # one row per commit, its spans packed (store/_spans.py), as in the SQLite store
            """
            CREATE TABLE audit (
                seq      BIGSERIAL PRIMARY KEY,
                trace_id TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                revision INTEGER NOT NULL,
                spans    BYTEA NOT NULL,
                UNIQUE (trace_id, revision)
            )
            """,
        ),
    ),
    (
        4,
        "queued runs newest first, of every queue or of one workflow (run listings)",
        (
            "CREATE INDEX run_queue_by_time ON run_queue (queued_at, instance_id)",
            "CREATE INDEX run_queue_by_workflow ON run_queue (workflow, queued_at, instance_id)",
        ),
    ),
    (
        5,
        "runs of one workflow in one status, newest first, from an index (run listings)",
        (
            # as the SQLite store's version 8: a listing by both scanned one status's runs
            """
            CREATE INDEX instances_by_workflow_status_created
                ON instances (workflow, status, created_at, instance_id)
            """,
        ),
    ),
    (
        OUTPUTS_ONCE,
        "snapshots write a step's output once (engine/state_body.py), which no older version reads",
        # as the SQLite store's version 9; applied only while no process of an older version
        # is live (postgres.PostgresStore._migrate), as those would read the outputs as None
        (),
    ),
)


def latest_postgres_version() -> int:
    return POSTGRES_MIGRATIONS[-1][0]

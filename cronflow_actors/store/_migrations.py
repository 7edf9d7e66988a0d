"""Numbered, append-only schema migrations for the SQLite store.

Never edit or renumber a migration that has shipped: add a new one at the end. Each migration is
a list of statements applied in one transaction together with its row in ``schema_version``.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "latest_version"]

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "instances, journal, timers and key-value state",
        (
            """
            CREATE TABLE instances (
                instance_id TEXT PRIMARY KEY,
                workflow    TEXT NOT NULL,
                version     TEXT NOT NULL DEFAULT '',
                status      TEXT NOT NULL,
                terminal    INTEGER NOT NULL DEFAULT 0,
                revision    INTEGER NOT NULL,
                updated_at  REAL NOT NULL,
                parent_id   TEXT,
                body        BLOB NOT NULL
            )
            """,
            "CREATE INDEX instances_by_terminal ON instances (terminal, workflow)",
            "CREATE INDEX instances_by_updated ON instances (updated_at)",
            """
            CREATE TABLE journal (
                seq          INTEGER PRIMARY KEY AUTOINCREMENT,
                instance_id  TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                work_item_id TEXT NOT NULL,
                attempt      INTEGER NOT NULL,
                step_id      TEXT NOT NULL DEFAULT '',
                outcome      TEXT NOT NULL,
                output       BLOB,
                error        TEXT,
                recorded_at  REAL NOT NULL,
                UNIQUE (instance_id, work_item_id, attempt)
            )
            """,
            """
            CREATE TABLE timers (
                timer_id    TEXT PRIMARY KEY,
                instance_id TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                due_at      REAL NOT NULL,
                kind        TEXT NOT NULL,
                payload     BLOB NOT NULL
            )
            """,
            "CREATE INDEX timers_by_due ON timers (due_at)",
            "CREATE INDEX timers_by_instance ON timers (instance_id)",
            """
            CREATE TABLE kv (
                namespace  TEXT NOT NULL,
                key        TEXT NOT NULL,
                value      BLOB NOT NULL,
                expires_at REAL,
                PRIMARY KEY (namespace, key)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX kv_by_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL",
        ),
    ),
    (
        2,
        "ownership and passivation: owner lease, wake-up rows, queued runs, run listings",
        (
            "ALTER TABLE instances ADD COLUMN created_at REAL NOT NULL DEFAULT 0",
            "ALTER TABLE instances ADD COLUMN runnable INTEGER NOT NULL DEFAULT 0",
            # Instances written before this version: every unfinished one is loaded at start
            # once (as before), and listed in the order it was last updated.
            "UPDATE instances SET runnable = 1 WHERE terminal = 0",
            "UPDATE instances SET created_at = updated_at",
            # Recovery now reads the runnable instances and listings page by creation time:
            # these two indexes would only cost every snapshot write an index update.
            "DROP INDEX instances_by_terminal",
            "DROP INDEX instances_by_updated",
            "CREATE INDEX instances_runnable ON instances (runnable) WHERE runnable = 1",
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
            CREATE TABLE waits (
                wait_id     TEXT PRIMARY KEY,
                instance_id TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                kind        TEXT NOT NULL,
                key         TEXT NOT NULL,
                workflow    TEXT NOT NULL,
                step        TEXT NOT NULL,
                created_at  REAL NOT NULL,
                expires_at  REAL,
                data        BLOB NOT NULL,
                ended       INTEGER NOT NULL DEFAULT 0
            )
            """,
            "CREATE INDEX waits_by_instance ON waits (instance_id)",
            "CREATE UNIQUE INDEX waits_tokens ON waits (key) WHERE kind = 'pause'",
            """
            CREATE INDEX waits_open ON waits (kind, key, created_at, wait_id) WHERE ended = 0
            """,
            """
            CREATE INDEX waits_open_by_time ON waits (kind, created_at, wait_id) WHERE ended = 0
            """,
            """
            CREATE TABLE run_queue (
                seq         INTEGER PRIMARY KEY AUTOINCREMENT,
                queue       TEXT NOT NULL,
                instance_id TEXT NOT NULL UNIQUE,
                workflow    TEXT NOT NULL,
                payload     BLOB NOT NULL,
                queued_at   REAL NOT NULL
            )
            """,
            "CREATE INDEX run_queue_order ON run_queue (queue, seq)",
            """
            CREATE TABLE leases (
                scope       TEXT PRIMARY KEY,
                owner       TEXT NOT NULL,
                host        TEXT NOT NULL,
                pid         INTEGER NOT NULL,
                acquired_at REAL NOT NULL,
                renewed_at  REAL NOT NULL,
                expires_at  REAL NOT NULL
            )
            """,
        ),
    ),
    (
        3,
        "runs in flight by workflow and status, counted from an index (metrics)",
        (
            # Only unfinished rows are in it, and it covers the count: a scrape counts runs in
            # flight without reading a table row, however many finished ones are stored.
            """
            CREATE INDEX instances_in_flight ON instances (status, workflow)
                WHERE status IN ('running', 'waiting')
            """,
        ),
    ),
    (
        4,
        "the snapshot revision each journal entry was written with (audit trails)",
        ("ALTER TABLE journal ADD COLUMN revision INTEGER",),
    ),
    (
        5,
        "the audit trail: the spans of each commit of a run, read back in order",
        (
            # One row per commit (its spans packed, store/_spans.py), not one per span: the
            # writer's cost stays near the snapshot's. Read by trace in revision order through
            # the unique index; pruned with the run (the foreign key cascades).
            """
            CREATE TABLE audit (
                seq      INTEGER PRIMARY KEY,
                trace_id TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                revision INTEGER NOT NULL,
                spans    BLOB NOT NULL
            )
            """,
            "CREATE UNIQUE INDEX audit_by_trace ON audit (trace_id, revision)",
        ),
    ),
    (
        6,
        "queued runs newest first, of every queue or of one workflow (run listings)",
        (
            "CREATE INDEX run_queue_by_time ON run_queue (queued_at, instance_id)",
            "CREATE INDEX run_queue_by_workflow ON run_queue (workflow, queued_at, instance_id)",
        ),
    ),
    (
        7,
        "the journal kept in its run's key order (one b-tree, no counter)",
        (
            # A step's commit wrote six pages of the log: the run's row, the audit row and its
            # index, the journal row and its index, and the journal's AUTOINCREMENT counter.
            # Keyed by the run (WITHOUT ROWID), the journal is one page, next to the run's
            # earlier rows (run ids grow with time: runtime/ids.py). (The audit trail keyed so
            # too saved a page a commit one run at a time, and cost one at 500 runs in flight:
            # their 300-byte rows, each beside its run's, spread over as many pages as runs,
            # where appended they share the last few; benchmarks/log_pages.py.) A journal
            # entry's seq orders its run's journal: its revision << 20 plus its place among the
            # run's entries of that revision (store/_sql.py); entries written before revisions
            # were kept (version 4) number 1, 2, ... before them.
            """
            CREATE TABLE journal_by_run (
                seq          INTEGER NOT NULL,
                instance_id  TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
                work_item_id TEXT NOT NULL,
                attempt      INTEGER NOT NULL,
                step_id      TEXT NOT NULL DEFAULT '',
                outcome      TEXT NOT NULL,
                output       BLOB,
                error        TEXT,
                recorded_at  REAL NOT NULL,
                revision     INTEGER,
                PRIMARY KEY (instance_id, work_item_id, attempt)
            ) WITHOUT ROWID
            """,
            """
            INSERT INTO journal_by_run (seq, instance_id, work_item_id, attempt, step_id,
                                        outcome, output, error, recorded_at, revision)
            SELECT CASE WHEN revision IS NULL
                        THEN ROW_NUMBER() OVER (PARTITION BY instance_id, revision ORDER BY seq)
                        ELSE (revision << 20)
                             + ROW_NUMBER() OVER (PARTITION BY instance_id, revision ORDER BY seq)
                             - 1
                   END, instance_id, work_item_id, attempt, step_id, outcome, output, error,
                   recorded_at, revision
              FROM journal
            """,
            "DROP TABLE journal",
            "ALTER TABLE journal_by_run RENAME TO journal",
        ),
    ),
    (
        8,
        "runs of one workflow in one status, newest first, from an index (run listings)",
        (
            # GET /runs?workflow=&status= walked every run of the status and filtered the
            # workflow row by row (0.36 s on 100,000 runs, and a few such clients held every
            # read back: hostile h24 M1). Written when a run starts and when its status
            # changes (next to its flow's newest runs: appended, at many runs in flight).
            """
            CREATE INDEX instances_by_workflow_status_created
                ON instances (workflow, status, created_at, instance_id)
            """,
        ),
    ),
    (
        9,
        "snapshots write a step's output once (engine/state_body.py), which no older version reads",
        # No statement: the version alone keeps an older cronflow-actors from opening a file
        # whose snapshots it would read with those outputs None.
        (),
    ),
)


def latest_version() -> int:
    return MIGRATIONS[-1][0]

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
)


def latest_version() -> int:
    return MIGRATIONS[-1][0]

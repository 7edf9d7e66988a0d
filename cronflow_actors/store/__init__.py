"""Persistence: the ``Store`` protocol, the SQLite store and its in-memory twin.

Each instance's snapshot is its source of truth; its journal is an append-only audit log of what
happened to it (``Store.read_journal``), never read to recover (``_protocol.py`` says more).
"""

from cronflow_actors.store._migrations import MIGRATIONS, latest_version
from cronflow_actors.store._protocol import MISSING, JournalRecord, Store, StoreStatistics
from cronflow_actors.store.memory import MemoryStore, prunable
from cronflow_actors.store.sqlite import SYNCHRONOUS_LEVELS, SQLiteStore

__all__ = [
    "MIGRATIONS",
    "MISSING",
    "SYNCHRONOUS_LEVELS",
    "JournalRecord",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "StoreStatistics",
    "latest_version",
    "prunable",
]

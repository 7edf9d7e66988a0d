"""Persistence: the ``Store`` protocol, the SQLite store and its in-memory twin."""

from cronflow_actors.store._migrations import MIGRATIONS, latest_version
from cronflow_actors.store._protocol import MISSING, Store, StoreStatistics
from cronflow_actors.store.memory import MemoryStore
from cronflow_actors.store.sqlite import SYNCHRONOUS_LEVELS, SQLiteStore

__all__ = [
    "MIGRATIONS",
    "MISSING",
    "SYNCHRONOUS_LEVELS",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "StoreStatistics",
    "latest_version",
]

"""From a ``db`` setting to a store: ``":memory:"`` is the in-memory twin, anything else a file."""

from __future__ import annotations

import os
from pathlib import Path

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.store import MemoryStore, SQLiteStore, Store

__all__ = ["open_store", "store_for"]


def store_for(db: str | os.PathLike[str], *, synchronous: str = "FULL") -> Store:
    """The store a ``db`` setting names, not yet opened.

    ``":memory:"`` gives a ``MemoryStore`` (nothing survives the process); a path gives a
    ``SQLiteStore`` on that file, whose folder must exist.
    """
    if isinstance(db, str) and db == ":memory:":
        return MemoryStore()
    if not isinstance(db, str | os.PathLike) or not os.fspath(db):
        raise ConfigurationError("db", db, "':memory:' or the path of a SQLite database file")
    folder = Path(db).expanduser().resolve().parent
    if not folder.is_dir():
        raise ConfigurationError("db", os.fspath(db), f"a file in an existing folder ({folder})")
    return SQLiteStore(Path(db).expanduser(), synchronous=synchronous)


async def open_store(db: str | os.PathLike[str], *, synchronous: str = "FULL") -> Store:
    """Open the store a ``db`` setting names, creating and migrating a SQLite file as needed."""
    store = store_for(db, synchronous=synchronous)
    await store.open()
    return store

"""SQLiteStore: the embedded, durable store on aiosqlite.

One writer connection and one reader connection, in WAL mode, so reads never see a transaction
that is not committed and never wait for the writer. This module opens, checks and closes the
database and hands each write to the group-commit writer (``_writer.py``, what it is given in
``_ops.py``); the queries are in ``_reads.py`` (run on the reader connection's thread, never on
the event loop), the shared statements and row mappings in ``_sql.py``, the schema in
``_migrations.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from cronflow_actors.errors import (
    ConfigurationError,
    LeaseHeldError,
    SchemaVersionError,
    StoreClosedError,
)
from cronflow_actors.store._migrations import MIGRATIONS, latest_version
from cronflow_actors.store._ops import (
    FileGoneError,
)
from cronflow_actors.store._protocol import (
    CommitObserver,
)
from cronflow_actors.store._reads import SQLiteReads
from cronflow_actors.store._writer import GroupWriter
from cronflow_actors.store._writes import GroupWrites
from cronflow_actors.store.turns import file_turn

__all__ = ["SQLiteStore"]

_LEASES = 2
"""The schema version that made the ``leases`` table: from it on, an upgrade waits for the
runtime that owns the file."""

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")

WAL_AUTOCHECKPOINT = 4000
"""Pages in the log past which the writer's commit copies the log into the file (a checkpoint;
SQLite's default is 1000), for a file database. The commit that crosses it waits for the copy:
a three-step run writes some 36 pages, so at 1000 about one run in 28 carried a checkpoint
(1,255 pages: 1.35 ms, measured), more than the 1% its 99th percentile leaves out; at 4000 one
run in 110 (5,057 pages: 2.7 ms). A page rewritten while it waits in the log is copied once,
so the copying a run costs halves (39 -> 19 us a run, runs one at a time). The log file keeps
its largest size: some 20 MB instead of 5."""

logger = logging.getLogger(__name__)


def _identity(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


_decode_value = msgspec.msgpack.Decoder().decode


_BUSY = 5
"""SQLite's primary code for a lock another connection keeps past the busy timeout."""

_NOT_OPENABLE = frozenset({3, 8, 14, 26})
"""SQLite's primary codes for a file that cannot be a database here: SQLITE_PERM, _READONLY,
_CANTOPEN, _NOTADB (a setting to change, said with the file)."""


class SQLiteStore(GroupWrites, SQLiteReads):
    """The durable store on one SQLite file (WAL, ``BEGIN IMMEDIATE``, group commit).

    ``synchronous`` is SQLite's durability level: ``FULL`` (default) survives power loss,
    ``NORMAL`` survives a process crash but may lose the last commits on power loss.
    ``":memory:"`` gives a private in-memory database (not durable; for tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        max_batch: int = 10_000,
    ) -> None:
        level = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if level not in SYNCHRONOUS_LEVELS:
            raise ConfigurationError("synchronous", synchronous, f"one of {SYNCHRONOUS_LEVELS}")
        if not isinstance(busy_timeout, int | float) or busy_timeout < 0:
            raise ConfigurationError("busy_timeout", busy_timeout, "a number of seconds >= 0")
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigurationError("max_batch", max_batch, "a whole number >= 1")
        self.path = os.fspath(path)
        self.synchronous: str = level
        self.busy_timeout = float(busy_timeout)
        self.max_batch = max_batch
        self._in_memory = self.path == ":memory:"
        self._target = (
            f"file:cronflow-{uuid.uuid4().hex}?mode=memory&cache=shared"
            if self._in_memory
            else self.path
        )
        self._writer: GroupWriter | None = None
        self._identity: tuple[int, int] | None = None
        self._writer_connection: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._closing = False
        self._observer: CommitObserver | None = None

    def exclusive(
        self, name: str, waiting: Callable[[], None]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """A lock file beside the database (``store/turns.py``), named by the file's own path:
        a symlink to it had a lock of its own, and two prunes ran at once (retest h45 N1);
        none in memory."""
        if self._in_memory:
            return contextlib.nullcontext()
        return file_turn(f"{Path(self.path).expanduser().resolve()}-{name}.lock", waiting)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- lifecycle --------------------------------------------------------------------------------

    async def _connect(self, read_only: bool = False) -> aiosqlite.Connection:
        """A connection to the file, with the store's pragmas (``read_only``: one SQLite opens
        read-only, ``open_to_read``)."""
        target = self._read_only_uri() if read_only else self._target
        connection = await aiosqlite.connect(
            target, isolation_level=None, uri=read_only or self._in_memory
        )
        try:
            await connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            await connection.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            await connection.close()  # its thread would outlive the failed open
            raise
        return connection

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self._closing:
            raise StoreClosedError(repr(self), "reopen a closed store (create a new one)")
        try:
            await self._open()
        except sqlite3.DatabaseError as error:
            code = getattr(error, "sqlite_errorcode", 0) & 0xFF
            if code == _BUSY:  # a raw traceback, or "the disk", said it (devx h43 F3)
                expected = (
                    f"a database no other process keeps locked; SQLite said: {error} (a "
                    "sqlite3 shell or another tool holds a transaction open on it, or another "
                    "program writes it): open it again once that lock is released"
                )
                raise ConfigurationError("db", self.path, expected) from error
            if code not in _NOT_OPENABLE:
                raise  # I/O, a full disk: not a setting to change
            expected = (
                f"a SQLite database this process can open and write; SQLite said: {error} "
                "(check that the path names a cronflow-actors database or a new file, and that "
                "the file and its folder are writable: SQLite adds -wal and -shm files beside it)"
            )
            raise ConfigurationError("db", self.path, expected) from error

    async def _open(self) -> None:
        connection = await self._connect()
        try:
            if not self._in_memory:
                # A new file frees the pages of pruned runs as it goes (incremental vacuum);
                # this must be said before its first table. An older file reuses them instead.
                tables = {
                    str(row[0])
                    for row in await connection.execute_fetchall(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                    )
                }
                if not tables:
                    await connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
                elif "schema_version" not in tables:  # another program's: its file was given
                    # cronflow's tables and WAL, without a word (devx h43 F15)
                    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
                    raise ConfigurationError(
                        "db",
                        self.path,
                        "a cronflow-actors database or a new file; this one is another "
                        f"program's (its tables: {shown}), which is left as it is: give the "
                        "runtime a file of its own",
                    )
                async with connection.execute("PRAGMA journal_mode = WAL") as cursor:
                    row = await cursor.fetchone()
                if row is None or str(row[0]).lower() != "wal":
                    raise ConfigurationError(
                        "journal_mode", row, "WAL (the file system refused it)"
                    )
            await connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            await connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
            await self._migrate(connection)
            reader = await self._connect()
        except BaseException:
            await connection.close()
            raise
        self._writer_connection = connection
        self._reader = reader
        check = None
        if not self._in_memory:
            self._identity = _identity(self.path)
            check = self._check_file
        self._writer = GroupWriter(connection, self.path, self.max_batch, check_file=check)
        self._writer.observer = self._observer
        self._writer.start()

    async def open_to_read(self) -> None:
        """Open for reads only (``cronflow-actors runs --db``): one connection that SQLite
        opens read-only, no writer, no migration and no checkpoint at the close (the log of a
        crashed owner stays its own), so a read writes nothing to the file; ``stored_version``
        says first whether the schema is this version's."""
        if self._reader is not None:
            return
        if self._closing:
            raise StoreClosedError(repr(self), "reopen a closed store (create a new one)")
        self._reader = await self._connect(read_only=True)

    def _read_only_uri(self) -> str:
        """The file as a URI SQLite opens read-only (it writes nothing to it)."""
        return f"{Path(self.path).expanduser().resolve().as_uri()}?mode=ro"

    def latest_version(self) -> int:
        """The schema version this version of cronflow-actors writes and reads."""
        return latest_version()

    async def stored_version(self) -> int | None:
        """The schema version the file holds, read without opening the store, on a read-only
        connection (nothing is created or upgraded): None for a file that is not a
        cronflow-actors database; ``ConfigurationError`` for a path that is no readable file."""
        return await asyncio.to_thread(self._stored_version)

    def _stored_version(self) -> int | None:
        path = Path(self.path).expanduser()
        if self._in_memory or not path.is_file():
            raise ConfigurationError(
                "db",
                self.path,
                "the path of an existing database file (the one 'serve --db' uses; default "
                "cronflow.db), or a postgresql:// URL",
            )
        try:
            connection = sqlite3.connect(self._read_only_uri(), uri=True)
        except sqlite3.Error as error:
            raise ConfigurationError(
                "db", self.path, f"a file this user can read ({error})"
            ) from None
        try:
            row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
        except sqlite3.DatabaseError as error:
            code = getattr(error, "sqlite_errorcode", 0) & 0xFF
            if code == 26 or "no such table" in str(error):  # SQLITE_NOTADB, or no schema
                return None
            raise ConfigurationError(
                "db", self.path, f"a database this user can read now (SQLite said: {error})"
            ) from None
        finally:
            connection.close()
        return int(row[0]) if row[0] is not None else None

    def _check_file(self) -> None:
        """``FileGoneError`` if the database file is not the one this store opened."""
        try:
            found = _identity(self.path)
        except FileNotFoundError:
            raise FileGoneError(f"the database file {self.path} was removed") from None
        if found != self._identity:
            raise FileGoneError(f"the database file {self.path} was replaced by another file")

    def _broken(self, error: sqlite3.DatabaseError) -> BaseException:
        """A read found the file broken: the store fails as its writer would (it can no longer
        keep what it acknowledges), so the runtime stops taking work, says why and exits."""
        writer = self._writer
        if writer is None:
            return error
        if writer.failure is not None:
            return writer.failure
        return writer.fail(FileGoneError(f"the database file {self.path} is broken: {error}"))

    def write_waiting(self) -> float:
        """0: the lease's renewal waits in the same writer, and says a late one."""
        return 0.0

    async def check(self) -> None:
        writer = self._writer
        if writer is None or self._closing:
            raise StoreClosedError(repr(self), "check the store")
        if writer.failure is None and not self._in_memory:
            try:
                self._check_file()
            except FileGoneError as gone:
                writer.fail(gone)
        if writer.failure is not None:
            raise writer.failure

    async def _migrate(self, connection: aiosqlite.Connection) -> None:
        try:  # a read first: a file at the latest version opens without the write lock (its
            # owner may hold it: a standby opens beside a runtime paused inside a write)
            async with connection.execute("SELECT MAX(version) FROM schema_version") as cursor:
                row = await cursor.fetchone()
            if row is not None and row[0] == latest_version():
                return
        except sqlite3.OperationalError:
            pass  # no such table: a new file
        await connection.execute("BEGIN IMMEDIATE")
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            async with connection.execute("SELECT MAX(version) FROM schema_version") as cursor:
                row = await cursor.fetchone()
            current = (row[0] if row else None) or 0
            if current > latest_version():
                raise SchemaVersionError(self.path, current, latest_version())
            if current >= _LEASES:
                await self._refuse_if_owned(connection)
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    await connection.execute(statement)
                await connection.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (version, description, time.time()),
                )
            await connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                await connection.execute("ROLLBACK")
            raise

    async def _refuse_if_owned(self, connection: aiosqlite.Connection) -> None:
        """``LeaseHeldError`` when a runtime holds the database's lease: one of the version
        that wrote the file, still writing, which the new schema would break under it (a
        journal insert without the column version 7 needs was dropped silently). Its stop
        releases the lease; a supervisor's ``--wait-for-lease`` waits for that, then upgrades."""
        async with connection.execute(
            "SELECT owner, host, pid, expires_at FROM leases WHERE scope = 'runtime'"
        ) as cursor:
            row = await cursor.fetchone()
        now = time.time()
        if row is not None and row[3] > now:
            owner, host, pid, expires_at = row
            raise LeaseHeldError(self.path, owner, host, pid, expires_at - now, upgrade=True)

    async def _close(self) -> None:
        """A broken database (removed, full, read-only) does not keep the close from ending:
        what cannot be done is logged."""
        self._closing = True
        writer, connection, reader = self._writer, self._writer_connection, self._reader
        if writer is None or connection is None:  # never opened, or opened to read
            self._reader = None
            if reader is not None:
                await self._close_steps([reader.close])
            return
        await writer.close()
        self._writer = self._writer_connection = self._reader = None
        steps: list[Any] = []
        if not self._in_memory and writer.failure is None:
            steps.append(lambda: connection.execute("PRAGMA wal_checkpoint(PASSIVE)"))
        if reader is not None:
            steps.append(reader.close)
        steps.append(connection.close)
        await self._close_steps(steps)

"""``cronflow-actors db backup``: a consistent copy of a SQLite database, safe while ``serve``
runs on it.

A copy of the database file alone misses what is still in its write-ahead log (``-wal``): the
commits since the last checkpoint, minutes of work. This copies through SQLite's online backup
(one read transaction: the database as of one commit, the log included), into a file beside the
target that is renamed onto it once it is complete and on disk, checked (``quick_check``), and
with the live runtime's lease left out: a backup is owned by no one, so a runtime restored onto
it starts at once (the lease would have named the process that was running when it was taken).
A PostgreSQL database is backed up with its own tools (``pg_dump``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from pathlib import Path

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.runtime.database import file_path

__all__ = ["backup"]


def backup(db: str, target: str, named_by: str) -> str:
    """Back ``db`` up to ``target`` (which must not exist); what was done, to print."""
    if "://" in db:
        raise ConfigurationError(
            named_by,
            db,
            "a SQLite file: back a PostgreSQL database up with pg_dump (pg_dump -Fc DBNAME > "
            "FILE), which is consistent while serve runs; nothing was written",
        )
    copy = file_path(target, "FILE", named="argument")  # ~ too, as --db (retest3 h45 N2)
    if db == ":memory:" or not (source := file_path(db, named_by)).is_file():
        raise ConfigurationError(named_by, db, "the path of an existing database file")
    if not copy.parent.is_dir():
        raise ConfigurationError(
            "FILE", target, "a path in a folder that exists; nothing was written", named="argument"
        )
    if copy.exists() or copy.resolve() == source.resolve():
        raise _taken(target)
    # a name of its own (two backups to one target at once shared one, and each deleted the
    # other's: ops h41 F7), linked onto the target only if nothing is there yet
    part = copy.with_name(f".{copy.name}.{os.getpid()}.{time.monotonic_ns()}.part")
    try:
        _create(part)
        runs = _copy(source, part)
        os.chmod(part, stat.S_IMODE(source.stat().st_mode))  # written: its mode now
        _place(part, copy)
    except FileExistsError:  # another backup got there first
        raise _taken(target) from None
    except (OSError, sqlite3.Error) as failed:  # a traceback, exit 1, for a full disk (ops h41 F1)
        raise ConfigurationError(
            "FILE",
            target,
            f"a path this account can write to, on a file system with room for the copy (it "
            f"failed: {type(failed).__name__}: {failed}); nothing was written",
            named="argument",
        ) from None
    finally:
        with contextlib.suppress(OSError):  # (a read-only file system: none was made)
            part.unlink(missing_ok=True)
    _sync_directory(copy)
    size = copy.stat().st_size
    return f"backed up {db} to {target}: {runs} run(s), {size:,} bytes, checked"


def _copy(source: Path, part: Path) -> int:
    """Copy ``source`` into ``part`` through the online backup, drop the lease from the copy,
    check it and put it on disk; the number of runs it holds."""
    with sqlite3.connect(source, timeout=30) as reader:
        try:
            ours = _is_ours(reader)
        except sqlite3.DatabaseError as unread:  # not SQLite at all (ops h41 F1)
            raise ConfigurationError(
                "--db", str(source), f"a cronflow-actors database (SQLite says: {unread})"
            ) from None
        if not ours:
            raise ConfigurationError(
                "--db", str(source), "a cronflow-actors database (it has no instances table)"
            )
        writer = sqlite3.connect(part)
        try:
            reader.backup(writer)  # all pages at once: one read transaction, one commit's state
            writer.execute("DELETE FROM leases")  # a backup is owned by no one
            writer.commit()
            writer.execute("PRAGMA journal_mode = DELETE")  # one file, no log beside it
            (verdict,) = writer.execute("PRAGMA quick_check(1)").fetchone()
            if verdict != "ok":  # the pages as the source has them: the source is damaged
                raise ConfigurationError(
                    "--db",
                    str(source),
                    f"a database that passes SQLite's quick_check (its copy failed it: "
                    f"{verdict}); nothing was written",
                )
            (runs,) = writer.execute("SELECT COUNT(*) FROM instances").fetchone()
        finally:
            writer.close()
    with part.open("rb") as written:
        os.fsync(written.fileno())
    return int(runs)


def _place(part: Path, copy: Path) -> None:
    """``part`` as ``copy``, which must not exist (``FileExistsError``): a hard link, which
    fails if it does; a rename where the file system has no links (checked just before)."""
    try:
        os.link(part, copy)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (a network or FUSE file system)
        if copy.exists():
            raise FileExistsError(copy) from None
        os.replace(part, copy)


def _taken(target: str) -> ConfigurationError:
    return ConfigurationError(
        "FILE",
        target,
        "a path where nothing is yet (a backup never writes over a file); nothing was written",
        named="argument",
    )


def _create(part: Path) -> None:
    """``part``, empty (an empty file is an empty SQLite database), readable by this account
    alone while it is written; it takes the source's mode once written: the copy holds its
    resume tokens, payloads and outputs, and was readable by every local user whatever the
    source's mode (the umask's 0644: ops h41 F2), and a read-only mode given first kept it from
    being written (retest h41 N2)."""
    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _is_ours(connection: sqlite3.Connection) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'instances'"
    ).fetchone()
    return found is not None


def _sync_directory(path: Path) -> None:
    """The rename onto ``path`` is on disk too."""
    handle = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)

"""From a ``db`` setting to a store: ``":memory:"`` is the in-memory twin, a ``postgresql://`` URL
a PostgreSQL database (which several processes may share), anything else a SQLite file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from cronflow_actors.errors import ConfigurationError, LeaseHeldError, SchemaVersionError
from cronflow_actors.store import MemoryStore, SQLiteStore, Store

__all__ = [
    "describe",
    "file_path",
    "migrate_database",
    "open_store",
    "open_store_to_read",
    "open_when_free",
    "store_for",
]


T = TypeVar("T")


def store_for(db: str | os.PathLike[str], *, synchronous: str = "FULL") -> Store:
    """The store a ``db`` setting names, not yet opened.

    ``":memory:"`` gives a ``MemoryStore`` (nothing survives the process); a
    ``postgresql://user@host:port/database`` URL a ``PostgresStore`` (the ``postgres`` extra:
    ``pip install -e '.[postgres]'`` in the checkout); a path gives a ``SQLiteStore`` on that
    file, whose folder must exist.
    """
    if isinstance(db, str) and db == ":memory:":
        return MemoryStore()
    if isinstance(db, str) and "://" in db:
        return _postgres_store(db)
    if not isinstance(db, str | os.PathLike) or not os.fspath(db):
        raise ConfigurationError(
            "db", db, "':memory:', the path of a SQLite database file or a postgresql:// URL"
        )
    path = file_path(db)
    if path.is_dir():  # refused before SQLite tries (and leaves a thread)
        raise ConfigurationError(
            "db", os.fspath(db), "the path of a SQLite database file, not of a folder"
        )
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ConfigurationError("db", os.fspath(db), f"a file in an existing folder ({folder})")
    return SQLiteStore(path, synchronous=synchronous)


def file_path(
    db: str | os.PathLike[str], setting: str = "db", named: str = "setting", source: str = ""
) -> Path:
    """The file a path setting names (a ``db``'s, an ``app``'s), ``~`` expanded as serve and
    the ``db`` commands alike read it (review h45 F9); a ``~user`` no user of the machine has
    is refused, said to come from ``source`` if given (it ended in a traceback: review2 h44
    F6 in a --config file, retest h45 N6 from --db)."""
    try:
        return Path(db).expanduser()
    except RuntimeError:
        came = f" (it came from {source})" if source else ""
        expected = f"a path whose ~user is a user of this machine{came}"
        raise ConfigurationError(setting, os.fspath(db), expected, named=named) from None


async def open_store(db: str | os.PathLike[str], *, synchronous: str = "FULL") -> Store:
    """Open the store a ``db`` setting names, creating and migrating a SQLite file as needed."""
    store = store_for(db, synchronous=synchronous)
    await store.open()
    return store


@runtime_checkable
class _Versioned(Protocol):
    """A store that reads the schema version its database holds without opening it (the SQLite
    and PostgreSQL stores)."""

    async def stored_version(self) -> int | None: ...
    def latest_version(self) -> int: ...
    async def open_to_read(self) -> None: ...


async def open_when_free(
    opening: Callable[[], Awaitable[T]],
    *,
    say: Callable[[LeaseHeldError], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    check: Callable[[], None] = lambda: None,
) -> T:
    """What ``opening()`` gives once no runtime holds the database's lease against it: a runtime of
    the version that wrote it, which its schema's upgrade waits for (``serve`` and ``db migrate``
    with ``--wait-for-lease``). Each refusal's runtime is said once (``say``: a PostgreSQL
    process of an older version renews its lease while it runs, and its refusal came every
    second: retest h41 N1), then asked again within a second; ``check`` may end the wait by
    raising (a stop asked meanwhile)."""
    said: set[str] = set()
    while True:
        try:
            return await opening()
        except LeaseHeldError as held:
            check()
            if held.owner not in said:
                said.add(held.owner)
                say(held)
            await sleep(min(max(held.expires_in, 0.05), 1.0))


async def migrate_database(
    db: str,
    *,
    synchronous: str = "FULL",
    say: Callable[[LeaseHeldError], None] | None = None,
) -> str:
    """Create or upgrade the database ``db`` names (``db migrate``), waiting for the runtime
    whose lease holds it off if ``say`` hears of it; what was done, in a line: upgraded from
    which version, created, or already at this version's (it said "is at schema version 9"
    whether it upgraded or not, devx h43 F8)."""
    first = store_for(db, synchronous=synchronous)
    if not isinstance(first, _Versioned):
        return f"database {db} is in memory: it has no schema to upgrade"
    name = str(getattr(first, "name", db))  # a URL without its password
    try:
        before = await first.stored_version()
    except ConfigurationError:
        before = None  # a new SQLite file (--create)

    def opening() -> Awaitable[Store]:
        return open_store(db, synchronous=synchronous)

    store = await (opening() if say is None else open_when_free(opening, say=say))
    try:
        version = await store.schema_version()  # type: ignore[attr-defined]
    finally:
        await store.close()
    if before is None:
        return f"created database {name} at schema version {version}"
    if before == version:
        return f"database {name} is already at schema version {version}: nothing to upgrade"
    return f"upgraded database {name} from schema version {before} to {version}"


async def open_store_to_read(db: str, *, setting: str = "db") -> Store:
    """Open the store of an existing database to read it (``cli/offline.py``): its reads only,
    no writer (``open_to_read``). Its schema version is read first, so that nothing is created
    or upgraded by a read:
    a path that is not there, a database that is not cronflow-actors', or one an older version
    wrote (``db migrate`` or ``serve`` upgrades it) is a ``ConfigurationError`` naming
    ``setting``; a newer one a ``SchemaVersionError``."""
    store = store_for(db)
    if not isinstance(store, _Versioned):  # ':memory:'
        raise ConfigurationError(setting, db, "a SQLite file or a postgresql:// URL to read")
    name = str(getattr(store, "name", db))  # a URL without its password
    try:
        version = await store.stored_version()
    except ConfigurationError as refused:
        raise ConfigurationError(setting, name, refused.expected) from None
    if version is None:
        raise ConfigurationError(
            setting, name, "a cronflow-actors database (it has no schema_version table)"
        )
    latest = store.latest_version()
    if version < latest:
        raise ConfigurationError(
            setting,
            name,
            f"a database at schema version {latest} (this one is at {version}: an older "
            f"cronflow-actors wrote it); upgrade it first with 'cronflow-actors db migrate "
            f"--db {name}', or start serve on it, which does the same; nothing was changed",
        )
    if version > latest:
        raise SchemaVersionError(name, version, latest)
    await store.open_to_read()
    return store


def _postgres_store(url: str) -> Store:
    """The PostgreSQL store (imported here: asyncpg is an optional dependency)."""
    scheme = url.split("://", 1)[0]
    if scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigurationError(
            "db", url, "a postgresql:// URL, ':memory:' or the path of a SQLite database file"
        )
    try:
        from cronflow_actors.store.postgres import PostgresStore
    except ImportError as missing:
        raise ConfigurationError(
            "db",
            url.rsplit("@", maxsplit=1)[-1],
            f"a database this installation can open: the PostgreSQL store needs asyncpg "
            f"({missing}); pip install -e '.[postgres]' in the cronflow-actors checkout",
        ) from None
    return PostgresStore(url)


def is_database(store: Store, db: str | os.PathLike[str]) -> bool:
    """Whether ``store`` is the database the ``db`` setting names (the same file, however the
    path is written; the same URL)."""
    name = os.fspath(db)
    if isinstance(store, MemoryStore):
        return name == ":memory:"
    if isinstance(store, SQLiteStore):
        if name == ":memory:" or "://" in name:
            return False
        return Path(name).expanduser().resolve() == Path(store.path).expanduser().resolve()
    return getattr(store, "url", None) == name


def describe(store: Store) -> str | None:
    """What database ``store`` is, for a log line (a PostgreSQL URL without its password); None
    for the in-memory store, which keeps nothing past its process."""
    if isinstance(store, MemoryStore):
        return None
    if isinstance(store, SQLiteStore):
        return f"SQLite file {Path(store.path).resolve()} (synchronous {store.synchronous})"
    return f"PostgreSQL {getattr(store, 'name', store)}"

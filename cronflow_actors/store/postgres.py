"""PostgresStore: the store on a PostgreSQL database (asyncpg), which several runtime processes
(on one machine or several) may share.

One writer connection per process, which group-commits its instances' snapshots
(``postgres_writer.py``), a small pool for reads (``postgres_reads.py``), the schema in
``postgres_migrations.py``, and what several processes need of each other (heartbeats, instance
owners, work for another process, wake-ups by NOTIFY) in ``postgres_cluster.py``.

    store = PostgresStore("postgresql://app@db.internal:5432/cronflow")

Durability is the server's: a commit returns once PostgreSQL has it (``synchronous_commit`` as
the server is configured; on by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from cronflow_actors.errors import (
    ConfigurationError,
    LeaseHeldError,
    SchemaVersionError,
    StoreClosedError,
)
from cronflow_actors.store._protocol import (
    CommitObserver,
)
from cronflow_actors.store._writes import GroupWrites
from cronflow_actors.store.postgres_cluster import ClusterOps
from cronflow_actors.store.postgres_migrations import (
    MIGRATION_LOCK,
    OUTPUTS_ONCE,
    POSTGRES_MIGRATIONS,
    latest_postgres_version,
)
from cronflow_actors.store.postgres_reads import PostgresReads
from cronflow_actors.store.postgres_sql import DB_NOW, TAKE_TURN
from cronflow_actors.store.postgres_writer import PostgresWriter
from cronflow_actors.store.turns import taken

__all__ = ["URL_SCHEMES", "PostgresStore", "is_postgres_url"]

logger = logging.getLogger(__name__)

URL_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(db: object) -> bool:
    """Whether a ``db`` setting names a PostgreSQL database (``postgresql://...``)."""
    return isinstance(db, str) and db.split("://", 1)[0].lower() in URL_SCHEMES and "://" in db


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def check_url(url: str) -> None:
    """A clear ``ConfigurationError`` for a URL that cannot name a database."""
    expected = "a URL postgresql://user[:password]@host[:port]/database"
    if not is_postgres_url(url):
        raise ConfigurationError("db", url, expected)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ConfigurationError("db", redacted(url), f"{expected} ({error})") from None
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigurationError("db", redacted(url), f"{expected} (no host)")
    if not parts.path.strip("/"):
        raise ConfigurationError("db", redacted(url), f"{expected} (no database name)")
    if port == 0:
        raise ConfigurationError("db", redacted(url), f"{expected} (port 0)")


class PostgresStore(ClusterOps, GroupWrites, PostgresReads):
    """The durable store on a PostgreSQL database, shareable by several processes.

    ``url``: ``postgresql://user[:password]@host[:port]/database``. ``connect_timeout``:
    seconds to wait for the server at ``open``. ``read_connections``: the read pool's size.
    ``idle_transaction_timeout``: seconds a connection of this store may sit idle inside a
    transaction before the server ends its session (PostgreSQL's
    ``idle_in_transaction_session_timeout``): a process paused in the middle of one (SIGSTOP,
    a frozen VM) would otherwise hold what it locked, and stall every process that writes
    those rows, for as long as it stays paused; ended, its locks go, and the paused process,
    when it wakes, finds its store failed and stops (its lease is gone by then anyway).
    Default: the lease's duration of the runtime that uses the store (``--lease-seconds``),
    5 s without one. ``reconnect_timeout``: seconds the writer tries to connect again when its
    connection is lost (a server restart), writes waiting meanwhile; then the store fails.
    Default: the idle limit, so the lease's duration: a process cut off longer has lost its
    lease, and stops, whatever its connection does (review h40 F2).
    """

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = 10_000,
        connect_timeout: float = 10.0,
        read_connections: int = 4,
        idle_transaction_timeout: float | None = None,
        reconnect_timeout: float | None = None,
    ) -> None:
        check_url(url)
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigurationError("max_batch", max_batch, "a whole number >= 1")
        if not isinstance(connect_timeout, int | float) or connect_timeout <= 0:
            raise ConfigurationError("connect_timeout", connect_timeout, "seconds > 0")
        if not isinstance(read_connections, int) or read_connections < 1:
            raise ConfigurationError("read_connections", read_connections, "a whole number >= 1")
        again = reconnect_timeout
        if again is not None and (
            not isinstance(again, int | float) or isinstance(again, bool) or not 0 <= again < 1e6
        ):
            raise ConfigurationError("reconnect_timeout", again, "seconds >= 0, or None")
        self.reconnect_timeout = again
        idle = idle_transaction_timeout
        if idle is not None and (
            not isinstance(idle, int | float) or isinstance(idle, bool) or idle <= 0
        ):
            raise ConfigurationError("idle_transaction_timeout", idle, "seconds > 0, or None")
        self.idle_transaction_timeout = idle
        """None until a runtime's lease sets its duration (a process paused longer has lost
        its lease anyway); 5 s for a store used without one."""
        self.url = url
        self.name = redacted(url)
        self.max_batch = max_batch
        self.connect_timeout = float(connect_timeout)
        self.read_connections = read_connections
        self._writer: PostgresWriter | None = None
        self._writer_connection: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._beat: asyncpg.Connection | None = None
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closing = False
        self._observer: CommitObserver | None = None

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str, waiting: Callable[[], None]) -> AsyncIterator[None]:
        """A session advisory lock on a connection of its own: the server lets it go with the
        session, a process that died included."""
        connection = await self._connect()
        try:
            await taken(lambda: connection.fetchval(TAKE_TURN, f"cronflow-{name}"), waiting)
            yield
        finally:
            await connection.close()  # (its session's lock with it)

    def __repr__(self) -> str:
        return f"PostgresStore({self.name!r})"

    # -- lifecycle --------------------------------------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        try:
            connection: asyncpg.Connection = await asyncpg.connect(
                self.url, timeout=self.connect_timeout, server_settings=self._limits()
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise ConfigurationError(
                "db",
                self.name,
                f"a PostgreSQL database this process can reach; connecting failed ({reason}): "
                "check the URL (user, host, port, database) and that the server accepts "
                "connections",
            ) from None
        return connection

    def _limits(self) -> dict[str, str]:
        """The session settings of a connection that writes: the server ends its session when
        it sits idle inside a transaction for ``idle_transaction_timeout``. A startup
        parameter, so that it is the session's default (a pooled connection is reset to its
        defaults each time it goes back to the pool)."""
        seconds = self.idle_transaction_timeout or 5.0
        return {"idle_in_transaction_session_timeout": str(max(1, round(seconds * 1000)))}

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self._closing:
            raise StoreClosedError(repr(self), "reopen a closed store (create a new one)")
        connection = await self._connect()
        try:
            await self._migrate(connection)
            pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.read_connections,
                timeout=self.connect_timeout,
                server_settings=self._limits(),  # claims and takeovers write through it
            )
        except BaseException:
            await connection.close()
            raise
        self._writer_connection = connection
        self._pool = pool
        self._writer = PostgresWriter(
            connection,
            self.name,
            self.max_batch,
            connect=self._connect,
            reconnect_for=(
                self.reconnect_timeout
                if self.reconnect_timeout is not None
                else self.idle_transaction_timeout or 5.0
            ),
        )
        self._writer.observer = self._observer
        self._writer.start()

    def latest_version(self) -> int:
        """The schema version this version of cronflow-actors writes and reads."""
        return latest_postgres_version()

    async def stored_version(self) -> int | None:
        """The schema version the database holds, read without opening the store (nothing is
        created or upgraded): None for a database without cronflow-actors' tables."""
        connection = await self._connect()
        try:
            if await connection.fetchval("SELECT to_regclass('schema_version')") is None:
                return None
            version = await connection.fetchval("SELECT MAX(version) FROM schema_version")
        finally:
            await connection.close()
        return int(version) if version is not None else None

    async def open_to_read(self) -> None:
        """Open for reads only (``cronflow-actors runs --db``): a pool of read connections, no
        writer, no migration (``stored_version`` says first whether the schema is this
        version's), so a read-only role, a standby or a non-owner can read."""
        if self._pool is not None:
            return
        if self._closing:
            raise StoreClosedError(repr(self), "reopen a closed store (create a new one)")
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=self.read_connections,
            timeout=self.connect_timeout,
            server_settings={"default_transaction_read_only": "on"},  # the server refuses writes
        )

    async def _migrate(self, connection: asyncpg.Connection) -> None:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            current = await connection.fetchval("SELECT MAX(version) FROM schema_version") or 0
            if current > latest_postgres_version():
                raise SchemaVersionError(self.name, current, latest_postgres_version())
            if 2 <= current < OUTPUTS_ONCE:
                await self._refuse_if_older_live(connection)
            for version, description, statements in POSTGRES_MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    await connection.execute(statement)
                await connection.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES ($1, $2, $3)",
                    version,
                    description,
                    time.time(),
                )

    async def _refuse_if_older_live(self, connection: asyncpg.Connection) -> None:
        """``LeaseHeldError`` while a process of an older version is live in the cluster: it
        would read the snapshots this version writes with a step's outputs None. A rolling
        upgrade to this version stops every older process first."""
        live = await connection.fetchrow(
            f"SELECT owner, host, pid, expires_at - {DB_NOW} FROM processes "
            f"WHERE expires_at > {DB_NOW} ORDER BY started_at LIMIT 1"
        )
        if live is not None:
            owner, host, pid, expires_in = live
            raise LeaseHeldError(self.name, owner, host, pid, expires_in, upgrade=True)

    def write_waiting(self) -> float:
        since = None if self._writer is None else self._writer.since
        return 0.0 if since is None else time.monotonic() - since

    async def check(self) -> None:
        writer = self._writer
        if writer is None or self._closing:
            raise StoreClosedError(repr(self), "check the store")
        if writer.failure is not None:
            raise writer.failure

    async def _close(self) -> None:
        """What cannot be done (a server gone) is logged."""
        self._closing = True
        writer, connection, pool = self._writer, self._writer_connection, self._pool
        listener, self._listener = self._listener, None
        beat, self._beat = self._beat, None
        if beat is not None:
            beat.terminate()  # (only a heartbeat uses it: nothing to finish)
        if self._relisten is not None:
            self._relisten.cancel()
        if writer is None or connection is None:  # never opened, or opened to read
            self._pool = None
            if pool is not None:
                await self._close_steps([pool.close])
            return
        await writer.close()
        self._writer = self._writer_connection = self._pool = None
        steps: list[Any] = [writer.connection.close]  # (a new one, if it connected again)
        if listener is not None:
            steps.append(listener.close)
        if pool is not None:
            steps.append(pool.close)
        await self._close_steps(steps)

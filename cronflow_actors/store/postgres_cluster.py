"""What several runtime processes on one PostgreSQL database need of it, besides the ``Store``
protocol (``PostgresStore`` inherits these).

- Processes: each serve process has a row (owner id, host, pid, expiry) that its heartbeat
  renews; its expiry is the expiry of every instance lease the process holds, so one row write
  renews them all. Times are the database's clock, the one clock every machine shares.
- Instance leases: an instance's ``owner`` is the process that holds it. A process claims an
  instance (to run work for it) when it has no owner, is its own, or its owner's row has
  expired; instances with work to run whose owner died are taken over in batches. Both lock the
  rows ``FOR UPDATE SKIP LOCKED``, so two claimers never wait on each other or take one row
  twice. Snapshot writes are fenced by the owner (``postgres_sql``).
- Work for another process: recorded in ``inbox`` with a NOTIFY to its target; the target
  takes it, carries it out and writes the answer back with a NOTIFY to the sender. Both sides
  also poll, so a lost notification delays work, never loses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from cronflow_actors.errors import StoreClosedError
from cronflow_actors.messages import SnapshotRecord, TimerRecord
from cronflow_actors.store import _sql
from cronflow_actors.store.postgres_sql import DB_NOW, SNAPSHOT_COLUMNS, TIMER_COLUMNS

if TYPE_CHECKING:  # asyncpg is an optional dependency: the runtime imports this module always
    import asyncpg

__all__ = ["GONE_FOR", "WORK_CHANNEL", "Claim", "ClusterOps", "Posted"]

logger = logging.getLogger(__name__)

GONE_FOR = 3600.0
"""Seconds past its lease's expiry that a process's row is kept (``processes`` lists it)."""
WORK_CHANNEL = "cronflow_work"
"""NOTIFY payload: the owner id of the process that has work waiting in the inbox."""
REPLY_CHANNEL = "cronflow_reply"
"""NOTIFY payload: ``<sender> <id>``, an answer the sender waits for."""

_I_COLUMNS = ", ".join(f"i.{c.strip()}" for c in SNAPSHOT_COLUMNS.split(","))
_LIVE = f"p.expires_at > {DB_NOW}"
_HELD = f"EXISTS (SELECT 1 FROM processes AS p WHERE p.owner = i.owner AND {_LIVE})"
"""Whether a live process holds instance ``i``: asked of the row a statement locks, so a row
another process took over and committed meanwhile (PostgreSQL re-reads a row it locks after
it changed) is judged by its new owner; through a join, the re-read row kept the old owner's
process row, which no longer joined, and a held row read as nobody's."""
_RUNS_HERE = (
    "($3::text[] IS NULL OR (i.workflow, i.version) IN "
    "(SELECT * FROM unnest($3::text[], $4::text[])))"
)
"""An instance of one of the (workflow, version) pairs given as ``$3`` and ``$4`` (any, when
they are NULL)."""


def _pairs(
    versions: Sequence[tuple[str, str]] | None,
) -> tuple[list[str] | None, list[str] | None]:
    """(workflow, version) pairs as the two arrays ``_RUNS_HERE`` takes (None: any)."""
    if versions is None:
        return None, None
    return [name for name, _ in versions], [version for _, version in versions]


class Claim(msgspec.Struct, frozen=True):
    """What claiming an instance found: its snapshot, now this process's (``snapshot``); or
    the live process that holds it (``holder``); or neither: no such instance (``busy``:
    the row is locked for a moment by another claimer or writer; try again)."""

    snapshot: SnapshotRecord | None = None
    holder: str | None = None
    busy: bool = False


class Posted(msgspec.Struct, frozen=True):
    """Work for an instance this process owns, sent by another process."""

    id: str
    sender: str
    instance_id: str
    body: bytes


def _posted(rows: list[Any]) -> list[Posted]:
    """Inbox rows read as ``(id, sender, instance_id, body)``, as posted work."""
    return [Posted(id=row[0], sender=row[1], instance_id=row[2], body=row[3]) for row in rows]


class ClusterOps:
    """Processes, instance leases and the inbox, on the store's read pool."""

    _pool: asyncpg.Pool[Any] | None
    _beat: asyncpg.Connection[Any] | None
    """The heartbeat's own connection (None: not connected yet, or lost): through the pool, a
    burst of deliveries' claims kept it waiting past the lease, and every process exited with
    its lease lost (pg h43 F5)."""
    _listener: asyncpg.Connection[Any] | None
    _relisten: asyncio.Task[None] | None
    """Connecting the LISTEN connection again, after it was lost (None: not under way)."""
    _closing: bool
    url: str
    name: str
    idle_transaction_timeout: float | None
    """Seconds before the server ends a session idle in a transaction (``PostgresStore``); None
    until the lease of the runtime that uses the store sets its duration."""

    def _require_pool(self, operation: str) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise StoreClosedError(self.name, operation)
        return self._pool

    def _fence(self, owner: str | None) -> None:
        """Snapshots this store writes from now on name ``owner`` and are fenced by it."""
        writer: Any = getattr(self, "_writer", None)
        if writer is not None:
            writer.node = owner

    async def database_now(self) -> float:
        """The database server's clock (epoch seconds)."""
        value = await self._require_pool("read the clock").fetchval(f"SELECT {DB_NOW}")
        return float(value)

    # -- processes ------------------------------------------------------------------------------

    async def join_cluster(self, owner: str, host: str, pid: int, duration: float) -> None:
        """Register this process; its instance leases last ``duration`` s past each beat. The
        rows of processes whose leases expired over ``GONE_FOR`` ago go: only a clean stop
        deleted its own, and one killed each time left a row for good (pg h40 F3). Every
        reader asks whether a process is live, which an absent one is not either."""
        pool = self._require_pool("join the cluster")
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                f"DELETE FROM processes WHERE expires_at < {DB_NOW} - $1", GONE_FOR
            )
            await connection.execute(
                f"INSERT INTO processes (owner, host, pid, started_at, renewed_at, expires_at) "
                f"VALUES ($1, $2, $3, {DB_NOW}, {DB_NOW}, {DB_NOW} + $4)",
                owner,
                host,
                pid,
                duration,
            )
        self._fence(owner)

    async def heartbeat(self, owner: str, duration: float) -> bool:
        """Renew this process's leases; False if they had already expired (another process
        may have taken its instances over: it must not go on as if it still held them). On a
        connection of its own, connected again the next time once it failed."""
        self._require_pool("renew the process lease")
        if self._beat is None:
            self._beat = await self._connect()
        try:
            renewed = await self._beat.fetchval(
                f"UPDATE processes SET renewed_at = {DB_NOW}, expires_at = {DB_NOW} + $2 "
                f"WHERE owner = $1 AND expires_at > {DB_NOW} RETURNING 1",
                owner,
                duration,
            )
        except BaseException:
            beat, self._beat = self._beat, None
            beat.terminate()  # (a statement cut part-way leaves the connection unusable)
            raise
        return renewed is not None

    async def _connect(self) -> asyncpg.Connection[Any]:
        raise NotImplementedError  # the store's own

    async def leave_cluster(self, owner: str) -> None:
        """A clean stop: every instance this process holds is free to claim at once."""
        pool = self._require_pool("leave the cluster")
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("UPDATE instances SET owner = NULL WHERE owner = $1", owner)
            await connection.execute("DELETE FROM processes WHERE owner = $1", owner)
        self._fence(None)

    async def processes(self) -> list[tuple[str, str, int, float]]:
        """Every registered process: (owner, host, pid, seconds its lease runs on: 0 or less
        once it expired)."""
        rows = await self._require_pool("list processes").fetch(
            f"SELECT owner, host, pid, expires_at - {DB_NOW} FROM processes ORDER BY started_at"
        )
        return [(row[0], row[1], int(row[2]), float(row[3])) for row in rows]

    async def is_live(self, owner: str) -> bool:
        live = await self._require_pool("look a process up").fetchval(
            f"SELECT expires_at > {DB_NOW} FROM processes WHERE owner = $1", owner
        )
        return bool(live)

    # -- instance leases ------------------------------------------------------------------------

    async def claim(self, instance_id: str, owner: str) -> Claim:
        """Take the instance for ``owner`` unless a live other process holds it."""
        pool = self._require_pool("claim an instance")
        if "\x00" in instance_id:
            return Claim()  # no row holds a NUL: PostgreSQL's text refuses one (review h33 F3)
        async with pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                f"SELECT {_I_COLUMNS}, i.owner, {_HELD} FROM instances AS i "
                "WHERE i.instance_id = $1 FOR UPDATE OF i SKIP LOCKED",
                instance_id,
            )
            if row is None:
                exists = await connection.fetchval(
                    "SELECT 1 FROM instances WHERE instance_id = $1", instance_id
                )
                return Claim(busy=exists is not None)
            holder, live = row[11], row[12]
            if holder is not None and holder != owner and live:
                return Claim(holder=holder)
            if holder != owner:
                await connection.execute(
                    "UPDATE instances SET owner = $2 WHERE instance_id = $1", instance_id, owner
                )
            return Claim(snapshot=_sql.snapshot_of(row))

    async def take_over(
        self, owner: str, *, limit: int = 100, versions: Sequence[tuple[str, str]] | None = None
    ) -> list[SnapshotRecord]:
        """Claim up to ``limit`` instances with work to run that no live process holds (their
        owner died, or stopped and let them go), of the (workflow, version) pairs ``versions``
        (those this process runs: one that cannot run an instance leaves it to one that can; None:
        any)."""
        names, numbers = _pairs(versions)
        rows = await self._require_pool("take instances over").fetch(
            "WITH orphans AS (SELECT i.instance_id FROM instances AS i "
            f"WHERE i.runnable AND NOT {_HELD} "
            f"AND {_RUNS_HERE} LIMIT $2 FOR UPDATE OF i SKIP LOCKED) "
            "UPDATE instances AS i SET owner = $1 FROM orphans "
            f"WHERE i.instance_id = orphans.instance_id RETURNING {_I_COLUMNS}",
            owner,
            limit,
            names,
            numbers,
        )
        return [_sql.snapshot_of(row) for row in rows]

    async def let_go(self, instance_id: str, owner: str) -> None:
        """Give up ``owner``'s claim of an instance it cannot run (its version is not
        registered there), for a process that can."""
        await self._require_pool("let an instance go").execute(
            "UPDATE instances SET owner = NULL WHERE instance_id = $1 AND owner = $2",
            instance_id,
            owner,
        )

    async def instance_timers(self, instance_id: str) -> list[TimerRecord]:
        """The pending timers of one instance (to arm them where it is claimed)."""
        rows = await self._require_pool("load timers").fetch(
            f"SELECT {TIMER_COLUMNS} FROM timers WHERE instance_id = $1", instance_id
        )
        return [_sql.timer_of(row) for row in rows]

    async def unheld_due_timers(
        self, now: float, *, limit: int = 100, versions: Sequence[tuple[str, str]] | None = None
    ) -> list[TimerRecord]:
        """Timers due at ``now`` of instances no live process holds (a process fires the
        timers of its own instances; these are anyone's to fire, by claiming the instance), of
        the (workflow, version) pairs ``versions`` (those the asking process runs)."""
        t_columns = ", ".join(f"t.{c.strip()}" for c in TIMER_COLUMNS.split(","))
        names, numbers = _pairs(versions)
        rows = await self._require_pool("find due timers").fetch(
            f"SELECT {t_columns} FROM timers AS t "
            "JOIN instances AS i ON i.instance_id = t.instance_id "
            f"WHERE t.due_at <= $1 AND NOT {_HELD} "
            f"AND {_RUNS_HERE} ORDER BY t.due_at, t.timer_id LIMIT $2",
            now,
            limit,
            names,
            numbers,
        )
        return [_sql.timer_of(row) for row in rows]

    async def unfinished_among(self, instance_ids: Sequence[str]) -> set[str]:
        """Of ``instance_ids``, those of stored instances not over: one read for every
        run this process waits to see end in another (hostile h34 L1: a read of each, twice a
        second, for each long poll)."""
        ids = [i for i in instance_ids if "\x00" not in i]  # (no row can hold one)
        if not ids:
            return set()
        rows = await self._require_pool("look instances up").fetch(
            # by status: a run that ended with an action still out is not terminal, and over
            # (review h34 F1: its end was never seen)
            "SELECT instance_id FROM instances WHERE status IN ('running', 'waiting', 'blocked') "
            "AND instance_id = ANY($1)",
            ids,
        )
        return {row[0] for row in rows}

    # -- work for another process ---------------------------------------------------------------

    async def post(self, target: str, sender: str, instance_id: str, body: bytes) -> str:
        """Record work for ``instance_id`` at process ``target`` and wake it; its id."""
        posted = uuid.uuid4().hex
        pool = self._require_pool("send work to another process")
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO inbox (id, target, sender, instance_id, body, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                posted,
                target,
                sender,
                instance_id,
                body,
                time.time(),
            )
            await connection.execute("SELECT pg_notify($1, $2)", WORK_CHANNEL, target)
        return posted

    async def take_posted(self, owner: str, *, limit: int = 100) -> list[Posted]:
        """The work other processes sent to ``owner`` that nobody took yet, now taken."""
        rows = await self._require_pool("read the inbox").fetch(
            "UPDATE inbox SET taken = TRUE WHERE id IN (SELECT id FROM inbox "
            "WHERE target = $1 AND NOT taken ORDER BY created_at LIMIT $2 "
            "FOR UPDATE SKIP LOCKED) RETURNING id, sender, instance_id, body",
            owner,
            limit,
        )
        return _posted(rows)

    async def adopt_posted(self, instance_id: str, owner: str) -> list[Posted]:
        """The work posted for ``instance_id`` to a process no longer live, nobody's yet: now
        ``owner``'s, which took the instance over (its senders wait for its answer)."""
        rows = await self._require_pool("read the inbox").fetch(
            "UPDATE inbox SET taken = TRUE, target = $2 WHERE id IN (SELECT b.id FROM inbox AS b "
            "WHERE b.instance_id = $1 AND NOT b.taken AND NOT EXISTS (SELECT 1 FROM processes "
            f"AS p WHERE p.owner = b.target AND {_LIVE}) ORDER BY b.created_at FOR UPDATE SKIP "
            "LOCKED) RETURNING id, sender, instance_id, body",
            instance_id,
            owner,
        )
        return _posted(rows)

    async def posted_to(self, posted_id: str) -> str | None:
        """The process posted work is for now (another took it over: ``adopt_posted``)."""
        pool = self._require_pool("read the inbox")
        target: str | None = await pool.fetchval(
            "SELECT target FROM inbox WHERE id = $1", posted_id
        )
        return target

    async def answer(self, posted: Posted, reply: bytes) -> None:
        """Write the answer to posted work and wake its sender."""
        pool = self._require_pool("answer work of another process")
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE inbox SET done = TRUE, reply = $2 WHERE id = $1", posted.id, reply
            )
            await connection.execute(
                "SELECT pg_notify($1, $2)", REPLY_CHANNEL, f"{posted.sender} {posted.id}"
            )

    async def answers(self, ids: list[str]) -> dict[str, bytes]:
        """The answers written so far to the posted work ``ids`` (rows are then deleted)."""
        pool = self._require_pool("read answers")
        rows = await pool.fetch(
            "DELETE FROM inbox WHERE id = ANY($1::text[]) AND done RETURNING id, reply", ids
        )
        return {row[0]: row[1] for row in rows}

    async def withdraw(self, posted_id: str) -> bool:
        """Take back posted work nobody took yet (its target died): True if it was."""
        pool = self._require_pool("withdraw work")
        found = await pool.fetchval(
            "DELETE FROM inbox WHERE id = $1 AND NOT taken RETURNING 1", posted_id
        )
        return found is not None

    async def forget_posted(self, posted_id: str) -> None:
        await self._require_pool("forget work").execute(
            "DELETE FROM inbox WHERE id = $1", posted_id
        )

    async def listen(self, on_work: Callable[[], None], on_reply: Callable[[str], None]) -> None:
        """Call ``on_work()`` when work arrives for ``owner`` and ``on_reply(id)`` when an
        answer for it is written (NOTIFY on a connection of its own; the caller polls too). A
        connection lost (a server restart, a failover) is connected again, every few seconds
        until it is back, and ``on_work()`` called then for what came meanwhile: one lost was
        never listened to again, every call between processes waiting for the poll (pg h40)."""
        owner: str | None = getattr(getattr(self, "_writer", None), "node", None)

        def heard(_connection: Any, _pid: int, channel: str, payload: object) -> None:
            if not isinstance(payload, str):
                return
            if channel == WORK_CHANNEL and payload == owner:
                on_work()
            elif channel == REPLY_CHANNEL:
                sender, _, posted = payload.partition(" ")
                if sender == owner:
                    on_reply(posted)

        self._heard = heard
        self._on_work = on_work
        await self._listen()

    async def _listen(self) -> None:
        import asyncpg

        connection: asyncpg.Connection[Any] = await asyncpg.connect(self.url, timeout=10)
        try:
            await connection.add_listener(WORK_CHANNEL, self._heard)
            await connection.add_listener(REPLY_CHANNEL, self._heard)
        except BaseException:  # cancelled by a stop, or the server gone: not left to the collector
            connection.terminate()
            raise
        if self._closing:  # the store closed while this connected
            connection.terminate()
            return
        connection.add_termination_listener(self._listener_lost)
        self._listener = connection

    def _listener_lost(self, connection: Any) -> None:
        if self._closing or connection is not self._listener:
            return  # (closed by the store's close: nothing to mend)
        self._listener = None
        logger.warning(
            "the LISTEN connection to %s was lost; connecting it again (polling meanwhile)",
            self.name,
        )
        self._relisten = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                await self._listen()
            except Exception:  # the server not back yet: again, a little later
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self._listener is not None:
                logger.info("listening to %s again", self.name)
                self._on_work()  # what was posted while nobody listened
            return

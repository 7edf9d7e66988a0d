"""What the PostgreSQL writer does when its connection ends under it (the server restarted, an
administrator or a pooler ended the session): it connects again, for up to ``reconnect_for``
seconds, while its callers wait. A batch that had not sent its commit is written again; one
whose commit was sent is asked after by its transaction id (``txid_status``): committed, its
callers are answered as if nothing happened; not, it is written again. So a batch is neither
lost nor written twice. A lost connection stopped every process of a cluster at once, for a
supervisor to restart (pg h40 F2). ``is_fatal`` says which errors no item caused."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from cronflow_actors.errors import LeaseLostError, StoreFailedError
from cronflow_actors.store._group import GroupAnswers
from cronflow_actors.store._ops import Item

__all__ = ["Connect", "Reconnecting", "is_fatal"]

logger = logging.getLogger("cronflow_actors.store.postgres_writer")
Connect = Callable[[], Awaitable[asyncpg.Connection]]
_BROKEN = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InternalClientError,  # (a call cut by its session's end: "another
    # operation is in progress" on a connection not yet marked closed)
)
"""Errors that leave a connection unusable, whether or not it says it is closed."""
_AGAIN = 5
"""Connections lost one after the other, at most, before the writer gives up on a batch."""


def is_fatal(error: BaseException) -> bool:
    """An error no item caused: the connection or the server cannot go on."""
    if isinstance(error, LeaseLostError | OSError | asyncpg.InterfaceError):
        return True
    if isinstance(error, asyncpg.PostgresConnectionError):
        return True
    state = getattr(error, "sqlstate", None) or ""
    # 53: insufficient resources (disk full), 57: operator intervention (shutdown),
    # 58: system error, XX: internal error, 25006: a read-only transaction
    return state[:2] in ("53", "57", "58", "XX") or state == "25006"


class Reconnecting(GroupAnswers):
    """The part of ``PostgresWriter`` that outlives its connection."""

    _connection: asyncpg.Connection
    _connect: Connect | None
    _reconnect_for: float
    _closing: bool
    _in_flight: tuple[int, list[Any], int, int] | None
    """(transaction id, results, snapshots written, seen) of a batch whose commit is sent."""

    @property
    def connection(self) -> asyncpg.Connection:
        """The connection it writes on now (the store closes it)."""
        return self._connection

    def _lost(self, error: BaseException) -> bool:
        """Whether ``error`` came of the connection's end (not of what was written)."""
        if self._connect is None or isinstance(error, LeaseLostError):
            return False
        state = getattr(error, "sqlstate", None) or ""
        return (
            self._connection.is_closed()
            or state.startswith("57P")  # the server's shutdown, or an administrator's
            or isinstance(error, _BROKEN)
        )

    async def _after_lost(
        self, items: list[Item], error: BaseException
    ) -> tuple[list[Any], int, int] | None:
        """The batch's outcome once connected again: committed (a commit of it was sent and
        took), or written again; None when its callers were answered (the writer failed).
        Every transaction of it whose commit was sent is asked after before it is written
        again, also after the connection was lost again while one was asked after (review
        h40 F1: the second attempt forgot the first, and wrote a committed batch again)."""
        sent: list[tuple[int, list[Any], int, int]] = []
        for _attempt in range(_AGAIN):  # (each a connection lost again meanwhile)
            if self._in_flight is not None:
                sent.append(self._in_flight)
                self._in_flight = None
            if not await self._reconnect(error):
                self._fail_batch(items, error)
                return None
            try:
                for xid, results, written, seen in sent:
                    status = await self._status(xid)
                    if status == "committed":
                        return results, written, seen
                    if status != "aborted":  # still going, or too old to tell: not again
                        unknown = StoreFailedError(
                            self._name,
                            f"the connection was lost as a write committed, and whether it "
                            f"did cannot be told (transaction {xid}: {status})",
                        )
                        self._fail_batch(items, unknown)
                        return None
                return await self._transaction(items)
            except Exception as again:
                if not self._lost(again):
                    if is_fatal(again):
                        self._fail_batch(items, again)
                        return None
                    return await self._one_by_one(items)
                error = again
        self._fail_batch(items, error)
        return None

    async def _reconnect(self, error: BaseException) -> bool:
        """A new connection in the lost one's place, tried until ``reconnect_for`` seconds
        have passed (False then: the writer fails)."""
        assert self._connect is not None
        said = f"{type(error).__name__}: {error}".rstrip(": ")
        logger.warning(
            "store %s: the connection to the database was lost (%s); connecting again for up "
            "to %g s, writes waiting",
            self._name,
            said,
            self._reconnect_for,
        )
        deadline, pause = time.monotonic() + self._reconnect_for, 0.1
        while True:
            try:
                connection = await self._connect()
            except Exception as failed:
                if self._closing or time.monotonic() + pause > deadline:
                    logger.error("store %s: could not connect again: %s", self._name, failed)
                    return False
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            self._connection.terminate()
            self._connection = connection
            logger.warning("store %s: connected again; writes go on", self._name)
            return True

    async def _status(self, xid: int) -> str:
        """``committed``, ``aborted``, ``in progress`` (still, after ``reconnect_for`` seconds
        of asking: its session may take a while to end) or ``unknown`` (too old for the server
        to tell) of the transaction ``xid``, whose commit was sent."""
        deadline = time.monotonic() + self._reconnect_for
        while True:
            status = await self._connection.fetchval("SELECT txid_status($1)", xid)
            if status != "in progress" or time.monotonic() > deadline:
                return str(status or "unknown")
            await asyncio.sleep(0.05)

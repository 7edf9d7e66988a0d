"""What a caller queues for the SQLite store's writer besides mutations, and how the writer
tells a failure of its own (it cannot go on) from an item's fault.

Key-value writes, pruning and queued runs join a group-commit batch with the mutations; lease
operations run alone, each in its own transaction (``_writer.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import msgspec

from cronflow_actors.errors import LeaseLostError
from cronflow_actors.messages import LeaseRecord, Mutation, QueuedRun

__all__ = [
    "LEASE_OPS",
    "BatchOp",
    "FileGoneError",
    "Item",
    "KvDelete",
    "KvIncr",
    "KvPurge",
    "KvSet",
    "KvSetDefault",
    "LeaseAcquire",
    "LeaseOp",
    "LeaseRelease",
    "LeaseRenew",
    "Prune",
    "is_fatal",
]


class KvSet(msgspec.Struct, frozen=True):
    namespace: str
    key: str
    value: bytes
    expires_at: float | None
    keeps: bool = False
    """The key keeps the instance it names from a ``Prune`` of its namespace's keys: on a
    database several processes write, the set waits for such a delete under way, and one that
    begins after it reads the key (``kv_set``'s ``keeps``)."""


class KvSetDefault(msgspec.Struct, frozen=True):
    """``kv_setdefault``: ``value`` under the key unless a live one is there (its answer)."""

    namespace: str
    key: str
    value: bytes
    now: float
    expires_at: float | None


class KvIncr(msgspec.Struct, frozen=True):
    namespace: str
    key: str
    amount: float
    now: float
    ttl: float | None


class KvDelete(msgspec.Struct, frozen=True):
    namespace: str
    key: str


class KvPurge(msgspec.Struct, frozen=True):
    now: float


class Prune(msgspec.Struct, frozen=True):
    """Delete finished instances last changed before ``before`` (at most ``limit``), but
    those in ``keep`` and those a key of the kv namespace ``keep_keys_of`` names (read by the
    delete's own statement: a key written before it keeps its instance)."""

    before: float
    limit: int
    keep: tuple[str, ...] = ()
    keep_keys_of: str = ""


class LeaseAcquire(msgspec.Struct, frozen=True):
    lease: LeaseRecord


class LeaseRenew(msgspec.Struct, frozen=True):
    scope: str
    owner: str
    now: float
    expires_at: float


class LeaseRelease(msgspec.Struct, frozen=True):
    scope: str
    owner: str


LeaseOp = LeaseAcquire | LeaseRenew | LeaseRelease
BatchOp = Mutation | KvSet | KvSetDefault | KvIncr | KvDelete | KvPurge | QueuedRun | Prune
Item = tuple[BatchOp | LeaseOp, "asyncio.Future[Any]"]
LEASE_OPS = (LeaseAcquire, LeaseRenew, LeaseRelease)


class FileGoneError(Exception):
    """The database file was removed or replaced while the store had it open."""


def is_fatal(error: BaseException) -> bool:
    """An error no item caused: the writer cannot go on."""
    if isinstance(error, FileGoneError | LeaseLostError):
        return True
    return isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.IntegrityError
    )

"""One group-commit batch as the SQLite writer runs it: on the aiosqlite connection's own thread,
in one hand-off.

Each ``await connection.execute(...)`` is a round trip to aiosqlite's thread and back to the
loop (a queue put, a thread wake-up, a ``call_soon_threadsafe``). A batch is a ``BEGIN``, a
statement or more per kind of row and a ``COMMIT``: five or more round trips, most of the
latency of a commit when runs go one at a time. Here the whole batch is one plain function
that is handed to that thread at once, so a commit costs one round trip; the statements, their
order and the transaction are the same. The writer posts it (``post_to_connection``) and the
thread answers the loop itself, so no task waits in between; ``run_on_connection`` awaits it
(the writer's slower paths).

Both lean on aiosqlite's private parts: ``Connection._tx`` (its queue of calls for the
connection's thread), ``Connection._execute`` (queue a callable, await its result),
``Connection._conn`` and ``_connection`` (the ``sqlite3.Connection``) and ``_running``:
aiosqlite has no public way to run several statements with parameters in one hand-off. The
version is pinned in ``pyproject.toml`` and ``tests/store/test_batch_sql.py`` checks them.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite
import msgspec

from cronflow_actors.errors import DuplicateInstanceError
from cronflow_actors.messages import Mutation, QueuedRun, SnapshotRecord, encode
from cronflow_actors.store import _sql as sql
from cronflow_actors.store._batch import Coalesced
from cronflow_actors.store._ops import (
    Item,
    KvDelete,
    KvIncr,
    KvPurge,
    KvSet,
    KvSetDefault,
    Prune,
)
from cronflow_actors.store._protocol import incremented, is_live
from cronflow_actors.store._spans import pack

__all__ = ["post_to_connection", "run_on_connection", "write_batch"]

T = TypeVar("T")

_decode_value = msgspec.msgpack.Decoder().decode


def _null(_value: None) -> None:
    return None


def _bind_as_they_are() -> None:
    """Bind ``bytes`` and ``None`` parameters without sqlite3's failed adaptation on CPython
    3.11: a parameter that is not exactly an int, float, str or bytearray is first offered to
    ``PrepareProtocol.__adapt__`` and to its own ``__conform__``, two attribute lookups that
    fail, each formatting an ``AttributeError`` message that is thrown away: about 2,000
    instructions a parameter, some 17 a run (the snapshot bodies, span rows and journal
    outputs, and the Nones of parent ids and errors). A registered adapter is found first, in
    a dict; these return the value itself, so the bound value is the same. Only where none is
    registered (sqlite3's adapters are the process's: one a program registered is kept, and is
    what the statements would have used anyway). From 3.12 on, the failed lookups format no
    message, and the adapters' call would cost more than it saves: nothing is registered."""
    if sys.version_info >= (3, 12):
        return
    if (bytes, sqlite3.PrepareProtocol) not in sqlite3.adapters:
        sqlite3.register_adapter(bytes, bytes.__bytes__)
    if (type(None), sqlite3.PrepareProtocol) not in sqlite3.adapters:
        sqlite3.register_adapter(type(None), _null)


_bind_as_they_are()


class _Refused(Exception):
    """A fenced or compare-and-set snapshot statement changed fewer rows than it was given (a
    signal between the writer and this module, never raised past the writer)."""


async def run_on_connection(
    connection: aiosqlite.Connection, fn: Callable[..., T], /, *args: Any
) -> T:
    """``fn(db, *args)`` on ``connection``'s thread, where ``db`` is its ``sqlite3.Connection``;
    one round trip (see the module's docstring)."""

    def call() -> T:
        return fn(connection._conn, *args)

    result: T = await connection._execute(call)  # type: ignore[no-untyped-call]
    return result


def post_to_connection(
    connection: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], None], /
) -> None:
    """Queue ``fn(db)`` on ``connection``'s thread and return at once: nothing answers; ``fn``
    reports back itself (``loop.call_soon_threadsafe``) and must not raise. This is
    aiosqlite's queue of calls (``Connection._tx``, entries ``(future, function)``, with no
    future to resolve; aiosqlite 0.22.1 is the first to allow that), so it runs in order with
    the connection's other work. ``sqlite3.ProgrammingError`` if the connection is closed or
    closing: a call queued behind its stop would never run."""
    if not connection._running or connection._connection is None:
        raise sqlite3.ProgrammingError("the writer's connection is closed")
    db = connection._conn
    connection._tx.put_nowait((None, lambda: fn(db)))


def write_batch(
    db: sqlite3.Connection,
    items: list[Item],
    batch: Coalesced,
    owner: str | None,
    check_file: Callable[[], None] | None,
) -> tuple[list[Any], bool] | None:
    """Write one batch in one transaction (on the connection's thread): the results of its
    items (None for a mutation) and whether pruning freed pages; None, with nothing written,
    if ``owner``'s lease is no longer held. Rolls back and raises if anything fails
    (``_Refused`` if a snapshot statement was refused)."""
    cursor = db.cursor()  # one for the batch's statements (a cursor each: ~1,500 instructions)
    cursor.execute("BEGIN IMMEDIATE")
    try:
        if owner is not None and not _holds_lease(cursor, owner):
            cursor.execute("ROLLBACK")
            return None
        vacuum_due = False
        if batch.dequeued:
            cursor.executemany(sql.DEQUEUE, [(i,) for i in batch.dequeued])
        inserts = []
        updates = []
        for instance_id, snapshot in batch.snapshots.items():
            base = batch.bases[instance_id]
            if base == 0:
                inserts.append(sql.insert_row(snapshot))
            else:
                updates.append((snapshot, base))
        if inserts and cursor.executemany(sql.INSERT_SNAPSHOT, inserts).rowcount != len(inserts):
            raise _Refused
        if updates and _update(cursor, updates, batch.replaces) != len(updates):
            raise _Refused
        if batch.journal:
            cursor.executemany(sql.INSERT_JOURNAL, sql.journal_rows(batch.journal))
        if batch.spans:
            cursor.executemany(
                sql.INSERT_SPANS, [(s.trace_id, s.revision, pack(s)) for s in batch.spans]
            )
        if batch.timers_cancel:
            cursor.executemany(sql.DELETE_TIMER, [(t,) for t in batch.timers_cancel])
        if batch.timers_set:
            cursor.executemany(
                sql.UPSERT_TIMER, [sql.timer_row(t) for t in batch.timers_set.values()]
            )
        if batch.waits_set:
            cursor.executemany(sql.UPSERT_WAIT, [sql.wait_row(w) for w in batch.waits_set.values()])
        if batch.waits_end:
            cursor.executemany(sql.END_WAIT, [(w,) for w in batch.waits_end])
        results: list[Any] = []
        for payload, _future in items:
            if isinstance(payload, Mutation):
                results.append(None)
            else:
                result, pruned = _apply(db, payload)
                vacuum_due = vacuum_due or pruned
                results.append(result)
        if check_file is not None:
            check_file()  # a removed or replaced file would take the commit with it
        cursor.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return results, vacuum_due


def _update(
    db: sqlite3.Cursor,
    updates: list[tuple[SnapshotRecord, int]],
    replaces: dict[str, tuple[str, bool, bool]],
) -> int:
    """Write each (snapshot, revision it replaces) in ``updates``: the body alone where the
    indexed columns are unchanged, all columns for the others (a row the first statement
    changed has moved past its base revision, so the second leaves it alone). A snapshot whose
    mutation said its indexed columns change (``replaces``: a run that starts waiting, wakes,
    ends) goes to the second statement at once, without a first one that would find no row.
    The number of rows changed: fewer than ``updates`` when one was refused."""
    body: list[tuple[SnapshotRecord, int]] = []
    full: list[tuple[Any, ...]] = []
    for snapshot, base in updates:
        stored = replaces.get(snapshot.instance_id)
        if stored is None or stored == (snapshot.status, snapshot.terminal, snapshot.runnable):
            body.append((snapshot, base))
        else:
            full.append(sql.update_row(snapshot, base))
    changed = 0
    if body:
        changed = db.executemany(sql.UPDATE_BODY, [sql.body_row(s, b) for s, b in body]).rowcount
        if changed != len(body):
            full += [sql.update_row(s, b) for s, b in body]
    if full:
        changed += db.executemany(sql.UPDATE_SNAPSHOT, full).rowcount
    return changed


def _holds_lease(db: sqlite3.Cursor, owner: str) -> bool:
    """Whether ``owner`` still holds the lease, checked inside the write transaction (``FENCE``)."""
    try:
        db.execute(sql.FENCE, (owner,))
    except sqlite3.IntegrityError:
        return False
    return True


def _apply(db: sqlite3.Connection, op: Any) -> tuple[Any, bool]:
    """One operation that is not a mutation: its result, and whether it pruned rows."""
    match op:
        case KvSet(namespace, key, value, expires_at):  # (one writer: ``keeps`` holds)
            db.execute(sql.UPSERT_KV, (namespace, key, value, expires_at))
            return None, False
        case KvSetDefault(namespace, key, value, now, expires_at):  # (the one writer: atomic)
            row = db.execute(sql.SELECT_KV, (namespace, key)).fetchone()
            if row is not None and is_live(row[1], now):
                return row[0], False
            db.execute(sql.UPSERT_KV, (namespace, key, value, expires_at))
            return None, False
        case KvIncr(namespace, key, amount, now, ttl):
            row = db.execute(sql.SELECT_KV, (namespace, key)).fetchone()
            stored = None if row is None else (_decode_value(row[0]), row[1])
            total, expires_at = incremented(namespace, key, stored, amount=amount, now=now, ttl=ttl)
            db.execute(sql.UPSERT_KV, (namespace, key, encode(total), expires_at))
            return total, False
        case KvDelete(namespace, key):
            cursor = db.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
            return cursor.rowcount > 0, False
        case KvPurge(now):
            cursor = db.execute(
                "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            return cursor.rowcount, False
        case Prune(before, limit, keep, keep_keys_of):
            params = (before, before, json.dumps(keep), keep_keys_of, limit)
            cursor = db.execute(sql.PRUNE, params)
            return cursor.rowcount, cursor.rowcount > 0
        case QueuedRun() as run:
            taken = db.execute(
                "SELECT 1 FROM instances WHERE instance_id = ?", (run.instance_id,)
            ).fetchone()
            if taken is not None:
                raise DuplicateInstanceError(run.instance_id)
            cursor = db.execute(
                sql.ENQUEUE, (run.queue, run.instance_id, run.workflow, run.payload, run.queued_at)
            )
            return cursor.lastrowid, False
    raise AssertionError(f"unknown store operation {op!r}")

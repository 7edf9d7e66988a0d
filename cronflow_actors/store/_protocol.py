"""The Store protocol: everything the engine persists, behind one interface.

Two implementations: ``SQLiteStore`` (aiosqlite, the embedded default) and ``MemoryStore``, its
in-memory twin for tests and benchmarks that do not need durability. Both run the same contract
tests. Times are passed in by the caller (from its injected clock), so the store never reads one.

The source of truth of an instance is its snapshot (with its timers, waits and queue rows). The
journal is an append-only audit log of what happened to each instance (each attempt of a work
item and how it ended), written in the same transaction as the snapshot that records it and read
back in order (``read_journal``) for audit trails, tests and tooling. Nothing recovers from it:
recovery loads snapshots, and a recorded output lives in the snapshot that recorded it.

The audit trail (``Mutation.spans``, ``read_spans``) is the newer, finer record: every engine
operation of a run as an ``AuditSpan``, written in the same transaction as the snapshot it was
committed with, read back in order by trace (the run's id), and pruned with the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from cronflow_actors.errors import ConfigurationError, StateValueError
from cronflow_actors.messages import (
    JournalEntry,
    LeaseRecord,
    Mutation,
    QueuedRun,
    SnapshotRecord,
    TimerRecord,
    WaitRecord,
)
from cronflow_actors.messages.audit import AuditSpan

__all__ = ["MISSING", "CommitObserver", "Cursor", "JournalRecord", "Store", "StoreStatistics"]

Cursor = tuple[float, str]
"""A keyset position in a listing: (time, id) of the last row of the previous page."""


CommitObserver = Callable[[float, int], None]
"""``observer(seconds, writes)``: told of each transaction the store committed, how long it took
(commit included) and how many writes it held."""


class _Missing:
    """The type of ``MISSING``."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""Returned by ``kv_get`` for a key that is absent or expired, when no default is given."""


class StoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the store's writer since it was opened."""

    batches: int = 0
    """Transactions committed by the writer."""
    mutations: int = 0
    """Mutations and key-value writes committed."""
    snapshots_written: int = 0
    """Snapshot rows written (after keeping only the newest per instance in each batch)."""
    snapshots_coalesced: int = 0
    """Snapshots not written because a newer one of the same instance was in the same batch."""
    largest_batch: int = 0
    """The most items committed by one transaction."""
    last_batch_seconds: float = 0.0
    """How long the last transaction took, commit included."""


class JournalRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an instance's journal as read back (``Store.read_journal``)."""

    seq: int
    """Its place in its instance's journal, growing as entries are written (SQLite makes it of
    the snapshot revision an entry was written with: ``store/_sql.journal_rows``; PostgreSQL
    and the memory store number across instances): the ``after`` of the next page."""
    instance_id: str
    kind: str
    """What happened: how an attempt of a work item ended (``completed``, ``failed``, or
    ``retry``: failed, to be tried again)."""
    element: str
    """The element it happened to (the work item's id)."""
    step: str
    """The task (step) of that element."""
    attempt: int
    at: float
    """When, on the runtime's clock (epoch seconds)."""
    revision: int | None = None
    """The instance's snapshot revision written with it (None for entries written before the
    store kept it)."""
    output: bytes | None = None
    """A completed attempt's output (msgpack)."""
    error: str | None = None
    """A failed attempt's error."""


@runtime_checkable
class Store(Protocol):
    """Durable state of the runtime: instance snapshots (the source of truth), the journal (an
    append-only audit log, never read to recover), timers, waits, queues, key-value state."""

    async def open(self) -> None:
        """Open (and create or migrate) the store. Idempotent."""
        ...

    async def close(self) -> None:
        """Write everything already submitted, then close. Idempotent."""
        ...

    async def check(self) -> None:
        """Raise ``StoreFailedError`` if the store can no longer write (its writer failed, its
        database file was removed or replaced); the store then refuses every write."""
        ...

    def write_waiting(self) -> float:
        """Seconds the write under way has waited for the database (0: none), for readiness."""
        ...

    async def prune(
        self,
        *,
        finished_before: float,
        limit: int = 1000,
        keep: Collection[str] = (),
        keep_keys_of: str = "",
    ) -> int:
        """Delete up to ``limit`` finished instances (completed, failed or canceled, with no
        action out) last changed before ``finished_before``, but those in ``keep`` (the runs a
        migration under way still reads) and those a key of the kv namespace ``keep_keys_of`` names
        (read in the delete's own statement), with their journal, audit trail, timers and waits;
        returns how many."""
        ...

    def commit(self, mutation: Mutation) -> Awaitable[None]:
        """Write one instance's state change atomically; the awaitable is done once it is
        durable (or raises). A closed or failed store refuses at once, when called.

        A snapshot at revision 1 is a new row: ``DuplicateInstanceError`` if the id is stored
        (or queued). A snapshot at revision n replaces revision n - 1 only:
        ``RevisionConflictError`` otherwise. Once a lease is held, a runtime that lost it
        writes nothing (``LeaseLostError``). Any other broken constraint is a
        ``MutationRejectedError``; a refused mutation writes nothing.
        """
        ...

    async def load_snapshot(self, instance_id: str) -> SnapshotRecord | None:
        """The newest durable snapshot of an instance, or None."""
        ...

    async def instance_exists(self, instance_id: str) -> bool:
        """Whether the id is taken: by a stored instance, or by a queued run."""
        ...

    async def existing_among(self, instance_ids: Sequence[str]) -> set[str]:
        """Of ``instance_ids`` (at most a page's, 1,000), those taken, as ``instance_exists``
        says of one: one read."""
        ...

    async def list_snapshots(
        self,
        *,
        terminal: bool | None = None,
        workflow: str | None = None,
        status: str | None = None,
        runnable: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SnapshotRecord]:
        """Snapshots matching every given filter, newest update first."""
        ...

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: Cursor | None = None,
        max_bytes: int | None = None,
    ) -> list[SnapshotRecord]:
        """Instances newest first (by creation, then id), filtered by workflow and status,
        from just after ``before`` (the (created_at, id) of the previous page's last row).
        ``max_bytes``: the page ends with the instance whose snapshot takes the page's bodies
        to that size or past it (always one at least), so a page of big runs stays bounded;
        a shorter page whose bodies reach ``max_bytes`` may have more after it."""
        ...

    async def unfinished_ids(self, workflow: str) -> list[str]:
        """Ids of the instances of ``workflow`` that are not over: running, waiting, or held
        ``blocked`` (a held run keeps its place under its flow's limits: it runs on once its
        definition is registered again or it is migrated)."""
        ...

    async def run_starts(self, workflow: str, *, since: float, limit: int) -> list[float]:
        """When the newest instances of ``workflow`` created after ``since`` were created,
        newest first, at most ``limit`` (what a rate limit counts after a restart)."""
        ...

    async def load_journal(self, instance_id: str) -> list[JournalEntry]:
        """An instance's recorded outcomes, in the order they were recorded."""
        ...

    async def read_journal(
        self, instance_id: str, *, after: int = 0, limit: int = 100
    ) -> list[JournalRecord]:
        """A page of an instance's journal, in the order it was recorded: at most ``limit``
        entries whose ``seq`` is past ``after`` (the last ``seq`` of the previous page). An
        entry recorded twice (the same attempt of the same work item) is kept once, the first
        time. A pruned instance's journal goes with it."""
        ...

    async def read_spans(
        self, trace_id: str, *, after: str | None = None, limit: int = 1000
    ) -> list[AuditSpan]:
        """A page of a run's audit trail (``trace_id``: the run's id), in the order the spans
        began (by revision, then within it): at most ``limit`` spans after the span whose
        ``span_id`` is ``after`` (the last of the previous page; None: from the start).
        ``ConfigurationError`` for an ``after`` that is not a span id, a ``limit`` below 1.
        A pruned run's spans go with it.

        How a store implements it (the contract tests check both): ``commit`` writes a
        mutation's ``spans`` in its transaction (a mutation's spans share one trace and one
        revision; the trace must be a stored instance, or one the mutation's snapshot creates:
        else ``MutationRejectedError``), and a (trace, revision) written twice is refused
        (``MutationRejectedError``); ``prune`` deletes them with their run. The SQLite and
        memory stores keep each commit's spans as one row, packed (``store/_spans.py``)."""
        ...

    async def load_timers(
        self,
        *,
        instance_id: str | None = None,
        after: Cursor | None = None,
        limit: int | None = None,
    ) -> list[TimerRecord]:
        """Pending timers (of one instance, or all) earliest due first (by due time, then id),
        from just after ``after`` (a (due_at, timer_id) position)."""
        ...

    async def due_timers(self, now: float, *, limit: int = 1000) -> list[TimerRecord]:
        """Pending timers due at or before ``now``, earliest first."""
        ...

    async def find_wait(self, kind: str, key: str) -> WaitRecord | None:
        """The wait row of ``kind`` with ``key`` (a pause token), ended ones included."""
        ...

    async def open_waits(
        self,
        kind: str,
        *,
        key: str | None = None,
        instance_id: str | None = None,
        after: Cursor | None = None,
        limit: int = 100,
        max_bytes: int | None = None,
    ) -> list[WaitRecord]:
        """Waits that have not ended, of ``kind`` (and ``key``, and ``instance_id``), oldest
        first (by creation time, then id), from just after ``after``. ``max_bytes``: the page
        ends with the wait whose ``data`` takes the page's to that size or past it (always one
        at least), as ``list_runs``'s does; a shorter page that reaches it may have more."""
        ...

    async def count_open_waits(self, kind: str) -> int:
        """How many waits of ``kind`` have not ended."""
        ...

    async def count_in_flight(self) -> dict[tuple[str, str], int]:
        """How many instances are not finished, by (workflow, status): ``running``,
        ``waiting``, and ``paused`` for the waiting ones with an open pause (``kind="pause"``
        wait row), which are then not counted as ``waiting``. Only non-zero counts are given.
        Read from the indexes of status and of open waits, never from snapshot bodies."""
        ...

    async def queue_lengths(self) -> dict[str, int]:
        """How many runs wait in each queue that has any."""
        ...

    async def queued_by_workflow(self) -> dict[str, int]:
        """How many runs of each workflow wait in a queue (its own or a named one it shares),
        for the workflows that have any."""
        ...

    def watch_commits(self, observer: CommitObserver | None) -> None:
        """Tell ``observer`` of every transaction committed from now on (one observer; None
        removes it). It is called on the event loop once the writes are durable; an error it
        raises is logged and changes nothing."""
        ...

    async def enqueue(self, run: QueuedRun) -> int:
        """Put a run at the end of its queue; returns its place (``seq``). Durable on return.
        ``DuplicateInstanceError`` if its id is taken (stored or queued)."""
        ...

    async def queued(self, queue: str, *, limit: int = 100, after: int = 0) -> list[QueuedRun]:
        """The first runs of ``queue``, in queue order, after place ``after``."""
        ...

    async def list_queued(
        self, *, workflow: str | None = None, limit: int = 50, before: Cursor | None = None
    ) -> list[QueuedRun]:
        """Queued runs of every queue, newest first (by the time they were queued, then id),
        of ``workflow`` if given, from just after ``before`` (the (queued_at, id) of the
        previous page's last row): how listings show the runs that have not started."""
        ...

    async def queued_run(self, instance_id: str) -> QueuedRun | None:
        """The queued run with this id, or None."""
        ...

    async def queue_length(self, queue: str) -> int:
        """How many runs wait in ``queue``."""
        ...

    async def acquire_lease(self, lease: LeaseRecord) -> LeaseRecord:
        """Take the lease of ``lease.scope`` for ``lease.owner`` unless another owner holds it
        and it has not expired at ``lease.acquired_at`` (``LeaseHeldError``, naming the holder).
        From then on every snapshot this store writes is fenced by the lease."""
        ...

    async def renew_lease(self, scope: str, owner: str, *, now: float, expires_at: float) -> None:
        """Extend the lease; ``LeaseLostError`` if ``owner`` no longer holds it (the store then
        refuses every write)."""
        ...

    async def release_lease(self, scope: str, owner: str) -> None:
        """Give the lease up (if ``owner`` holds it), so another runtime can start at once."""
        ...

    async def current_lease(self, scope: str = "runtime") -> LeaseRecord | None:
        """Who holds the lease of ``scope``, expired or not."""
        ...

    async def kv_get(self, namespace: str, key: str, *, now: float, default: Any = MISSING) -> Any:
        """The value under ``key``, or ``default`` if it is absent or expired at ``now``."""
        ...

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        now: float,
        ttl: float | None = None,
        keeps: bool = False,
    ) -> None:
        """Set ``key`` (expiring ``ttl`` seconds after ``now`` if given); durable on return.
        ``keeps``: the key names an instance that a ``prune`` keeping this namespace's keys must
        keep; a prune's delete under way in another process then ends first (the key waits for
        it, and its instance may be gone on return), and one that begins later reads the key."""
        ...

    async def kv_setdefault(
        self, namespace: str, key: str, value: Any, *, now: float, ttl: float | None = None
    ) -> Any:
        """The value under ``key`` if a live one is there; else ``value``, set (expiring
        ``ttl`` seconds after ``now`` if given) and durable on return. One step: of two
        callers at once, in any process, one sets its value and the other gets it."""
        ...

    async def kv_items(self, namespace: str, *, now: float) -> dict[str, Any]:
        """The live keys of ``namespace`` at ``now`` and their values (for a namespace of a
        few keys, read whole: the plans of migrations under way)."""
        ...

    async def kv_incr(
        self,
        namespace: str,
        key: str,
        amount: float = 1,
        *,
        now: float,
        ttl: float | None = None,
    ) -> float:
        """Add ``amount`` to the number under ``key`` (absent or expired counts as 0).

        Returns the new value. Without ``ttl`` an existing expiry is kept. Raises
        ``StateValueError`` and changes nothing if the key holds something that is not a number.
        """
        ...

    def exclusive(
        self, name: str, waiting: Callable[[], None]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """A turn of one process at a time at the work ``name`` on this database (pruning),
        held until the block ends or its process does: no expiry, no clock (``waiting`` is
        called once if another process holds it first)."""
        ...

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete ``key``; True if it existed."""
        ...

    async def kv_purge_expired(self, now: float) -> int:
        """Delete every key expired at ``now``; returns how many."""
        ...

    async def kv_stats(self, now: float) -> dict[str, tuple[int, int]]:
        """Per namespace: how many keys are stored, and how many of them have expired at
        ``now`` (they stay until purged)."""
        ...

    def statistics(self) -> StoreStatistics:
        """Counters of the writer since open."""
        ...


def journal_record(seq: int, entry: JournalEntry, revision: int | None) -> JournalRecord:
    """How a journal entry reads back, at its place ``seq``."""
    return JournalRecord(
        seq=seq,
        instance_id=entry.instance_id,
        kind=entry.outcome,
        element=entry.work_item_id,
        step=entry.step_id,
        attempt=entry.attempt,
        at=entry.recorded_at,
        revision=revision,
        output=entry.output,
        error=entry.error,
    )


def check_limit(limit: int | None, offset: int) -> None:
    """Validate paging arguments shared by both stores."""
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ConfigurationError("limit", limit, "None or a whole number >= 0")
    if not isinstance(offset, int) or offset < 0:
        raise ConfigurationError("offset", offset, "a whole number >= 0")


def check_page(limit: int, what: str = "limit") -> None:
    """A page size: a whole number >= 1."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigurationError(what, limit, "a whole number >= 1")


def check_ttl(ttl: float | None) -> None:
    """A TTL is None (no expiry) or a positive number of seconds."""
    if ttl is not None and (not is_number(ttl) or ttl <= 0):
        raise ConfigurationError("ttl", ttl, "None or a number of seconds > 0")


def check_amount(namespace: str, key: str, amount: Any) -> None:
    """An ``incr`` amount must be a number; checked before anything is written."""
    if not is_number(amount):
        raise StateValueError(namespace, key, f"incr by {amount!r}", amount)


def is_live(expires_at: float | None, now: float) -> bool:
    """Whether a key with this expiry still exists at ``now``."""
    return expires_at is None or expires_at > now


def incremented(
    namespace: str,
    key: str,
    stored: tuple[Any, float | None] | None,
    *,
    amount: float,
    now: float,
    ttl: float | None,
) -> tuple[float, float | None]:
    """The counter rule both stores share: the new value and expiry after ``incr``.

    An absent or expired key counts as 0 with no expiry; without ``ttl`` a live key keeps its
    expiry. A stored value that is not a number raises ``StateValueError``.
    """
    current: Any = 0
    expires_at: float | None = None
    if stored is not None and is_live(stored[1], now):
        current, expires_at = stored
        if not is_number(current):
            raise StateValueError(namespace, key, "incr", current)
    if ttl is not None:
        expires_at = now + ttl
    return current + amount, expires_at


def is_number(value: Any) -> bool:
    """Numbers a counter can hold: int and float, not bool."""
    return type(value) in (int, float)

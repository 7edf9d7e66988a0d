"""Persisted records: what the store writes and reads.

The store treats snapshot and journal bodies as opaque bytes (the engine encodes its own structs
into them); the fields around the bodies are what the store indexes and filters on.
Persisted shapes only grow: a new field always gets a default.
"""

from __future__ import annotations

from cronflow_actors.messages.audit import SpanRows
from cronflow_actors.messages.base import Message

__all__ = [
    "JournalEntry",
    "LeaseRecord",
    "Mutation",
    "QueuedRun",
    "SnapshotRecord",
    "TimerRecord",
    "WaitRecord",
]


class SnapshotRecord(Message, frozen=True, kw_only=True, gc=False):
    """The latest state of one workflow instance, the unit of consistency.

    ``revision`` grows by one with every state change of the instance. A store writes revision 1
    only as a new row (an id already stored is refused) and revision n only over revision n - 1
    (compare-and-set), so two writers of one instance can never both succeed. ``status`` is what
    listings filter on (``running``, ``waiting``, ``completed``, ``failed``, ``canceled``);
    ``terminal`` marks instances that are over; ``runnable`` those with work to run now (a
    started handler, an action out), the only ones loaded when a runtime starts: the others wait
    for a durable wake-up row (a timer, an event wait, a pause, a queue slot).
    """

    instance_id: str
    workflow: str
    version: str = ""
    status: str
    terminal: bool = False
    revision: int
    updated_at: float
    body: bytes = b""
    parent_id: str | None = None
    created_at: float = 0.0
    runnable: bool = False


class JournalEntry(Message, frozen=True, kw_only=True, gc=False):
    """A recorded outcome of one attempt of one work item of an instance.

    An audit log entry, never read to recover: exactly-once recording comes from the snapshot
    (an outcome is applied only to the item's current attempt while it is started). Keyed by
    (instance_id, work_item_id, attempt); recording the same key twice keeps the first entry.
    """

    instance_id: str
    work_item_id: str
    attempt: int = 1
    step_id: str = ""
    outcome: str
    output: bytes | None = None
    error: str | None = None
    recorded_at: float


class TimerRecord(Message, frozen=True, kw_only=True, gc=False):
    """A durable timer owned by an instance: fires at ``due_at`` (epoch seconds) unless canceled."""

    timer_id: str
    instance_id: str
    due_at: float
    kind: str
    payload: bytes = b""


class WaitRecord(Message, frozen=True, kw_only=True, gc=False):
    """A durable wake-up row: a work item of an instance waiting for an event or a human.

    ``kind`` is ``"event"`` (``key`` is the event name) or ``"pause"`` (``key`` is the resume
    token, unique). A row is written when the wait starts and marked ended when it ends; an
    event or a resume finds the waiting instances through these rows alone, so waiting
    instances need not be in memory. ``data`` is msgpack of what listings show.
    """

    wait_id: str
    """The waiting work item's id."""
    instance_id: str
    kind: str
    key: str
    workflow: str = ""
    step: str = ""
    created_at: float
    expires_at: float | None = None
    data: bytes = b""
    ended: bool = False


class QueuedRun(Message, frozen=True, kw_only=True):
    """A run waiting for a place under a concurrency limit: it exists only as this row until it
    starts (its instance's first snapshot deletes the row in the same transaction)."""

    queue: str
    instance_id: str
    workflow: str
    payload: bytes = b""
    """msgpack of the start payload."""
    queued_at: float
    seq: int = 0
    """Order in the queue, given by the store."""


class LeaseRecord(Message, frozen=True, kw_only=True):
    """Who owns a database (SQLite: one runtime per file), until when.

    ``scope`` names what is owned (``"runtime"`` for the whole database; per-instance leases
    use the same shape). The owner renews ``expires_at`` by heartbeats; another runtime may take
    the lease once it has expired.
    """

    scope: str = "runtime"
    owner: str
    host: str
    pid: int
    acquired_at: float
    renewed_at: float
    expires_at: float


class Mutation(Message, frozen=True, kw_only=True, gc=False):
    """What one state change of one instance writes, atomically.

    Within one group-commit batch only the newest snapshot of each instance is written (checked
    against the revision the first one was based on); journal entries are appended and timer
    and wait changes applied in the order the mutations were submitted. ``dequeued`` names
    queued runs whose rows this change deletes (a queued run's start). ``spans``: the audit
    trail of the change (the spans of one trace and one revision, the snapshot's; None: none
    recorded), written in the same transaction.
    """

    snapshot: SnapshotRecord | None = None
    journal: tuple[JournalEntry, ...] = ()
    timers_set: tuple[TimerRecord, ...] = ()
    timers_cancel: tuple[str, ...] = ()
    waits_set: tuple[WaitRecord, ...] = ()
    waits_end: tuple[str, ...] = ()
    dequeued: tuple[str, ...] = ()
    spans: SpanRows | None = None
    replaces: tuple[str, bool, bool] | None = None
    """The indexed columns (status, terminal, runnable) of the snapshot this one replaces, if
    its writer knows them: a store that writes a snapshot whose indexed columns are unchanged
    with a cheaper statement learns from it whether to try that one first. A hint only: a
    wrong one costs a statement, never a wrong write."""

"""Persisted records: what the store writes and reads.

The store treats snapshot and journal bodies as opaque bytes (the engine encodes its own structs
into them); the fields around the bodies are what the store indexes and filters on.
Persisted shapes only grow: a new field always gets a default.
"""

from __future__ import annotations

from cronflow_actors.messages.base import Message

__all__ = ["JournalEntry", "Mutation", "SnapshotRecord", "TimerRecord"]


class SnapshotRecord(Message, frozen=True, kw_only=True):
    """The latest state of one workflow instance, the unit of consistency.

    ``revision`` grows with every state change of the instance; a store never replaces a snapshot
    by one with a lower revision. ``terminal`` marks instances that recovery can skip.
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


class JournalEntry(Message, frozen=True, kw_only=True):
    """A recorded outcome of one attempt of one work item of an instance.

    Keyed by (instance_id, work_item_id, attempt): recording the same key twice keeps the first
    record, which is what makes recording exactly-once when work runs again after a crash.
    """

    instance_id: str
    work_item_id: str
    attempt: int = 1
    step_id: str = ""
    outcome: str
    output: bytes | None = None
    error: str | None = None
    recorded_at: float


class TimerRecord(Message, frozen=True, kw_only=True):
    """A durable timer owned by an instance: fires at ``due_at`` (epoch seconds) unless canceled."""

    timer_id: str
    instance_id: str
    due_at: float
    kind: str
    payload: bytes = b""


class Mutation(Message, frozen=True, kw_only=True):
    """What one state change of one instance writes, atomically.

    Within one group-commit batch only the newest snapshot of each instance is written; journal
    entries are appended and timer changes applied in the order the mutations were submitted.
    """

    snapshot: SnapshotRecord | None = None
    journal: tuple[JournalEntry, ...] = ()
    timers_set: tuple[TimerRecord, ...] = ()
    timers_cancel: tuple[str, ...] = ()

"""Group commit: what one batch of mutations writes, computed once for both stores.

Within a batch only the newest snapshot of each instance is written, checked against the
revision the instance's first snapshot in the batch was based on (so a batch is as strict as its
mutations one by one: revision 1 inserts, revision n needs n - 1 stored). Journal entries and
audit spans are appended in submission order; timer and wait changes are reduced to each row's
final state, as if applied in order.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from cronflow_actors.messages import JournalEntry, Mutation, SnapshotRecord, TimerRecord, WaitRecord
from cronflow_actors.messages.audit import SpanRows

__all__ = ["BrokenChainError", "Coalesced", "coalesce"]


class BrokenChainError(Exception):
    """Two snapshots of one instance in a batch do not follow each other (n, then n + 1): the
    batch must be written mutation by mutation so that the offending one alone is refused."""


class Coalesced(msgspec.Struct, kw_only=True):
    """The rows one batch writes."""

    snapshots: dict[str, SnapshotRecord] = msgspec.field(default_factory=dict)
    bases: dict[str, int] = msgspec.field(default_factory=dict)
    """Per instance: the revision its first snapshot in the batch was based on (0: new)."""
    replaces: dict[str, tuple[str, bool, bool]] = msgspec.field(default_factory=dict)
    """Per instance: the indexed columns of the snapshot its first one in the batch replaces,
    where its mutation said (``Mutation.replaces``)."""
    journal: list[tuple[JournalEntry, int | None]] = msgspec.field(default_factory=list)
    """Each entry, with the revision of the snapshot its mutation wrote (None: none)."""
    spans: list[SpanRows] = msgspec.field(default_factory=list)
    """The audit trail: the spans of each (trace, revision), in submission order."""
    timers_set: dict[str, TimerRecord] = msgspec.field(default_factory=dict)
    timers_cancel: set[str] = msgspec.field(default_factory=set)
    waits_set: dict[str, WaitRecord] = msgspec.field(default_factory=dict)
    waits_end: set[str] = msgspec.field(default_factory=set)
    dequeued: list[str] = msgspec.field(default_factory=list)
    snapshots_seen: int = 0


def coalesce(mutations: Iterable[Mutation]) -> Coalesced:
    # (each commit's hot path, on the writer's thread: what a mutation lacks, most of it, is
    # passed over on its truth value, and the batch's parts are locals)
    out = Coalesced()
    snapshots, bases, replaces, journal = out.snapshots, out.bases, out.replaces, out.journal
    seen = 0
    for mutation in mutations:
        snapshot = mutation.snapshot
        if snapshot is not None:
            seen += 1
            instance_id = snapshot.instance_id
            current = snapshots.get(instance_id)
            if current is None:
                bases[instance_id] = snapshot.revision - 1
                if mutation.replaces is not None:
                    replaces[instance_id] = mutation.replaces
            elif snapshot.revision != current.revision + 1:
                raise BrokenChainError(instance_id)
            snapshots[instance_id] = snapshot
        if mutation.journal:  # each entry with the revision of its own run's snapshot, if any
            if snapshot is None:
                for entry in mutation.journal:
                    journal.append((entry, None))
            else:
                run, revision = snapshot.instance_id, snapshot.revision
                for entry in mutation.journal:
                    journal.append((entry, revision if entry.instance_id == run else None))
        if mutation.spans is not None:
            out.spans.append(mutation.spans)
        if mutation.timers_set or mutation.timers_cancel:
            _timers(out, mutation)
        if mutation.waits_set or mutation.waits_end:
            _waits(out, mutation)
        if mutation.dequeued:
            out.dequeued.extend(mutation.dequeued)
    out.snapshots_seen = seen
    return out


def _timers(out: Coalesced, mutation: Mutation) -> None:
    for timer in mutation.timers_set:
        out.timers_set[timer.timer_id] = timer
        out.timers_cancel.discard(timer.timer_id)
    for timer_id in mutation.timers_cancel:
        out.timers_set.pop(timer_id, None)
        out.timers_cancel.add(timer_id)


def _waits(out: Coalesced, mutation: Mutation) -> None:
    for wait in mutation.waits_set:
        out.waits_set[wait.wait_id] = wait
        out.waits_end.discard(wait.wait_id)
    for wait_id in mutation.waits_end:
        written = out.waits_set.get(wait_id)
        if written is not None:
            out.waits_set[wait_id] = msgspec.structs.replace(written, ended=True)
        else:
            out.waits_end.add(wait_id)

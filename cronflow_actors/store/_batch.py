"""Group commit: what one batch of mutations writes, computed once for both stores.

Within a batch only the newest snapshot of each instance is written (the highest revision; the
later submission among equal revisions), journal entries are appended in submission order, and
timer sets and cancels are reduced to each timer's final state, as if applied in order.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from cronflow_actors.messages import JournalEntry, Mutation, SnapshotRecord, TimerRecord

__all__ = ["Coalesced", "coalesce"]


class Coalesced(msgspec.Struct, kw_only=True):
    """The rows one batch writes."""

    snapshots: dict[str, SnapshotRecord] = msgspec.field(default_factory=dict)
    journal: list[JournalEntry] = msgspec.field(default_factory=list)
    timers_set: dict[str, TimerRecord] = msgspec.field(default_factory=dict)
    timers_cancel: set[str] = msgspec.field(default_factory=set)
    snapshots_seen: int = 0


def coalesce(mutations: Iterable[Mutation]) -> Coalesced:
    out = Coalesced()
    snapshots = out.snapshots
    for mutation in mutations:
        snapshot = mutation.snapshot
        if snapshot is not None:
            out.snapshots_seen += 1
            current = snapshots.get(snapshot.instance_id)
            if current is None or snapshot.revision >= current.revision:
                snapshots[snapshot.instance_id] = snapshot
        if mutation.journal:
            out.journal.extend(mutation.journal)
        for timer in mutation.timers_set:
            out.timers_set[timer.timer_id] = timer
            out.timers_cancel.discard(timer.timer_id)
        for timer_id in mutation.timers_cancel:
            out.timers_set.pop(timer_id, None)
            out.timers_cancel.add(timer_id)
    return out

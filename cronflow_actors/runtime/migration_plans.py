"""A migration under way as the store keeps it (``Runtime.migrate``, ``migrations.py``): the
plan of its hops, written before anything moves and removed when the last hop is done, and
what pruning must leave until then."""

from __future__ import annotations

import msgspec

from cronflow_actors.messages.engine import Principal
from cronflow_actors.store import Store

__all__ = ["PLANS", "MigrationPlan", "kept_by_migrations"]

PLANS = ("cronflow:migrations", "pending")
"""(namespace, key) of the plans under way: instance id -> ``MigrationPlan``."""


class MigrationPlan(msgspec.Struct, kw_only=True):
    """A migration under way, as stored until it is done."""

    instance: str
    workflow: str
    hops: list[tuple[str, str]]
    """(version, id of the new root) of each hop, in order."""
    principal: Principal | None = None
    """The outside caller who asked for it (None: this process's own call), whom the old
    root's ``cancel`` policy must admit before anything moves, also when a restart carries it
    on."""


async def kept_by_migrations(store: Store, now: float) -> set[str]:
    """The instances a migration under way still needs (its old root, whose recorded outputs
    and kept events its next hop carries over, and each hop's new root): pruning leaves them
    until the migration is done, even canceled ones."""
    kept: set[str] = set()
    for stored in (await store.kv_get(*PLANS, now=now, default={})).values():
        plan = msgspec.convert(stored, MigrationPlan)
        kept.add(plan.instance)
        kept.update(new_id for _, new_id in plan.hops)
    return kept

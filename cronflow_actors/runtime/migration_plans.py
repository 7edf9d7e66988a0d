"""A migration under way as the store keeps it (``Runtime.migrate``, ``migrations.py``): the
plan of its hops, written before anything moves and removed when the last hop is done, and
what pruning must leave until then.

Each plan is a key of its own (namespace ``cronflow:migration-plans``, the old root's id), set
in one step of the store (``kv_setdefault``): of two callers that plan one instance's migration
at once, in one process or two sharing a PostgreSQL database, one writes its plan and the other
carries out that one. (Runtimes before this one kept every plan in one value, read, changed and
written back whole: two processes doing so at once wrote over each other's plans, and the runs
those plans moved were left canceled with no successor. Such a value is still read, and its
plans move to keys of their own when a runtime starts.)
"""

from __future__ import annotations

from typing import Any

import msgspec

from cronflow_actors.kernel import Clock
from cronflow_actors.messages.engine import Principal
from cronflow_actors.store import Store

__all__ = ["CLAIMS", "PLANS", "MigrationPlan", "PlanBook", "kept_by_migrations"]

PLANS = "cronflow:migration-plans"
"""The namespace of the plans under way: the old root's id -> its ``MigrationPlan``."""

_LEGACY = ("cronflow:migrations", "pending")
"""(namespace, key) of the one value earlier runtimes kept every plan in."""

CLAIMS = "cronflow:migration-claims"
"""Who carries on a plan whose process ended: ``<instance> <ended owner>`` -> the claimer."""


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
    owner: str = ""
    """The runtime process carrying it out, or that did last (its lease's owner id; "" in plans
    of earlier runtimes): the processes sharing a database carry on the plans of one that
    ended."""
    stopped: bool = False
    """Its owner's carrying out of it stopped with the migration pending (a start that raised):
    no process carries it out, and any may take it on, or give it up, once it claimed this turn
    of it (its owner alive was read as "under way": chaos h30 M1)."""
    turn: int = 0
    """How many times a carrying out of it stopped: each turn is claimed by one process."""


class PlanBook:
    """The plans under way in one store."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def all(self) -> dict[str, MigrationPlan]:
        """Every plan under way, by the old root's id."""
        return await _all(self._store, self._clock.now())

    async def get(self, instance_id: str) -> MigrationPlan | None:
        now = self._clock.now()
        stored = await self._store.kv_get(PLANS, instance_id, now=now, default=None)
        if stored is None:
            stored = (await self._store.kv_get(*_LEGACY, now=now, default={})).get(instance_id)
        return None if stored is None else msgspec.convert(stored, MigrationPlan)

    async def add(self, plan: MigrationPlan) -> MigrationPlan:
        """``plan``, stored unless a plan of its instance is there: then that one, which the
        caller carries out instead (another caller's, in this process or another)."""
        builtins = msgspec.to_builtins(plan)
        stored = await self._store.kv_setdefault(
            PLANS, plan.instance, builtins, now=self._clock.now()
        )
        return plan if stored == builtins else msgspec.convert(stored, MigrationPlan)

    async def planned(self, instance_id: str) -> bool:
        """Whether a plan under way will start a new root under ``instance_id``: an id an
        outside caller may not take (one who did had the migration end on their run)."""
        plans = await self.all()
        return any(instance_id == new_id for p in plans.values() for _, new_id in p.hops)

    async def save(self, plan: MigrationPlan) -> None:
        """Write ``plan`` over its instance's (a process that took it on: its owner)."""
        await self._store.kv_set(
            PLANS, plan.instance, msgspec.to_builtins(plan), now=self._clock.now()
        )

    async def claim(self, plan: MigrationPlan, owner: str) -> bool:
        """Whether ``owner`` carries on (or gives up) ``plan``, whose process ended or which
        stopped: of the processes asking at once, one is told so. The claim lasts ten minutes:
        the claimer names itself the plan's owner at once (``take``), or gives the plan up, or
        lets the claim go (``unclaim``); if it ends before, another may claim it then."""
        claimed = await self._store.kv_setdefault(
            CLAIMS, _claim_key(plan), owner, now=self._clock.now(), ttl=600
        )
        return bool(claimed == owner)

    async def claimant(self, plan: MigrationPlan) -> str | None:
        """The process whose claim of ``plan`` holds (None: none does)."""
        now = self._clock.now()
        owner = await self._store.kv_get(CLAIMS, _claim_key(plan), now=now, default=None)
        return owner if isinstance(owner, str) else None

    async def unclaim(self, plan: MigrationPlan) -> None:
        """Let go of a claim of ``plan`` that came to nothing (a give-up that found the
        migration going on), so that another may claim this turn of it."""
        await self._store.kv_delete(CLAIMS, _claim_key(plan))

    async def take(self, plan: MigrationPlan, owner: str) -> bool:
        """Make ``owner`` the one carrying ``plan`` out (its process ended, or it stopped), if
        it claims this turn of it: False if another process did (carrying it on, or giving it
        up, at this moment)."""
        if not await self.claim(plan, owner):
            return False
        plan.owner, plan.stopped = owner, False
        await self.save(plan)
        return True

    async def set_down(self, plan: MigrationPlan, owner: str) -> None:
        """``owner``'s carrying out of ``plan`` stopped with the migration pending: the plan
        stays, ``stopped``, so that any process sharing the database may give it up or take it
        on; its ended owner's is carried on as before."""
        stored = await self.get(plan.instance)
        if stored is None or stored.owner != owner or stored.stopped or stored.hops != plan.hops:
            return  # done, given up, or taken on meanwhile
        plan.stopped, plan.turn = True, stored.turn + 1
        await self.save(plan)

    async def naming(self, run_id: str) -> MigrationPlan | None:
        """The plan that names ``run_id``: the run it migrates, or the new run of one of its
        hops (a migration through versions in between)."""
        plan = await self.get(run_id)
        if plan is not None:
            return plan
        for plan in (await self.all()).values():
            if any(new_id == run_id for _version, new_id in plan.hops):
                return plan
        return None

    async def abandon(self, plan: MigrationPlan, run_id: str) -> list[str] | None:
        """Drop ``plan`` if the new run of the hop after ``run_id`` (a run it names) never
        started (its start raised): the ids of the runs it will not start, or None (that run is
        stored: the migration goes on from it, and only its end frees anything)."""
        chain = [plan.instance, *(new_id for _version, new_id in plan.hops)]
        if run_id not in chain[:-1]:
            return None
        after = chain[chain.index(run_id) + 1 :]
        if await self._store.instance_exists(after[0]):
            return None
        await self.forget(plan.instance)
        return after

    async def forget(self, instance_id: str) -> None:
        await self._store.kv_delete(PLANS, instance_id)
        legacy: dict[str, Any] = await self._store.kv_get(
            *_LEGACY, now=self._clock.now(), default={}
        )
        if instance_id in legacy:
            del legacy[instance_id]
            await self._store.kv_set(*_LEGACY, legacy, now=self._clock.now())

    async def move_legacy(self) -> None:
        """At start: the plans an earlier runtime kept in one value go to keys of their own."""
        now = self._clock.now()
        legacy: dict[str, Any] = await self._store.kv_get(*_LEGACY, now=now, default={})
        for instance_id, stored in legacy.items():
            await self._store.kv_setdefault(PLANS, instance_id, stored, now=now)
        if legacy:
            await self._store.kv_delete(*_LEGACY)


def _claim_key(plan: MigrationPlan) -> str:
    """The claim of ``plan`` as its owner (ended, or stopped) and turn leave it."""
    key = f"{plan.instance} {plan.owner}"
    return f"{key} {plan.turn}" if plan.turn else key  # (a turn 0's as runtimes before it)


async def _all(store: Store, now: float) -> dict[str, MigrationPlan]:
    found = dict(await store.kv_get(*_LEGACY, now=now, default={}))
    found.update(await store.kv_items(PLANS, now=now))
    return {k: msgspec.convert(v, MigrationPlan) for k, v in found.items()}


async def kept_by_migrations(store: Store, now: float) -> set[str]:
    """The instances a migration under way still needs (its old root, whose recorded outputs
    and kept events its next hop carries over, and each hop's new root): pruning leaves them
    until the migration is done, even canceled ones."""
    kept: set[str] = set()
    for plan in (await _all(store, now)).values():
        kept.add(plan.instance)
        kept.update(new_id for _, new_id in plan.hops)
    return kept

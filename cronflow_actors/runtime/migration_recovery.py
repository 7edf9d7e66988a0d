"""How ``Migrations`` carries on the migrations that are pending as a runtime starts (a crash
cut them, or their new run's start raised) and those of processes that ended while sharing the
database: each carried on by one process (``PlanBook.claim``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.runtime.migration_plans import MigrationPlan, PlanBook
from cronflow_actors.store import Store

__all__ = ["PlanRecovery"]

logger = logging.getLogger(__name__)


class PlanRecovery:
    """The carrying on of plans at start and after another process's end (``Migrations``
    inherits it, and sets what is declared here)."""

    _book: PlanBook
    _store: Store
    _registry: WorkflowRegistry
    _owner: str
    _is_live: Callable[[str], Awaitable[bool]] | None
    _spawn: Callable[[Awaitable[Any], str], Any]
    _running: dict[str, tuple[MigrationPlan, asyncio.Future[str]]]

    async def _carry_out(self, plan: MigrationPlan) -> str:
        raise NotImplementedError  # Migrations carries a plan out

    async def resume(self) -> None:
        """At start: carry on the migrations a crash interrupted (of workflows registered),
        but those another live process carries out (sharing the database)."""
        await self._book.move_legacy()
        for instance_id, plan in (await self._book.all()).items():
            stored_at = self._store.instance_exists
            if not await stored_at(plan.instance) and not await stored_at(plan.hops[0][1]):
                logger.warning(
                    "the migration of %s is dropped: neither it nor its successor is stored "
                    "(pruned by a runtime that did not keep a migrating run)",
                    instance_id,
                )
                await self._book.forget(instance_id)
                continue
            missing = self._missing(plan)
            if missing:
                logger.warning(
                    "the migration of %s waits for a process that registers %s",
                    instance_id,
                    missing,
                )
                continue
            if self._is_live is not None and plan.owner and await self._is_live(plan.owner):
                continue  # another process's, under way (or stopped, waiting to be asked again)
            self._spawn(self._resumed(plan), f"resume migration {instance_id}")

    async def carry_on_orphans(self) -> None:
        """Carry on the migrations of processes that ended (sharing the database), each taken
        on by one process: a plan cut between its old root's cancel and its new root's start
        left the run canceled with no successor until a runtime started again."""
        if self._is_live is None:
            return
        for plan in (await self._book.all()).values():
            if plan.instance in self._running or plan.owner in ("", self._owner):
                continue
            if await self._is_live(plan.owner) or self._missing(plan):
                continue  # (left for a process that registers its versions: newcomer h27)
            ended = plan.owner
            if not await self._book.take(plan, self._owner):
                continue  # another process took it on
            logger.warning(
                # (cut by its end, or left pending there as the new run's start raised:
                # chaos h35 F3, whose log read "cut" of one that was pending)
                "carrying on the migration of %s, left unfinished by process %s, which has ended",
                plan.instance,
                ended,
            )
            self._spawn(self._resumed(plan), f"resume migration {plan.instance}")

    def _missing(self, plan: MigrationPlan) -> str:
        """The versions of ``plan``'s hops this process has not registered ("": none)."""
        have = self._registry.versions(plan.workflow)
        return ", ".join(f"{plan.workflow} {v}" for v, _id in plan.hops if v not in have)

    async def _resumed(self, plan: MigrationPlan) -> None:
        try:
            new_id = await self._carry_out(plan)
            logger.info("resumed the migration of %s: now %s", plan.instance, new_id)
        except Exception:
            logger.exception("the migration of %s could not be resumed", plan.instance)

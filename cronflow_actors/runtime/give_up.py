"""Giving a pending migration up: a run canceled for a migration whose next run never
started (its start raised) stays ended, its place under its flow's limits is freed and its
end hooks are called, once. ``Runtime.cancel`` and ``Runtime.cancel_workflow`` of such a run
come here."""

from __future__ import annotations

import logging
import math
from typing import Any

from msgspec.structs import replace

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.state_body import encode_state
from cronflow_actors.engine.states import WorkflowState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import (
    InstanceBlockedError,
    RevisionConflictError,
    UnknownWorkflowError,
)
from cronflow_actors.messages import Mutation
from cronflow_actors.messages.engine import GiveUpMigration, Principal
from cronflow_actors.net.migration import refused
from cronflow_actors.runtime.cluster import ClusterLease
from cronflow_actors.runtime.migration_plans import PlanBook
from cronflow_actors.runtime.parts import RuntimeParts

__all__ = ["GiveUpMethods"]


logger = logging.getLogger(__name__)


class GiveUpMethods(RuntimeParts):
    """How ``Runtime`` gives a pending migration up (the net and flow cancels inherit it)."""

    async def _give_up_migration(
        self, run_id: str, principal: Principal | None, reason: str = ""
    ) -> bool:
        """``cancel`` of a run canceled for a migration whose next run never started (its start
        raised: a version that cannot start from the run's payload, say) gives the migration
        up: the place the run held under its flow's limits is free, its end's hooks are owed
        and called (its successor, which would have, never runs), and it can be replayed
        (nothing else freed it, a restart included: hostile h26 H2). A net's is given up by the
        caller its cancel policy admitted (or this process). False: the run has no such
        migration, or it goes on (a carrying out of it under way), or was given up already."""
        book = PlanBook(self.store, self.clock)
        plan = await book.naming(run_id)
        release = None if plan is None else self.migrations.hold(plan)
        if plan is None:
            return False
        if release is None:  # its outcome is still to come: not "it has ended" (hostile h29 M1)
            raise refused(
                f"the migration of run {plan.instance!r}",
                "it is being carried out, or given up by another cancel, at this moment",
                "ask again once that has finished",
            )
        given_up = False
        try:
            given_up = await self._give_up(book, plan, run_id, principal, reason)
        finally:
            if given_up:
                release("a cancel of the run gave it up", "replay or resume the run instead")
            else:
                release("a cancel of the run was giving it up meanwhile", "ask again")
        return given_up

    async def _give_up(
        self, book: PlanBook, plan: Any, run_id: str, principal: Principal | None, reason: str
    ) -> bool:
        """``_give_up_migration`` as no carrying out of ``plan`` runs in this process: the
        successor forgotten in the run's own transaction first (one give-up wins, its end hooks
        owed in that commit: chaos h27 F3, F4; hostile h27 L1), then the plan."""
        asked = plan.principal.id if plan.principal is not None else None
        if (
            principal is not None
            and plan.workflow not in self.catalog.roots
            and asked != principal.id
        ):  # another caller of a net's: told who may, not "it has ended" (hostile h29 M2), and
            # not the asker's id (a caller the policy would refuse: the reviewer's h29 M1)
            who = "another caller" if asked else "this process (from Python)"
            raise refused(
                f"the migration of run {plan.instance!r}",
                f"{who} asked for it, whom the net's cancel action admitted",
                "the caller who asked gives it up (or an operator, with Runtime.cancel from "
                "Python)",
            )
        claimed = await self._claimed(book, plan)
        given_up = False
        try:
            given_up = await self._give_up_claimed(book, plan, run_id, principal, reason)
        finally:
            if claimed and not given_up:  # the migration goes on: another may claim it
                await book.unclaim(plan)
        return given_up

    async def _give_up_claimed(
        self, book: PlanBook, plan: Any, run_id: str, principal: Principal | None, reason: str
    ) -> bool:
        """``_give_up`` once no other process may carry ``plan`` on (or give it up)."""
        chain = [plan.instance, *(new_id for _version, new_id in plan.hops)]
        if run_id not in chain[:-1]:
            return False
        successor = chain[chain.index(run_id) + 1]
        if await self.store.instance_exists(successor):
            return False  # its next run started: the migration goes on from it
        hooks = self._services.end_hooks
        command = GiveUpMigration(
            given_up=successor,
            to_version=plan.hops[-1][0],
            owed=hooks is not None and hooks.owed(plan.workflow, WorkflowState.CANCELED),
            principal=principal,
            reason=reason,
        )
        try:
            given_up = await self.instances.send(run_id, command)
        except (InstanceBlockedError, UnknownWorkflowError):  # it cannot be loaded here
            given_up = await self._give_up_offline(plan.workflow, run_id, command)
        if not given_up:
            return False  # given up already (by another cancel)
        not_started = await book.abandon(plan, run_id)
        self.queues.given_up(plan.workflow, not_started or [successor])
        self.telemetry.migration_given_up(plan.workflow)
        logger.warning(
            "the migration of %s to %r is given up (its run %s never started): run %s stays "
            "canceled; replay it to run its work again",
            plan.instance,
            plan.hops[-1][0],
            successor,
            run_id,
        )
        return True

    async def _give_up_offline(self, workflow: str, run_id: str, command: GiveUpMigration) -> bool:
        """``command`` for a run this process cannot load (its version not registered here, or
        held: canceled offline for its migration), written in its snapshot with its span; its
        end hooks called at most once, as for a run canceled offline (the reviewer's h26 M2).
        False if it names another successor, or was written meanwhile."""
        snapshot = await self.store.load_snapshot(run_id)
        state = decode_state(snapshot.body, run_id) if snapshot is not None else None
        if snapshot is None or state is None or state.migrated_to != command.given_up:
            return False
        now, trail = self.clock.now(), self._services.audit
        # its span is made as the engine makes a GiveUpMigration's: one maker of its attributes
        audit = trail.recorder(state, now) if trail is not None else None
        state.migrated_to, state.revision = None, snapshot.revision + 1
        body = encode_state(state)
        record = replace(snapshot, revision=state.revision, updated_at=now, body=body)
        if audit is not None:
            audit.begin_turn(command)
            audit.end_turn()
        spans = audit.spans(state.revision) if audit is not None else None
        try:
            await self.store.commit(Mutation(snapshot=record, spans=spans))
        except RevisionConflictError:  # written meanwhile (another process gave it up)
            return False
        if audit is not None:
            audit.durable()
        compiled = self.catalog.compiled.get(workflow)
        if compiled is not None:
            info = Transaction.workflow_info(state.workflows[state.id])
            self.run_hooks.finished(compiled.hooks, info, body, None)
        return True

    async def _claimed(self, book: PlanBook, plan: Any) -> bool:
        """Whether this process claimed ``plan`` to give it up (on a shared database, a plan
        whose process ended or which stopped: one of the processes asking at once gives it up,
        and none carries it on meanwhile: the reviewer's h26 M1); False: no claim was needed.
        Refused while another live process carries it out, or claimed it."""
        lease = self.lease
        if not isinstance(lease, ClusterLease) or not plan.owner:
            return False  # (a plan of a runtime from before owners: as before)
        mine = plan.owner == lease.owner
        if mine and not plan.stopped:
            return False  # (under way here is refused by its hold)
        subject = f"the migration of run {plan.instance!r}"
        named, left = ("", 0.0) if mine or plan.stopped else await lease.named(plan.owner)
        if left > 0:  # live, by the same read that names it (it said "within 0 s" of a live one)
            raise refused(
                subject,
                f"{named} carries it out at this moment",
                # (not "ask that process": a cancel there waits for the migration under way,
                # then finds it done: chaos h33 F3)
                "ask again once it has finished (if that process has stopped, its lease ends "
                f"within {max(1, math.ceil(left))} s, and then any process may give it up)",
            )
        if not await book.claim(plan, lease.owner):
            # the claim another process made first: named, as a live holder is (chaos h33 F1)
            claimant = await book.claimant(plan)
            who = "another process sharing the database"
            if claimant is not None and claimant != lease.owner:
                who = (await lease.named(claimant))[0]
            raise refused(
                subject,
                f"{who} carries it on or gives it up at this moment",
                "ask again once it has finished",
            )
        return True

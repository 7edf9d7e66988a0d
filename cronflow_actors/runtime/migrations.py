"""The durable driver of ``Runtime.migrate`` (spec/tasquencer-semantics.md section 9).

``migrate(instance_id, to_version)`` plans a route of registered migrations from the instance's
version to ``to_version`` (``net.migration`` pairs, shortest first; a flow may also go straight to
any registered version, its recorded step outputs carried over), then, hop by hop: the old root is
canceled for the migration (reason ``migration``: its ``cancel`` action skipped, its activities
run; the instance records the id of its successor), and a new root of the next version starts
fast-forwarded, with the old instance's workflows as its ``MigrationRecord``.

Durability: before anything moves, the plan (every hop's version and its new root's id) is written
to the store (``migration_plans.py``: a key set in one step, so two callers at once, in one process
or two, carry out one plan), and removed when the last hop is done. Each step is idempotent (an old
root canceled for this successor is not canceled again; a successor stored is not started again,
its start one transaction), so a runtime that finds a plan as it starts carries it out to the end
(a live process carries on a dead one's). A hop that fails after its old root was canceled (a
migrator raised) keeps the plan: asked again, or at the next start, it goes on; a cancel drops it.

An old instance whose definition is not registered here (or is held ``blocked``) is canceled
offline, in its snapshot, without any of its user code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from itertools import pairwise
from typing import Any

import pykka

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.audit import AuditTrail
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.states import is_final
from cronflow_actors.errors import (
    ActionError,
    InstanceBlockedError,
    InstanceExistsError,
    InvalidStateTransitionError,
    MigrationError,
    NotFoundError,
    RuntimeNotRunningError,
    StoreError,
    refused_in,
)
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import SnapshotRecord
from cronflow_actors.messages.engine import CancelWorkflow, InstanceState, Principal, StartWorkflow
from cronflow_actors.messages.migrations import MigrationRecord
from cronflow_actors.net.migration import ended_first, refused
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.runtime.carried import (
    MigrationLinks,
    answered_errors,
    carried_events,
    carried_on,
    links_of,
    sources_of,
)
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.instances import InstanceDirectory
from cronflow_actors.runtime.migration_plans import MigrationPlan, PlanBook, kept_by_migrations
from cronflow_actors.runtime.migration_recovery import PlanRecovery
from cronflow_actors.runtime.migration_routes import route_of
from cronflow_actors.runtime.offline import end_offline
from cronflow_actors.runtime.pinning import is_held
from cronflow_actors.runtime.pruning import record_successors
from cronflow_actors.store import Store

__all__ = ["MigrationLinks", "Migrations", "kept_by_migrations", "sources_of"]

logger = logging.getLogger(__name__)

_NOT_USER_CODE = (StoreError, RuntimeNotRunningError, MigrationError, pykka.ActorDeadError)
"""What a new root's start raises that is not its initializer's or a migrator's error."""

_CANCEL_REFUSED = (
    InvalidStateTransitionError,  # it ended between the read and the cancel
    ActionError,  # its cancel action refused the caller
    InstanceBlockedError,  # held meanwhile, for a caller its policy cannot admit
    MigrationError,  # the same, found before it was sent
)
"""What the old root's cancel raises when it refused, and nothing moved."""


class Migrations(PlanRecovery):
    def __init__(
        self,
        *,
        registry: WorkflowRegistry,
        catalog: FlowCatalog,
        store: Store,
        clock: Clock,
        instances: InstanceDirectory,
        new_id: Callable[[], str],
        spec_of: Callable[[SnapshotRecord], NetSpec],
        spawn: Callable[[Awaitable[Any], str], Any],
        audit: Callable[[], AuditTrail | None] = lambda: None,
        owner: str = "",
        is_live: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._registry = registry
        self._owner = owner
        """This process (its lease's owner id), which its plans name as theirs."""
        self._is_live = is_live
        """Whether a process sharing the database is alive (None: the store has one)."""
        self._book = PlanBook(store, clock)
        self._audit = audit
        """The runtime's audit trail as it is now (None: off): an offline cancel records it."""
        self._catalog = catalog
        self._store = store
        self._clock = clock
        self._instances = instances
        self._new_id = new_id
        self._spec_of = spec_of
        self._spawn = spawn
        self._lock = asyncio.Lock()
        self._running: dict[str, tuple[MigrationPlan, asyncio.Future[str]]] = {}
        """Instances being migrated here -> (target version, the outcome)."""

    # -- asking ------------------------------------------------------------------------------------

    async def migrate(
        self, instance_id: str, to_version: str, principal: Principal | None = None
    ) -> str:
        """Migrate root instance ``instance_id`` to ``to_version``; the new root's id once every
        hop is durable. Asking again is safe: a migration under way (or interrupted) to the same
        version is joined (or carried on), and one done already answers the same id.
        ``MigrationError`` (nothing changed) for an instance that has ended or was migrated to
        another version, an unknown version, no route of migrations. ``principal``: an outside
        caller, whom a net instance's ``cancel`` action must admit (a flow's run has none: its
        migration, as its cancel, is an operator's call); refused, nothing changes."""
        subject = f"instance {instance_id!r}"
        if not isinstance(instance_id, str) or not instance_id or "." in instance_id:
            raise refused(subject, "it is not a root instance id", "give a root's id")
        running = self._running.get(instance_id)
        if running is not None:
            under_way, done = running
            target = under_way.hops[-1][0]
            if target != to_version or self._foreign(under_way, principal):
                raise refused(subject, f"it is being migrated to {target!r}", "wait for that")
            return await asyncio.shield(done)  # the same migration: its outcome
        try:
            snapshot = await self._instances.read(instance_id)
        except NotFoundError:
            if await self._store.instance_exists(instance_id):  # the id of a queued run
                raise refused(
                    subject,
                    "it is queued (its flow's concurrency limit) and has not started",
                    "nothing to migrate: it starts on the newest active version when its turn "
                    "comes",
                ) from None
            raise
        state = decode_state(snapshot.body, instance_id)
        root = state.workflows.get(state.id)
        if root is None:
            raise NotFoundError("workflow instance", instance_id)
        plan = await self._book.get(instance_id)
        if plan is not None:  # under way, or interrupted (a crash, a migrator that raised)
            if plan.hops[-1][0] != to_version:
                raise refused(
                    subject,
                    f"its migration to {plan.hops[-1][0]!r} is not finished",
                    "finish that one first (migrate to that version again), or give it up "
                    "(cancel the run)",
                )
            self._check_carry_on(subject, plan, principal, state)
            return await self._carry_out(plan)
        answered = await self._done(subject, state, to_version)
        if answered is not None:
            return answered
        route = route_of(
            self._registry,
            self._catalog,
            state.workflow,
            state.version,
            to_version,
            held=is_held(snapshot),
        )
        ours = MigrationPlan(
            instance=instance_id,
            workflow=state.workflow,
            hops=[(version, self._new_id()) for version in route],
            principal=principal,  # (a flow's run: only named in its cancel, no policy asked)
            owner=self._owner,
        )
        async with self._lock:  # unless one that asked meanwhile has finished already
            answered = await self._done(subject, await self._read(instance_id), to_version)
            if answered is not None:
                return answered
            plan = await self._book.add(ours)  # one step: of two callers, the first's
            again = await self._read(instance_id)
            if plan is ours and again.migrated_to is not None:  # another's, done meanwhile
                await self._book.forget(instance_id)
                answered = await self._done(subject, again, to_version)
                if answered is None:  # (its successor is not stored, and its plan is gone)
                    raise refused(subject, "another caller's migration is under way", "ask again")
                return answered
        if plan is not ours:  # a caller asked meanwhile, here or in another process
            if plan.hops[-1][0] != to_version:
                raise refused(
                    subject, f"it is being migrated to {plan.hops[-1][0]!r}", "wait for that"
                )
            self._check_carry_on(subject, plan, principal, state)
        return await self._carry_out(plan)

    def _foreign(self, plan: MigrationPlan, principal: Principal | None) -> bool:
        """Whether ``principal``, an outside caller, asks to go on with a plan another caller
        made (this process's own included), whose cancel policy admitted that caller, not it;
        a flow's run has no policy."""
        if principal is None or plan.workflow in self._catalog.roots:
            return False
        return plan.principal is None or plan.principal.id != principal.id

    def _check_carry_on(
        self, subject: str, plan: MigrationPlan, principal: Principal | None, state: InstanceState
    ) -> None:
        """Refuse an outside caller who would carry on another caller's plan before its old
        root is canceled: the cancel would go through on the other caller's word. Once it is
        canceled, anyone may finish the migration (it only starts the new roots)."""
        if self._foreign(plan, principal) and state.migrated_to != plan.hops[0][1]:
            raise refused(
                subject,
                f"a migration of it to {plan.hops[-1][0]!r} that another caller asked for is "
                "pending",
                "it goes on when the runtime starts again, or when that caller asks again",
            )

    async def _done(self, subject: str, state: InstanceState, to_version: str) -> str | None:
        """For an instance with no migration under way: the id it was migrated to, if it was to
        ``to_version``; None if it can migrate; ``MigrationError`` if it was migrated elsewhere
        or has ended."""
        if state.migrated_to is not None:  # done already: the same answer, or a refusal
            last = await self._successor(state)
            if last.id == state.id:
                return None  # its successor is to start still: the plan under way is joined
            if last.version == to_version:
                return last.id
            raise refused(
                subject,
                f"it was migrated to {state.migrated_to!r} (now {last.id!r}, {last.version!r})",
                "migrate that one instead",
            )
        root = state.workflows[state.id]
        if is_final(root.state):
            raise refused(
                subject, f"it has ended ({root.state})", "only a running instance can migrate"
            )
        return None

    def hold(self, plan: MigrationPlan) -> Callable[[str, str], None] | None:
        """While a cancel gives ``plan`` up, a carrying out of it is refused (hostile h27 H1:
        both won): None if one is under way here; else ``release(why, advice)`` ends the hold."""
        if plan.instance in self._running:
            return None
        held: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._running[plan.instance] = (plan, held)

        def release(why: str, advice: str) -> None:
            del self._running[plan.instance]
            held.set_exception(refused(f"the migration of {plan.instance!r}", why, advice))
            held.exception()  # retrieved: nobody need be waiting

        return release

    async def links(self, instance_id: str) -> MigrationLinks:
        return links_of(await self._read(instance_id))

    # -- carrying out --------------------------------------------------------------------------

    async def _carry_out(self, plan: MigrationPlan) -> str:
        """Carry ``plan`` out, once at a time per instance (a second caller, say a resume at
        start and a call asking again, gets the first one's outcome)."""
        running = self._running.get(plan.instance)
        if running is not None:
            return await asyncio.shield(running[1])
        shared = self._is_live is not None
        if shared and plan.stopped and not await self._book.take(plan, self._owner):
            raise refused(
                f"the migration of {plan.instance!r}",
                "another process sharing the database carries it out or gives it up",
                "ask again once it has finished",
            )
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._running[plan.instance] = (plan, done)
        try:
            old = plan.instance
            chain = [old, *(new_id for _version, new_id in plan.hops)]
            # each run kept while the next is, once the plan that keeps them is gone (ops h41 F3)
            await record_successors(self._store, pairwise(chain), self._clock.now())
            for version, new_id in plan.hops:
                await self._hop(plan, old, version, new_id)
                old = new_id
            await self._book.forget(plan.instance)
        except BaseException as error:
            if shared and plan.owner == self._owner and isinstance(error, Exception):
                # (a crash leaves it to the processes that see this one end)
                await self._set_down(plan)
            done.set_exception(error)
            done.exception()  # retrieved: nobody else need be waiting
            raise
        finally:
            del self._running[plan.instance]
        done.set_result(old)
        return old

    async def _set_down(self, plan: MigrationPlan) -> None:
        """``plan`` stays pending, carried out by none: any process may take it on or give it
        up (this process alive said "under way": chaos h30 M1)."""
        try:
            await self._book.set_down(plan, self._owner)
        except Exception:  # (the carrying out's own error is raised all the same)
            logger.exception(
                "the migration of %s stays pending, still naming this process, which does not "
                "carry it out: only this process can give it up while it lives",
                plan.instance,
            )

    async def _successor(self, state: InstanceState) -> InstanceState:
        """The instance at the end of ``state``'s chain of migrations."""
        while state.migrated_to is not None:
            try:
                snapshot = await self._instances.read(state.migrated_to)
            except NotFoundError:
                break  # its start is still to come (a plan under way)
            state = decode_state(snapshot.body, snapshot.instance_id)
        return state

    async def _hop(self, plan: MigrationPlan, old_id: str, version: str, new_id: str) -> None:
        """One hop, each step skipped if a try before a crash did it. A hop that fails after
        its old root is canceled keeps the plan, to be carried on; one refused before (the old
        root ended meanwhile) drops it."""
        workflow = plan.workflow
        if await self._store.instance_exists(new_id):  # started before a crash (one commit)
            if await self._ours(new_id, old_id):
                return
            await self._book.forget(plan.instance)  # it can never finish: the run is replayable
            raise refused(
                f"instance {old_id!r}",
                f"another start took {new_id!r}, the id its migration planned for its new run",
                "the migration cannot finish; replay the run to start it again",
            )
        snapshot = await self._instances.read(old_id)
        state = decode_state(snapshot.body, snapshot.instance_id)
        if state.migrated_to != new_id:
            root = state.workflows[state.id]
            if state.migrated_to is not None or is_final(root.state):
                await self._book.forget(plan.instance)
                raise ended_first(old_id, root.state)
            caller = plan.principal if old_id == plan.instance else None  # later: our own roots
            try:
                await self._cancel(snapshot, state, new_id, caller)
            except Exception as error:
                if not await self._canceled_for(old_id, new_id):  # (by this plan elsewhere: on)
                    if isinstance(error, InvalidStateTransitionError):  # it ended meanwhile
                        await self._book.forget(plan.instance)  # nothing moved, nor will
                        raise ended_first(old_id, error.current) from None
                    refusal = isinstance(error, _CANCEL_REFUSED) or refused_in(error) is not None
                    # a refusal of the caller drops the plan only before its first cancel: a
                    # later hop's old root is one of the migration's own, with no caller
                    if refusal and old_id == plan.instance:
                        await self._book.forget(plan.instance)
                    raise
            state = await self._read(old_id)
        steps = self._catalog.user_steps(workflow, version)
        fast_forward, caught, children = (
            carried_on(state, steps) if steps is not None else ({}, [], [])
        )
        answered = answered_errors(state, fast_forward)
        record = MigrationRecord(
            workflow=workflow,
            from_instance=old_id,
            from_version=state.version,
            to_version=version,
            source=sources_of(state),
            fast_forward=fast_forward,
            caught=caught,
            answered=answered.errors,
            answered_types=answered.types,
            registered=self._registry.migration(workflow, state.version, version) is not None,
            children=children,
            passing=version != plan.hops[-1][0],
        )
        root = state.workflows[state.id]
        # events the old root kept while held go to the new one's steps that wait for them
        # (kept in the old root's snapshot until then: a crash before this start loses none)
        kept = carried_events(state)
        command = StartWorkflow(
            payload=root.payload, trigger="migration", migration=record, kept=kept, net=state.net
        )
        spec = self._registry.get(workflow, version)
        started = f"the start of {new_id!r} ({workflow} {version!r})"
        try:
            await self._instances.start(spec, command, new_id)
        except InstanceExistsError:
            pass  # a concurrent resume started it
        except _NOT_USER_CODE as error:
            if not isinstance(error, MigrationError):
                raise  # the runtime's own trouble (a store, a lease, a stop)
            said = f"was refused: {error}"  # (a migrator's answer: it said only that, while
            # the old run was canceled already: devx h40 F12)
            raise self._pending(plan, started, old_id, said, error) from error
        except Exception as error:  # user code raised: the plan stays, to be asked again
            code = "its first steps' code" if steps is not None else "its initializer or a migrator"
            said = f"failed, as {code} raised {type(error).__name__}: {error}"
            raise self._pending(plan, started, old_id, said, error, traced=True) from error

    @staticmethod
    def _pending(
        plan: Any, started: str, old_id: str, said: str, error: Exception, *, traced: bool = False
    ) -> MigrationError:
        """The new root's start (``started``) failed (``said``, as ``error`` says; ``traced``:
        user code raised it, whose traceback the log gives): the plan stays, to be asked again.
        Logged as well: the caller alone heard of it, and the operator's log said nothing of a
        run canceled with its migration pending (h42 versions F1)."""
        logger.warning(
            "the migration of %s to %r is pending: %s %s",
            plan.instance,
            plan.hops[-1][0],
            started,
            said,
            exc_info=error if traced else None,
        )
        canceled = f"instance {old_id!r} is"
        if old_id != plan.instance:  # (a version in between's root: one the caller never saw)
            canceled = (
                f"instance {plan.instance!r} and its run on a version in between, {old_id!r}, are"
            )
        return refused(  # (a flow's: a condition, a router; newcomer h27 F8)
            f"the migration of instance {plan.instance!r} to {plan.hops[-1][0]!r}",
            f"{started} {said}; {canceled} canceled already and the migration is pending",
            "fix the cause, then migrate it to that version again (or restart the "
            "runtime) to finish it; or cancel the run to give the migration up (its run "
            "can be replayed)",
        )

    async def _read(self, instance_id: str) -> InstanceState:
        return decode_state((await self._instances.read(instance_id)).body, instance_id)

    async def _ours(self, new_id: str, old_id: str) -> bool:
        """Whether ``new_id`` is the new root this migration started from ``old_id``."""
        try:
            state = await self._read(new_id)
        except NotFoundError:
            return False  # a queued run: another caller's
        return links_of(state).migrated_from == old_id

    async def _canceled_for(self, old_id: str, new_id: str) -> bool:
        """Whether ``old_id`` is canceled for its migration to ``new_id``: by the same plan,
        carried out at once in another process sharing the database, whose cancel came first."""
        return (await self._read(old_id)).migrated_to == new_id

    async def _cancel(
        self,
        snapshot: SnapshotRecord,
        state: InstanceState,
        new_id: str,
        principal: Principal | None,
    ) -> None:
        flows = state.workflow in self._catalog.roots  # (no cancel action: by, not principal)
        by = principal.id if principal is not None else None
        if self._offline(snapshot):
            if principal is not None and not flows:
                raise refused(
                    f"instance {state.id!r}",
                    "it cannot run here (blocked, or its version is not registered), so its "
                    "cancel action cannot admit an outside caller's migration",
                    "an operator migrates it from Python (Runtime.migrate, no principal)",
                )
            now, audit, offline = self._clock.now(), self._audit(), self._offline
            ended = await end_offline(
                self._store, state.id, now, offline=offline, new_id=new_id, audit=audit, by=by
            )
            if ended is not None:
                self._instances.ended_offline(ended)
                logger.warning(
                    "instance %s (%s %s) canceled offline for its migration: its definition is "
                    "not runnable here, so none of its activities ran",
                    state.id,
                    state.workflow,
                    state.version,
                )
                return
        # it runs here (or was released meanwhile): canceled through its actor
        asker, by = (None, by) if flows else (principal, None)
        cancel = CancelWorkflow(workflow_id=state.id, migrated_to=new_id, principal=asker, by=by)
        await self._instances.send(state.id, cancel)

    def _offline(self, snapshot: SnapshotRecord) -> bool:
        """Whether the instance is canceled without its actor: it is held, or its version is not
        registered here."""
        try:
            self._spec_of(snapshot)
        except LookupError:
            return True
        return is_held(snapshot)

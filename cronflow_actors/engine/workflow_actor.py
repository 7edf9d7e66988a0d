"""The WorkflowActor: one root instance of a NetSpec, the unit of consistency and of persistence.

A ``WorkflowActor`` owns one instance: the root workflow, its child workflows (composite tasks),
their tasks and work items. It is a ``CoroutineActor``: it receives one typed union
(``WorkflowMessage``: the ``WorkflowCommand``s, and the kernel's notices about its children),
takes one message at a time from its one mailbox, and dispatches with one ``match``. Each
command or report is one transaction: the cascade runs depth-first through the element
operations, which report to each other with state-change messages; then the new snapshot is
committed through the store's group commit; only then are the effects released (handlers
spawned, timers armed) and the asker answered with the command's result. If anything raises,
the state is restored from the last committed snapshot, so a failed call changes nothing. A
``ReadCommitted`` query is answered at once, ahead of the messages that wait.

Passivation: once nothing runs for an instance (no handler, no detached action out, no message
waiting), its actor stops; the instance lives on in the store, and what can wake it (a timer, an
event wait, a pause) is a durable row written with its snapshot. The instance directory wakes
it, from the snapshot, when a message for it arrives; only ``runnable`` ones load at start.

Why the elements of one instance are not each a mailbox actor: Tasquencer's cascade is atomic and
depth-first (spec section 0); a task's policy must see its work item's change before anything else
happens in the instance, and a refused or failing call must roll back all of it. Separate mailboxes
would interleave cascades and leave half-applied changes to undo. So the instance is one actor, and
the state-change messages between its elements are delivered by direct, ordered dispatch. User code
runs in ``HandlerActor``s (``engine.handlers``), which report back with a message (a step's handler
begins at once, and becomes an actor only if it waits: ``start_handler``)."""

from __future__ import annotations

import functools
import logging
from asyncio import current_task
from collections.abc import Awaitable, Callable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from cronflow_actors.engine import endings, notices, report_failure
from cronflow_actors.engine.commands import apply, owed_at_start, postpone
from cronflow_actors.engine.handlers import (
    ActionActor,
    HandlerActor,
    WorkItemActor,
    handler_context,
    start_handler,
)
from cronflow_actors.engine.item_boundary import check_outside_size
from cronflow_actors.engine.kept import completed_with_kept, deliver_kept
from cronflow_actors.engine.services import EngineServices, encode_state, restored_state
from cronflow_actors.engine.state_access import StateAccess
from cronflow_actors.engine.states import FINAL_STATES, WorkflowState, WorkItemState
from cronflow_actors.engine.stuck import warn_if_stuck
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.engine.turns import IN_BODY
from cronflow_actors.errors import RevisionConflictError
from cronflow_actors.kernel import LoopActor
from cronflow_actors.kernel._coroutine import CoroutineActor  # (mypyc, setup.py)
from cronflow_actors.messages import ChildFailed, Message, Mutation, SnapshotRecord
from cronflow_actors.messages.engine import (
    ActionFinished,
    CancelWorkflow,
    DeliverEvent,
    DeliverKept,
    EndHooksDone,
    GiveUpMigration,
    InitializeWorkItem,
    NoticeDone,
    Principal,
    ReadCommitted,
    RedispatchActions,
    RerunStarted,
    StartWorkflow,
    TimerFired,
    WorkflowCommand,
    WorkItemAction,
    WorkItemFinished,
    WorkItemRecord,
    WorkItemStateChanged,
)
from cronflow_actors.messages.migrations import MigrationRecord
from cronflow_actors.net.spec import Descendants, NetSpec, TaskSpec

__all__ = ["WorkflowActor", "WorkflowMessage"]

_ITEM_STARTED: Final = WorkItemState.STARTED  # an enum member's read: EnumType.__getattr__

logger = logging.getLogger(__name__)

WorkflowMessage = WorkflowCommand | ReadCommitted | ChildFailed
"""Everything a WorkflowActor receives."""

# Reports of what happened outside, which no caller can be refused (``Transaction.reported``):
# WorkItemFinished, TimerFired, ActionFinished, DeliverEvent, DeliverKept (kept.py); see handle.


@mypyc_attr(native_class=False)  # its base is not compiled (setup.py)
class WorkflowActor(CoroutineActor):
    """One root instance. Spawn it with no snapshot to start a new instance (its first command is
    ``StartWorkflow``), or with the instance's snapshot to recover it. ``ask`` it a
    ``WorkflowCommand``: the answer is the command's result, once its transaction is durable,
    or the error that refused it (and changed nothing)."""

    queries = frozenset({ReadCommitted})
    hears_child_stops = False  # its handlers report before they stop; a failure is still heard

    def __init__(
        self,
        services: EngineServices,
        instance_id: str,
        root: NetSpec,
        snapshot: SnapshotRecord | None = None,
    ) -> None:
        super().__init__()
        self.services = services
        self.instance_id = instance_id
        self.root = root
        self._committed: SnapshotRecord | None = snapshot
        self._body: bytes | None = snapshot.body if snapshot is not None else None
        self._created_at = snapshot.created_at if snapshot is not None else 0.0
        self._stale = False
        self._specs = Descendants(root)
        self._handler_refs: dict[str, Any] = {}  # work item id -> its WorkItemActor's ref
        self._raised: dict[str, BaseException] = {}  # item id -> its final failure (this process)
        self._state_access = StateAccess.of(services, f"workflow:{root.name}")
        self.state = restored_state(self._body, self.instance_id, self.root)
        self._busy = self._busy_items() if snapshot is not None else set()  # (a new one: none)
        """Started automated work items: while any is unrecorded, the instance is runnable."""

    # -- lifecycle and messages ------------------------------------------------------------------

    def on_start(self) -> None:
        if self._body is None:
            return
        # recovered, in this order: actions out dispatched again (or failed, durable=False),
        # events kept while it was held, jobs past due, what woke it, its cut steps run again
        if self._busy and not self.services.draining:  # (draining: they run at the next start)
            due, rerun = owed_at_start(self.state, self._busy, self.services.clock.now())
            for fired in reversed(due):  # (each first, ahead of the next: review h34 F6)
                self.tell_self_first(fired)
            self.actor_ref.tell(rerun)  # behind the message that woke it (chaos h34 F1)
        if self.state.kept and self.state.workflows[self.instance_id].state not in FINAL_STATES:
            self.tell_self_first(DeliverKept())
        if self.state.actions:
            self.tell_self_first(RedispatchActions())
        if self.state.notices:
            notices.recover(self, self._transaction())
        root = self.state.workflows.get(self.instance_id)
        if self.state.end_owed and root is not None and root.state in FINAL_STATES:
            endings.recover(self, Transaction.workflow_info(root), self._body)
        self._stop_if_idle()  # loaded for nothing (a database from before passivation)

    def on_stop(self) -> None:
        self.services.on_stopped(self.instance_id, self.actor_ref)

    def on_failure(self, *_exc_info: Any) -> None:
        # a failed actor is gone as a stopped one is: the next message activates it afresh
        self.services.on_stopped(self.instance_id, self.actor_ref)

    def on_query(self, message: ReadCommitted) -> SnapshotRecord | None:
        return self._committed

    def on_idle(self) -> None:
        self._stop_if_idle(self._turn)  # (on_idle runs in the turn: the task that would stop it)

    def keeps_turn(self) -> bool:
        return bool(self._handler_refs)  # its steps run, and each will report: wait for them

    async def handle(self, message: WorkflowMessage) -> Any:
        # each kind says what its transaction is (its caller, a report?). A report (told: no one
        # hears an error) that fails is recorded in a transaction of its own; a step's, the
        # usual one, by its type (a class pattern is an isinstance, through the metaclass)
        if type(message) is WorkItemFinished:
            self._handler_finished(message)
            try:
                await self._transact(message, reported=True)
            except Exception as error:
                await report_failure.record(self, message, error)
            return None
        match message:
            case StartWorkflow(principal=principal, migration=migration):
                return await self._transact(message, principal, migration=migration)
            case (
                InitializeWorkItem(principal=principal)
                | WorkItemAction(principal=principal)
                | CancelWorkflow(principal=principal)
            ):
                return await self._transact(message, principal)
            case DeliverEvent():
                return await self._transact(message, reported=True)
            case TimerFired() | ActionFinished():
                await self._report(message, reported=True)
            case RedispatchActions() | RerunStarted():
                await self._report(message)
            case NoticeDone():
                try:
                    await self._report(message)
                finally:
                    notices.ended(self, message)
            case EndHooksDone():
                try:
                    await self._report(message)
                finally:
                    endings.forget(self)
            case DeliverKept():
                await deliver_kept(self, message)
            case GiveUpMigration():
                return await endings.give_up(self, message)
            case ChildFailed(child_urn=urn):
                logger.error("%s: %s failed: %s", self, message.child_class, message.error_message)
                for item_id, ref in list(self._handler_refs.items()):
                    if ref.actor_urn == urn:
                        del self._handler_refs[item_id]
            case ReadCommitted():  # a query, answered by on_query before it gets here
                return self._committed
            case _:
                LoopActor.on_receive(self, message)  # logs what it does not know
        return None

    def _handler_finished(self, report: WorkItemFinished) -> None:
        self._handler_refs.pop(report.work_item_id, None)
        if report.exception is not None and report.retry_after is None:
            self._raised[report.work_item_id] = report.exception

    def _stop_if_idle(self, current: Any = None) -> None:  # current: the task asking, if known
        """Stop once nothing is left to do here: a finished (or never started) instance, or,
        with passivation, one that only waits. The store holds it from here on, and the
        directory activates it again from its snapshot when a message for it arrives. The stop
        is immediate (not a message), so nothing can reach this actor after the check. A read
        of its snapshot that waits keeps it not: it goes to the store, which holds the same
        (nothing asked again once it was answered: an ended run stayed in memory for good)."""
        if self.actor_inbox.queue or self.actor_stopped._set:
            return
        root = self.state.workflows.get(self.instance_id)
        finished = root is None or root.state in FINAL_STATES
        idle = not self._handler_refs and not self.state.actions
        if self._stale or (idle and (finished or self.services.passivate)):
            self.stop_now(current)

    # -- transactions ------------------------------------------------------------------------------

    def _transact(
        self,
        command: WorkflowCommand,
        principal: Principal | None = None,
        *,
        reported: bool = False,
        migration: MigrationRecord | None = None,
    ) -> Awaitable[Any]:
        """Carry out ``command`` (a ``WorkflowCommand``) as one transaction, for ``principal``
        (its caller, None: internal); ``reported``: it reports what happened outside
        (``Transaction.reported``: see above the class); ``migration``: a ``StartWorkflow``'s."""
        work = functools.partial(apply, command, self.root)
        return self._transact_with(work, principal, migration=migration, reported=reported)

    async def _report(self, report: WorkflowCommand, *, reported: bool = False) -> None:
        """Carry out ``report`` (told: no caller to raise to): its failure is recorded instead."""
        try:
            await self._transact(report, reported=reported)
        except Exception as error:
            await report_failure.record(self, report, error)

    async def _transact_with(
        self,
        body: Callable[[Transaction], Awaitable[Any]],
        principal: Principal | None = None,
        *,
        migration: MigrationRecord | None = None,
        reported: bool = False,
    ) -> Any:
        """``migration``: the record a migration starts this instance with (its first
        transaction; later ones find it in the state); ``reported``: ``Transaction.reported``."""
        tx = self._transaction(principal)
        tx.reported = reported
        record = migration or self.state.migration
        if record is not None and record.registered:  # its migration's code (a resume: none)
            registry = self.services.registry
            tx.migration = registry.migration(
                record.workflow, record.from_version, record.to_version
            )
        root = self.state.workflows.get(self.instance_id)
        was_final = root is not None and root.state in FINAL_STATES
        try:
            task = current_task()  # its own API, called from here, is refused (turns.py)
            IN_BODY[task] = self.instance_id
            try:
                result = await body(tx)
            finally:
                del IN_BODY[task]
            if tx.writes():
                mutation, snapshot, busy = self._prepare_commit(tx, was_final)
                await self.services.store.commit(mutation)
                self._committed, self._body, self._busy = snapshot, snapshot.body, busy
                if tx.audit is not None:  # committed: the audit's sink hears of its spans
                    tx.audit.durable()
        except BaseException as error:
            if isinstance(error, RevisionConflictError):
                # Another writer got there first: this copy is stale. Stop once this turn is
                # over; the next message activates the instance afresh from the store.
                self._stale = True
            self.state = restored_state(self._body, self.instance_id, self.root)
            self._busy = self._busy_items()
            raise
        self._release(tx, was_final=was_final)
        return result

    def _transaction(self, principal: Principal | None = None) -> Transaction:
        services = self.services  # by position: keywords to a class are a dict each call (3.11)
        return Transaction(
            self.state,
            services.clock.now(),
            self._specs,
            principal,
            self._state_access,
            services.tokens,
            services.secrets,
            services.audit,
        )

    def _prepare_commit(
        self, tx: Transaction, was_final: bool
    ) -> tuple[Mutation, SnapshotRecord, Any]:
        """What committing ``tx`` writes (and its snapshot), and the items busy after it; the
        state moves to the next revision (restored from the snapshot if the commit fails)."""
        state = self.state
        state.revision += 1
        if state.revision == 1:
            self._created_at = tx.now
        busy = self._busy_after(tx)
        root = state.workflows[state.id]
        final = root.state in FINAL_STATES
        if final and not was_final and not tx.terminating:  # its end's hooks are owed (if
            endings.owed(self, root.state)  # any; a terminate runs none of its code)
        if final and state.heard:  # no step of it hears anything more
            state.heard = {}
        if root.state == WorkflowState.COMPLETED and (state.kept or state.carried):
            completed_with_kept(self)  # (failed, canceled: kept for a resume)
        if tx.handlers and self.services.draining:  # none begins: the next start runs them
            postpone(state, tx.handlers)
            self.services.postponed += len(tx.handlers)
        body = check_outside_size(tx, encode_state(state, len(self._body or b"")), self._body)
        # actions still out (dispatched again after a crash) or events kept: it is running; a
        # notice owed (engine/notices.py) only makes it runnable: loaded at start, still waiting
        running = bool(busy or state.actions or (state.kept and not final))
        runnable = running or bool(state.notices) or state.end_owed
        status = str(root.state) if final else ("running" if running else "waiting")
        if status == "waiting":
            warn_if_stuck(self, state, tx.changes)
        snapshot = SnapshotRecord(
            instance_id=state.id,
            workflow=state.workflow,
            version=state.version,
            status=status,
            terminal=final and not state.actions,
            revision=state.revision,
            updated_at=tx.now,
            created_at=self._created_at,
            runnable=runnable,
            body=body,
        )
        return tx.mutation(snapshot, self._committed), snapshot, busy

    def _automated(self, item: WorkItemRecord) -> bool:
        definition = self._task_of(item).work_item
        return definition.handler is not None and not definition.detached

    def _busy_items(self) -> set[str]:
        return {
            item.id
            for item in self.state.work_items.values()
            if item.state == WorkItemState.STARTED and self._automated(item)
        }

    def _busy_after(self, tx: Transaction) -> set[str]:
        """The started automated items once ``tx`` is applied: an item is busy from its start
        (which asks for its handler in ``tx.handlers``) until it leaves ``started``."""
        busy = self._busy
        if not busy and not tx.handlers:
            return busy
        items = self.state.work_items
        after = {i for i in busy if items[i].state == _ITEM_STARTED}
        for item_id, _attempt in tx.handlers:
            if items[item_id].state == _ITEM_STARTED:
                after.add(item_id)
        return after

    def _release(self, tx: Transaction, *, was_final: bool) -> None:
        """Effects of a durable transaction."""
        if self._handler_refs:  # before any is spawned: a restarted item's is its new attempt's
            self._stop_handlers_of_ended(tx.changes)
        for item_id, attempt in tx.handlers:
            self._spawn_handler(item_id, attempt)
        for item_id in tx.actions:
            self._dispatch_action(item_id)
        for item_id in tx.notices:
            notices.call(self, tx, item_id)
        committed = self._committed  # (kept events: while held, or for a step that waits now)
        if self.state.kept and (committed is None or not committed.terminal):
            self.tell_self_first(DeliverKept())  # (engine/kept.py), before anything else
        timers = self.services.timers
        for timer_id in tx.timers_cancel:
            timers.disarm(timer_id)
        for record in tx.timers_set.values():
            timers.arm(record)
        blocking = self.system.run_blocking
        for callback in tx.after_commit:
            # a task of the system, not of this actor: a passivating instance does not cut it;
            # a plain function on the blocking pool (an on_pause may call out to a chat)
            call = self.services.callbacks.call(
                self.instance_id, callback, what="a callback after a commit", run_blocking=blocking
            )
            self.system.create_task(call, name="after commit")
        if tx.changes and self.services.on_changes is not None:
            self.services.on_changes(tx.changes)
        root = self.state.workflows.get(self.instance_id)
        if root is not None and root.state in FINAL_STATES and not was_final and self._body:
            raised = self._raised.get(root.error_cause) if root.error_cause else None
            info = Transaction.workflow_info(root)  # (a failure no raise says: on_finished)
            self.services.on_finished(info, self._body, raised)
            if self.state.end_owed:
                endings.call(self, info, self._body, raised)

    def _stop_handlers_of_ended(self, changes: list[Message]) -> None:
        """A handler whose item was canceled or reset meanwhile is stopped (its task cancelled)."""
        for change in changes:
            if (
                isinstance(change, WorkItemStateChanged)
                and change.prev == WorkItemState.STARTED
                and change.next in (WorkItemState.CANCELED, WorkItemState.INITIALIZED)
            ):
                running = self._handler_refs.pop(change.work_item_id, None)
                if running is not None:
                    running.stop(block=False)

    # -- helpers -----------------------------------------------------------------------------------

    def _handler_context(self, item: WorkItemRecord, *, answered: bool = False) -> Any:
        return handler_context(
            self.state.workflows[item.workflow_id],
            item,
            answered=answered,
            key=item.kept_key or None,  # a resume: the step that failed keeps its key
            state_access=self._state_access,
            system=self.system,
            clock=self.services.clock,
            secrets=self.services.secrets,
        )

    def _task_of(self, item: WorkItemRecord) -> TaskSpec:
        workflow = self.state.workflows[item.workflow_id]
        return self._specs[workflow.path].tasks[item.task]

    def _spawn_handler(self, item_id: str, attempt: int) -> None:
        if self.services.draining:
            return
        item = self.state.work_items[item_id]
        if item.state != _ITEM_STARTED or item.attempt != attempt:
            return
        task = self._specs[self.state.workflows[item.workflow_id].path].tasks[item.task]
        fn = task.work_item.handler
        if fn is None:
            return
        ctx = self._handler_context(item, answered=task.catch)  # its task catches a failure
        tracing, run = self.services.tracing, self.instance_id  # (as _dispatch_action's)
        scope = None if tracing is None else tracing.scope(run, item, attempt, "work item")
        ref = self._spawn(WorkItemActor, fn, ctx, item_id, attempt, scope, run_id=run, now=True)
        if ref is not None:  # (None: it has reported already, or the system stops)
            self._handler_refs[item_id] = ref

    def _dispatch_action(self, item_id: str) -> None:
        if self.services.draining:
            return  # it stays out in the snapshot: the next start dispatches it again
        item = self.state.work_items[item_id]
        record = self.state.action_records.get(item_id)
        attempt = record.attempts if record is not None else 0
        ctx = self._handler_context(item)
        if attempt:
            ctx.attempt = attempt  # the action's dispatch, 2 and more after restarts
            ctx.redispatches = record.redispatches if record is not None else 0
        handler = self._task_of(item).work_item.handler
        tracing, run = self.services.tracing, self.instance_id
        scope = None if tracing is None else tracing.scope(run, item, attempt, "action")
        self._spawn(ActionActor, handler, ctx, item.id, attempt, scope, run_id=run)

    def _spawn(self, kind: type[HandlerActor], *args: Any, now: bool = False, **kw: Any) -> Any:
        """A ``kind`` spawned as a child (``now``: begun now, ``start_handler``): its ref; None
        if it has reported already, or the system stops (the work stays started, or out, and
        runs at the next start)."""
        if self.system.state != "running":
            return None
        if now:
            return start_handler(self.system, self.actor_ref, kind, *args, **kw)
        return self.system.spawn(kind, *args, parent=self.actor_ref, **kw)

"""The actors that run instances: ``WorkflowActor`` (one per root instance) and
``WorkItemActor`` (one per running handler).

A ``WorkflowActor`` owns one instance: the root workflow, its child workflows (composite tasks),
their tasks and work items. It carries out one command at a time as a transaction: the cascade
runs depth-first through the element operations, which report to each other with state-change
messages; then the new snapshot is committed through the store's group commit; only then are
the effects released: handlers spawned, timers armed, the caller answered. If anything raises,
the state is restored from the last committed snapshot, so a failed call changes nothing.

Passivation: once nothing runs for an instance (no handler, no detached action out, nothing
queued), its actor stops; the instance lives on in the store, and what can wake it (a timer, an
event wait, a pause) is a durable row written with its snapshot. The runtime's instance
directory activates it again, from the snapshot, when a message for it arrives. Each snapshot
says whether the instance is ``runnable`` (has work to run now): only those are loaded at start.

Why the elements of one instance are not each a mailbox actor: Tasquencer's cascade is atomic
and depth-first (spec section 0); a task's policy must see its work item's change before
anything else happens in the instance, and a refused or failing call must roll back all of it.
Separate mailboxes would interleave cascades and leave half-applied changes to undo. So the
instance is one actor, the unit of consistency and of persistence, and the state-change
messages between its elements are delivered by direct, ordered dispatch. Work that runs for a
while (handlers) lives in its own ``WorkItemActor`` and reports back with a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
import pykka

from cronflow_actors.engine.commands import apply
from cronflow_actors.engine.context import Context, WorkflowInfo
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.state_access import StateAccess
from cronflow_actors.engine.states import WorkItemState, WorkItemVerb, is_final
from cronflow_actors.engine.timers import TimerService
from cronflow_actors.engine.transaction import Transaction, normalize
from cronflow_actors.errors import RetryRequested, RevisionConflictError
from cronflow_actors.kernel import Clock, LoopActor
from cronflow_actors.messages import (
    ChildFailed,
    ChildStopped,
    Message,
    Mutation,
    SnapshotRecord,
    decoder_for,
    encode,
    plain,
)
from cronflow_actors.messages.engine import (
    ActionFinished,
    InstanceState,
    Principal,
    ReadCommitted,
    RedispatchActions,
    TimerFired,
    WorkflowRecord,
    WorkItemAction,
    WorkItemFinished,
    WorkItemRecord,
    WorkItemStateChanged,
)
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.store import Store

__all__ = [
    "ActionActor",
    "EngineServices",
    "Request",
    "WorkItemActor",
    "WorkflowActor",
    "decode_state",
]

logger = logging.getLogger(__name__)

_state_decoder = decoder_for(InstanceState)


def storable_attributes(error: BaseException) -> dict[str, Any] | None:
    """An exception's public attributes that can be stored (what survives a restart)."""
    kept = {}
    for name, value in vars(error).items():
        if name.startswith("_"):
            continue
        try:
            kept[name] = plain(value)
        except (TypeError, ValueError, OverflowError):
            continue  # not a plain value: kept in memory only (on the exception itself)
    return kept or None


def _class_name(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


def decode_state(body: bytes) -> InstanceState:
    state: InstanceState = _state_decoder.decode(body)
    return state


async def _call_logged(callback: Callable[[], Any]) -> None:
    try:
        result = callback()
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("a callback after a commit failed")


class Request(Message, frozen=True, kw_only=True):
    """A command sent with ``ask``: the actor answers at once with a future that resolves to the
    command's result once its transaction is durable (or to the error that refused it)."""

    command: Any


class EngineServices:
    """What every WorkflowActor of a runtime shares.

    ``on_finished(info, body, exception)`` hears of a root instance that ended, with its
    committed snapshot body and, for a failure a handler raised in this process, the exception;
    ``on_stopped(instance_id, ref)`` of an instance actor that stopped (finished, passivated or
    failed); ``on_changes`` gets the state-change messages of every durable
    transaction. ``passivate``: whether idle instances leave memory. ``secrets``: workflow
    name -> what ``ctx.secrets`` is in that workflow's user code (kept by the runtime, which
    may add to it; only in memory).
    """

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        registry: WorkflowRegistry,
        timers: TimerService,
        on_finished: Callable[[WorkflowInfo, bytes, BaseException | None], None],
        on_stopped: Callable[[str, Any], None],
        on_changes: Callable[[list[Message]], None] | None = None,
        tokens: Callable[[], str] | None = None,
        passivate: bool = True,
        secrets: Mapping[str, Any] | None = None,
    ) -> None:
        self.secrets: Mapping[str, Any] = secrets if secrets is not None else {}
        self.store = store
        self.clock = clock
        self.registry = registry
        self.timers = timers
        self.on_finished = on_finished
        self.on_stopped = on_stopped
        self.on_changes = on_changes
        self.tokens = tokens
        self.passivate = passivate
        self.draining = False
        """While draining, no new handler or action starts: work items that start stay started
        in the snapshot and run on the next start."""


class WorkflowActor(LoopActor):
    """One root instance. Spawn it with no snapshot to start a new instance (its first command is
    ``StartWorkflow``), or with the instance's snapshot to recover it."""

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
        self._queue: deque[tuple[Any, asyncio.Future[Any] | None]] = deque()
        self._running = False
        self._stale = False
        self._specs: dict[tuple[str, ...], NetSpec] = {(): root}
        self._handler_refs: dict[str, Any] = {}  # work item id -> its WorkItemActor's ref
        self._raised: dict[str, BaseException] = {}
        """Work item id -> the exception its handler raised (final failures, this process)."""
        self._state_access = StateAccess(services.store, services.clock, f"workflow:{root.name}")
        self.state = self._restored()
        self._busy = self._busy_items()
        """Started automated work items: while any is unrecorded, the instance is runnable."""

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        if self._body is None:
            return
        # recovered: run again what had started but was not recorded; actions still out are
        # recorded as dispatched again (or failed, durable=False), then dispatched
        for item in self.state.work_items.values():
            if item.state == WorkItemState.STARTED:
                self._spawn_handler(item.id, item.attempt)
        if self.state.actions:
            self._enqueue(RedispatchActions(), None)
        self._stop_if_idle()  # loaded for nothing (a database from before passivation)

    def on_stop(self) -> None:
        self.services.on_stopped(self.instance_id, self.actor_ref)
        while self._queue:
            _command, reply = self._queue.popleft()
            if reply is not None and not reply.done():
                reply.set_exception(pykka.ActorDeadError(f"{self} stopped"))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Request):
            reply = asyncio.get_running_loop().create_future()
            self._enqueue(message.command, reply)
            return reply
        if isinstance(message, ReadCommitted):
            return self._committed
        if isinstance(message, WorkItemFinished):
            self._handler_refs.pop(message.work_item_id, None)
            if message.exception is not None and message.retry_after is None:
                self._raised[message.work_item_id] = message.exception
        if isinstance(message, WorkItemFinished | TimerFired | ActionFinished):
            self._enqueue(message, None)
            return None
        if isinstance(message, ChildFailed):
            logger.error("%s: %s failed: %s", self, message.child_class, message.error_message)
            for item_id, ref in list(self._handler_refs.items()):
                if ref.actor_urn == message.child_urn:
                    del self._handler_refs[item_id]
            self._stop_if_idle()
            return None
        if isinstance(message, ChildStopped):
            return None
        return super().on_receive(message)

    def _enqueue(self, command: Any, reply: asyncio.Future[Any] | None) -> None:
        self._queue.append((command, reply))
        if not self._running:
            self._running = True
            self.create_task(self._run(), name=f"instance {self.instance_id}")

    async def _run(self) -> None:
        try:
            while self._queue:
                command, reply = self._queue.popleft()
                try:
                    result = await self._transact(command)
                except Exception as error:
                    if reply is not None:
                        if not reply.done():
                            reply.set_exception(error)
                    else:
                        await self._after_internal_failure(command, error)
                else:
                    if reply is not None and not reply.done():
                        reply.set_result(result)
        finally:
            self._running = False
        self._stop_if_idle()

    def _stop_if_idle(self) -> None:
        """Stop once nothing is left to do here: a finished (or never started) instance, or,
        with passivation, one that only waits. The store holds it from here on, and the
        directory activates it again from its snapshot when a message for it arrives. The stop
        is immediate (not a message), so nothing can reach this actor after the check."""
        if self._running or self._queue or self.mailbox_depth or self.actor_stopped.is_set():
            return
        root = self.state.workflows.get(self.instance_id)
        finished = root is None or is_final(root.state)
        idle = not self._handler_refs and not self.state.actions
        if self._stale or (idle and (finished or self.services.passivate)):
            self.stop_now()

    # -- transactions ------------------------------------------------------------------------------

    async def _transact(self, command: Any) -> Any:
        return await self._transact_with(
            lambda tx: apply(tx, command, self.root), getattr(command, "principal", None)
        )

    async def _transact_with(
        self, body: Callable[[Transaction], Awaitable[Any]], principal: Principal | None = None
    ) -> Any:
        tx = Transaction(
            self.state,
            now=self.services.clock.now(),
            spec_of=self._spec_of,
            principal=principal,
            state_access=self._state_access,
            tokens=self.services.tokens,
            secrets=self.services.secrets,
        )
        root = self.state.workflows.get(self.instance_id)
        was_final = root is not None and is_final(root.state)
        try:
            result = await body(tx)
            if tx.writes():
                await self._commit(tx)
        except BaseException as error:
            if isinstance(error, RevisionConflictError):
                # Another writer got there first: this copy is stale. Stop once this turn is
                # over; the next message activates the instance afresh from the store.
                self._stale = True
            self.state = self._restored()
            self._busy = self._busy_items()
            raise
        self._release(tx, was_final=was_final)
        return result

    async def _commit(self, tx: Transaction) -> None:
        state = self.state
        state.revision += 1
        if state.revision == 1:
            self._created_at = tx.now
        busy = self._busy_after(tx)
        body = encode(state)
        root = state.workflows[state.id]
        final = is_final(root.state)
        # an instance with actions still out is runnable: they are dispatched again after a crash
        runnable = bool(busy or state.actions)
        status = str(root.state) if final else ("running" if runnable else "waiting")
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
        await self.services.store.commit(
            Mutation(
                snapshot=snapshot,
                journal=tuple(tx.journal),
                timers_set=tuple(tx.timers_set.values()),
                timers_cancel=tuple(tx.timers_cancel),
                waits_set=tuple(tx.waits_set.values()),
                waits_end=tuple(tx.waits_end),
                dequeued=tuple(tx.dequeued),
            )
        )
        self._committed = snapshot
        self._body = body
        self._busy = busy

    def _automated(self, item: WorkItemRecord) -> bool:
        definition = self._definition(item)
        return definition.handler is not None and not definition.detached

    def _busy_items(self) -> set[str]:
        return {
            item.id
            for item in self.state.work_items.values()
            if item.state == WorkItemState.STARTED and self._automated(item)
        }

    def _busy_after(self, tx: Transaction) -> set[str]:
        """The started automated items once ``tx`` is applied: an item becomes busy only by
        starting (every start of an automated item asks for its handler in ``tx.handlers``),
        and stops being busy by leaving ``started``."""
        busy = self._busy
        if not busy and not tx.handlers:
            return busy
        items = self.state.work_items
        after = {i for i in busy if items[i].state == WorkItemState.STARTED}
        for item_id, _attempt in tx.handlers:
            if items[item_id].state == WorkItemState.STARTED:
                after.add(item_id)
        return after

    def _release(self, tx: Transaction, *, was_final: bool) -> None:
        """Effects of a durable transaction."""
        for item_id, attempt in tx.handlers:
            self._spawn_handler(item_id, attempt)
        for item_id in tx.actions:
            self._dispatch_action(item_id)
        timers = self.services.timers
        for timer_id in tx.timers_cancel:
            timers.disarm(timer_id)
        for record in tx.timers_set.values():
            timers.arm(record)
        for change in tx.changes:
            # a handler whose item was canceled or reset meanwhile is stopped (its task cancelled)
            if (
                isinstance(change, WorkItemStateChanged)
                and change.prev == WorkItemState.STARTED
                and change.next in (WorkItemState.CANCELED, WorkItemState.INITIALIZED)
            ):
                running = self._handler_refs.pop(change.work_item_id, None)
                if running is not None:
                    running.stop(block=False)
        for callback in tx.after_commit:
            # a task of the system, not of this actor: a passivating instance does not cut it
            self.system.create_task(_call_logged(callback), name="after commit")
        if tx.changes and self.services.on_changes is not None:
            self.services.on_changes(tx.changes)
        root = self.state.workflows.get(self.instance_id)
        if root is not None and is_final(root.state) and not was_final and self._body:
            raised = self._raised.get(root.error_cause) if root.error_cause else None
            self.services.on_finished(Transaction.workflow_info(root), self._body, raised)

    async def _after_internal_failure(self, command: Any, error: Exception) -> None:
        """A handler's result or a timer could not be applied because user code raised: the
        work item fails with that error (or the job is dropped), in a transaction of its own."""
        logger.warning("%s: %r could not be applied: %r", self, command, error)
        reason = f"{type(error).__name__}: {error}"
        try:
            if isinstance(command, WorkItemFinished):
                item = self.state.work_items.get(command.work_item_id)
                if item is not None and item.state == WorkItemState.STARTED:
                    await self._transact(
                        WorkItemAction(
                            action=WorkItemVerb.FAIL, work_item_id=item.id, payload=reason
                        )
                    )
            elif isinstance(command, TimerFired) and command.timer_id in self.state.jobs:

                async def drop(tx: Transaction) -> None:
                    tx.drop_job(command.timer_id)

                await self._transact_with(drop)
        except Exception:
            logger.exception("%s: could not record the failure of %r", self, command)

    # -- helpers -----------------------------------------------------------------------------------

    def _restored(self) -> InstanceState:
        if self._body is None:
            return InstanceState(
                id=self.instance_id, workflow=self.root.name, version=self.root.version
            )
        return decode_state(self._body)

    def _spec_of(self, workflow: WorkflowRecord) -> NetSpec:
        spec = self._specs.get(workflow.path)
        if spec is None:
            spec = self._specs[workflow.path] = self.root.descendant(workflow.path)
        return spec

    def _handler_context(self, item: WorkItemRecord) -> Context:
        workflow = self.state.workflows[item.workflow_id]
        info = Transaction.work_item_info(item)
        # The handler runs while later transactions change the instance: it gets copies.
        info = msgspec.structs.replace(info, payload=plain(info.payload))
        ctx = Context(
            where=f"handler of work item {item.name!r}",
            task=Transaction.task_info(workflow, item.task),
            work_item=info,
            parent=Transaction.workflow_info(workflow),
            payload=workflow.payload,
            outputs=dict(workflow.outputs),  # as they are now; values are copied when read
            attempt=item.attempt,
            idempotency_key=item.id,
        )
        ctx.last = workflow.last
        ctx.state = self._state_access
        ctx.run_blocking = self.system.run_blocking
        ctx.clock = self.services.clock
        secrets = self.services.secrets
        if secrets:
            ctx.secrets = secrets.get(workflow.name)
        return ctx

    def _definition(self, item: WorkItemRecord) -> Any:
        workflow = self.state.workflows[item.workflow_id]
        return self._spec_of(workflow).tasks[item.task].work_item

    def _spawn_handler(self, item_id: str, attempt: int) -> None:
        if self.services.draining:
            return
        item = self.state.work_items[item_id]
        if item.state != WorkItemState.STARTED or item.attempt != attempt:
            return
        handler = self._definition(item).handler
        if handler is None:
            return
        ctx = self._handler_context(item)
        self._handler_refs[item.id] = self.system.spawn(
            WorkItemActor, handler, ctx, item.id, attempt, parent=self.actor_ref
        )

    def _dispatch_action(self, item_id: str) -> None:
        if self.services.draining:
            return  # it stays out in the snapshot: the next start dispatches it again
        item = self.state.work_items[item_id]
        record = self.state.action_records.get(item_id)
        attempt = record.attempts if record is not None else 0
        ctx = self._handler_context(item)
        if attempt:
            ctx.attempt = attempt  # the action's dispatch, 2 and more after restarts
        handler = self._definition(item).handler
        self.system.spawn(ActionActor, handler, ctx, item.id, attempt, parent=self.actor_ref)


class WorkItemActor(LoopActor):
    """Runs one attempt of a work item's handler and reports ``WorkItemFinished`` to its
    WorkflowActor. ``async def`` handlers run on the loop, plain ``def`` ones on the
    blocking pool (pykka ThreadingActors), so a blocking handler never stalls the loop."""

    def __init__(
        self, handler: Callable[..., Any], ctx: Context, item_id: str, attempt: int
    ) -> None:
        super().__init__()
        self.handler = handler
        self.ctx = ctx
        self.item_id = item_id
        self.attempt = attempt

    def on_start(self) -> None:
        self.create_task(self._run(), name=f"work item {self.item_id}")

    async def _run(self) -> None:
        began_at = self.system.clock.now()
        try:
            if inspect.iscoroutinefunction(self.handler):
                output = await self.handler(self.ctx)
            else:
                output = await self.system.run_blocking(self.handler, self.ctx)
                if inspect.isawaitable(output):
                    output = await output
            report = WorkItemFinished(
                work_item_id=self.item_id,
                attempt=self.attempt,
                ok=True,
                output=normalize(output),
                began_at=began_at,
            )
        except RetryRequested as retry:
            report = WorkItemFinished(
                work_item_id=self.item_id,
                attempt=self.attempt,
                ok=False,
                error=retry.error,
                retry_after=retry.delay,
                began_at=began_at,
            )
        except Exception as error:
            report = WorkItemFinished(
                work_item_id=self.item_id,
                attempt=self.attempt,
                ok=False,
                error=f"{type(error).__name__}: {error}",
                error_type=_class_name(error),
                error_data=storable_attributes(error),
                exception=error,
                began_at=began_at,
            )
        parent = self.parent
        if parent is not None:
            # If the instance stopped meanwhile, recovery runs the handler again.
            with contextlib.suppress(pykka.ActorDeadError):
                parent.tell(report)
        self.stop()


class ActionActor(LoopActor):
    """Runs a detached action's handler. The flow has already moved on; the outcome is reported
    to the WorkflowActor (with when the handler began and ended), which records it in the
    action's record: never as output, and never failing the run."""

    def __init__(
        self, handler: Callable[..., Any], ctx: Context, item_id: str, attempt: int = 0
    ) -> None:
        super().__init__()
        self.handler = handler
        self.ctx = ctx
        self.item_id = item_id
        self.attempt = attempt

    def on_start(self) -> None:
        self.create_task(self._run(), name=f"action {self.item_id}")

    async def _run(self) -> None:
        clock = self.system.clock
        started_at = clock.now()
        try:
            if inspect.iscoroutinefunction(self.handler):
                await self.handler(self.ctx)
            else:
                result = await self.system.run_blocking(self.handler, self.ctx)
                if inspect.isawaitable(result):
                    await result
            report = ActionFinished(
                work_item_id=self.item_id,
                ok=True,
                attempt=self.attempt,
                started_at=started_at,
                finished_at=clock.now(),
            )
        except Exception as error:
            logger.warning("action %s failed: %s: %s", self.item_id, type(error).__name__, error)
            report = ActionFinished(
                work_item_id=self.item_id,
                ok=False,
                error=f"{type(error).__name__}: {error}",
                error_type=_class_name(error),
                attempt=self.attempt,
                started_at=started_at,
                finished_at=clock.now(),
            )
        parent = self.parent
        if parent is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                parent.tell(report)
        self.stop()

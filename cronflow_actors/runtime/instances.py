"""The instance directory: the one place that maps instance ids to the refs of their actors.

One owner per instance, in this process: an id is claimed synchronously, before any await, so
two concurrent starts of one id cannot both proceed (the second gets ``InstanceExistsError``
once the first has started it), and an instance that is not in memory is activated from its
snapshot by exactly one caller while the others wait for that activation. Nothing here touches
an actor's object: the directory holds refs and talks to actors with messages. In the store,
the same rule is enforced again: a first snapshot is an insert, every later one compare-and-set.

An instance is activated only on the definition it started on (``runtime/pinning.py``): one
whose registered definition changed under its version is held, and a command for it raises
``InstanceBlockedError``, except an operator's cancel of its root, which discards it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import pykka

from cronflow_actors.engine.actors import EngineServices, WorkflowActor
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.turns import calling
from cronflow_actors.errors import (
    INFRASTRUCTURE,
    DuplicateInstanceError,
    InstanceBlockedError,
    InstanceBusyError,
    InstanceExistsError,
    NotFoundError,
    RevisionConflictError,
    RuntimeNotRunningError,
    UnknownWorkflowError,
)
from cronflow_actors.kernel import ActorSystem, running_loop
from cronflow_actors.messages import Message, SnapshotRecord
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    DeliverEvent,
    InitializeWorkItem,
    ReadCommitted,
    StartWorkflow,
    WorkItemAction,
)
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.runtime.admission import Admission
from cronflow_actors.runtime.collector import RunsInMemory, runs_in_memory
from cronflow_actors.runtime.offline import Ended
from cronflow_actors.runtime.pinning import Block, Pinning, not_registered
from cronflow_actors.store import Store

__all__ = ["InstanceDirectory", "InstanceRouter", "root_of"]

logger = logging.getLogger(__name__)

_BUSY_RETRY = 1.0
"""Seconds before a timer is told again to an instance whose row another process's
transaction held locked (``InstanceBusyError``)."""

Ref = pykka.ActorRef[Any]
T = TypeVar("T")


class InstanceRouter(Protocol):
    """Several processes on one database (``runtime/cluster.py``): which process may run an
    instance that is not in memory here, and how work reaches the one that holds it."""

    async def claim(self, instance_id: str) -> str | None:
        """None once this process may activate it; else the live process that holds it."""
        ...

    async def forward(self, owner: str, instance_id: str, command: Message) -> Any:
        """Carry ``command`` out in process ``owner``; its result."""
        ...

    async def let_go(self, instance_id: str) -> None:
        """Give up the claim of an instance this process cannot run, for one that can."""
        ...


def root_of(element_id: str) -> str:
    """The root instance id of any element id (``<root>.<kind><n>``)."""
    if not isinstance(element_id, str) or not element_id:
        raise NotFoundError("workflow instance", repr(element_id))
    root = element_id.split(".", 1)[0]
    if not root:  # (".." named a part of run "": hostile h29 L2)
        raise NotFoundError("workflow instance", element_id)
    return root


class InstanceDirectory:
    """Instance ids to actor refs; starts, activates and reaches instances."""

    def __init__(
        self,
        *,
        system: ActorSystem,
        store: Store,
        registry: WorkflowRegistry,
        services: EngineServices,
        new_id: Callable[[], str],
        state: Callable[[], str],
        spec_of: Callable[[SnapshotRecord], NetSpec] | None = None,
        router: InstanceRouter | None = None,
        pinning: Pinning | None = None,
        in_memory: RunsInMemory = runs_in_memory,
        admission: Admission | None = None,
    ) -> None:
        self._system = system
        self.admission = admission
        """``Runtime(max_active_runs=N)``: where new starts wait for a place (None: no limit)."""
        self._in_memory = in_memory
        """Told of each instance brought into memory and let go (the collector scales with it)."""
        self._router = router
        """On a database several processes share: claims instances before activating them."""
        self._store = store
        self._registry = registry
        self._spec_of = spec_of or (lambda s: registry.get(s.workflow, s.version))
        """The definition a stored instance runs on (the registered one, unless the runtime
        keeps one of its own for that run: a replay with mocks)."""
        self._services = services
        self._pinning = pinning
        """Admits an instance on its definition, or holds it (None: every one is admitted)."""
        self._new_id = new_id
        self._state = state
        """The runtime's state (``running`` while it takes work on)."""
        self._refs: dict[str, Ref] = {}
        self._claims: dict[str, asyncio.Future[bool]] = {}
        """Explicit ids whose start is under way -> whether it started them."""
        self._activating: dict[str, asyncio.Future[None]] = {}
        """Ids being loaded from their snapshot -> done when that is over (either way)."""
        self._delivering: Counter[str] = Counter()
        """Ids with a message ``deliver`` is taking to them (activating them first)."""

    def __len__(self) -> int:
        """How many instances are in memory."""
        return len(self._refs)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._refs

    def reaching(self, instance_id: str) -> bool:
        """Whether the instance is in memory, or a message ``deliver`` was given is on its way
        to it (it is being activated to take it): what the instance is told will be applied
        unless the runtime stops first."""
        return instance_id in self._refs or instance_id in self._delivering

    @property
    def starts_waiting(self) -> int:
        """New runs waiting for a place under ``max_active_runs`` (0 without a limit)."""
        return 0 if self.admission is None else self.admission.waiting

    def with_place(self, start: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """``start()`` (a new root run's start, from outside the engine) holding a place under
        ``max_active_runs``, waiting in line for one first (``runtime/admission.py``); call it
        before any lock or claim the start takes."""
        if self.admission is None:
            return start()
        return self.admission.start(start)

    def stop_admitting(self) -> None:
        """The runtime drains or stops: starts waiting for a place fail, with nothing written."""
        if self.admission is not None:
            self.admission.close()

    # -- starting -------------------------------------------------------------------------------

    def start(
        self, spec: NetSpec, command: StartWorkflow, instance_id: str | None = None
    ) -> Awaitable[str]:
        """Start a new root instance of ``spec``; await it for its id once the start is durable.

        A given ``instance_id`` is claimed before anything is awaited: a concurrent start of
        the same id waits for this one and then raises ``InstanceExistsError`` (or goes ahead,
        if this one failed); an id that is stored (or queued, unless this start takes it off
        the queue) raises ``InstanceExistsError`` and runs nothing.
        """
        if instance_id is None:  # a new id: nothing to claim (no coroutine of its own)
            return self._start(spec, command, self._new_id())
        return self._start_given(spec, command, instance_id)

    async def _start_given(self, spec: NetSpec, command: StartWorkflow, instance_id: str) -> str:
        while True:
            claim = self._claims.get(instance_id)
            if claim is not None:
                if await asyncio.shield(claim):
                    raise InstanceExistsError(instance_id)
                continue
            activation = self._activating.get(instance_id)
            if activation is None:
                break
            await asyncio.shield(activation)  # someone is loading this id: it may exist
        if instance_id in self._refs:
            raise InstanceExistsError(instance_id)
        claim = running_loop().create_future()
        self._claims[instance_id] = claim
        started = False
        try:
            if not command.dequeued and await self._store.instance_exists(instance_id):
                raise InstanceExistsError(instance_id)
            result = await self._start(spec, command, instance_id)
            started = True
            return result
        finally:
            del self._claims[instance_id]
            claim.set_result(started)

    async def _start(self, spec: NetSpec, command: StartWorkflow, instance_id: str) -> str:
        ref = self._spawn(instance_id, spec, None)
        if self.admission is not None:
            self.admission.spawned()  # the place its start held (if any) is the run's now
        try:
            result: str = await ask(ref, command)
        except DuplicateInstanceError:
            raise InstanceExistsError(instance_id) from None
        return result

    # -- reaching instances ---------------------------------------------------------------------

    async def send(self, instance_id: str, command: Message) -> Any:
        """Carry out ``command`` on the instance (activated from its snapshot if it is not in
        memory); returns its result once its transaction is durable. Not from code inside a
        transaction of that instance (or of one it would wait for in turn: ``turns.py``)."""
        with calling(instance_id, _operation(command, held=False)):
            return await self._send(instance_id, command)

    async def _send(self, instance_id: str, command: Message) -> Any:
        for _attempt in range(5):
            if self._router is not None and instance_id not in self._refs:
                holder = await self._router.claim(instance_id)
                if holder is not None:
                    return await self._router.forward(holder, instance_id, command)
            try:
                ref = await self.activate(instance_id)
            except (InstanceBlockedError, UnknownWorkflowError) as cannot_run:
                # held, or its workflow is not registered here: an operator's cancel ends it
                # without its code; anything else is refused
                if self._pinning is not None and _discards(command, instance_id):
                    cancel = command if isinstance(command, CancelWorkflow) else None
                    terminate = cancel is not None and cancel.terminate
                    if await self._pinning.discard(
                        instance_id, terminate=terminate, by=_asker(cancel)
                    ):
                        return None
                    continue  # it can run again meanwhile: canceled through its actor
                if isinstance(cannot_run, UnknownWorkflowError):
                    if self._router is not None:  # claimed above: a process that can runs it
                        await self._router.let_go(instance_id)
                    if cannot_run.version is None:
                        raise
                    # it is there, on a version not registered here: a conflict to resolve,
                    # not "no such instance" with advice for this process's own code
                    name, version = cannot_run.name, cannot_run.version
                    registered = self._registry.versions(name)
                    why = not_registered(instance_id, name, version, registered, shared=self.shared)
                    raise InstanceBlockedError(instance_id, why, _operation(command)) from None
                raise InstanceBlockedError(
                    cannot_run.instance_id, cannot_run.reason, _operation(command)
                ) from None
            try:
                return await ask(ref, command)
            except pykka.ActorDeadError:
                # it stopped (passivated, or found itself stale) before it took the command
                self._forget(instance_id, ref)
                self._check_running()
            except RevisionConflictError:
                if self._router is None:
                    raise
                # another process moved it on: this copy was stale and stops, nothing was
                # written; the next attempt claims it afresh (or sends the command there)
                self._forget(instance_id, ref)
        raise RuntimeNotRunningError(
            "reach instance " + instance_id,
            "unable to reach it: its actor stopped under each attempt; look at the run, then "
            "try again",
        )

    def deliver(self, instance_id: str, message: Message) -> None:
        """Tell the instance ``message`` (a timer that fired), activating it if needed."""
        ref = self._refs.get(instance_id)
        if ref is not None:
            try:
                ref.tell(message)
                return
            except pykka.ActorDeadError:
                self._forget(instance_id, ref)

        async def activate_and_tell() -> None:
            try:
                if self._router is not None and await self._router.claim(instance_id):
                    return  # another process holds it, and fires its timers
                (await self.activate(instance_id)).tell(message)
            except (InstanceBlockedError, UnknownWorkflowError) as held:
                # expected (held, or its workflow not registered here), not a fault: no
                # traceback; its timer stays in the store, armed again at the next start
                logger.warning("%r not delivered to instance %s: %s", message, instance_id, held)
                if isinstance(held, UnknownWorkflowError) and self._router is not None:
                    try:  # for a process that runs it
                        await self._router.let_go(instance_id)
                    except Exception:
                        logger.exception("could not let instance %s go", instance_id)
            except InstanceBusyError as busy:  # another process's transaction holds its row:
                # told again shortly (the server ends a transaction left idle)
                logger.info("%r not delivered yet: %s", message, busy)
                await asyncio.sleep(_BUSY_RETRY)
                self.deliver(instance_id, message)
            except INFRASTRUCTURE as stopping:  # the runtime stops (or its store failed): what
                # the message would record stays as the store has it, for the next start
                logger.info("%r not delivered to instance %s: %s", message, instance_id, stopping)
            except Exception:
                logger.exception("could not deliver %r to instance %s", message, instance_id)

        def delivered(_task: Any) -> None:  # run or cancelled, even before it began
            self._delivering[instance_id] -= 1
            if not self._delivering[instance_id]:
                del self._delivering[instance_id]

        self._delivering[instance_id] += 1  # from now: its task may not begin at once
        task = self._system.create_task(activate_and_tell(), name=f"deliver to {instance_id}")
        task.add_done_callback(delivered)

    @property
    def shared(self) -> bool:
        """Whether other processes share the database (and may hold or run its instances)."""
        return self._router is not None

    async def let_go(self, instance_id: str) -> None:
        """Give up this process's claim of an instance it cannot run (sharing the database:
        its version is not registered here), so that a process that can takes it on."""
        if self._router is not None:
            await self._router.let_go(instance_id)

    async def read(self, instance_id: str) -> SnapshotRecord:
        """The last committed snapshot of the instance (from its actor if it is in memory)."""
        ref = self._refs.get(instance_id)
        snapshot: SnapshotRecord | None = None
        if ref is not None:
            try:
                snapshot = await ref.ask(ReadCommitted(), block=False)
            except pykka.ActorDeadError:
                snapshot = None
        if snapshot is None:
            snapshot = await self._store.load_snapshot(instance_id)
        if snapshot is None:
            raise NotFoundError("workflow instance", instance_id)
        return snapshot

    async def activate(self, instance_id: str) -> Ref:
        """The ref of the instance's actor, spawned from its snapshot if it is not in memory
        (by one caller; concurrent callers wait for that one, then look again)."""
        while True:
            claim = self._claims.get(instance_id)
            if claim is not None:
                await asyncio.shield(claim)
                continue
            ref = self._refs.get(instance_id)
            if ref is not None:
                return ref
            activation = self._activating.get(instance_id)
            if activation is not None:
                await asyncio.shield(activation)
                continue
            break
        self._check_running()
        pending: asyncio.Future[None] = running_loop().create_future()
        self._activating[instance_id] = pending
        try:
            snapshot = await self._store.load_snapshot(instance_id)
            if snapshot is None:
                raise NotFoundError("workflow instance", instance_id)
            spec = self._spec_of(snapshot)
            if self._pinning is not None:
                admitted = await self._pinning.admit(snapshot, spec)
                if isinstance(admitted, Block):
                    raise admitted.error()
                snapshot = admitted
            return self._refs.get(instance_id) or self._spawn(instance_id, spec, snapshot)
        finally:
            del self._activating[instance_id]
            pending.set_result(None)

    async def admit(self, snapshot: SnapshotRecord, spec: NetSpec) -> SnapshotRecord | None:
        """The snapshot to load a stored instance from, or None if it is held because its
        definition changed under its version (``runtime/pinning.py``)."""
        if self._pinning is None:
            return snapshot
        admitted = await self._pinning.admit(snapshot, spec)
        return None if isinstance(admitted, Block) else admitted

    def recover(self, snapshot: SnapshotRecord, spec: NetSpec) -> bool:
        """Load an instance with work to run (at start); False if it is in memory already."""
        if snapshot.instance_id in self._refs or snapshot.instance_id in self._activating:
            return False
        self._spawn(snapshot.instance_id, spec, snapshot)
        return True

    def ask_first(self, instance_id: str, command: Message) -> Awaitable[Any] | None:
        """Ask ``command`` of an instance ``recover`` just loaded, ahead of what its start owes
        itself (its cut steps run again after it); None if it is not in memory."""
        ref = self._refs.get(instance_id)
        return None if ref is None else ask(ref, command)

    def ended_offline(self, ended: Ended) -> None:
        """An instance was ended in the store without its actor (a migration canceled it
        offline, ``end_offline``): its timers, its hold and its end are the pinning's."""
        if self._pinning is not None:
            self._pinning.ended_offline(ended)

    def stopped(self, instance_id: str, ref: Ref) -> None:
        """An instance's actor stopped (called by the actor as it stops)."""
        self._forget(instance_id, ref)

    # -- internals ------------------------------------------------------------------------------

    def _spawn(self, instance_id: str, spec: NetSpec, snapshot: SnapshotRecord | None) -> Ref:
        ref = self._system.spawn(WorkflowActor, self._services, instance_id, spec, snapshot)
        if self._refs.get(instance_id) is None:
            self._in_memory.added()
        self._refs[instance_id] = ref
        return ref

    def _forget(self, instance_id: str, ref: Ref) -> None:
        if self._refs.get(instance_id) is ref:
            del self._refs[instance_id]
            self._in_memory.removed()
            if self.admission is not None:
                self.admission.run_left()

    def _check_running(self) -> None:
        state = self._state()
        if state != "running":
            raise RuntimeNotRunningError("act on a workflow", state)


def _discards(command: Message, instance_id: str) -> bool:
    """Whether ``command`` to an instance that cannot run here (held, or its workflow not
    registered) ends it: an internal caller's cancel of its root (an external caller's cancel
    goes through the definition's policy, which is not there)."""
    return (
        isinstance(command, CancelWorkflow)
        and command.workflow_id == instance_id
        and command.principal is None
    )


def _operation(command: Message, *, held: bool = True) -> str:
    """What a command was, for the error that refuses it (``held``: to a held instance, what
    else would move it; else a call refused as its caller's own: ``calling``)."""
    if not held and isinstance(command, CancelWorkflow):
        return "cancel" if not command.terminate else "terminate"
    match command:
        case WorkItemAction(action=verb, work_item_id=item_id):
            return f"{verb} work item {item_id!r}"
        case InitializeWorkItem(task=task):
            return f"initialize a work item of task {task!r}"
        case DeliverEvent(event=event, work_item_id=item_id):
            return f"deliver event {event!r} to work item {item_id!r}"
        case CancelWorkflow(workflow_id=workflow_id, principal=None):
            return f"cancel {workflow_id!r} (only its root can be canceled while it is blocked)"
        case CancelWorkflow(workflow_id=workflow_id):
            return f"cancel {workflow_id!r} as an external caller (an operator can cancel it)"
    return type(command).__name__


def ask(ref: Ref, command: Message) -> Awaitable[Any]:
    """Send a command to an instance's actor; await it for its result, once its transaction is
    durable (the actor's future itself: no coroutine in between)."""
    future: Awaitable[Any] = ref.ask(command, block=False)
    return future


def _asker(cancel: CancelWorkflow | None) -> str | None:
    """Who asked for ``cancel``, an outside caller (its principal, or a flow's run's ``by``),
    for the audit of a cancel made without the instance's code (versions h44 F1)."""
    if cancel is None:
        return None
    return cancel.principal.id if cancel.principal is not None else cancel.by

"""Pinned definitions: an instance runs only on the definition it started on.

Every instance records the structural fingerprint (``net/fingerprint.py``) of the definition it
started on. Before an instance is loaded (at start, when its workflow is registered on a
running runtime, when a message activates it), ``Pinning.admit`` compares that fingerprint
with the one of the definition registered under the instance's version. If they differ the
definition was changed without a version bump, and running the stored state on it could skip,
repeat or misplace work: the instance is held instead. Its snapshot's status becomes
``blocked`` (what listings, ``inspect`` and ``GET /runs?status=blocked`` show), a warning is
logged, ``cronflow_runs_blocked{workflow}`` counts it, and every call addressed to it raises
``InstanceBlockedError`` naming the block; only a cancel from an operator goes through
(``discard``). It stays held until an operator migrates it to another version, or registers
its old definition again: the next start (or registration) finds the fingerprints equal again
and lets it run on, with its status written back. An event published meanwhile for one of its
waiting steps is kept in its snapshot (``keep``); a run released with events kept is written
runnable, and loaded, so that its actor delivers them (``DeliverKept``).

An instance recorded before fingerprints were (an empty one) is taken as matching, and the
engine records the current definition's fingerprint for it at its next transaction.

A migration (``runtime/migrations.py``) takes a held instance over: it cancels it offline
(``runtime/offline.py``, as ``discard`` does) and tells the instance directory
(``ended_offline``), which lifts the hold.

An unfinished instance whose workflow (or version) is not registered here at all cannot run
either, though nothing about it changed: it is not held (``blocked`` is for a definition that
changed), but it is met the same way where it matters. An event for one of its waiting steps is
kept in its snapshot, which is then written runnable, so the start (or the registration) that
brings its workflow back loads it and delivers the event; an operator's cancel ends it offline
(``discard``), without its code. When its workflow is registered at another version, the start
says how many such runs each missing version has (one warning a version), a gauge counts them
(``runtime/unregistered.py``), and ``inspect``, ``GET /paused`` and a refused resume say why
(``not_registered``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import msgspec

from cronflow_actors.engine.actors import decode_snapshot_body, decode_state
from cronflow_actors.engine.audit import AuditTrail
from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.engine.state_body import encode_state
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import InstanceBlockedError, RevisionConflictError
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import Message, Mutation, SnapshotRecord, decoder_for, encode
from cronflow_actors.messages.engine import InstanceState
from cronflow_actors.messages.migrations import KeptEvent
from cronflow_actors.net.fingerprint import fingerprint
from cronflow_actors.net.spec import NetSpec
from cronflow_actors.runtime.offline import Ended, end_offline
from cronflow_actors.runtime.unregistered import Unregistered
from cronflow_actors.store import Store

__all__ = [
    "BLOCKED",
    "KEPT_BYTES",
    "KEPT_EVENTS",
    "Block",
    "KeptFull",
    "Pinning",
    "block_of",
    "is_held",
    "not_registered",
    "recorded_fingerprint",
]

logger = logging.getLogger(__name__)

BLOCKED = "blocked"
"""The stored status of a held instance."""

_PAGE = 500


class _Pinned(msgspec.Struct):
    """The one field of a snapshot body that admission reads (the rest is skipped)."""

    fingerprint: str = ""


_pinned_decoder = decoder_for(_Pinned)


def recorded_fingerprint(snapshot: SnapshotRecord) -> str:
    """The fingerprint an instance recorded when it started ("" for an old instance);
    ``SnapshotDamagedError`` if its body cannot be decoded."""
    pinned: _Pinned = decode_snapshot_body(_pinned_decoder, snapshot.body, snapshot.instance_id)
    return pinned.fingerprint


def is_held(snapshot: SnapshotRecord) -> bool:
    """Whether the snapshot is of an instance held (``blocked``) and not ended."""
    return snapshot.status == BLOCKED and not snapshot.terminal


_KEEP_ATTEMPTS = 10
"""Tries against concurrent rewrites of a held instance's snapshot (keeping an event in it,
admitting it)."""

KEPT_EVENTS = 100
KEPT_BYTES = 1 << 20
"""The most events a run that cannot run here keeps, and their payloads' bytes: each one kept
rewrites its snapshot with all the others, and each is heard in a turn of its own when it runs
again (800 kept 20 KB events made 16 MB snapshots, publishes of 500 ms, and 10 minutes of
catching up)."""


class KeptFull(Exception):
    """A run keeps as many events as it may (``KEPT_EVENTS``, ``KEPT_BYTES``): this one is not
    kept for it."""


def not_registered(
    instance_id: str,
    workflow: str,
    version: str,
    registered: Iterable[str] = (),
    *,
    shared: bool = False,
) -> str:
    """Why an unfinished run of ``workflow`` cannot run here: its ``version`` is not
    registered (``registered``: the versions that are), and what to do about it; ``shared``:
    other processes share the database (a rolling deploy: one of them may run it)."""
    others = list(registered)  # in the order they were registered: the newest last
    shown = f" (registered: {', '.join(others)})" if others else ""
    to = others[-1] if others else "VERSION"
    said = (
        f"run {instance_id!r} is on version {version!r} of {workflow!r}, which is not "
        f"registered here{shown}"
    )
    if shared:  # (the newcomer's h26 F4: the advice moved a new version's run back)
        return (
            f"{said}: another process sharing this database may register it (a deploy under "
            f"way): send the call to one that does, or again once this one is upgraded; if none "
            f"registers it, register it, or migrate the run (a flow's: cronflow-actors migrate "
            f"{instance_id} --to VERSION; a net's, once its version is registered again beside "
            "the new one with their migration), or cancel it"
        )
    return (  # (a net's migration names both versions: retest2 h42, net F4's rest)
        f"{said}: nothing runs it until that version is registered again beside the "
        f"others, or it is migrated to one that is (a flow's run: cronflow-actors migrate "
        f"{instance_id} --to {to}; a net's, once its version is registered again beside the "
        "new one with their migration), or canceled"
    )


class Block(msgspec.Struct, frozen=True, kw_only=True):
    """Why an instance is held: it started on definition ``recorded`` of its workflow's
    ``version``, and ``registered`` is the fingerprint of the definition registered under that
    version now."""

    instance_id: str
    workflow: str
    version: str
    recorded: str
    registered: str

    def error(self, operation: str = "") -> InstanceBlockedError:
        """The error that refuses ``operation`` on the held instance."""
        return InstanceBlockedError(self.instance_id, self.reason, operation)

    @property
    def reason(self) -> str:
        return (
            f"instance {self.instance_id!r} is blocked: it started on definition "
            f"{self.recorded} of {self.workflow!r} version {self.version!r}, and the definition "
            f"registered under that version is now {self.registered}, so it is not run on the "
            "changed code; migrate it to another version (a flow's run, also onto this "
            f"version as it is now: cronflow-actors migrate {self.instance_id} --to "
            f"{self.version}), or register its old definition again (it runs on at the next "
            "start), or cancel it"
        )


def block_of(snapshot: SnapshotRecord, spec: NetSpec) -> Block | None:
    """The block of an instance stored as ``snapshot`` whose version is registered as ``spec``,
    or None if it may run on it (same fingerprint, none recorded, or it is over)."""
    if snapshot.terminal:
        return None
    recorded = recorded_fingerprint(snapshot)
    registered = fingerprint(spec)
    if not recorded or recorded == registered:
        return None
    return Block(
        instance_id=snapshot.instance_id,
        workflow=snapshot.workflow,
        version=snapshot.version,
        recorded=recorded,
        registered=registered,
    )


class Pinning:
    """Holds the instances whose definition changed under their version, and meets those whose
    workflow is not registered here the same way for events and cancels (see the module).

    ``disarm(timer_id)`` takes a timer of a discarded instance out of memory; ``on_ended(info,
    body, hooks)`` announces a discarded run's end (waiters, limits, its hooks if ``hooks``);
    ``on_count(workflow, n)`` hears how many instances of a workflow are held here, and
    ``on_unregistered(workflow, n)`` how many wait on a version not registered here;
    ``registered(snapshot)`` says whether the definition a stored instance runs on is registered
    here (its workflow and version).
    """

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        disarm: Callable[[str], None],
        on_ended: Callable[[WorkflowInfo, bytes, bool], None],
        on_count: Callable[[str, int], None],
        on_unregistered: Callable[[str, int], None] | None = None,
        audit: Callable[[], AuditTrail | None] = lambda: None,
        registered: Callable[[SnapshotRecord], bool] = lambda _snapshot: True,
        announce: Callable[[list[Message]], None] | None = None,
    ) -> None:
        self._store = store
        self._announce = announce
        """Tells the runtime's observers of an offline end's state changes."""
        self._registered = registered
        self._audit = audit
        """The runtime's audit trail as it is now (None: off): a discard records its cancel."""
        self._clock = clock
        self._disarm = disarm
        self._on_ended = on_ended
        self._on_count = on_count
        self._held: dict[str, Block] = {}
        self._unregistered = Unregistered(on_unregistered or (lambda *_count: None))
        """Unfinished instances seen at a start (or registration) whose version is not
        registered."""

    def held(self, instance_id: str) -> Block | None:
        """Why the instance is held, if it is (as far as this runtime has seen)."""
        return self._held.get(instance_id)

    def unregistered(self, instance_id: str) -> tuple[str, str] | None:
        """(workflow, version) of an unfinished instance seen on a version not registered here
        (None: none seen, or registered since)."""
        return self._unregistered.get(instance_id)

    def seen(self, snapshot: SnapshotRecord, *, registered: bool) -> None:
        """An unfinished instance met at a start (or registration): whether its version is
        registered here."""
        self._unregistered.seen(snapshot, registered=registered)

    def blocked(self) -> list[Block]:
        """Every instance this runtime holds, by id."""
        return [self._held[i] for i in sorted(self._held)]

    async def admit(self, snapshot: SnapshotRecord, spec: NetSpec) -> SnapshotRecord | Block:
        """The snapshot to load the instance from (its status written back if it was held and
        may run again), or its ``Block`` (its status written as ``blocked`` first)."""
        block = block_of(snapshot, spec)
        if block is None:
            if snapshot.status == BLOCKED:
                return await self._release(snapshot)
            return snapshot
        if snapshot.status != BLOCKED:
            await self._rewrite(
                snapshot, decode_state(snapshot.body, snapshot.instance_id), status=BLOCKED
            )
            logger.warning("%s", block.reason)
        self._hold(block)
        return block

    async def scan_waiting(
        self, names: Iterable[str], spec_of: Callable[[SnapshotRecord], NetSpec]
    ) -> list[tuple[SnapshotRecord, NetSpec]]:
        """Admit (hold or release) the unfinished instances of the named workflows that are
        not runnable (they wait for a timer, an event, a person, or are held): so that listings
        show every held instance from the start, not once something wakes it. Runnable ones are
        admitted as they are recovered. Pages go by creation time through the store's index
        (a keyset, so an instance that changes meanwhile is neither missed nor seen twice).
        Returns the instances released with events kept for them: runnable now, to load."""
        released: list[tuple[SnapshotRecord, NetSpec]] = []
        for name in sorted(names):
            for status in ("waiting", BLOCKED):
                before: tuple[float, str] | None = None
                while True:
                    page = await self._store.list_runs(
                        workflow=name, status=status, limit=_PAGE, before=before
                    )
                    for snapshot in page:
                        admitted = await self._scanned(snapshot, spec_of)
                        if admitted is not None and admitted[0].runnable:
                            released.append(admitted)
                    if len(page) < _PAGE:
                        break
                    before = (page[-1].created_at, page[-1].instance_id)
        self._unregistered.say(names)
        return released

    async def _scanned(
        self, snapshot: SnapshotRecord, spec_of: Callable[[SnapshotRecord], NetSpec]
    ) -> tuple[SnapshotRecord, NetSpec] | None:
        if snapshot.runnable or snapshot.terminal:
            return None  # admitted as it is recovered, or over
        try:
            spec = spec_of(snapshot)
        except LookupError:  # its version is not registered here: nothing runs it
            self.seen(snapshot, registered=False)
            return None
        self.seen(snapshot, registered=True)
        block = block_of(snapshot, spec)
        if block is not None and snapshot.status == BLOCKED:
            self._hold(block)  # held already
        elif block is not None or snapshot.status == BLOCKED:
            for _attempt in range(_KEEP_ATTEMPTS):
                try:
                    admitted = await self.admit(snapshot, spec)
                except RevisionConflictError:  # woken meanwhile (and admitted), or an event
                    fresh = await self._store.load_snapshot(snapshot.instance_id)  # kept
                    if fresh is None or not is_held(fresh):
                        return None
                    snapshot = fresh  # held still: admitted from the rewritten one
                    continue
                return None if isinstance(admitted, Block) else (admitted, spec)
        return None

    def cannot_run(self, snapshot: SnapshotRecord) -> bool:
        """Whether the unfinished instance stored as ``snapshot`` cannot run here: it is held,
        or its workflow (or version) is not registered."""
        return is_held(snapshot) or (not snapshot.terminal and not self._registered(snapshot))

    async def discard(
        self, instance_id: str, *, terminate: bool = False, by: str | None = None
    ) -> bool:
        """End an instance that cannot run here (held, or its workflow not registered) as
        canceled, without its definition: no activity, cancel action or handler of it runs.
        Its open waits end, its timers are deleted, its run's end is announced as any cancel's
        (its waiters, its place under its limits, the flow's ``on_complete`` hook). False if it
        can run again (released or registered meanwhile: cancel it as any run)."""
        now = self._clock.now()
        held = await end_offline(
            self._store,
            instance_id,
            now,
            offline=self.cannot_run,
            audit=self._audit(),
            terminate=terminate,
            by=by,
        )
        if held is None:
            return False
        logger.warning(
            "instance %s of %s, which could not run here, was canceled without its code",
            instance_id,
            held[0].workflow,
        )
        self.ended_offline(held, hooks=not terminate)  # (a terminate runs none of its code)
        return True

    def ended_offline(self, ended: Ended, *, hooks: bool = True) -> None:
        """An instance that could not run here was ended in the store (``end_offline``: a
        discard, a migration): its state changes go to the runtime's observers, its timers are
        disarmed, its hold lifted, and its end is announced as any run's (its waiters, its
        place under its limits, its hooks)."""
        record, state, canceled = ended
        if self._announce is not None:
            self._announce(canceled.changes)
        for timer_id in canceled.timers:
            self._disarm(timer_id)
        self.forget(state.id)
        # one canceled for a migration calls no end hook: the run that replaces it ends for both
        # (as online: engine/endings.py); a give-up calls them (chaos h30 H1)
        hooks = hooks and state.migrated_to is None
        self._on_ended(Transaction.workflow_info(state.workflows[state.id]), record.body, hooks)

    async def keep(self, instance_id: str, event: KeptEvent) -> SnapshotRecord | None:
        """Keep ``event`` in the snapshot of an instance that cannot run here
        (``InstanceState.kept``), to be delivered when it runs again (its code registered again,
        or a migration's new instance); its new record, or None if it can run now (deliver the
        event to it). A held instance stays as it is stored; one whose workflow is not
        registered is written runnable, so that the start (or registration) that brings its
        workflow back loads it, and it hears the event then."""
        for _attempt in range(_KEEP_ATTEMPTS):
            snapshot = await self._store.load_snapshot(instance_id)
            if snapshot is None or not self.cannot_run(snapshot):
                return None
            state = decode_state(snapshot.body, snapshot.instance_id)
            kept = state.kept or ()
            if event.publish and any(
                k.publish == event.publish and k.work_item_id == event.work_item_id for k in kept
            ):
                return snapshot  # kept already: a publish sent again with its idempotency key
            held = sum(len(encode(k.payload)) for k in kept) + len(encode(event.payload))
            if len(kept) >= KEPT_EVENTS or held > KEPT_BYTES:
                raise KeptFull(
                    f"it keeps {len(kept)} events already, {held:,} bytes with this one (at "
                    f"most {KEPT_EVENTS} and {KEPT_BYTES:,} bytes): this one is not kept; "
                    "publish it again once the run runs"
                )
            state.kept = [*kept, event]
            runnable = snapshot.runnable or not is_held(snapshot)
            try:
                return await self._rewrite(snapshot, state, runnable=runnable)
            except RevisionConflictError:  # another event kept, or its hold lifted: again
                continue
        return None

    async def settle_hooks(self, snapshot: SnapshotRecord) -> None:
        """A run that ended owing the hooks of its end (``engine/endings.py``), stored by a
        version not registered here: its instance cannot be loaded to have them called. They
        are called now, without the engine, as its flow has them now (if it is registered:
        ``on_ended``), once: the debt is dropped first (at most once, as for a run canceled
        offline), so that the run is loaded at start no more and can be pruned."""
        state = decode_state(snapshot.body, snapshot.instance_id)
        state.end_owed = False
        try:
            ended = await self._rewrite(snapshot, state, runnable=False)
        except RevisionConflictError:
            return  # another process settled it meanwhile
        logger.warning(
            "run %s of %s %s ended owing its hooks, and that version is not registered here: "
            "they are called once, as the flow has them now",
            snapshot.instance_id,
            snapshot.workflow,
            snapshot.version,
        )
        self._on_ended(Transaction.workflow_info(state.workflows[state.id]), ended.body, True)

    def forget(self, instance_id: str) -> None:
        """The instance ended without running (canceled offline): it is held no more."""
        self._unregistered.forget(instance_id)
        block = self._held.pop(instance_id, None)
        if block is not None:
            self._count(block.workflow)

    # -- internals ------------------------------------------------------------------------------

    def _hold(self, block: Block | None) -> None:
        if block is None:
            return
        self._held[block.instance_id] = block
        self._count(block.workflow)

    def _count(self, workflow: str) -> None:
        self._on_count(workflow, sum(1 for b in self._held.values() if b.workflow == workflow))

    async def _release(self, snapshot: SnapshotRecord) -> SnapshotRecord:
        state = decode_state(snapshot.body, snapshot.instance_id)
        runnable = snapshot.runnable or bool(state.kept)  # events kept for it: work to do
        # a notice owed (engine/notices.py) makes it runnable, not running: it waits
        running = bool(state.kept or state.actions) or (snapshot.runnable and not state.notices)
        status = "running" if running else "waiting"
        released = await self._rewrite(snapshot, state, status=status, runnable=runnable)
        self.forget(snapshot.instance_id)
        logger.info(
            "instance %s of %s %s runs on: its definition is registered again",
            snapshot.instance_id,
            snapshot.workflow,
            snapshot.version,
        )
        return released

    async def _rewrite(
        self,
        snapshot: SnapshotRecord,
        state: InstanceState,
        **fields: object,
    ) -> SnapshotRecord:
        """Commit ``state`` as the instance's next revision (compare-and-set over
        ``snapshot``), with ``fields`` of the snapshot record changed; returns the record."""
        state.revision = snapshot.revision + 1
        body = encode_state(state)
        record = msgspec.structs.replace(
            snapshot,
            revision=state.revision,
            updated_at=self._clock.now(),
            body=body,
            **fields,
        )
        await self._store.commit(Mutation(snapshot=record))
        return record

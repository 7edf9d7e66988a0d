"""What a migration (spec/tasquencer-semantics.md section 9) persists in the instance it starts:
the ``MigrationRecord`` that puts it in fast-forward mode, with the old instance's workflows
(``MigrationSource``) as the migration left them; and what a held instance (its definition
changed under its version) keeps until it runs again, on its code or by a migration: the events
published for it meanwhile (``KeptEvent``). Persisted shapes only grow."""

from __future__ import annotations

from typing import Any

import msgspec

from cronflow_actors.messages.base import Message
from cronflow_actors.messages.principal import Principal
from cronflow_actors.messages.states import TaskState, WorkflowState

__all__ = [
    "CarriedChild",
    "DeliverKept",
    "KeptEvent",
    "KeptStep",
    "MigrationRecord",
    "MigrationSource",
    "same_item",
]


class KeptStep(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The step an event was kept for, as any version of the run names it: its workflow's
    ``path`` and ``place`` (``engine/fast_forward.place_of``: an item flow of a ``for_each`` is
    the one at its place) and its ``task``. The run that goes on from a held one offers the
    event to that step's counterpart (chaos h27 F2: two item flows each waited for one event)."""

    path: tuple[str, ...]
    place: tuple[int, ...] = ()
    task: str


class KeptEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """An event published while the instance was held (``blocked``) for its step
    ``work_item_id``, which waited for it: kept in the instance's snapshot
    (``InstanceState.kept``) and delivered, in the order kept, when the instance runs again.
    ``work_item_id`` empty: carried to the run that replaced a held one (a migration's, a
    resume's), once a publish, for the ``steps`` it was kept for (``engine/kept.py``).
    ``publish``: the publish it came from. ``carried``: an offer of one of the carried events
    (``InstanceState.carried``) to the step ``work_item_id``, delivered only if that step is
    still one the event is for."""

    work_item_id: str
    event: str
    payload: Any = None
    publish: str = ""
    carried: bool = False
    steps: tuple[KeptStep, ...] = ()
    """The steps it was kept for that have not had it yet (each offered it once, when it waits:
    it takes it or its filter refuses it). None: it is for any step that starts waiting for its
    event, until one takes it (a publish no step it was kept for took, or one carried by a
    release before steps were named)."""
    taken: bool = False
    """A step it was kept for took it: it goes to the others it was kept for, to no other step
    (the second verifier's h27 V1, V2: a leftover copy reached a later wait)."""
    principal: Principal | None = None
    """Who published it (``DeliverEvent.principal``)."""
    copies: int = 1
    """Unused: written by 8c37a6f (always 1 there), read by nothing since ``steps`` (persisted
    shapes only grow: a snapshot of either release reads in the other)."""
    heard_in: tuple[str, ...] = ()
    """Unused, as ``copies`` (always empty in 8c37a6f's snapshots)."""


class DeliverKept(Message, frozen=True, kw_only=True):
    """Sent by a ``WorkflowActor`` to itself while events are kept for it (``InstanceState
    .kept``): the first is delivered (``drop``: not, its delivery raised) and no longer kept."""

    drop: bool = False


class MigrationSource(msgspec.Struct, frozen=True, kw_only=True):
    """One workflow (the root, or a child) of the instance a migration came from, as the
    migration left it (its root canceled): what task migrators read as ``ctx.migrating_from``,
    and where a fast-forwarded task takes its recorded output from."""

    id: str
    name: str
    version: str = ""
    path: tuple[str, ...] = ()
    state: WorkflowState
    payload: Any = None
    output: Any = None
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)
    """The recorded output of each task that has one."""
    caught: list[str] | None = None
    """The tasks whose output is a failure they caught (``WorkflowRecord.caught``; None: a
    workflow recorded before those were kept)."""
    tasks: dict[str, TaskState] = msgspec.field(default_factory=dict)
    generations: dict[str, int] = msgspec.field(default_factory=dict)
    parent_id: str | None = None
    parent_task: str | None = None


class CarriedChild(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """The steps a child workflow of a flow's run (a subflow's run, a ``for_each`` or ``batch``
    item's) completed, carried to the run that goes on from it (a migration, a resume): the
    child at the same ``path`` and ``place``, started with the same ``payload``, fast-forwards
    them with their recorded outputs the first time each is enabled (consumed as used)."""

    path: tuple[str, ...]
    place: tuple[int, ...] = ()
    """Its place among its parent's children of its task, and its parent's, up to the root
    (``engine/fast_forward.place_of``): a subflow inside an item is the one of that item."""
    payload: Any = None
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)
    caught: list[str] | None = None
    """Which of ``outputs`` are failures their steps caught (``WorkflowRecord.caught``; None:
    carried before those were kept, told by their shape)."""
    keys: list[tuple[str, Any, str]] = msgspec.field(default_factory=list)
    """(step, payload, idempotency key) of the work items of its steps that began and did not
    complete (a resume: the item that failed keeps its key, in a subflow, an item's flow or a
    group as at the root)."""
    items: list[tuple[str, Any, Any]] = msgspec.field(default_factory=list)
    """(step, payload, output) of the work items it completed of steps it did not complete (a
    ``parallel``'s functions, a ``for_each``'s items, a ``batch``'s chunks, done before the
    rest): the item of the same step and payload completes with that output, its function not
    called again. The root's are here too (its ``path``, no ``place``)."""


def same_item(carried: Any, payload: Any) -> bool:
    """Whether a work item the run gone on from recorded (its payload ``carried``) is the new
    item of payload ``payload`` of the same step: the same payload, or for a ``parallel``'s
    function (``{"index", "fn", "nth"}``) the same function wherever the list now puts it (conform
    h27 M2), or, recorded before functions were named (``{"index": i}``), the one at its place
    (the reviewer's h27 H1: a run upgraded mid-parallel called its done functions again)."""
    if carried == payload:
        return True
    if not (isinstance(carried, dict) and isinstance(payload, dict) and "fn" in payload):
        return False
    if "fn" in carried:
        return (carried["fn"], carried.get("nth")) == (payload["fn"], payload.get("nth"))
    return carried.keys() == {"index"} and carried["index"] == payload.get("index")


class MigrationRecord(msgspec.Struct, kw_only=True):
    """What makes an instance the target of a migration (spec section 9): it runs in
    fast-forward mode for its whole life (every time one of its tasks is enabled, that task's
    migrator, if any, says ``fast_forward`` or ``continue``)."""

    workflow: str
    from_instance: str
    from_version: str
    to_version: str
    source: list[MigrationSource] = msgspec.field(default_factory=list)
    """The workflows of the instance migrated from, its root first, in creation order."""
    fast_forward: dict[str, Any] = msgspec.field(default_factory=dict)
    """Root tasks fast-forwarded with these recorded outputs the first time they are enabled
    (a Cronflow-style flow's steps that completed in the old run); consumed as they are used."""
    caught: list[str] | None = None
    """Which of ``fast_forward`` are failures their steps caught (``WorkflowRecord.caught``;
    None: recorded before those were kept, told by their shape)."""
    keys: dict[str, str] = msgspec.field(default_factory=dict)
    """Idempotency keys root tasks keep from the run gone on from, by task, from a resume's
    envelope written before the root's ``CarriedChild.keys`` held them by step and payload."""
    registered: bool = True
    """Whether a registered migration (``net.migration``, code) drives it: then that migration
    must be registered wherever the instance runs. False for a flow's output mapping alone, and
    for a resume, which runs no migration's code (conform h27 H1)."""
    passing: bool = False
    """A hop through a version in between, which the migration goes on from at once: the
    instance starts no handler, action or notice and hears no kept event (they go on to the
    next hop); a step running in the old run ran once more in each such version (conform h27
    M5)."""
    children: list[CarriedChild] = msgspec.field(default_factory=list)
    """What ``fast_forward`` is for the root, for its child workflows (a flow's subflows and
    items): the steps they completed in the run gone on from."""
    answered: dict[str, str] = msgspec.field(default_factory=dict)
    """The errors the fallbacks of ``fast_forward``'s steps answered in the run gone on from,
    by step: shown beside their outputs as there (conform h31 F3: lost)."""
    answered_types: dict[str, str] = msgspec.field(default_factory=dict)
    """Their classes (``module.Name``), by step, where known (conform h35 F5: lost)."""

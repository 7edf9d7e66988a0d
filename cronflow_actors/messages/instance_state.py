"""The instance state a ``WorkflowActor`` persists: records, mutable, kept inside the instance's
snapshot (shapes only grow: a new field always gets a default). ``InstanceState`` holds the root
workflow and its child workflows, their tasks and work items, the jobs, what became of each
detached action (``ActionRecord``), and the events kept for it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from cronflow_actors.messages.jobs import Job
from cronflow_actors.messages.migrations import KeptEvent, MigrationRecord
from cronflow_actors.messages.states import ActionState, TaskState, WorkflowState, WorkItemState

__all__ = [
    "ActionRecord",
    "InstanceState",
    "JobRecord",
    "PendingAction",
    "Stats",
    "TaskRecord",
    "WorkItemRecord",
    "WorkflowRecord",
]


# -- persisted instance state ----------------------------------------------------------------------
# omit_defaults: a field at its default is left out of the bytes, and decodes back as it


class Stats(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """How many children (work items, or child workflows) of one task generation are in each
    state; ``total`` counts every child ever initialized in it."""

    total: int = 0
    initialized: int = 0
    started: int = 0
    completed: int = 0
    failed: int = 0
    canceled: int = 0


class WorkItemRecord(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    id: str
    name: str
    workflow_id: str
    task: str
    generation: int
    state: WorkItemState = WorkItemState.INITIALIZED
    payload: Any = None
    output: Any = None
    error: str | None = None
    attempt: int = 0
    """How many times it has been started."""
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    token: str | None = None
    """The resume token of its current pause (a work item that waits for a human)."""
    error_type: str | None = None
    """The class of the exception that failed it (``module.Name``), when a handler raised."""
    error_data: dict[str, Any] | None = None
    """That exception's public attributes that could be stored."""
    kind: str = ""
    """Its definition's kind (``step``, ``sleep``, ...), so a run can be shown without its
    definition ("" in snapshots from before it was kept)."""
    began_at: float | None = None
    """When the handler of the current attempt began to run (None: not yet, or no handler)."""
    redispatches: int = 0
    """How many times a restart found it started with its end unrecorded, and ran its handler
    again (each time the process before may have run it wholly, partly, or not at all: a step
    waiting for a pool thread had not begun; ``ctx.redispatches``)."""
    postponed: bool = False
    """Started as its process drained, which begins no handler: the next start runs it, its
    first run, not counted as run again (chaos h34 F4: it read "run again after 1 restart")."""
    kept_key: str | None = None
    """The idempotency key it keeps from the run a resume went on from (the key of an item of
    its step and payload that began there and did not complete), taken as it first started;
    "" or None: its own, its id (``ctx.idempotency_key``; None: not looked for yet, an item an
    older version started)."""
    carried: bool = False
    """Completed with the output the run a migration or a resume went on from recorded for it
    (half a ``parallel``, an item of a ``for_each``): its handler was not called in this run,
    which ran nothing under its key."""


class TaskRecord(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    name: str
    state: TaskState = TaskState.DISABLED
    generation: int = 0
    children: list[str] = msgspec.field(default_factory=list)
    """Work item ids (or child workflow ids) of the latest generation, in creation order."""
    stats: Stats = msgspec.field(default_factory=Stats)
    """Stats of the latest generation."""
    carried_kind: str = ""
    """The kind of its work items, for a task a migration or a resume completed with a
    recorded output and no item: shown by readers that have no definition (``inspect --db``
    showed ``unknown``: chaos h32 F2); "" for others."""
    carried_error: str = ""
    """For such a task, the error its fallback answered in the run gone on from, shown beside
    its output as there (conform h31 F3); "" for none."""
    carried_error_type: str = ""
    """That error's class (``module.Name``); "" for none, or not known."""
    error: str = ""
    """What failed it when none of its children did, as its step shows it: a job's (the
    deadline of a ``parallel`` or a ``race``, ``StepTimeoutError: ...``), kept when its fallback
    answered (conform h33 F1: the step read failed, or completed, with no error); "" for none."""
    error_type: str = ""
    """The class of that error (``module.Name``)."""


class WorkflowRecord(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    id: str
    name: str
    version: str = ""
    path: tuple[str, ...] = ()
    """(task, child workflow name) pairs from the root definition to this one's."""
    state: WorkflowState = WorkflowState.INITIALIZED
    payload: Any = None
    output: Any = None
    error: str | None = None
    parent_id: str | None = None
    parent_task: str | None = None
    parent_generation: int = 0
    marking: dict[str, int] = msgspec.field(default_factory=dict)
    tasks: dict[str, TaskRecord] = msgspec.field(default_factory=dict)
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)
    """The output of the latest completed work item (or child workflow) of each task."""
    caught: list[str] | None = None
    """The tasks whose output is the failure they caught (a catching task's: its record, for its
    fallback), told apart from outputs of that shape by this alone; None in workflows recorded
    before it was kept (their outputs tell by their shape)."""
    last: Any = None
    """The output of the work item that completed last (of those whose type sets it)."""
    created_at: float = 0.0
    finished_at: float | None = None
    error_cause: str | None = None
    """The work item whose failure failed this workflow (through child workflows too)."""
    error_type: str | None = None
    """The class of the exception that failed it when no work item's did (a router's or a
    flow's condition's, here or in a child workflow: conform h32 F5)."""
    started_by: str | None = None
    """Who started a net's root over the API (its principal's id; hostile h33 M2: only its
    trace said); None for this process's calls, a child, and a flow's run (whose trigger
    envelope keeps it)."""
    outputs_from: dict[str, str] = msgspec.field(default_factory=dict)
    """In a snapshot's bytes only (``engine/state_body.py``): the tasks whose entry in
    ``outputs`` was written as None because it is the output of their latest work item, by that
    item's id; restored as the body is read, empty in memory."""
    last_from: str = ""
    """Likewise: the task whose entry in ``outputs`` ``last`` is ("": written whole)."""
    output_from: str = ""
    """Likewise for ``output``."""

    def set_output(self, task: str, output: Any, *, caught: bool = False) -> None:
        """Record ``output`` as task ``task``'s: a failure it caught (``caught``), or a real
        output (which answers a failure caught before)."""
        self.outputs[task] = output
        marked = self.caught
        if marked is None:
            return
        if caught and task not in marked:
            marked.append(task)
        elif not caught and task in marked:
            marked.remove(task)


class JobRecord(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """A job registered with ``register_scheduled``, owned by an element's active life."""

    timer_id: str
    owner: str
    """"workflow/<id>", "task/<workflow id>/<task>/<generation>" or "work_item/<id>"."""
    due_at: float
    job: Job


class PendingAction(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """A detached action that was dispatched and has not reported back yet."""

    work_item_id: str
    workflow_id: str
    task: str
    durable: bool = True


class ActionRecord(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """What became of one detached action (its work item completed when it was dispatched):
    ``status`` is ``dispatched`` until its handler reports, then ``completed`` or ``failed``
    (with ``error``). ``attempts`` counts its dispatches; ``redispatches`` those made after a
    restart found it still out; ``tried`` is the attempt of its handler's last call as
    ``ctx.attempt`` counts it (its own retries count there; 0 until it reports). Times:
    ``dispatched_at`` (the last dispatch), ``started_at`` and ``finished_at`` (its handler's
    run)."""

    work_item_id: str
    workflow_id: str
    task: str
    status: ActionState = ActionState.DISPATCHED
    error: str | None = None
    error_type: str | None = None
    attempts: int = 1
    redispatches: int = 0
    tried: int = 0
    dispatched_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


class InstanceState(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """Everything one root instance is: the unit of consistency and of persistence."""

    id: str
    workflow: str
    version: str = ""
    revision: int = 0
    next_id: int = 0
    workflows: dict[str, WorkflowRecord] = msgspec.field(default_factory=dict)
    work_items: dict[str, WorkItemRecord] = msgspec.field(default_factory=dict)
    jobs: dict[str, JobRecord] = msgspec.field(default_factory=dict)
    actions: dict[str, PendingAction] = msgspec.field(default_factory=dict)
    """Detached actions out (dispatched, not reported back): the instance stays runnable."""
    action_records: dict[str, ActionRecord] = msgspec.field(default_factory=dict)
    """Every detached action dispatched in this instance, by work item id."""
    migration: MigrationRecord | None = None
    """Set when this instance is the target of a migration (it runs fast-forwarded)."""
    migrated_to: str | None = None
    """Set when a migration canceled this instance: the id of the instance that replaced it."""
    fingerprint: str | msgspec.UnsetType = msgspec.UNSET
    """The structural fingerprint (``net/fingerprint.py``) of the definition the instance
    started on; unset in snapshots from before it was recorded (taken as matching), which
    encode to the same bytes as before."""
    kept: list[KeptEvent] | msgspec.UnsetType = msgspec.UNSET
    """Events kept while it was held, to deliver when it runs (unset: none, no bytes)."""
    carried: list[KeptEvent] | msgspec.UnsetType = msgspec.UNSET
    """Events carried from the run this one replaced that not every step they are for has had
    (``engine/kept.py``): each offered, in order, to each step it was kept for as it starts
    waiting, or, none of those having taken it, to every step that starts waiting for its event
    until one takes it; dropped when the run completes (unset: none, no bytes)."""
    net: bool = False
    """A net's instance (started through ``start_workflow``, or migrated from one), not a flow's
    run: what says which it is once its workflow is registered here as neither (a flow's run is
    then an operator's to cancel, a net's its cancel policy's, which cannot be asked). Unset in
    snapshots from before it was recorded, which are a flow's only with a flow's trigger and a
    work item of a flow's kind (``runtime/flow_api._a_flows_run``)."""
    notices: dict[str, str] = msgspec.field(default_factory=dict)
    """Notices owed (``WaitSpec.notify``, at least once): work item id -> its wait's token, from
    the commit that opened the wait until the notice ended or the wait did; while any is owed
    the instance is runnable, so a restart calls it again (none: no bytes)."""
    end_owed: bool = False
    """The hooks of its end are owed (``engine/endings.py``): it ended, and they have not all
    been called yet; while so, the ended instance is runnable, so a restart calls them."""
    heard: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """Keyed publishes a step of it took (``engine/heard.py``): the publish's id -> the other
    steps that waited for that event then, which a resend of it may still reach."""
    outputs_once: bool = False
    """In a snapshot's bytes only: some of its workflows' outputs were written once
    (``engine/state_body.py``), to restore as it is read; False in memory."""

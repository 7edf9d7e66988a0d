"""What the net engine's actors say to each other, and the instance state they persist.

Messages (frozen, tagged):
- state changes a child reports to its parent: ``WorkItemStateChanged`` (work item -> task),
  ``WorkflowStateChanged`` (child workflow -> composite task), ``TaskStateChanged``
  (task -> workflow), each with the previous and the next state;
- commands a ``WorkflowActor`` carries out, one transaction each (``WorkflowCommand`` union);
- ``WorkItemFinished``, what a ``WorkItemActor`` reports when its handler returns or raises;
  ``ActionFinished``, what an ``ActionActor`` reports for a detached action; ``ActionStateChanged``,
  the change that records it (dispatched, then completed or failed);
- scheduled jobs (``Job`` union, in ``jobs.py``): engine operations a durable timer runs later.

The records an instance persists (``InstanceState`` and its parts) are in ``instance_state.py``,
re-exported here.
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.messages.base import Message
from cronflow_actors.messages.instance_state import (
    ActionRecord,
    InstanceState,
    JobRecord,
    PendingAction,
    Stats,
    TaskRecord,
    WorkflowRecord,
    WorkItemRecord,
)
from cronflow_actors.messages.jobs import (
    CancelWorkflowJob,
    CancelWorkItemJob,
    CompleteWorkItemJob,
    FailTaskJob,
    FailWorkflowJob,
    FailWorkItemJob,
    InitializeWorkflowJob,
    InitializeWorkItemJob,
    Job,
    ResetWorkItemJob,
    StartWorkItemJob,
)
from cronflow_actors.messages.migrations import DeliverKept, KeptEvent, MigrationRecord
from cronflow_actors.messages.principal import Principal
from cronflow_actors.messages.states import (
    ActionState,
    TaskState,
    WorkflowState,
    WorkItemState,
    WorkItemVerb,
)

__all__ = [
    "ActionFinished",
    "ActionRecord",
    "ActionStateChanged",
    "CancelWorkItemJob",
    "CancelWorkflow",
    "CancelWorkflowJob",
    "CompleteWorkItemJob",
    "DeliverEvent",
    "DeliverKept",
    "EndHooksDone",
    "FailTaskJob",
    "FailWorkItemJob",
    "FailWorkflowJob",
    "GiveUpMigration",
    "InitializeChildWorkflow",
    "InitializeWorkItem",
    "InitializeWorkItemJob",
    "InitializeWorkflowJob",
    "InstanceState",
    "Job",
    "JobRecord",
    "NoticeDone",
    "PendingAction",
    "Principal",
    "ReadCommitted",
    "RedispatchActions",
    "RerunStarted",
    "ResetWorkItemJob",
    "StartWorkItemJob",
    "StartWorkflow",
    "Stats",
    "TaskRecord",
    "TaskStateChanged",
    "TimerFired",
    "WorkItemAction",
    "WorkItemFinished",
    "WorkItemRecord",
    "WorkItemRerun",
    "WorkItemStateChanged",
    "WorkflowCommand",
    "WorkflowRecord",
    "WorkflowStateChanged",
]


# -- state changes, child -> parent ----------------------------------------------------------------


class WorkItemStateChanged(Message, frozen=True, kw_only=True, gc=False):
    """A work item moved from ``prev`` (None when it was just initialized) to ``next``.
    ``call_policy`` is False for teardown (the task itself is finishing). ``workflow`` (the
    workflow type) and ``kind`` (the work item's kind) are what observers label it with;
    ``started_at`` is when its current attempt started (None if it never started), and
    ``began_at`` when that attempt's handler began to run (None: no handler ran, or not yet).
    ``detached``: a detached action's work item, which completes as soon as it starts (what
    became of the action is an ``ActionStateChanged``). ``created_at``: when the item was made
    (how long a manual item, which a caller starts, waited for one)."""

    workflow_id: str
    task: str
    work_item_id: str
    prev: WorkItemState | None
    next: WorkItemState
    call_policy: bool = True
    workflow: str = ""
    kind: str = ""
    started_at: float | None = None
    began_at: float | None = None
    detached: bool = False
    created_at: float | None = None
    answered: bool = False
    """It completed with what its ``on_error`` answered for its handler's failure (counted as a
    failed step: newcomer h33 F2)."""
    timed_out: bool = False
    """Its wait ended as its deadline passed (completed as timed out, or failed by it): counted
    as a ``timed_out`` wait (newcomer h32 F6: a human step nobody answered read ``completed``)."""
    migrated: bool = False
    """Canceled as its run was canceled for a migration: it goes on in the run that replaces
    it (not counted as a canceled step or wait: metrics h43 F3)."""


class WorkItemRerun(Message, frozen=True, kw_only=True, gc=False):
    """A step's handler runs again: a restart (or a takeover) found its attempt started and
    unreported (``RerunStarted``); for the runtime's observers (the attempt is the same one)."""

    workflow_id: str
    task: str
    work_item_id: str
    workflow: str = ""
    kind: str = ""


class WorkflowStateChanged(Message, frozen=True, kw_only=True, gc=False):
    """A workflow moved from ``prev`` (None when it was just initialized) to ``next``; reported
    to the composite task that owns it (root workflows report to the runtime)."""

    workflow_id: str
    workflow: str
    prev: WorkflowState | None
    next: WorkflowState
    call_policy: bool = True
    created_at: float = 0.0  # when it was initialized (for its duration, once it ends)
    trigger: str = ""  # what started a root (manual, api, webhook, schedule, event); first change
    migrated: bool = False
    """A root canceled for its migration: its run goes on in the root that replaces it."""


class ActionStateChanged(Message, frozen=True, kw_only=True, gc=False):
    """A detached action moved from ``prev`` (None when first dispatched) to ``next``:
    ``dispatched`` (again after a restart: ``redispatched``), ``completed`` or ``failed``; for
    the runtime's observers only (an action never changes its run's course). ``started_at``,
    ``finished_at``: when its handler began and ended (None if it did not run)."""

    workflow_id: str
    task: str
    work_item_id: str
    prev: ActionState | None
    next: ActionState
    workflow: str = ""
    attempt: int = 1
    """Which dispatch of the action this is (1, and more after restarts)."""
    redispatched: bool = False
    started_at: float | None = None
    finished_at: float | None = None


class TaskStateChanged(Message, frozen=True, kw_only=True, gc=False):
    """A task of a workflow moved from ``prev`` to ``next`` in ``generation``."""

    workflow_id: str
    task: str
    generation: int
    prev: TaskState
    next: TaskState


# -- commands to a WorkflowActor -------------------------------------------------------------------


class StartWorkflow(Message, frozen=True, kw_only=True):
    """Initialize the root workflow of a new instance (the actor's first transaction).
    ``dequeued``: the run was queued; its row goes in the same transaction (``canceled``: it
    was canceled there, so its root is made and canceled at once, no step runs)."""

    payload: Any = None
    principal: Principal | None = None
    dequeued: bool = False
    canceled: bool = False
    terminated: bool = False  # canceled by a terminate: none of its code runs, no end hook
    reason: str = ""  # why it was canceled (``canceled``), recorded as its error
    by: str | None = None  # who asked (``InitializeWorkflow.by``)
    canceled_by: str | None = None  # who canceled it in its queue (``CancelWorkflow.by``)
    trigger: str = ""
    """What started the run (see ``WorkflowStateChanged.trigger``)."""
    migration: MigrationRecord | None = None
    """The instance is the target of a migration: its root starts fast-forwarded (spec section
    9), without its ``initialize`` action and ``on_initialized``, the migration's initializer
    instead."""
    kept: tuple[KeptEvent, ...] = ()
    """Events the instance it replaces kept while held, for its steps waiting for them."""
    net: bool = False
    """A net's instance, not a flow's run (``InstanceState.net``)."""


class InitializeWorkItem(Message, frozen=True, kw_only=True):
    workflow_id: str
    task: str
    payload: Any = None
    principal: Principal | None = None


class InitializeChildWorkflow(InitializeWorkItem, frozen=True, kw_only=True):
    """A child workflow of composite ``task`` (its latest generation; ``child``: a dynamic one's
    child type), through the child's ``initialize`` action (spec 5.7's ``initializeWorkflow``)."""

    child: str | None = None


class WorkItemAction(Message, frozen=True, kw_only=True):
    """``start``, ``complete``, ``fail``, ``cancel`` or ``reset`` a work item. With ``token``,
    the item must be waiting in the pause that token was drawn for (a resume)."""

    action: WorkItemVerb
    work_item_id: str
    payload: Any = None
    principal: Principal | None = None
    token: str | None = None
    timed_out: bool = False
    """From a job that ends a wait as its deadline passed (``WorkItemJob.timed_out``)."""
    by: str | None = None
    """Who asked, for the audit trail, where the call is the runtime's (a person's resume of a
    flow's human step: its caller's id, which the trail said was the runtime: h42 versions F2)."""


class DeliverEvent(Message, frozen=True, kw_only=True):
    """An event for a work item waiting for it: completes the item with ``payload`` if it still
    waits for ``event`` and its filter accepts the payload. The result says whether it did."""

    work_item_id: str
    event: str
    payload: Any = None
    publish: str | None = None
    """The publish it is part of, when it has an idempotency key: sent again, it reaches no step
    that began waiting since (``engine/heard.py``)."""
    principal: Principal | None = None
    """Who published it (an HTTP caller's token; None: this process's own publish), which a
    net's event filter and check see as ``ctx.principal`` (hostile h31 M1)."""


class ReadCommitted(Message, frozen=True, kw_only=True):
    """A query: the instance's last committed ``SnapshotRecord`` (None before its first
    commit). Answered at once, not queued behind the instance's transactions."""


class CancelWorkflow(Message, frozen=True, kw_only=True):
    workflow_id: str
    principal: Principal | None = None
    reason: str = ""  # why, recorded as the workflow's error ("": none given)
    by: str | None = None
    """Who asked, for the audit trail, when no action admits the caller (a flow's run canceled
    by an API caller: the route's authentication did)."""
    migrated_to: str | None = None
    """A cancel for a migration (the root only): the ``cancel`` action is skipped, the
    activities run, and the instance records the id of the instance that replaces it."""
    terminate: bool = False
    """End it without its code: no activity and no ``cancel`` callback runs in the
    transaction, its policy still asked of an outside caller; the way out of an instance whose
    teardown code raises, which a cancel runs and is refused by (h42 net F7)."""


class WorkItemFinished(Message, frozen=True, kw_only=True):
    """A handler returned (``ok``; ``error``: one its ``on_error`` answered) or raised."""

    work_item_id: str
    attempt: int
    ok: bool
    output: Any = None
    error: str | None = None
    retry_after: float | None = None
    """Failed, and another attempt is wanted this many seconds from now."""
    error_type: str | None = None
    """The failing exception's class, ``module.Name``."""
    error_data: dict[str, Any] | None = None
    """The failing exception's public attributes that can be stored."""
    exception: Any = None
    """The exception itself (never persisted: for the hooks of this process)."""
    began_at: float | None = None
    """When the handler began to run (the clock's time)."""
    cancel_run: str | None = None
    """The handler asked to end its run as canceled, with this reason (``ctx.cancel``)."""


class TimerFired(Message, frozen=True, kw_only=True):
    timer_id: str


class ActionFinished(Message, frozen=True, kw_only=True):
    """A detached action's handler returned (``ok``) or raised, in dispatch ``attempt`` (0: any);
    its output is not kept. ``started_at`` and ``finished_at`` are the clock's times around the
    handler's run."""

    work_item_id: str
    ok: bool
    error: str | None = None
    error_type: str | None = None
    """The failing exception's class, ``module.Name``."""
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    tried: int = 0
    """The attempt of the handler's last call, as ``ctx.attempt`` counts it (an action's own
    retries call it again within one dispatch); 0: the dispatch's ``attempt``."""


class RedispatchActions(Message, frozen=True, kw_only=True):
    """Sent by a ``WorkflowActor`` to itself when it is rebuilt from a snapshot with detached
    actions still out (a restart): each durable one is recorded as dispatched again and then
    dispatched; each ``durable=False`` one is recorded as failed."""


class RerunStarted(Message, frozen=True, kw_only=True):
    """Sent by a ``WorkflowActor`` to itself when it is rebuilt from a snapshot with steps
    whose handlers had started and not reported (a restart, or a takeover): ``items``, each
    ``(work item id, attempt)``, are recorded as run again (``WorkItemRecord.redispatches``,
    a ``WorkItem.rerun`` span) and their handlers started once that is durable."""

    items: tuple[tuple[str, int], ...]


class NoticeDone(Message, frozen=True, kw_only=True):
    """A wait's notice (``WaitSpec.notify``: a pause's ``on_pause``) for work item
    ``work_item_id``, whose wait drew ``token``, has ended: it is no longer owed. Told by the
    ``WorkflowActor`` to itself, as is one for a notice a restart found moot."""

    work_item_id: str
    token: str


class EndHooksDone(Message, frozen=True, kw_only=True):
    """The hooks of the run's end (a flow's ``on_success``/``on_failure``/``on_complete``) have
    been called: no longer owed (``engine/endings.py``)."""


class GiveUpMigration(Message, frozen=True, kw_only=True):
    """The ended root a migration canceled names ``given_up`` as its successor, which will
    never start (the migration was given up: ``cancel`` of the run): it names none any more,
    and its end's hooks, which were the successor's to call, are owed (``owed``: it has some).
    False if it names another successor, or none (given up already)."""

    given_up: str
    to_version: str
    owed: bool
    principal: Principal | None = None
    reason: str = ""


WorkflowCommand = (
    StartWorkflow
    | InitializeWorkItem
    | InitializeChildWorkflow
    | WorkItemAction
    | CancelWorkflow
    | DeliverEvent
    | WorkItemFinished
    | TimerFired
    | ActionFinished
    | RedispatchActions
    | RerunStarted
    | DeliverKept
    | NoticeDone
    | EndHooksDone
    | GiveUpMigration
)

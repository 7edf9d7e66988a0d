"""One transaction of one instance: the cascade a command sets off, and what it must write.

A ``WorkflowActor`` runs one transaction at a time. The elements (``workflows``, ``tasks``,
``work_items``) change the state in place, talk through ``send`` (``cascade`` installs it), and
record here what is to happen once the change is durable: journal entries, timers, handlers,
state changes to publish. It makes what user code sees (each ``ctx``) and the wake-up row of an
item that starts waiting. If anything raises, the actor restores the last committed state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from cronflow_actors.calls import call_user
from cronflow_actors.engine.audit import AuditTrail
from cronflow_actors.engine.chains import Chain
from cronflow_actors.engine.children import TaskChildren
from cronflow_actors.engine.context import (
    ChildWorkflows,
    Context,
    MigrationSources,
    TaskInfo,
    WorkflowInfo,
    WorkItemInfo,
    WorkItems,
    not_called,
)
from cronflow_actors.engine.owners import task_owner, work_item_owner, workflow_owner
from cronflow_actors.engine.tokens import random_token
from cronflow_actors.errors import NotFoundError, refusing_call
from cronflow_actors.messages import (
    JournalEntry,
    Message,
    Mutation,
    SnapshotRecord,
    TimerRecord,
    WaitRecord,
    encode,
    plain,
)
from cronflow_actors.messages.elements import ElementMessage
from cronflow_actors.messages.engine import (
    InstanceState,
    Job,
    JobRecord,
    Principal,
    WorkflowRecord,
    WorkflowStateChanged,
    WorkItemRecord,
    WorkItemStateChanged,
)
from cronflow_actors.net.spec import NetSpec, SplitType, TaskKind, pause_details

__all__ = ["Send", "Transaction", "normalize"]

T = TypeVar("T")

_JOB_TYPES: tuple[type, ...] = Job.__args__

Send = Callable[[ElementMessage], Awaitable[Any]]
"""Deliver a message to the element it is for, depth-first; what that element answers."""


def _no_dispatcher(message: ElementMessage) -> Awaitable[Any]:
    raise RuntimeError(f"no dispatcher for {message!r}: the cascade installs one")


normalize = plain
"""The value as it reads back from the store (plain msgpack types), so what user code sees
before and after a restart is the same."""


class Transaction:
    """The effects of one command on one instance, collected until the commit."""

    migration: Any = None
    """In an instance a migration started: the registered ``MigrationSpec`` (its migrators,
    initializer and finalizer), set by the instance's actor (None: none registered)."""
    rewritten = False
    """The state changed in a way nothing else here records (a kept event no longer kept):
    the transaction writes its snapshot even if nothing moved."""
    completing: tuple[tuple[str, str], ...] = ()
    """(workflow id, task) of the completions under way in a net with an OR-join: the tasks
    they will ask are not idle to an OR-join asked meanwhile (``withdrawal.idle_tasks``)."""
    chain: Chain | None = None
    """The enables nested in the completions under way, and those put off (``chains.Chain``)."""
    terminating = False
    """A terminate (``CancelWorkflow.terminate``): no activity is called."""
    reported = False
    """The transaction applies a report (a handler's result, a timer, an action's end, an
    event), which nobody can be refused: a router that raises in it fails its workflow
    (with the router's error) instead of undoing the report, set by the instance's actor."""

    def __init__(  # noqa: PLR0917 - by position: keywords to a class are a dict a call
        self,
        state: InstanceState,
        now: float,
        specs: Mapping[tuple[str, ...], NetSpec],
        principal: Principal | None = None,
        state_access: Any = None,
        tokens: Callable[[], str] | None = None,
        secrets: Mapping[str, Any] | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.state = state
        self.audit = audit.recorder(state, now) if audit is not None else None
        """The transaction's audit trail (None: the audit is off)."""
        self.secrets = secrets
        """Workflow name -> what ``ctx.secrets`` is in that workflow's user code."""
        self.new_token: Callable[[], str] = tokens or random_token
        """A new resume token: unguessable (random), never derived from an id."""
        self.state_access = state_access
        """What ``ctx.state`` is in user code (the workflow's key-value state)."""
        self.now = now
        self.specs = specs
        """The definition (``NetSpec``) each workflow of the instance runs, by its ``path``:
        ``specs[workflow.path]``, its root's or a composite task's. A subscript, not a method:
        it is asked two dozen times a transaction (``net.spec.Descendants``)."""
        self.principal = principal
        self.journal: list[JournalEntry] = []
        self.timers_set: dict[str, TimerRecord] = {}
        self.handlers: list[tuple[str, int]] = []
        self.waits_set: dict[str, WaitRecord] = {}
        # Seldom used, so not made until something goes in (``_added``): a transaction lives
        # until its commit is durable, and every list is one more object the collector walks.
        self.timers_cancel: Sequence[str] = ()
        self.actions: Sequence[str] = ()
        """Detached actions to dispatch after the commit (``dispatch_action``)."""
        self.after_commit: Sequence[Callable[[], Any]] = ()
        """Called (coroutines awaited in a task) once the transaction is durable; errors are
        logged. For notifications that must not go out before the change is durable."""
        self.notices: Sequence[str] = ()
        """Work items whose wait's notice to call after the commit (``WaitSpec.notify``)."""
        self.waits_end: Sequence[str] = ()
        self.dequeued: Sequence[str] = ()
        """Queued runs whose rows this transaction deletes (a queued run's start)."""
        self.changes: list[Message] = []
        """Every state change, in the order the elements moved (for observers). With the audit
        on, an element that appends a workflow, task or work-item move also reports it to
        ``audit`` (``workflow_moved``, ``task_moved``, ``item_moved``), right after appending."""
        self.send: Send = _no_dispatcher
        """How an element talks to another one (the dispatcher installs it)."""
        self.send_last: Send = _no_dispatcher
        """``send`` for an element's last act on the message that reached it: nothing it
        records (no move, marking, activity or other send) comes after the answer. The same
        delivery; with the audit on, without a frame of its own (``AuditRecorder.send``), since
        the sender's frame ends right after and the spans are the same."""

    # -- lookups ----------------------------------------------------------------------------------

    def workflow(self, workflow_id: str) -> WorkflowRecord:
        found = self.state.workflows.get(workflow_id)
        if found is None:
            raise NotFoundError("workflow instance", workflow_id)
        return found

    def work_item(self, work_item_id: str) -> WorkItemRecord:
        found = self.state.work_items.get(work_item_id)
        if found is None:
            raise NotFoundError("work item", work_item_id)
        return found

    def new_id(self, kind: str) -> str:
        """An id inside this instance: ``<root id>.<kind><n>``; the root id routes calls."""
        self.state.next_id += 1
        return f"{self.state.id}.{kind}{self.state.next_id}"

    # -- the marking -------------------------------------------------------------------------------

    def mark(
        self,
        workflow: WorkflowRecord,
        counts: dict[str, int],
        conditions: Collection[str],
        *,
        produced_by: str | None = None,
        split: SplitType | None = None,
    ) -> None:
        """Change ``workflow``'s marking in place (a refused call's state is read back from
        its last commit) by ``counts``, the new counts of the ``conditions`` that change; the
        audit records each changed condition. ``produced_by``: the completing task whose
        ``split`` produced the new tokens (its routing decision)."""
        marking, before = workflow.marking, {}
        if self.audit is None:
            marking.update(counts)
            return
        for condition in conditions:  # (not a comprehension: a frame, as often as a task moves)
            before[condition] = marking.get(condition, 0)
        marking.update(counts)
        self.audit.marked(workflow.id, before, marking, conditions, produced_by, split)

    # -- views for user code -----------------------------------------------------------------------

    @staticmethod
    def workflow_info(workflow: WorkflowRecord) -> WorkflowInfo:
        return WorkflowInfo(
            id=workflow.id,
            name=workflow.name,
            version=workflow.version,
            state=workflow.state,
            payload=workflow.payload,
            output=workflow.output,
            error=workflow.error,
            parent_id=workflow.parent_id,
            parent_task=workflow.parent_task,
            created_at=workflow.created_at,
        )

    @staticmethod
    def task_info(workflow: WorkflowRecord, task: str) -> TaskInfo:
        record = workflow.tasks[task]
        return TaskInfo(name=task, generation=record.generation, state=record.state)

    @staticmethod
    def work_item_info(item: WorkItemRecord) -> WorkItemInfo:
        return WorkItemInfo(
            id=item.id,
            name=item.name,
            task=item.task,
            generation=item.generation,
            workflow_id=item.workflow_id,
            state=item.state,
            payload=item.payload,
            output=item.output,
            error=item.error,
            attempt=item.attempt,
            token=item.token,
        )

    def context(self, owner: WorkflowRecord, where: str, /, **fields: Any) -> Context:
        """A ctx for user code running inside the workflow ``owner``: its info as ``parent``,
        its payload and outputs, and this transaction's caller; ``fields`` add or override."""
        values: dict[str, Any] = {
            "parent": self.workflow_info(owner),
            "payload": owner.payload,
            "outputs": owner.outputs,
            "principal": self.principal,
            "is_internal": self.principal is None,
        }
        values.update(fields)
        ctx = Context(where=where, **values)
        ctx.last, ctx.caught = owner.last, owner.caught
        ctx.state = self.state_access
        ctx.after_commit = self.add_after_commit
        if self.state.migration is not None:  # its start by a migration fast-forwards it, not
            ctx.execution_mode = "normal" if self.state.revision else "fast_forward"  # a call
            ctx.migrating_from = MigrationSources(self.state.migration.source)
        if self.secrets:
            ctx.secrets = self.secrets.get(owner.name)
        return ctx

    def task_context(  # noqa: PLR0917 - one caller, the task element
        self,
        workflow: WorkflowRecord,
        name: str,
        where: str,
        pending: list[tuple[str, str | None, Any]] | None,
        changed: WorkItemStateChanged | WorkflowStateChanged | None,
        check_can_add: Callable[[str], None],
        scheduling: bool,
    ) -> Context:
        """The ctx of task ``name``'s activity, policy or router: ``ctx.work_item``
        (``WorkItems``) or ``ctx.workflow`` (``ChildWorkflows``) list its children and, when
        ``pending`` is given, let an activity initialize more (their ids go to ``pending``,
        after ``check_can_add(what)``); ``changed`` is the child change an activity is about;
        ``scheduling``: it may register jobs (owned by the task's generation)."""
        record = workflow.tasks[name]
        definition = self.specs[workflow.path].tasks[name]
        children = TaskChildren(self.new_id, record, name, pending, check_can_add)
        owner = task_owner(workflow.id, name, record.generation)
        ctx = self.context(
            workflow,
            f"task {name!r} {where}",
            scheduler=self.scheduler(owner) if scheduling else None,
            task=self.task_info(workflow, name),
        )
        adds = pending is not None
        if definition.kind is TaskKind.TASK:
            item = changed if isinstance(changed, WorkItemStateChanged) else None
            info = self.work_item_info(self.state.work_items[item.work_item_id]) if item else None
            ctx.work_item = WorkItems(
                children.initialize if adds else None,
                children.ids,
                id=item.work_item_id if item else None,
                prev_state=item.prev if item else None,
                next_state=item.next if item else None,
                info=info,
            )
        elif definition.kind is not TaskKind.DUMMY:
            children.names = [child.name for child in definition.subworkflows]
            flow = changed if isinstance(changed, WorkflowStateChanged) else None
            ctx.workflow = ChildWorkflows(
                children.start_child if adds else None,
                children.ids,
                dynamic=definition.kind is TaskKind.DYNAMIC_COMPOSITE,
                id=flow.workflow_id if flow else None,
                name=flow.workflow if flow else None,
                prev_state=flow.prev if flow else None,
                next_state=flow.next if flow else None,
                info=self.workflow_info(self.state.workflows[flow.workflow_id]) if flow else None,
            )
        return ctx

    def activity(  # noqa: PLR0917 - an element's one way to call its activities
        self,
        fn: Callable[..., Any],
        ctx: Context,
        name: str,
        kind: str,
        instance_id: str,
        element: str,
        *,
        refusing: str | None = None,
    ) -> Awaitable[Any]:
        """Call activity ``name`` (``fn``) of a ``kind`` of element (``"workflow"``,
        ``"task"``, ``"work_item"``: its id, or a task's name) in workflow ``instance_id``,
        with ``ctx``; with the audit on, in an ``Activity.<name>`` span. ``refusing``: where
        the activity is, for a call it raises in (not a report): the call is refused with
        that named (``refuse_call``)."""
        call = call_user(not_called if self.terminating else fn, ctx)
        if self.audit is not None and not self.terminating:  # (none said to run: review F7)
            call = self.audit.activity(call, name, instance_id, element, kind)
        if refusing is None or self.reported:
            return call
        return refusing_call(call, refusing)

    def mutation(
        self, snapshot: SnapshotRecord, replaces: SnapshotRecord | None = None
    ) -> Mutation:
        """What committing this transaction writes, with ``snapshot`` (its next revision), and
        the audit trail's spans (None: the audit is off); ``replaces``: the committed snapshot
        it follows, if known (``Mutation.replaces``). (Most transactions set no timer and open
        no wait: their empty dicts are not asked for their values.)"""
        timers_set, waits_set, audit = self.timers_set, self.waits_set, self.audit
        return Mutation(
            snapshot=snapshot,
            journal=tuple(self.journal),
            timers_set=tuple(timers_set.values()) if timers_set else (),
            timers_cancel=tuple(self.timers_cancel),
            waits_set=tuple(waits_set.values()) if waits_set else (),
            waits_end=tuple(self.waits_end),
            dequeued=tuple(self.dequeued),
            spans=None if audit is None else audit.spans(snapshot.revision),
            replaces=None
            if replaces is None
            else (replaces.status, replaces.terminal, replaces.runnable),
        )

    # -- wake-up rows ------------------------------------------------------------------------------

    async def start_waiting(self, workflow: WorkflowRecord, item: WorkItemRecord) -> None:
        """The durable wake-up row of an item that starts waiting for an event or a human (a
        pause draws a new resume token)."""
        wait = self.specs[workflow.path].tasks[item.task].work_item.wait
        assert wait is not None  # only an item that waits starts waiting
        if wait.kind == "pause":
            item.token = self.new_token()
            key = item.token
        else:
            key = wait.event
        details: Any = None
        if wait.details is not None:
            ctx = self.item_context(workflow, item, "wait details")
            where = f"the wait of task {item.task!r} in {workflow.name!r}"
            details = pause_details(await call_user(wait.details, ctx), where=where)
        self.open_wait(
            WaitRecord(
                wait_id=item.id,
                instance_id=self.state.id,
                kind=wait.kind,
                key=key,
                workflow=workflow.name,
                step=item.task,
                created_at=self.now,
                expires_at=self.now + float(wait.timeout) if wait.timeout is not None else None,
                data=encode({"details": details, "last": workflow.last}),
            )
        )
        if wait.notify is not None:  # owed from this commit on (``InstanceState.notices``)
            self.state.notices[item.id] = item.token or ""
            self.notices = _added(self.notices, item.id)

    def open_wait(self, wait: WaitRecord) -> None:
        """A work item starts waiting: its row is written with the transaction."""
        self.waits_set[wait.wait_id] = wait
        if wait.wait_id in self.waits_end:
            self.waits_end = [w for w in self.waits_end if w != wait.wait_id]

    def end_wait(self, wait_id: str) -> None:
        """A work item stops waiting: its row is marked ended with the transaction (and a
        notice of the wait still owed is owed no longer)."""
        if self.state.notices:
            self.state.notices.pop(wait_id, None)
        opened = self.waits_set.get(wait_id)
        if opened is not None:
            self.waits_set[wait_id] = msgspec.structs.replace(opened, ended=True)
        elif wait_id not in self.waits_end:
            self.waits_end = _added(self.waits_end, wait_id)

    def writes(self) -> bool:
        """Whether the transaction has anything to commit."""
        return bool(
            self.changes
            or self.journal
            or self.timers_set
            or self.timers_cancel
            or self.waits_set
            or self.waits_end
            or self.dequeued
            or self.rewritten
        )

    def item_context(
        self, workflow: WorkflowRecord, item: WorkItemRecord, what: str, /, **fields: Any
    ) -> Context:
        """A ctx for user code about one work item (its activities, actions, event filter,
        wait details): its task's info, and the item itself as ``work_item`` (its info, unless
        ``fields`` give another view of it)."""
        fields.setdefault("work_item", self.work_item_info(item))
        return self.context(
            workflow,
            f"work item {item.name!r} {what}",
            task=self.task_info(workflow, item.task),
            **fields,
        )

    # -- scheduled jobs ----------------------------------------------------------------------------

    def schedule(self, owner: str, delay: float, job: Job) -> str:
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            raise ValueError(f"register_scheduled needs a delay in seconds >= 0, got {delay!r}")
        if not isinstance(job, _JOB_TYPES):
            raise TypeError(f"register_scheduled needs a job from net.jobs, got {job!r}")
        timer_id = self.new_id("t")
        due_at = self.now + float(delay)
        self.state.jobs[timer_id] = JobRecord(
            timer_id=timer_id, owner=owner, due_at=due_at, job=job
        )
        self.timers_set[timer_id] = TimerRecord(
            timer_id=timer_id, instance_id=self.state.id, due_at=due_at, kind="job"
        )
        return timer_id

    def scheduler(self, owner: str) -> Callable[[float, Any], str]:
        return lambda delay, job: self.schedule(owner, delay, job)

    def cancel_item_jobs(self, work_item_id: str) -> None:
        """Drop the jobs a work item's activities and actions registered."""
        if self.state.jobs:
            self.cancel_jobs(work_item_owner(work_item_id))

    def cancel_task_jobs(self, workflow_id: str, task: str) -> None:
        """Drop the jobs of every generation of a task."""
        if self.state.jobs:
            self.cancel_jobs(task_owner(workflow_id, task))

    def cancel_workflow_jobs(self, workflow_id: str) -> None:
        """Drop the jobs a workflow's activities and actions registered."""
        if self.state.jobs:
            self.cancel_jobs(workflow_owner(workflow_id))

    def cancel_jobs(self, owner_prefix: str) -> None:
        """Drop every job whose owner key starts with ``owner_prefix``."""
        jobs = self.state.jobs
        if not jobs:
            return
        for timer_id in [t for t, job in jobs.items() if job.owner.startswith(owner_prefix)]:
            self.drop_job(timer_id)

    def drop_job(self, timer_id: str) -> None:
        del self.state.jobs[timer_id]
        if self.timers_set.pop(timer_id, None) is None:
            self.cancel_timer(timer_id)

    def cancel_timer(self, timer_id: str) -> None:
        """Timer ``timer_id``'s row is deleted with the transaction (and disarmed after it)."""
        self.timers_cancel = _added(self.timers_cancel, timer_id)

    def dispatch_action(self, item_id: str) -> None:
        """Dispatch work item ``item_id``'s detached action once the transaction is durable."""
        self.actions = _added(self.actions, item_id)

    def dequeue(self, instance_id: str) -> None:
        """Queued run ``instance_id``'s row is deleted with the transaction (it starts)."""
        self.dequeued = _added(self.dequeued, instance_id)

    def add_after_commit(self, fn: Callable[[], Any]) -> None:
        """``ctx.after_commit(fn)``: have ``fn()`` called once the transaction is durable."""
        self.after_commit = _added(self.after_commit, fn)


def _added(items: Sequence[T], item: T) -> list[T]:
    """``items`` with ``item`` at the end: the list itself, or a new one the first time."""
    if type(items) is list:
        items.append(item)
        return items
    return [*items, item]

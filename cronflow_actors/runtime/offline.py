"""Ending an instance in its snapshot, offline: without its actor and without any of its
definition's code (its definition is not registered here, or the instance is held ``blocked``
because its definition changed). A migration cancels its old root this way
(``runtime/migrations.py``), and an operator's cancel of a held instance
(``runtime/pinning.py``).

With the audit on, the cancel is recorded as the engine records one (``engine/audit.py``): an
``Action.cancel`` span, under it each task's ``Task.cancel`` (started) or ``Task.disable``
(enabled) with its open children's cancels nested under it, then the workflow's
``Workflow.cancel``; committed with the snapshot, so the trace and ``state_at`` show the run
canceled from then on. Its state changes (``OfflineCancel.changes``) are for the runtime's
observers once it is committed (``Pinning.ended_offline``: the metrics count the run canceled,
as any cancel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import msgspec

from cronflow_actors.engine.audit import AuditRecorder, AuditTrail
from cronflow_actors.engine.services import decode_state
from cronflow_actors.engine.state_body import encode_state
from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemState, is_final
from cronflow_actors.errors import InvalidStateTransitionError, NotFoundError, RevisionConflictError
from cronflow_actors.messages import Message, Mutation, SnapshotRecord
from cronflow_actors.messages.audit import SpanRows
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    InstanceState,
    TaskRecord,
    TaskStateChanged,
    WorkflowRecord,
    WorkflowStateChanged,
    WorkItemRecord,
    WorkItemStateChanged,
)
from cronflow_actors.store import Store

__all__ = ["Ended", "OfflineCancel", "cancel_offline", "end_offline"]

_OPEN_ITEMS = frozenset({WorkItemState.INITIALIZED, WorkItemState.STARTED})
_OPEN_TASKS = frozenset({TaskState.ENABLED, TaskState.STARTED})

T = TypeVar("T")


class OfflineCancel(NamedTuple):
    """What an offline cancel leaves to its caller to commit with the snapshot."""

    timers: list[str]
    """The instance's timers, to cancel."""
    waits: list[str]
    """Its open waits (started work items), to end."""
    spans: SpanRows | None
    """The cancel's audit trail, to commit with the snapshot (None: the audit is off)."""
    audit: AuditRecorder | None
    changes: list[Message]
    """Its state changes, as the engine's cancel would make them, for the observers."""

    def durable(self) -> None:
        """The cancel is committed: the audit's sink hears of its spans."""
        if self.audit is not None:
            self.audit.durable()


def cancel_offline(
    state: InstanceState,
    now: float,
    new_id: str | None = None,
    *,
    audit: AuditTrail | None = None,
    terminate: bool = False,
    by: str | None = None,
) -> OfflineCancel:
    """Cancel every open element of ``state`` in place, without running user code (started
    tasks canceled, enabled ones disabled, open work items and workflows canceled, jobs and
    detached actions dropped), record ``new_id`` as its successor (a migration's; None for a
    plain cancel) and bump its revision; with ``audit``, record it as an internal cancel (the
    caller's ``Action.cancel``, ``by`` the outside caller who asked, if one did; ``terminate``:
    said of it, as an online one is)."""
    recorder = audit.recorder(state, now) if audit is not None else None
    timers = list(state.jobs)
    state.jobs.clear()
    state.actions.clear()
    state.notices.clear()  # its waits end with it: no notice is owed
    canceling = _Canceling(state, now, recorder)
    if recorder is not None:
        cancel = CancelWorkflow(
            workflow_id=state.id, migrated_to=new_id, terminate=terminate, by=by
        )
        recorder.begin_turn(cancel)
    state.migrated_to = new_id  # (before the root's change, which says it)
    canceling.workflow(state.workflows[state.id])
    # any the walk from the root did not reach (no open task of theirs holds them)
    for workflow in [w for w in state.workflows.values() if not is_final(w.state)]:
        canceling.framed(canceling.workflow, workflow)
    for item in [i for i in state.work_items.values() if i.state in _OPEN_ITEMS]:
        canceling.framed(canceling.item, item)
    state.revision += 1
    changes = canceling.changes
    if recorder is None:
        return OfflineCancel(timers, canceling.waits, None, None, changes)
    recorder.end_turn()
    spans = recorder.spans(state.revision)
    return OfflineCancel(timers, canceling.waits, spans, recorder, changes)


Ended = tuple[SnapshotRecord, InstanceState, OfflineCancel]
"""What ``end_offline`` committed: the instance's new record, its state and the cancel."""


async def end_offline(
    store: Store,
    instance_id: str,
    now: float,
    *,
    offline: Callable[[SnapshotRecord], bool],
    new_id: str | None = None,
    audit: AuditTrail | None = None,
    terminate: bool = False,
    by: str | None = None,
) -> Ended | None:
    """Cancel instance ``instance_id`` offline (``cancel_offline``) and commit it: its snapshot
    ended, its timers deleted, its waits ended, its spans written. A concurrent rewrite of its
    snapshot (an event kept for it, a release) is met by reading it again: canceled from the
    new one if ``offline`` still says it may be (held, or its version not registered here);
    None if not (it runs again: cancel it through its actor). Returns its new record, its state
    and the cancel; ``NotFoundError`` for an unknown instance, ``InvalidStateTransitionError``
    for one that has ended."""
    for attempt in range(1, _ATTEMPTS + 1):
        snapshot = await store.load_snapshot(instance_id)
        if snapshot is None:
            raise NotFoundError("workflow instance", instance_id)
        if snapshot.terminal:
            raise InvalidStateTransitionError(
                "workflow", instance_id, snapshot.status, "canceled", []
            )
        if not offline(snapshot):
            return None
        state = decode_state(snapshot.body, snapshot.instance_id)
        canceled = cancel_offline(state, now, new_id, audit=audit, terminate=terminate, by=by)
        record = msgspec.structs.replace(
            snapshot,
            status=str(WorkflowState.CANCELED),
            terminal=True,
            runnable=False,
            revision=state.revision,
            updated_at=now,
            body=encode_state(state),
        )
        mutation = Mutation(
            snapshot=record,
            timers_cancel=tuple(canceled.timers),
            waits_end=tuple(canceled.waits),
            spans=canceled.spans,
        )
        try:
            await store.commit(mutation)
        except RevisionConflictError:
            if attempt == _ATTEMPTS:
                raise
            continue
        canceled.durable()
        return record, state, canceled
    raise AssertionError("unreachable: the last attempt returns or raises")


_ATTEMPTS = 10
"""Reads of the snapshot against concurrent rewrites of it (events kept for a held run)."""


class _Canceling:
    """The walk of one offline cancel: each open element moved, as the engine's cancel would
    (tasks before their workflow, a task's children under it), and reported to the audit."""

    def __init__(self, state: InstanceState, now: float, audit: AuditRecorder | None) -> None:
        self.state = state
        self.now = now
        self.audit = audit
        self.waits: list[str] = []
        self.changes: list[Message] = []

    def framed(self, move: Callable[[T], None], element: T) -> None:
        """``move(element)`` in a frame of its own: the spans it opens end with it, so what
        is canceled next is its sibling, not its child."""
        if self.audit is None:
            move(element)
            return
        self.audit.enter()
        try:
            move(element)
        finally:
            self.audit.exit()

    def workflow(self, workflow: WorkflowRecord) -> None:
        if is_final(workflow.state):
            return
        for name, task in workflow.tasks.items():
            if task.state in _OPEN_TASKS:
                self.framed(self.task, (workflow, name, task))
        previous = workflow.state
        workflow.state = WorkflowState.CANCELED
        workflow.finished_at = self.now
        change = WorkflowStateChanged(
            workflow_id=workflow.id,
            workflow=workflow.name,
            prev=previous,
            next=WorkflowState.CANCELED,
            created_at=workflow.created_at,
            migrated=workflow.id == self.state.id and self.state.migrated_to is not None,
        )
        self.changes.append(change)
        if self.audit is not None:
            self.audit.workflow_moved(change)

    def task(self, where: tuple[WorkflowRecord, str, TaskRecord]) -> None:
        """A started task is canceled, an enabled one disabled; its open children (work items
        or child workflows) are canceled under it."""
        workflow, name, task = where
        previous = task.state
        task.state = TaskState.CANCELED if previous == TaskState.STARTED else TaskState.DISABLED
        change = TaskStateChanged(
            workflow_id=workflow.id,
            task=name,
            generation=task.generation,
            prev=previous,
            next=task.state,
        )
        self.changes.append(change)
        if self.audit is not None:
            self.audit.task_moved(change)
        for child_id in task.children:
            item = self.state.work_items.get(child_id)
            if item is not None:
                self.framed(self.item, item)
            child = self.state.workflows.get(child_id)
            if child is not None:
                self.framed(self.workflow, child)

    def item(self, item: WorkItemRecord) -> None:
        if item.state not in _OPEN_ITEMS:
            return
        previous = item.state
        if previous == WorkItemState.STARTED:
            self.waits.append(item.id)
        item.state = WorkItemState.CANCELED
        item.finished_at = self.now
        owner = self.state.workflows.get(item.workflow_id)
        change = WorkItemStateChanged(
            workflow_id=item.workflow_id,
            task=item.task,
            work_item_id=item.id,
            prev=previous,
            next=WorkItemState.CANCELED,
            workflow=owner.name if owner is not None else "",
            kind=item.kind,
            started_at=item.started_at,
            began_at=item.began_at,
            migrated=self.state.migrated_to is not None,
        )
        self.changes.append(change)
        if self.audit is not None:
            self.audit.item_moved(change, 0)

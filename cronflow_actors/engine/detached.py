"""Detached actions: the record of what became of each one.

A detached action's work item completes as soon as it starts, so the flow moves on at once; its
handler runs later in an ``ActionActor`` (a ``HandlerActor``, see ``engine.handlers``), which
reports ``ActionFinished`` to the instance's ``WorkflowActor``. What the handler did is recorded
here, in the instance state (``InstanceState.action_records``), one ``ActionRecord`` per action:
``dispatched`` when the start is durable, then ``completed`` or ``failed`` (with the error) when
the handler reports, and ``dispatched`` again, counted as a redispatch, when a restart finds it
still out. An action's outcome never changes the run's course: nothing here touches the
workflow, its tasks or items.

Each move is an ``ActionStateChanged`` in the transaction's changes, for the runtime's observers
(metrics), with the labels and times they need.
"""

from __future__ import annotations

from cronflow_actors.engine.states import ActionState, check_move
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.engine import (
    ActionFinished,
    ActionRecord,
    ActionStateChanged,
    PendingAction,
    WorkflowRecord,
    WorkItemRecord,
)

__all__ = ["NOT_REDISPATCHED", "dispatch", "finish", "redispatch"]

NOT_REDISPATCHED = "not dispatched again after a restart (durable=False)"
"""The error of a ``durable=False`` action that a restart found still out."""


def dispatch(
    tx: Transaction, workflow: WorkflowRecord, item: WorkItemRecord, durable: bool
) -> None:
    """``item`` (a detached action's work item) has started: record the action as dispatched
    and hand it to an ``ActionActor`` once the transaction is durable."""
    tx.state.actions[item.id] = PendingAction(
        work_item_id=item.id, workflow_id=workflow.id, task=item.task, durable=durable
    )
    record = ActionRecord(
        work_item_id=item.id, workflow_id=workflow.id, task=item.task, dispatched_at=tx.now
    )
    tx.state.action_records[item.id] = record
    tx.dispatch_action(item.id)
    _changed(tx, record, None)


def finish(tx: Transaction, report: ActionFinished) -> bool:
    """Record what an action's handler reported; False (and nothing changes) for a report of an
    action that is no longer out, or of an earlier dispatch of it."""
    pending = tx.state.actions.get(report.work_item_id)
    record = tx.state.action_records.get(report.work_item_id)
    if pending is None:
        return False
    if record is None:  # dispatched by a version that kept no records
        record = _record_of(tx, pending)
    if report.attempt and report.attempt != record.attempts:
        return False
    del tx.state.actions[report.work_item_id]
    target = ActionState.COMPLETED if report.ok else ActionState.FAILED
    previous = _move(record, target)
    # a success keeps the error an on_error answered (its fallback gave the action its end)
    record.error = report.error if report.ok else (report.error or "failed")
    record.error_type = report.error_type  # (a success's: the class its on_error answered)
    record.started_at = report.started_at
    record.finished_at = report.finished_at if report.finished_at is not None else tx.now
    record.tried = report.tried or record.attempts
    _changed(tx, record, previous)
    return True


def redispatch(tx: Transaction) -> list[str]:
    """A restart found these actions still out: each durable one is recorded as dispatched
    again (and handed to a new ``ActionActor`` once durable), each ``durable=False`` one as
    failed. Returns the ids of the ones dispatched again."""
    again = []
    for pending in list(tx.state.actions.values()):
        record = tx.state.action_records.get(pending.work_item_id) or _record_of(tx, pending)
        previous = _move(record, ActionState.DISPATCHED if pending.durable else ActionState.FAILED)
        if pending.durable:
            record.attempts += 1
            record.redispatches += 1
            record.dispatched_at = tx.now
            record.started_at = record.finished_at = None
            tx.dispatch_action(pending.work_item_id)
            again.append(pending.work_item_id)
        else:
            del tx.state.actions[pending.work_item_id]
            record.error = NOT_REDISPATCHED
            record.finished_at = None
        _changed(tx, record, previous)
    return again


def _record_of(tx: Transaction, pending: PendingAction) -> ActionRecord:
    record = ActionRecord(
        work_item_id=pending.work_item_id, workflow_id=pending.workflow_id, task=pending.task
    )
    tx.state.action_records[pending.work_item_id] = record
    return record


def _move(record: ActionRecord, target: ActionState) -> ActionState:
    check_move("action", record.work_item_id, record.status, target)
    previous, record.status = record.status, target
    return previous


def _changed(tx: Transaction, record: ActionRecord, previous: ActionState | None) -> None:
    tx.changes.append(
        ActionStateChanged(
            workflow_id=record.workflow_id,
            task=record.task,
            work_item_id=record.work_item_id,
            prev=previous,
            next=record.status,
            workflow=tx.workflow(record.workflow_id).name,
            attempt=record.attempts,
            redispatched=previous == record.status == ActionState.DISPATCHED,
            started_at=record.started_at,
            finished_at=record.finished_at,
        )
    )

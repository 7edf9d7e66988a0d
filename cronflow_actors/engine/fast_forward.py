"""Fast-forward mode: the enable path of the tasks of an instance a migration started (spec
section 9). The task element's other half: ``engine/tasks.py`` hands an enabled task here when
its instance carries a ``MigrationRecord``.

Every time such a task is enabled (for the life of the instance), its migrator, if it has one,
is called with a task activity's ``ctx`` (it may initialize children and register jobs) plus
``ctx.migrating_from`` and ``ctx.execution_mode == "fast_forward"``, and answers:

- ``fast_forward``: the task starts (taking its input tokens, so deferred choices resolve as
  they did) and completes at once, silently: no activity, no child, no policy; its output is the
  one the old instance recorded for it (the workflow at the same path, the same one among its
  siblings), and its router, cancellation region and tokens run as usual. A migrator that
  initialized children and answers ``fast_forward`` is refused (``MigrationError``);
- ``continue``: the children it initialized are the task's, and the task's ``on_enabled`` runs
  (a task without one gets no default child then); with no children, the normal enable path.

A task without a migrator takes the normal path, unless it is a task of a flow's run whose
recorded output the migration carried over (``MigrationRecord.fast_forward`` for a root task,
``MigrationRecord.children`` for a child workflow's, the child matched by its path, its place
and its payload): it is then fast-forwarded with that output, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from cronflow_actors.calls import call_user
from cronflow_actors.engine.states import TaskState, WorkflowState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.engine.withdrawal import disable_losers
from cronflow_actors.messages.elements import EnsureWorkflowStarted
from cronflow_actors.messages.engine import (
    InstanceState,
    TaskRecord,
    TaskStateChanged,
    WorkflowRecord,
    WorkItemRecord,
)
from cronflow_actors.messages.migrations import CarriedChild, MigrationSource, same_item
from cronflow_actors.net.marking import start_counts
from cronflow_actors.net.migration import MigrationMode, refused
from cronflow_actors.net.spec import NetSpec, TaskSpec, is_caught, item_kind

__all__ = ["FastForwardTask", "correspondent", "on_enable", "place_of"]

_MISSING: Any = object()
_ACTIVE = frozenset({TaskState.ENABLED, TaskState.STARTED})


class FastForwardTask(Protocol):
    """What this module uses of the task element (``engine.tasks.Task``)."""

    tx: Transaction
    workflow: WorkflowRecord
    name: str
    spec: NetSpec
    definition: TaskSpec
    record: TaskRecord

    def _move(self, target: TaskState) -> TaskStateChanged: ...
    async def _complete(self, *, silent: bool = False) -> None: ...
    async def _create_children(self, pending: list[tuple[str, str | None, Any]]) -> None: ...
    async def _activity(self, activity: str) -> None: ...
    def _check_can_add(self, what: str) -> None: ...


def correspondent(tx: Transaction, workflow: WorkflowRecord) -> MigrationSource | None:
    """The old instance's workflow that ``workflow`` stands for: the one at the same path, the
    same one (in creation order) among those at that path."""
    migration = tx.state.migration
    if migration is None:
        return None
    same = [w.id for w in tx.state.workflows.values() if w.path == workflow.path]
    old = [s for s in migration.source if s.path == workflow.path]
    index = same.index(workflow.id)
    return old[index] if index < len(old) else None


def take_key(state: InstanceState, workflow: WorkflowRecord, item: WorkItemRecord) -> str:
    """The idempotency key the work item ``item`` keeps from the run a resume goes on from (the
    one of its step and payload that began there and did not complete: what it may have done is
    known downstream by its key), at the root or in a child workflow; None: its own (its id).
    Taken once: the chunks of a ``batch`` after the one that failed, the iterations of a
    ``while_`` (one payload for all), took the failed one's key too (chaos h27 F1: two units of
    work under one key). "": none, its own. A run resumed before this stored a root step's key
    in ``MigrationRecord.keys`` as well: taken from one, it goes from both (the reviewer's h27
    H2: two items took the one key in turn)."""
    migration = state.migration
    if migration is None:
        return ""
    carried = _carried_entry(state, workflow)
    keys = carried.keys if carried is not None else []
    for n, (task, payload, key) in enumerate(keys):
        if task == item.task and same_item(payload, item.payload):
            del keys[n]
            if migration.keys.get(task) == key:
                del migration.keys[task]
            return key
    key = migration.keys.pop(item.task, "") if item.workflow_id == state.id else ""
    if key:  # (a run resumed before keys by item)
        keys[:] = [k for k in keys if k[2] != key]
    return key


def _carried_entry(state: InstanceState, workflow: WorkflowRecord) -> CarriedChild | None:
    """What the run gone on from carried for ``workflow``: the root's entry (its path, no place:
    whatever a resume's payload holds), or a child's (``carried_child``)."""
    migration = state.migration
    if migration is None or not migration.children:
        return None
    if workflow.parent_id is None:
        roots = (c for c in migration.children if not c.place and c.path == workflow.path)
        return next(roots, None)
    return carried_child(state, workflow)


def recorded_item(
    tx: Transaction, workflow: WorkflowRecord, item: WorkItemRecord
) -> tuple[bool, Any]:
    """Whether the run gone on from completed a work item of ``item``'s step with its payload,
    in a step it did not complete (a ``parallel``'s function, a ``for_each``'s item, a
    ``batch``'s chunk), and that item's output: used once (conform h26 H3: a migration or a
    resume called the done half of a group again, under new idempotency keys). The trace says
    so (a ``WorkItem.carried`` span: its completion is no call, conform h27 L1). Otherwise, at
    its first start, the item takes the key it keeps (``take_key``; an item an older version
    started, at its first start here)."""
    state = tx.state
    carried = _carried_entry(state, workflow)
    items = carried.items if carried is not None else []
    for n, (task, payload, output) in enumerate(items):
        if task == item.task and same_item(payload, item.payload):
            del items[n]
            item.carried = True
            if tx.audit is not None and state.migration is not None:
                tx.audit.carried(item, state.migration.from_instance)
            return True, output
    if item.kept_key is None:  # its first start here: it takes the key it keeps, if any
        item.kept_key = take_key(state, workflow, item)
    return False, None


def carried_child(state: InstanceState, workflow: WorkflowRecord) -> CarriedChild | None:
    """What the run gone on from carried for the child ``workflow``: its child at the same path
    and place, if it was started with the same payload (a ``for_each`` whose items came out
    otherwise this time takes none of the old items' outputs)."""
    migration = state.migration
    if migration is None or not migration.children:
        return None
    place = place_of(state.workflows, workflow)
    for child in migration.children:
        if child.path == workflow.path and child.place == place:
            return child if child.payload == workflow.payload else None
    return None


def place_of(workflows: Mapping[str, WorkflowRecord], workflow: WorkflowRecord) -> tuple[int, ...]:
    """Where ``workflow`` stands in its run: its place (in creation order) among the children
    its parent's task made, after its parent's own place, up to the root: an item's subflow is
    that item's, however many other items' subflows were made or not (a place among all the
    run's workflows at its path matched one item's subflow to another's)."""
    place: list[int] = []
    while workflow.parent_id is not None:
        parent, task = workflow.parent_id, workflow.parent_task
        siblings = [
            w.id for w in workflows.values() if w.parent_id == parent and w.parent_task == task
        ]
        place.append(siblings.index(workflow.id))
        workflow = workflows[parent]
    return tuple(reversed(place))


async def on_enable(task: FastForwardTask) -> bool:
    """The enabled ``task`` of a migrated instance: True when its migrator (or a recorded
    output of a flow's step) took care of it, False for the normal enable path."""
    tx, workflow, name = task.tx, task.workflow, task.name
    migration = tx.state.migration
    assert migration is not None  # only a migrated instance comes here
    spec = tx.migration
    if spec is None and migration.registered:
        raise refused(
            f"instance {tx.state.id!r}",
            f"its migration of {migration.workflow!r} {migration.from_version!r} -> "
            f"{migration.to_version!r} is not registered in this runtime",
            "register it (runtime.register(migration)) so the instance can go on",
        )
    migrator = spec.migrator(workflow.name, name) if spec is not None else None
    if migrator is None:
        if workflow.parent_id is None:
            carried, marked = migration.fast_forward, migration.caught
        else:
            child = carried_child(tx.state, workflow)
            carried = child.outputs if child is not None else {}
            marked = child.caught if child is not None else []
        if name in carried:
            await _complete_silently(task, carried.pop(name), marked)
            return True
        return False
    pending: list[tuple[str, str | None, Any]] = []
    ctx = tx.task_context(workflow, name, "migrator", pending, None, task._check_can_add, True)
    ctx.execution_mode = "fast_forward"  # (a later call's other activities see "normal")
    answer = await call_user(migrator, ctx)
    try:
        mode = MigrationMode(answer)
    except ValueError:
        raise refused(
            f"the migrator of task {workflow.name}/{name}",
            f"it returned {answer!r}",
            "a task migrator returns 'fast_forward' or 'continue' (net.MigrationMode)",
        ) from None
    if mode is MigrationMode.FAST_FORWARD:
        if pending:
            raise refused(
                f"the migrator of task {workflow.name}/{name}",
                "it initialized children and answered 'fast_forward'",
                "a fast-forwarded task has no children: answer 'continue' to keep them",
            )
        source = correspondent(tx, workflow)
        output = source.outputs.get(name, _MISSING) if source is not None else _MISSING
        await _complete_silently(task, output, source.caught if source is not None else [])
        return True
    if not pending:
        return False
    await task._create_children(pending)
    if "on_enabled" in task.definition.activities and task.record.state in _ACTIVE:
        await task._activity("on_enabled")
    return True


async def _complete_silently(task: FastForwardTask, output: Any, marked: list[str] | None) -> None:
    """``enabled`` -> ``started`` -> ``completed`` at once: the input tokens are taken (the
    competitors of a deferred choice lose), no activity runs, ``output`` (if any) is recorded
    as the task's, and the completion produces tokens as usual. ``marked``: the tasks whose
    output was a caught failure where it was recorded (None: recorded before those were kept,
    told by the output's shape)."""
    tx, workflow, name = task.tx, task.workflow, task.name
    if workflow.state == WorkflowState.INITIALIZED:
        await tx.send(EnsureWorkflowStarted(workflow_id=workflow.id, silent=True))
    task._move(TaskState.STARTED)
    counts, emptied = start_counts(task.spec, name, workflow.marking)
    tx.mark(workflow, counts, task.definition.inputs)
    await disable_losers(tx, workflow, task.spec, name, emptied)
    if output is not _MISSING:
        failed = task.definition.catch and is_caught(name, output, marked)
        workflow.set_output(name, output, caught=failed)
        work, reduced = task.definition.work_item, task.definition.reduce is not None
        # (a composite task's: a subflow, a flow per item; it read "not started", conform h33 F2)
        task.record.carried_kind = item_kind(work) if work is not None else "subflow"
        migration = tx.state.migration
        if tx.audit is not None and migration is not None:
            tx.audit.carried_task(workflow.id, name, migration.from_instance)
        if migration is not None and workflow.parent_id is None and name in migration.answered:
            task.record.carried_error = migration.answered.pop(name)  # (as it was shown)
            task.record.carried_error_type = migration.answered_types.pop(name, "")
        # (a construct's failure record, carried for its fallback, is no output: its fallback
        # reads the step before's, as in the run it came from: the verifier's h29 V1); a
        # group's output is its reduce's, which set last where it was recorded (conform h32
        # F1: a carried parallel left last as it was, the next step reading None)
        if (work is None or work.sets_last or reduced) and not failed:
            workflow.last = output
    await task._complete(silent=True)

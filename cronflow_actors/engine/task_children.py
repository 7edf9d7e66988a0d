"""A task's new children: the work items (a task) or child workflows (a composite task) an
activity, a migrator or the task's own default asked for, each created through its initialize
action (spec section 5.3), then their auto-triggers drained in the order they were asked for.
The task element's part that only sends messages: ``engine/tasks.py`` calls it; and what a
composite task does as it hears of a child workflow's change.

Several child workflows made at once: one that ends as it is made (a migration fast-forwards
its steps) has the task's policy asked once all are made; asked at once, the policy saw one
child of several and could end the task before the others were made (``create_held``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from cronflow_actors.engine.context import Transition
from cronflow_actors.engine.states import FINAL_STATES, WorkflowState, count_move
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.elements import CreateWorkItem, InitializeWorkflow, RunTrigger
from cronflow_actors.messages.engine import TaskRecord, WorkflowRecord, WorkflowStateChanged
from cronflow_actors.net.spec import TaskKind, TaskSpec

__all__ = ["CompositeTask", "Pending", "child_changed", "create_children", "create_held"]

_TASK: Final = TaskKind.TASK  # an enum member's read goes through EnumType.__getattr__

Pending = tuple[str, str | None, Any]
"""A child an activity asked for: its id, its name (a composite task's child), its payload."""


async def create_children(  # noqa: PLR0917 - the task's parts, passed as they are
    tx: Transaction,
    workflow: WorkflowRecord,
    name: str,
    kind: TaskKind,
    pending: list[Pending],
    last: bool,
    check_can_add: Callable[[str], None],
) -> None:
    """Initialize the children of task ``name`` (of ``kind``, in ``workflow``) in ``pending``,
    then drain their auto-triggers in order. ``last``: the task does nothing after (a single new
    work item runs its auto-start inside its creation); ``check_can_add``: refuses a child
    workflow when the task may not add one."""
    if not pending:
        return
    queue: list[RunTrigger] = []
    for ident, child_name, payload in pending:
        # Internal calls: each child is created through its initialize action (spec 5.3).
        if kind is _TASK:
            # one child runs its auto-start inside its creation: then nothing follows
            send = tx.send_last if last and len(pending) == 1 else tx.send
            trigger = await send(
                CreateWorkItem(
                    workflow_id=workflow.id,
                    task=name,
                    work_item_id=ident,
                    payload=payload,
                    # with other new children, its auto-start waits for them
                    defer_trigger=len(pending) > 1,
                )
            )
            if trigger is not None:
                verb, argument = trigger
                queue.append(RunTrigger(work_item_id=ident, verb=verb, payload=argument))
        else:
            check_can_add("initialize a child workflow")
            await tx.send(
                InitializeWorkflow(
                    workflow_id=ident,
                    payload=payload,
                    parent_id=workflow.id,
                    parent_task=name,
                    child=child_name,
                )
            )
    for trigger_message in queue:
        await tx.send(trigger_message)


class CompositeTask(Protocol):
    """What this module uses of the task element (``engine.tasks.Task``)."""

    tx: Transaction
    workflow: WorkflowRecord
    name: str
    record: TaskRecord
    definition: TaskSpec
    _held: list[WorkflowStateChanged] | None

    def _started_in(self, generation: int) -> bool: ...
    def _check_can_add(self, what: str) -> None: ...
    async def _activity(self, activity: str, *, changed: WorkflowStateChanged) -> None: ...
    async def _decide(self, transition: Transition) -> str: ...
    async def _carry_out(
        self, decision: str, error: str, *, cause: str | None = None, error_type: str | None = None
    ) -> None: ...


async def create_held(
    task: CompositeTask, kind: TaskKind, pending: list[Pending], last: bool
) -> None:
    """``create_children`` for ``task``; several child workflows: the policy asked about those
    that end as they are made once all are made."""
    tx, workflow, name, check = task.tx, task.workflow, task.name, task._check_can_add
    if kind is _TASK or len(pending) < 2:
        await create_children(tx, workflow, name, kind, pending, last, check)
        return
    held: list[WorkflowStateChanged] = []
    task._held = held
    try:
        await create_children(tx, workflow, name, kind, pending, last, check)
    finally:
        task._held = None
    for message in held:
        await _decided(task, message)


async def child_changed(task: CompositeTask, message: WorkflowStateChanged) -> None:
    """A child workflow of the composite ``task`` changed (``on_workflow_state_changed``):
    its stats, its output once completed, the activity, then the policy for an end that is not
    a teardown."""
    tx, workflow, record, name = task.tx, task.workflow, task.record, task.name
    child = tx.state.workflows[message.workflow_id]
    if child.parent_generation == record.generation:
        count_move(record.stats, message.prev, message.next)
    if message.prev is None:
        record.children.append(message.workflow_id)
        return
    if message.next == WorkflowState.COMPLETED and task.definition.reduce is None:
        # (with a reduce, the task's output is its children's reduced as it completes: each
        # child's own was its workflow's last meanwhile, the fallback of a fan-out that failed
        # then reading a sibling's result as ctx.last: newcomer h29 F2)
        workflow.set_output(name, child.output)
        workflow.last = child.output
    await task._activity("on_workflow_state_changed", changed=message)
    if message.next not in FINAL_STATES:
        return
    tx.cancel_task_jobs(workflow.id, name)
    if not message.call_policy:
        return
    if task._held is not None:  # a sibling is still to be made: asked once all are
        task._held.append(message)
        return
    await _decided(task, message)


async def _decided(task: CompositeTask, message: WorkflowStateChanged) -> None:
    """The policy asked about a child workflow's end, while the task is started in its
    generation."""
    child = task.tx.state.workflows[message.workflow_id]
    if task._started_in(child.parent_generation):
        transition = Transition(
            prev_state=message.prev, next_state=message.next, child_id=message.workflow_id
        )
        decision = await task._decide(transition)
        failed = f"task {task.name!r}: child workflow {child.id!r}: {child.error or message.next}"
        await task._carry_out(
            decision, failed, cause=child.error_cause, error_type=child.error_type
        )

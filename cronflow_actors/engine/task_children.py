"""A task's new children: the work items (a task) or child workflows (a composite task) an
activity, a migrator or the task's own default asked for, each created through its initialize
action (spec section 5.3), then their auto-triggers drained in the order they were asked for.
The task element's part that only sends messages: ``engine/tasks.py`` calls it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.elements import CreateWorkItem, InitializeWorkflow, RunTrigger
from cronflow_actors.messages.engine import WorkflowRecord
from cronflow_actors.net.spec import TaskKind

__all__ = ["Pending", "create_children"]

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

"""A work item that does not exist yet: ``CreateWorkItem`` through the item's ``initialize``
action (spec section 5.3). An internal call of the default action has nothing to check; any
other passes the action's boundary (its payload's schema, and for an external call
authentication and its policy) before ``work_items.initialize`` makes the item."""

from __future__ import annotations

from typing import Any, Final

from cronflow_actors.engine.actions import Stage, pass_boundary, storable
from cronflow_actors.engine.context import WorkItemHandle, WorkItemInfo
from cronflow_actors.engine.owners import work_item_owner
from cronflow_actors.engine.states import TaskState, WorkItemState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.engine.work_items import Trigger, initialize
from cronflow_actors.errors import InvalidStateTransitionError, WorkItemLimitError
from cronflow_actors.messages.elements import CreateWorkItem
from cronflow_actors.messages.engine import WorkflowRecord
from cronflow_actors.net.spec import TaskKind, TaskSpec

__all__ = ["create"]

_TASK_ACTIVE = frozenset({TaskState.ENABLED, TaskState.STARTED})
_TASK: Final = TaskKind.TASK  # an enum member's read goes through EnumType.__getattr__


async def create(tx: Transaction, message: CreateWorkItem) -> Trigger | None:
    """A new work item of a task, through its ``initialize`` action: an internal call
    (``principal=None``: an activity's ``ctx.work_item.initialize``, a task's default item, a
    job) has its payload checked against the action's schema and its callback run, an external
    one also authentication and the policy. Then the item is initialized. Answers the
    auto-start it set when ``defer_trigger`` (else runs it, and answers None)."""
    workflow = tx.state.workflows[message.workflow_id]
    task, ident, payload = message.task, message.work_item_id, message.payload
    definition = tx.specs[workflow.path].tasks[task]
    state = workflow.tasks[task].state
    admitted = message.principal is not None and definition.kind is _TASK
    if admitted:  # who may not initialize hears so, not the task's state or bound (review h38 F3)
        await _through_boundary(tx, workflow, definition, message, "admit")
    if definition.kind is not _TASK or state not in _TASK_ACTIVE:
        raise InvalidStateTransitionError(
            "task",
            f"{workflow.name}/{task}",
            str(state) if definition.kind is TaskKind.TASK else f"a {definition.kind.value} task",
            "initialize a work item",
            ["enabled", "started"],
            only_while=True,
        )
    if message.principal is None and "initialize" not in definition.work_item.actions:
        # an internal call of the default action: nothing to check, nothing to call (and None,
        # a task's default item's payload, nothing to copy); the element's name is formatted
        # only for a payload to check (two reprs a step otherwise)
        stored = (
            None
            if payload is None
            else storable(payload, element=_element(definition, task), action="initialize")
        )
    else:
        if admitted:  # an outside caller's: bounded, once admitted (review h38 F4)
            most = definition.max_work_items
            if (has := len(workflow.tasks[task].children)) >= most:
                raise WorkItemLimitError(workflow.name, task, most, has=has)
        stage: Stage = "after" if admitted else "all"
        stored = await _through_boundary(tx, workflow, definition, message, stage)
    return await initialize(tx, workflow, task, stored, ident, defer=message.defer_trigger)


def _element(definition: TaskSpec, task: str) -> str:
    return f"work item {definition.work_item.name!r} of task {task!r}"


async def _through_boundary(
    tx: Transaction,
    workflow: WorkflowRecord,
    definition: TaskSpec,
    message: CreateWorkItem,
    stage: Stage,
) -> Any:
    """The payload of a call of the ``initialize`` action that is not the default's internal
    one, once through the action's boundary (its own function: ``create`` would otherwise make
    a cell per variable this context reads, on every call)."""
    task, ident, payload = message.task, message.work_item_id, message.payload
    name = definition.work_item.name

    def context() -> Any:
        upcoming = WorkItemInfo(
            id=ident,
            name=name,
            task=task,
            generation=workflow.tasks[task].generation,
            workflow_id=workflow.id,
            state=WorkItemState.INITIALIZED,
            payload=payload,
        )
        return tx.context(
            workflow,
            f"work item {name!r} initialize action",
            scheduler=tx.scheduler(work_item_owner(ident)),
            task=tx.task_info(workflow, task),
            work_item=WorkItemHandle(upcoming),
        )

    return await pass_boundary(
        actions=definition.work_item.actions,
        action="initialize",
        payload=payload,
        principal=message.principal,
        element=_element(definition, task),
        context=context,
        stage=stage,
    )

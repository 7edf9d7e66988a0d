"""A net instance's work list (``Runtime.open_work_items``, ``GET /workflows/{id}/work-items``):
the work items an outside caller may act on now, read from one durable state of the instance."""

from __future__ import annotations

import msgspec

from cronflow_actors.engine.context import WorkItemInfo
from cronflow_actors.engine.states import (
    VERB_TARGETS,
    WORK_ITEM_TRANSITIONS,
    TaskState,
    WorkItemState,
    WorkItemVerb,
    is_final,
)
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.engine import InstanceState
from cronflow_actors.messages.instance_state import WorkflowRecord
from cronflow_actors.net.spec import Descendants, NetSpec

__all__ = ["OpenWorkItem", "work_list"]


class OpenWorkItem(WorkItemInfo, frozen=True, kw_only=True):
    """A work item an outside caller may act on now, as ``open_work_items`` lists it."""

    net: str
    """The net of the workflow it belongs to (a composite task's child's, below the root)."""
    actions: list[str]
    """What an outside caller may do to it now: the actions declared for it (``net.action``)
    that its state allows (``start`` of an initialized item; ``complete``, ``fail`` or
    ``reset`` of a started one; ``cancel`` of either)."""


_OPEN_TASK = frozenset({TaskState.ENABLED, TaskState.STARTED})
_OPEN_ITEM = frozenset({WorkItemState.INITIALIZED, WorkItemState.STARTED})


def work_list(state: InstanceState, top: WorkflowRecord, root: NetSpec) -> list[OpenWorkItem]:
    """The open work items of ``top`` and of the child workflows below it in ``state`` (whose
    root runs ``root``) that declare an action their state allows: a workflow's own in its
    tasks' order, then its children's, breadth first."""
    specs = Descendants(root)
    found: list[OpenWorkItem] = []
    todo = [top]
    while todo:
        workflow = todo.pop(0)
        if is_final(workflow.state):
            continue
        spec = specs[workflow.path]
        for name, task in workflow.tasks.items():
            if task.state not in _OPEN_TASK:
                continue
            declared = spec.tasks[name].work_item
            for child in task.children:
                if child in state.workflows:
                    todo.append(state.workflows[child])
                item = state.work_items.get(child)
                if item is None or declared is None or item.state not in _OPEN_ITEM:
                    continue
                allowed = WORK_ITEM_TRANSITIONS[item.state]
                verbs = [
                    str(verb)
                    for verb in WorkItemVerb
                    if verb in declared.actions and VERB_TARGETS[verb] in allowed
                ]
                if verbs:
                    info = msgspec.structs.asdict(Transaction.work_item_info(item))
                    found.append(OpenWorkItem(**info, net=workflow.name, actions=verbs))
    return found

"""A work item action's boundary, as the item's actor passes a call through it: the context
the action's policy and callback see, and the stages of ``actions.pass_boundary``. An outside
caller is admitted (schema, authentication, policy) before the item's state is said, so one
who may not act is told so, and not how the item stands (review h38 F3); the callback and
the storing come after the state is checked."""

from __future__ import annotations

from typing import Any, Protocol

from cronflow_actors.engine.actions import Stage, pass_boundary
from cronflow_actors.engine.context import WorkItemHandle
from cronflow_actors.engine.owners import work_item_owner
from cronflow_actors.engine.states import WorkItemVerb
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import InstanceTooLargeError
from cronflow_actors.messages.engine import Principal, WorkflowRecord, WorkItemRecord
from cronflow_actors.net.spec import MAX_OUTSIDE_STATE

__all__ = ["check_outside_size", "through_boundary"]


class _Item(Protocol):
    """What of a ``work_items.WorkItem`` the boundary reads."""

    tx: Transaction
    record: WorkItemRecord
    workflow: WorkflowRecord
    definition: Any

    def _element(self) -> str: ...


async def through_boundary(
    item: _Item,
    verb: WorkItemVerb,
    payload: Any,
    principal: Principal | None,
    stage: Stage = "all",
) -> Any:
    """``payload`` through the boundary of ``item``'s action ``verb`` (its ``stage``); the
    policy and the callback see this call's caller."""
    tx, record, workflow, action = item.tx, item.record, item.workflow, str(verb)

    def context() -> Any:
        start = verb == WorkItemVerb.START
        return tx.item_context(
            workflow,
            record,
            f"{action} action",
            scheduler=tx.scheduler(work_item_owner(record.id)) if start else None,
            work_item=WorkItemHandle(tx.work_item_info(record), doing=verb),
            principal=principal,
            is_internal=principal is None,
        )

    return await pass_boundary(
        actions=item.definition.actions,
        action=action,
        payload=payload,
        principal=principal,
        element=item._element(),
        context=context,
        stage=stage,
    )


_SMALL = 64 * 1024
"""What an outside call may add to an instance already past ``MAX_OUTSIDE_STATE`` (its net's
own code took it there): a start, a complete with a small output, a cancel go through."""


def check_outside_size(tx: Transaction, body: bytes, before: bytes | None) -> bytes:
    """``body``, the instance's encoded state after ``tx``; ``InstanceTooLargeError`` if it is
    an outside caller's transaction (``tx.principal``) that leaves it past ``MAX_OUTSIDE_STATE``
    and grew it by more than 64 KiB (``before``: the state it grew from; the net's own code is
    not bounded): 150 work items of 900 KB made every change rewrite 135 MB (hostile h39 F4)."""
    size = len(body)
    past = size > MAX_OUTSIDE_STATE and size > len(before or b"") + _SMALL
    if past and tx.principal is not None:
        raise InstanceTooLargeError(tx.state.id, size, MAX_OUTSIDE_STATE)
    return body

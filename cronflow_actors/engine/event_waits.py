"""A work item that waits for an event (``net.WaitSpec(kind="event")``, a flow's
``wait_for_event``) hears a publish of it: its filter (``accept``) decides whether it takes it,
its ``check`` whether the payload does; both see who published it as ``ctx.principal`` (None:
the process's own publish), and the item's trace records it (a ``WorkItem.event`` span: the
event and its publisher), so a net's policy can be kept by an event too (hostile h31 M1: any
writing token's publish completed such an item, and nothing said who)."""

from __future__ import annotations

from typing import Any, Protocol

from cronflow_actors.calls import call_user
from cronflow_actors.engine.states import WorkItemState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.errors import refuse_call
from cronflow_actors.messages.instance_state import WorkflowRecord, WorkItemRecord
from cronflow_actors.messages.principal import Principal
from cronflow_actors.net.spec import WorkItemSpec

__all__ = ["deliver_event"]


class WaitingItem(Protocol):
    """What this module uses of the work item element (``engine.work_items.WorkItem``)."""

    tx: Transaction
    record: WorkItemRecord
    workflow: WorkflowRecord
    definition: WorkItemSpec

    async def _fail(self, payload: Any = None) -> None: ...
    async def _complete(self, output: Any = None) -> None: ...


async def deliver_event(
    element: WaitingItem, event: str, payload: Any, principal: Principal | None
) -> bool:
    """Complete the item if it still waits for ``event`` and its filter accepts (fail it if
    its check refuses the payload); whether it took the event."""
    tx, item, workflow = element.tx, element.record, element.workflow
    if item.state != WorkItemState.STARTED:
        return False
    wait = element.definition.wait
    if wait is None or not wait.hears(event):
        return False
    caller = {"principal": principal, "is_internal": principal is None}
    if wait.accept is not None:
        ctx = tx.item_context(workflow, item, "event filter", **caller)
        try:
            if not await call_user(wait.accept, ctx, payload):
                return False
        except Exception as error:  # the filter's, not the runtime's (review h43 F1)
            refuse_call(error, f"event filter of {item.task!r}")
            raise
    if tx.audit is not None:
        tx.audit.heard(item, event, principal)
    if wait.check is not None:
        ctx = tx.item_context(workflow, item, "event check", **caller)
        try:
            verdict = await call_user(wait.check, ctx, payload)
        except Exception as error:
            refuse_call(error, f"event check of {item.task!r}")
            raise
        if verdict is not True:
            await element._fail(f"event {event!r} refused: {verdict}")
            return True
    await element._complete(payload)
    return True

"""Events kept for an instance while it was held (a run blocked on a changed definition, or a
migration's carried-over events), delivered by its ``WorkflowActor`` once it runs: the first,
then the next, each in a transaction of its own, before anything else happens in the instance."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from cronflow_actors.errors import (
    LeaseError,
    MutationRejectedError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.messages.migrations import DeliverKept

if TYPE_CHECKING:
    from cronflow_actors.messages.instance_state import InstanceState
    from cronflow_actors.net.spec import WaitSpec

__all__ = ["carried_to", "deliver_kept"]

logger = logging.getLogger("cronflow_actors.engine.workflow_actor")

_REFUSED_COMMITS = (MutationRejectedError, StoreFailedError, StoreClosedError, LeaseError)
"""What the store raises when it does not take a commit (not what user code raised)."""


async def deliver_kept(actor: Any, message: DeliverKept) -> None:
    """The first event kept for ``actor``'s instance, then the next (each in a transaction of
    its own), until none is left. A commit the store refuses leaves them kept: the snapshot says
    the instance is runnable, so its next load carries on. An event whose delivery raised (its
    step's filter or check) is dropped, and logged."""
    kept = actor.state.kept
    if not kept:
        return
    try:
        await actor._transact(message, reported=True)  # a report (engine/workflow_actor.py)
    except _REFUSED_COMMITS as error:  # this copy stops, or the runtime does
        logger.warning("%s: its kept events stay kept for its next load: %s", actor, error)
        return
    except Exception as error:
        logger.warning(
            "%s: event %r kept for %s is dropped: delivering it raised %r; publish it "
            "again if the step should hear it",
            actor,
            kept[0].event,
            kept[0].work_item_id or "its steps waiting for it",
            error,
        )
        try:
            await actor._transact(DeliverKept(drop=True), reported=True)
        except _REFUSED_COMMITS:
            return  # still kept: its next load tries it again
    # the next one, before anything else: ``WorkflowActor._release`` asks for it


def carried_to(state: InstanceState, item_id: str, wait: WaitSpec) -> None:
    """Step ``item_id`` starts waiting (``wait``): every event a migration carried over that no
    step has taken, and that this step hears, is offered to it, in order, each delivered once
    this transaction is durable (``WorkflowActor._release``), as an event kept for a held run
    is. An event stays carried until a step takes it (``commands._deliver_kept``): one this step
    refuses (its filter), or that comes once it took another, is there for the next step that
    starts waiting for it; one another step took meanwhile is no longer offered."""
    workflow = state.work_items[item_id].workflow_id
    offered = [
        msgspec.structs.replace(event, work_item_id=item_id, carried=True)
        for event in state.carried or ()
        if wait.hears(event.event) and workflow not in event.heard_in
    ]
    if offered:
        state.kept = [*(state.kept or ()), *offered]

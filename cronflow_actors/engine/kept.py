"""Events kept for an instance while it was held (a run blocked on a changed definition, or a
migration's carried-over events), delivered by its ``WorkflowActor`` once it runs: the first,
then the next, each in a transaction of its own, before anything else happens in the instance."""

from __future__ import annotations

import logging
from typing import Any

from cronflow_actors.errors import (
    LeaseError,
    MutationRejectedError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.messages.migrations import DeliverKept

__all__ = ["deliver_kept"]

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
    if actor.state.kept and not actor._stale:
        actor.tell_self_first(DeliverKept())  # the next one, before anything else

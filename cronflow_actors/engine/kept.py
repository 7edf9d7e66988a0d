"""Events kept for an instance while it was held (a run blocked on a changed definition, or a
migration's carried-over events), delivered by its ``WorkflowActor`` once it runs: the first,
then the next, each in a transaction of its own, before anything else happens in the instance."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from cronflow_actors.engine import heard
from cronflow_actors.engine.fast_forward import place_of
from cronflow_actors.errors import (
    LeaseError,
    MutationRejectedError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.messages.migrations import DeliverKept, KeptEvent, KeptStep

if TYPE_CHECKING:
    from cronflow_actors.engine.transaction import Transaction
    from cronflow_actors.messages.instance_state import InstanceState
    from cronflow_actors.net.spec import WaitSpec

__all__ = [
    "arrived",
    "carried_to",
    "completed_with_kept",
    "deliver_kept",
    "offered",
    "settle",
    "step_of",
]

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


def completed_with_kept(actor: Any) -> None:
    """``actor``'s run completed: what is still kept or carried for it is dropped, logged if an
    event among them no step took (not a copy left for a step that never waited again)."""
    state = actor.state
    events = (*(state.kept or ()), *(state.carried or ()))
    unheard = sum(not (event.carried or event.taken) for event in events)
    if unheard:
        logger.warning("%s completed with %d kept events no step heard", actor, unheard)
    state.kept = state.carried = msgspec.UNSET


def step_of(state: InstanceState, item_id: str) -> KeptStep:
    """The step of work item ``item_id`` as every version of the run names it."""
    item = state.work_items[item_id]
    workflow = state.workflows[item.workflow_id]
    place = place_of(state.workflows, workflow)
    return KeptStep(path=workflow.path, place=place, task=item.task)


def arrived(tx: Transaction, event: KeptEvent) -> None:
    """``event``, carried from the run this one replaced, comes to this run's turn: it is carried
    (``InstanceState.carried``) for the steps it was kept for that this version has (a step the
    version lacks, or no step named: for any step that waits for it), and offered now to those
    of them already waiting; the others are offered it when they start waiting
    (``carried_to``)."""
    state = tx.state
    steps = tuple(step for step in event.steps if _waits(tx, step, event.event))
    if event.steps and not steps and event.taken:
        return  # one of its steps took it, the others are not in this version: no step hears
        # it (the reviewer's h28 M2: it went to any step, one that began waiting after it)
    if event.steps and not steps:
        logger.info(
            "instance %s: the steps event %r was kept for are not in version %r: it goes to "
            "the first step that waits for it",
            state.id,
            event.event,
            state.version,
        )
    entry = msgspec.structs.replace(event, steps=steps)
    state.carried = [*(state.carried or ()), entry]
    _offer(tx, entry, heard.waiting_for(tx, event.event))


def carried_to(tx: Transaction, item_id: str, wait: WaitSpec) -> None:
    """Step ``item_id`` starts waiting (``wait``): every carried event it is for (kept for its
    step, or for any step) that it hears is offered to it, in order, each delivered once this
    transaction is durable (``WorkflowActor._release``), as an event kept for a held run is."""
    state = tx.state
    step = step_of(state, item_id)
    for event in state.carried or ():
        if wait.hears(event.event) and _for(event, step):
            _offer(tx, event, [item_id])


def offered(state: InstanceState, offer: KeptEvent) -> int | None:
    """The place in ``InstanceState.carried`` of the event ``offer`` offers its step, if that
    step is still one the event is for: not once another step took it (an event for any step),
    nor once the step has had it (a step is offered an event once)."""
    if offer.work_item_id not in state.work_items:
        return None
    return _place(state, offer, step_of(state, offer.work_item_id))


def _place(state: InstanceState, offer: KeptEvent, step: KeptStep) -> int | None:
    """``offered``, the offer's ``step`` already named."""
    for n, event in enumerate(state.carried or ()):
        if (event.event, event.publish, event.payload) == (
            offer.event,
            offer.publish,
            offer.payload,
        ):
            return n if _for(event, step) else None
    return None


def settle(tx: Transaction, offer: KeptEvent, *, taken: bool) -> None:
    """The step ``offer`` was for has had its carried event: it took it (``taken``), or not (its
    filter refused it, it waited no more). One for any step goes once one takes it. One kept for
    steps goes on to the others; when each has had it and none took it, it is for any step that
    waits for it, those waiting now offered it: an event a held run's step refused may be the
    one its next step waits for (chaos h26 F1), but once one of its steps took it, no step
    that waited since hears it (the second verifier's h27 V2)."""
    state = tx.state
    if offer.work_item_id not in state.work_items:
        return
    step = step_of(state, offer.work_item_id)  # (once: it walks the run's workflows)
    at = _place(state, offer, step)
    if at is None:
        return
    left = list(state.carried or ())
    event = left[at]
    steps = tuple(s for s in event.steps if s != step)
    if not event.steps:
        if taken:
            del left[at]
    elif steps:
        left[at] = msgspec.structs.replace(event, steps=steps, taken=taken or event.taken)
    elif taken or event.taken:
        del left[at]
    else:  # none of its steps took it
        left[at] = msgspec.structs.replace(event, steps=())
        others = [i for i in heard.waiting_for(tx, event.event) if i != offer.work_item_id]
        _offer(tx, left[at], others)
    state.carried = left or msgspec.UNSET


def _for(event: KeptEvent, step: KeptStep) -> bool:
    return not event.steps or step in event.steps


def _waits(tx: Transaction, step: KeptStep, name: str) -> bool:
    """Whether ``step`` is a step of this version that waits for event ``name``."""
    try:  # (a subscript: it finds a child workflow's definition the turn has not met yet, where
        spec = tx.specs[step.path]  # .get found none: chaos h29 H1, the event for any step)
    except KeyError:
        return False  # no such child workflow in this version
    task = spec.tasks.get(step.task)
    work = task.work_item if task is not None else None
    return work is not None and work.wait is not None and work.wait.hears(name)


def _offer(tx: Transaction, event: KeptEvent, items: list[str]) -> None:
    """``event`` offered to each of the waiting steps ``items`` it is for, after those kept."""
    state = tx.state
    offers = [
        msgspec.structs.replace(event, work_item_id=item_id, carried=True)
        for item_id in items
        if _for(event, step_of(state, item_id))
    ]
    if offers:
        state.kept = [*(state.kept or ()), *offers]

"""Keyed publishes a run has heard. A publish sent again with its idempotency key (its answer
was lost, or a 503 cut it) must not move a run on twice: it reaches the steps that waited for
its event when the run first heard it and have not taken it yet (a publish cut part-way), never
a step that began waiting since (the step after the one that heard it, the next turn of a loop
that waits for the same event). The instance keeps, for each keyed publish one of its steps
took, the other steps waiting for that event at that moment; the last ``LIMIT`` publishes."""

from __future__ import annotations

from cronflow_actors.engine.states import WorkItemState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.engine import DeliverEvent

__all__ = ["LIMIT", "admits", "record", "waiting", "waiting_for"]

LIMIT = 64
"""How many keyed publishes an instance remembers (the oldest is forgotten first)."""


def admits(tx: Transaction, message: DeliverEvent) -> bool:
    """Whether ``message``, part of a keyed publish, may reach its step: yes the first time the
    run hears that publish; after that only if its step waited for the event then."""
    others = tx.state.heard.get(message.publish or "")
    return others is None or message.work_item_id in others


def waiting(tx: Transaction, message: DeliverEvent) -> list[str]:
    """The other steps waiting for ``message``'s event now, before it is delivered."""
    return [i for i in waiting_for(tx, message.event) if i != message.work_item_id]


def waiting_for(tx: Transaction, event: str) -> list[str]:
    """The started work items of the instance that wait for ``event``."""
    found = []
    for item in tx.state.work_items.values():
        if item.state != WorkItemState.STARTED:
            continue
        work = tx.specs[tx.state.workflows[item.workflow_id].path].tasks[item.task].work_item
        wait = work.wait if work is not None else None
        if wait is not None and wait.hears(event):
            found.append(item.id)
    return found


def record(tx: Transaction, message: DeliverEvent, others: list[str]) -> None:
    """``message``'s step took it: the run has heard its publish (``others``: the steps that
    waited for it as well, from ``waiting``, when this is the first of them)."""
    heard, publish = tx.state.heard, message.publish or ""
    reached = heard.get(publish)
    if reached is None:
        heard[publish] = others
        while len(heard) > LIMIT:
            del heard[next(iter(heard))]
    elif message.work_item_id in reached:
        reached.remove(message.work_item_id)
    tx.rewritten = True

"""Notices owed: a wait's ``notify(ctx)`` (``WaitSpec.notify``: a pause's ``on_pause``, which
tells a person there is something to approve), called at least once.

The commit that opens the wait records the notice owed in the instance state
(``InstanceState.notices``: work item id -> the wait's token), and an instance that owes one is
runnable. Once that commit is durable the ``WorkflowActor`` calls ``notify`` off its turn (a plain
function on the blocking pool, in order with the run's other callbacks), and when the call ends,
whatever it did, tells itself ``NoticeDone``, whose transaction drops the entry. A crash between
the two leaves the entry: the restart loads the instance (it is runnable) and calls ``notify``
again if the same wait is still open, or drops the entry if the wait has ended meanwhile. The
wait's end drops an entry too (``Transaction.end_wait``): a pause resumed before its notice
ended is not notified again. So a notice may be called twice (a crash after it did its work and
before its end was recorded), never lost while its wait is open.
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from cronflow_actors.engine.states import WorkItemState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.engine import NoticeDone

__all__ = ["call", "done", "recover"]

logger = logging.getLogger(__name__)


def call(actor: Any, tx: Transaction, item_id: str) -> None:
    """Call the notice of work item ``item_id`` (owed since ``tx``, which is durable) in a task
    of the system; ``NoticeDone`` follows it. Nothing if its wait ended in ``tx`` too."""
    token = actor.state.notices.get(item_id)
    if token is None:
        return
    item = actor.state.work_items[item_id]
    workflow = actor.state.workflows[item.workflow_id]
    wait = tx.spec(workflow).tasks[item.task].work_item.wait
    ctx = tx.item_context(workflow, item, "notice")
    actor.system.create_task(_notify(actor, wait.notify, ctx, item_id, token), name="notice")


async def _notify(actor: Any, notify: Any, ctx: Any, item_id: str, token: str) -> None:
    await actor.services.callbacks.call(
        actor.instance_id,
        notify,
        ctx,
        what=f"the notice of work item {item_id}",
        run_blocking=actor.system.run_blocking,
    )
    try:
        actor.actor_ref.tell(NoticeDone(work_item_id=item_id, token=token))
    except pykka.ActorDeadError:  # (stale, or stopping): still owed; its next load calls again
        logger.info("%s: the end of the notice of %s is not recorded", actor, item_id)


def recover(actor: Any, tx: Transaction) -> None:
    """The instance was loaded owing notices (a crash, or a stop, before they ended): each one
    whose wait is still open is called again; the others are dropped."""
    for item_id, token in list(actor.state.notices.items()):
        item = actor.state.work_items.get(item_id)
        if item is not None and item.state == WorkItemState.STARTED and (item.token or "") == token:
            call(actor, tx, item_id)
        else:
            actor.tell_self_first(NoticeDone(work_item_id=item_id, token=token))


def done(tx: Transaction, message: NoticeDone) -> None:
    """The notice has ended: no longer owed (nothing changes if its wait ended meanwhile, or
    drew a new token since)."""
    notices = tx.state.notices
    if notices.get(message.work_item_id) == message.token:
        del notices[message.work_item_id]
        tx.rewritten = True

"""Notices owed: a wait's ``notify(ctx)`` (``WaitSpec.notify``: a pause's ``on_pause``, which
tells a person there is something to approve), called at least once.

The commit that opens the wait records the notice owed in the instance state
(``InstanceState.notices``: work item id -> the wait's token), and an instance that owes one is
runnable (loaded at start), though its status stays ``waiting`` and it leaves memory as any
waiting instance does. Once that commit is durable the ``WorkflowActor`` calls ``notify`` off
its turn (a plain function on the blocking pool, in order with the run's other callbacks), and
when the call ends, whatever it did (one that raises is logged, not called again), the runtime
hands the instance ``NoticeDone``, whose transaction drops the entry. A crash between
the two leaves the entry: the restart loads the instance (it is runnable) and calls ``notify``
again if the same wait is still open, or drops the entry if the wait has ended meanwhile. The
wait's end drops an entry too (``Transaction.end_wait``): a pause resumed before its notice
ended is not notified again. So a notice may be called twice (a crash after it did its work and
before its end was recorded), never lost while its wait is open.
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.engine.states import WorkItemState
from cronflow_actors.engine.transaction import Transaction
from cronflow_actors.messages.engine import NoticeDone

__all__ = ["call", "done", "ended", "recover"]


def call(actor: Any, tx: Transaction, item_id: str) -> None:
    """Call the notice of work item ``item_id`` (owed since ``tx``, which is durable) in a task
    of the system; ``NoticeDone`` follows it, through the instance directory (the instance may
    have left memory meanwhile: a pause only waits). Nothing if its wait ended in ``tx`` too,
    or if the call is in flight in this process already (a load of an instance that left
    memory while its notice ran)."""
    token = actor.state.notices.get(item_id)
    services = actor.services
    if token is None or (actor.instance_id, item_id, token) in services.notifying:
        return
    services.notifying[actor.instance_id, item_id, token] = False
    item = actor.state.work_items[item_id]
    workflow = actor.state.workflows[item.workflow_id]
    wait = tx.specs[workflow.path].tasks[item.task].work_item.wait
    ctx = tx.item_context(workflow, item, "notice")
    end = NoticeDone(work_item_id=item_id, token=token)
    notice = _notify(
        services,
        actor.instance_id,
        wait.notify,
        ctx,
        done=end,
        run_blocking=actor.system.run_blocking,
    )
    actor.system.create_task(notice, name="notice")


async def _notify(
    services: Any, instance_id: str, notify: Any, ctx: Any, *, done: NoticeDone, run_blocking: Any
) -> None:
    what = f"the notice of work item {done.work_item_id}"
    await services.callbacks.call(instance_id, notify, ctx, what=what, run_blocking=run_blocking)
    key = (instance_id, done.work_item_id, done.token)
    if key in services.notifying:
        services.notifying[key] = True  # ended: a load before its end is recorded records it
    services.deliver(instance_id, done)


def ended(actor: Any, message: NoticeDone) -> None:
    """``message`` was applied (or could not be: then the notice stays owed, and the next load
    of the instance calls it again): it is no longer in flight here."""
    actor.services.notifying.pop((actor.instance_id, message.work_item_id, message.token), None)


def recover(actor: Any, tx: Transaction) -> None:
    """The instance was loaded owing notices (a crash, or a stop, before they ended; or it left
    memory while one ran here): each one whose wait is still open is called again, unless it is
    in flight in this process; one that ended here (its end not recorded: the instance could not
    be reached then) and one whose wait is over are recorded as ended."""
    for item_id, token in list(actor.state.notices.items()):
        item = actor.state.work_items.get(item_id)
        here = actor.services.notifying.get((actor.instance_id, item_id, token))
        is_open = item is not None and item.state == WorkItemState.STARTED
        if here is None and is_open and (item.token or "") == token:
            call(actor, tx, item_id)
        elif here is not False:  # (False: in flight here; its end is on its way)
            actor.tell_self_first(NoticeDone(work_item_id=item_id, token=token))


def done(tx: Transaction, message: NoticeDone) -> None:
    """The notice has ended: no longer owed (nothing changes if its wait ended meanwhile, or
    drew a new token since)."""
    notices = tx.state.notices
    if notices.get(message.work_item_id) == message.token:
        del notices[message.work_item_id]
        tx.rewritten = True

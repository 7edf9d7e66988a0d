"""A report that could not be applied (``WorkflowActor._report``): a handler's result, a timer
or another report whose transaction raised. What user code raised is recorded, in a transaction
of its own, so that the run does not wait for good for what the report was to do; the runtime's
own trouble (``INFRASTRUCTURE``) records nothing: the next start applies the report again. Nor
does a copy found stale (another process moved the instance on: ``RevisionConflictError``): what
it would record, it would record over a state it does not know, and its error is no user code's;
the instance's owner applies the report (its timer fires there, its work item runs again)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from cronflow_actors.engine.commands import drop_job, fail_run
from cronflow_actors.engine.states import WorkItemState
from cronflow_actors.errors import INFRASTRUCTURE, one_line
from cronflow_actors.messages.engine import TimerFired, WorkItemAction, WorkItemFinished
from cronflow_actors.messages.states import WorkItemVerb

__all__ = ["record", "say_failed"]

logger = logging.getLogger("cronflow_actors.engine.workflow_actor")


async def record(actor: Any, command: Any, error: Exception) -> None:
    """A handler's result or a timer could not be applied because user code raised: the
    work item fails with that error, in a transaction of its own (the run fails with it if
    that raises too: its task's policy, say); a timer's job is dropped and the run fails
    (left, it would wait for good for what the job was to do)."""
    logger.warning("%s: %r could not be applied: %r", actor, command, error)
    if isinstance(error, INFRASTRUCTURE) or actor._stale:
        return  # not user code's: nothing is recorded; the next start applies it again
    reason = f"{type(error).__name__}: {error}"
    try:
        if isinstance(command, WorkItemFinished):
            item = actor.state.work_items.get(command.work_item_id)
            if item is not None and item.state == WorkItemState.STARTED:
                await actor._transact(
                    WorkItemAction(action=WorkItemVerb.FAIL, work_item_id=item.id, payload=reason)
                )
        elif isinstance(command, TimerFired) and command.timer_id in actor.state.jobs:
            job = command.timer_id
            await actor._transact_with(
                functools.partial(drop_job, root=actor.root, job=job, error=error)
            )
    except Exception:
        if actor._stale:  # moved on elsewhere meanwhile: nothing of this copy's is recorded
            return
        logger.exception("%s: could not record the failure of %r; the run fails", actor, command)
        try:
            await actor._transact_with(functools.partial(fail_run, root=actor.root, error=reason))
        except Exception:
            logger.exception("%s: the run could not be failed either", actor)


def say_failed(instance_id: str, workflow: str, error: str | None, step: str | None) -> None:
    """A run failed with nothing behind it that a handler raised (a handler's raise is logged
    where it was raised, at ERROR with its traceback): a wait's timeout, or its own. Said here,
    or nowhere; ``error`` in the words its user reads (a flow's: ``step 'x': ...``), ``step``
    the step it failed at, if one did."""
    extra = {"run_id": instance_id, "workflow": workflow}
    if step is not None:
        extra["step"] = step
    logger.warning("run %s (%s) failed: %s", instance_id, workflow, one_line(error), extra=extra)

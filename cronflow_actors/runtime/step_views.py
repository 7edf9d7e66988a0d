"""A run's steps as the API shows them (``StepInfo``), from its root workflow's tasks: their
status, output, error and times, a construct's fallback, a delay, a detached action."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import msgspec

from cronflow_actors.flow.compile import WAITING_KINDS, fallback_task, is_user_step
from cronflow_actors.flow.context import failed_condition, step_error
from cronflow_actors.flow.envelope import open_envelope
from cronflow_actors.messages.engine import (
    ActionRecord,
    InstanceState,
    TaskRecord,
    WorkflowRecord,
    WorkItemRecord,
)
from cronflow_actors.messages.states import WorkflowState, WorkItemState

__all__ = [
    "DELAY",
    "StepInfo",
    "action_step",
    "all_carried",
    "began",
    "child_kind",
    "condition_failed",
    "delayed",
    "fell_back",
    "is_step",
    "reruns",
    "step_status",
]


class StepInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a run. A detached action (``kind="action"``) shows what became of it:
    ``dispatched`` until its handler reports, then ``completed`` or ``failed`` with its error;
    ``attempts`` counts its dispatches, ``redispatches`` those made after a restart found it
    still out; its times are its handler's. Its outcome never changes the run's status. For a
    step, ``redispatches`` counts the restarts that found it started with its end unrecorded
    and ran it again (the process before may have run it wholly, partly, or not at all)."""

    id: str
    kind: str
    status: str
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    """The class (``module.Name``) of the exception that failed the step, if one did."""
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    redispatches: int = 0
    event: str | None = None
    """The event a ``wait_for_event`` step waits for (``publish_event`` of it wakes the step);
    None for other steps, and while the run's version is not registered here."""
    carried: bool = False
    """Completed in the run a migration or a resume went on from, its output carried over:
    not run in this one (the console read "not started" beside "completed")."""


def fell_back(
    state: InstanceState, root: WorkflowRecord, step: str
) -> tuple[str, WorkItemRecord | None]:
    """A construct's step (a wait, a group) that failed into its ``on_error`` fallback, whose
    answer has not replaced its failure record: its status (running while the fallback runs,
    failed once it failed) and the fallback's work item. It read ``completed``, its output the
    engine's failure record, when the fallback raised (newcomer h28 F2)."""
    task = root.tasks.get(fallback_task(step))
    children = task.children if task is not None else ()
    items = [state.work_items[i] for i in children if i in state.work_items]
    if not items:
        return "failed", None
    last = items[-1]
    if last.state in (WorkItemState.INITIALIZED, WorkItemState.STARTED):
        return "running", last
    return ("canceled" if last.state == WorkItemState.CANCELED else "failed"), last


def action_step(name: str, kind: str, record: ActionRecord) -> StepInfo:
    return StepInfo(
        id=name,
        kind=kind,
        status=record.status,
        error=record.error,
        error_type=record.error_type,
        attempts=record.tried or record.attempts,  # its handler's calls, its retries too
        started_at=record.started_at or record.dispatched_at,
        finished_at=record.finished_at,
        redispatches=record.redispatches,
    )


DELAY = "delay:"
"""The prefix of the task that waits out a step's ``delay=`` before it (``flow/compile.py``)."""


def delayed(step: str, root: WorkflowRecord, user_steps: Container[str] | None) -> list[StepInfo]:
    """A step waiting out its ``delay=`` (its delay's task started, its own not yet): listed
    as waiting, as a sleep is, rather than missing while the run says it waits."""
    if not is_step(step, user_steps) or root.tasks[step].generation:
        return []  # (reached before, in a loop: listed as it ended then)
    return [StepInfo(id=step, kind="step", status="waiting")]


def step_status(item_state: str, kind: str) -> str:
    if item_state == WorkItemState.STARTED and kind in WAITING_KINDS:
        return "waiting"
    if item_state == WorkItemState.STARTED:
        return "running"
    if item_state == WorkItemState.INITIALIZED:
        return "pending"
    return item_state


def child_kind(child: WorkflowRecord, flows: bool) -> str:
    """The kind of the step whose runs ``child`` is one of: a net's composite task is a
    ``subflow``; a flow's step says it in the child's start (``for_each``, ``batch``, else
    ``subflow``), which is all that tells them apart where the flow's version is not
    registered here (``inspect --db``)."""
    if not flows:
        return "subflow"
    kind = open_envelope(child.payload).kind
    return kind if kind in ("for_each", "batch") else "subflow"


def is_step(task: str, user_steps: Container[str] | None) -> bool:
    return task in user_steps if user_steps is not None else is_user_step(task)


def condition_failed(steps: list[StepInfo], root: WorkflowRecord) -> list[StepInfo]:
    """``steps`` with the ``if_`` or ``while_`` whose condition raised, failing the run, shown
    failed with its error: the loop read ``completed`` with its last pass's output, and an
    ``if_`` was not shown, so no step said where the run failed (conform h31 F6)."""
    failed = failed_condition(root.error)
    if failed is None or root.state != WorkflowState.FAILED:
        return steps
    kind, element = failed
    error = (step_error(root.error) or "").removeprefix(f"step {element!r}: ")
    ended = root.error_type  # its class (conform h32 F5: said in the message only)
    loop = next((step for step in steps if step.id == element), None)  # a while_'s passes
    if loop is None:  # an if_, or a while_ before its first pass
        found = StepInfo(id=element, kind=kind, status="failed", error=error, error_type=ended)
        return [*steps, found]
    shown = msgspec.structs.replace(
        loop, status="failed", output=None, error=error, error_type=ended
    )
    return [shown if step is loop else step for step in steps]


def all_carried(state: InstanceState, workflow_id: str) -> bool:
    """Whether nothing ran in child workflow ``workflow_id`` here: its work items, and its own
    children's, were all carried over (a migration's fast-forward)."""
    items = (i for i in state.work_items.values() if i.workflow_id == workflow_id)
    kids = (w.id for w in state.workflows.values() if w.parent_id == workflow_id)
    return all(i.carried for i in items) and all(all_carried(state, k) for k in kids)


def _passes(
    state: InstanceState, workflow: str, task: TaskRecord, items: list[WorkItemRecord]
) -> list[WorkItemRecord]:
    """The work items of every generation of ``task`` (``items``: its last one's): a
    ``while_``'s passes."""
    if task.generation < 2:
        return items
    name = task.name
    found = [i for i in state.work_items.values() if i.workflow_id == workflow and i.task == name]
    return found or items


def began(
    state: InstanceState,
    workflow: str,
    task: TaskRecord,
    items: list[WorkItemRecord],
    children: list[WorkflowRecord],
) -> list[float]:
    """When the step's work items began (every pass of a ``while_``: it showed its last pass's
    start and length, conform h39 F4) and its child workflows were made."""
    every = _passes(state, workflow, task, items)
    return [i.started_at for i in every if i.started_at] + [c.created_at for c in children]


def reruns(
    state: InstanceState,
    workflow: str,
    task: TaskRecord,
    items: list[WorkItemRecord],
    children: list[WorkflowRecord],
) -> int:
    """How many restarts ran a step again: the most of its work items' (every pass of a
    ``while_``), and of any work item inside its child workflows, theirs too (a subflow's, a
    flow per item's): a restart that ran one of those again said nothing (conform h39 F4)."""
    most = max((i.redispatches for i in _passes(state, workflow, task, items)), default=0)
    if not children:
        return most
    inside = {c.id for c in children}
    grown = True
    while grown:  # the children's own children, down to the last
        below = {w.id for w in state.workflows.values() if w.parent_id in inside}
        grown = not below <= inside
        inside |= below
    nested = (i.redispatches for i in state.work_items.values() if i.workflow_id in inside)
    return max(most, max(nested, default=0))

"""An instance's state as its snapshot's bytes, with each output written once.

A step's output is held, in memory, by its work item, by its workflow's ``outputs`` (its task's
latest), and often as the workflow's ``last`` and ``output`` as well: four references to one
object. Encoded as they are, a 30 MB output made a 120 MB snapshot, written again by every later
commit of its run and read whole by every listing of it (console h40 F1). ``encode_state``
writes such an entry as None and names where its value is (``WorkflowRecord.outputs_from``,
``last_from``, ``output_from``); ``restore`` puts the values back, as the same objects, as a body
is read (``engine/services.decode_state``), so the next commit writes them once again.

Only entries that are the very object a work item holds are written so: an output changed since
(a caught failure's record, a ``for_each``'s list) is written whole, as before, and so is a child
workflow's output in its parent (a child's own entries are restored from work items alone, so
no workflow's values wait for another's). Snapshots written before this have none, and read as
they always did; a version of cronflow-actors before it would read the entries as None, so the
stores' schema version says which can read the database.
"""

from __future__ import annotations

from typing import Any

from cronflow_actors.errors import SnapshotDamagedError
from cronflow_actors.messages import encode
from cronflow_actors.messages.instance_state import InstanceState, WorkflowRecord

__all__ = ["encode_state", "restore"]

_WHOLE = (type(None), bool, int, float)
"""Values written whole wherever they are: a reference would not be smaller."""

_SMALL = 64
"""Bytes under which a value is written whole too: naming its source (a work item's id, some
40 bytes) saves nothing (300 small steps made a body 9-18% bigger: retest h41)."""

SHARE_FROM = 64 * 1024
"""A body smaller than this is written as it is: its outputs are small, and naming where each
is would take as many bytes as it saves, and twice the time (3 trivial steps: 4 µs to 8.7)."""


def encode_state(state: InstanceState, before: int = 0) -> bytes:
    """The snapshot body of ``state``, each shared output written once once the body is
    ``SHARE_FROM`` or more (``before``: the size of its body before, when known: one that big
    is not encoded whole first); ``state`` is as it was after (the entries are put back even
    if encoding raises)."""
    whole = encode(state) if before < SHARE_FROM else None
    if whole is not None and len(whole) < SHARE_FROM:
        return whole
    shared = False
    for workflow in state.workflows.values():
        if workflow.outputs and _share(state, workflow):
            shared = True
    if not shared:  # (nothing to write once: the body encoded whole, if it was)
        return whole if whole is not None else encode(state)
    state.outputs_once = True
    try:
        return encode(state)
    finally:
        restore(state)


def restore(state: InstanceState) -> None:
    """Put back the entries ``encode_state`` wrote as None (a decoded body's, or its own);
    ``SnapshotDamagedError`` if one names a child or a task the state does not have."""
    if not state.outputs_once:  # (most bodies: nothing to look for)
        return
    state.outputs_once = False
    for workflow in state.workflows.values():
        if workflow.outputs_from or workflow.last_from or workflow.output_from:
            _restore(state, workflow)


def _worth(value: Any) -> bool:
    """Whether ``value`` is big enough to write once: a long string, a large container, or one
    whose bytes are more than ``_SMALL``."""
    kind = type(value)
    if kind in _WHOLE:
        return False
    if kind is str or kind is bytes:
        return len(value) > _SMALL
    if (kind is dict or kind is list) and len(value) > 8:
        return True
    return len(encode(value)) > _SMALL


def _share(state: InstanceState, workflow: WorkflowRecord) -> bool:
    """Write ``workflow``'s shared entries as None, naming their sources; whether any was."""
    outputs, tasks = workflow.outputs, workflow.tasks
    shared: dict[str, str] = {}
    for task, value in outputs.items():
        record = tasks.get(task)
        if record is None or not record.children:
            continue
        item = state.work_items.get(record.children[-1])
        if item is not None and item.output is value and _worth(value):
            shared[task] = item.id
    last, output = workflow.last, workflow.output
    last_from = output_from = ""
    share_last, share_output = _worth(last), _worth(output)
    if share_last or share_output:
        for task, value in outputs.items():
            if share_last and not last_from and value is last:
                last_from = task
            if share_output and not output_from and value is output:
                output_from = task
    if not (shared or last_from or output_from):
        return False
    for task in shared:
        outputs[task] = None
    workflow.outputs_from = shared
    if last_from:
        workflow.last, workflow.last_from = None, last_from
    if output_from:
        workflow.output, workflow.output_from = None, output_from
    return True


def _restore(state: InstanceState, workflow: WorkflowRecord) -> None:
    outputs = workflow.outputs
    items = state.work_items
    for task, item_id in workflow.outputs_from.items():
        item = items.get(item_id)
        if item is None or task not in outputs:
            raise _damaged(state, workflow, f"the output of task {task!r} (from {item_id!r})")
        outputs[task] = item.output
    workflow.outputs_from = {}
    if workflow.last_from:
        if workflow.last_from not in outputs:
            raise _damaged(state, workflow, f"its last output (task {workflow.last_from!r})")
        workflow.last, workflow.last_from = outputs[workflow.last_from], ""
    if workflow.output_from:
        if workflow.output_from not in outputs:
            raise _damaged(state, workflow, f"its output (task {workflow.output_from!r})")
        workflow.output, workflow.output_from = outputs[workflow.output_from], ""


def _damaged(state: InstanceState, workflow: WorkflowRecord, what: str) -> SnapshotDamagedError:
    return SnapshotDamagedError(
        state.id, ValueError(f"workflow {workflow.id!r} names no source for {what}")
    )

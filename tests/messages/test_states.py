"""States are Enums in the data, and what a snapshot holds did not change for it.

``data/instance_state_v0.msgpack`` and ``data/state_changes_v0.msgpack`` were encoded by the code
from before the states were Enums (commit 04f8e0e, when records and change messages held plain
strings): an instance holding every workflow, task, work item and action state, jobs of each
verb, and a state change of each kind.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from cronflow_actors.engine import states as engine_states
from cronflow_actors.messages import decoder_for, encode
from cronflow_actors.messages.engine import (
    ActionStateChanged,
    CancelWorkItemJob,
    CompleteWorkItemJob,
    FailWorkItemJob,
    InstanceState,
    ResetWorkItemJob,
    StartWorkItemJob,
    TaskStateChanged,
    WorkflowStateChanged,
    WorkItemAction,
    WorkItemStateChanged,
)
from cronflow_actors.messages.states import (
    ActionState,
    TaskState,
    WorkflowState,
    WorkItemState,
    WorkItemVerb,
)

DATA = Path(__file__).parent / "data"
OLD_STATE = (DATA / "instance_state_v0.msgpack").read_bytes()
OLD_CHANGES = (DATA / "state_changes_v0.msgpack").read_bytes()

Change = WorkItemStateChanged | WorkflowStateChanged | TaskStateChanged | ActionStateChanged


def test_an_old_snapshot_decodes_to_enum_members_and_encodes_to_the_same_bytes() -> None:
    state: InstanceState = decoder_for(InstanceState).decode(OLD_STATE)
    assert {type(w.state) for w in state.workflows.values()} == {WorkflowState}
    assert {w.state for w in state.workflows.values()} == set(WorkflowState)
    assert {type(t.state) for t in state.workflows["i"].tasks.values()} == {TaskState}
    assert {t.state for t in state.workflows["i"].tasks.values()} == set(TaskState)
    assert {type(i.state) for i in state.work_items.values()} == {WorkItemState}
    assert {i.state for i in state.work_items.values()} == set(WorkItemState)
    assert {a.status for a in state.action_records.values()} == set(ActionState)
    assert all(type(a.status) is ActionState for a in state.action_records.values())
    # A snapshot written now leaves out the fields at their defaults (omit_defaults), those
    # added since the data was written among them; what it keeps is what the old bytes say,
    # states as their values, and it decodes to the same state.
    fresh = encode(state)
    assert len(fresh) < len(OLD_STATE)
    assert _within(msgspec.msgpack.decode(fresh), msgspec.msgpack.decode(OLD_STATE))
    assert decoder_for(InstanceState).decode(fresh) == state


def _within(part: object, whole: object) -> bool:
    """Whether every map in ``part`` has only keys of ``whole``'s map there, with equal values
    (maps compared the same way, anything else by equality)."""
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(key in whole and _within(value, whole[key]) for key, value in part.items())
    return part == whole


def test_old_state_changes_decode_to_enum_members_and_encode_as_they_were() -> None:
    changes = decoder_for(list[Change]).decode(OLD_CHANGES)
    assert [(type(c.prev), type(c.next)) for c in changes] == [
        (type(None), WorkItemState),
        (WorkItemState, WorkItemState),
        (WorkflowState, WorkflowState),
        (TaskState, TaskState),
        (ActionState, ActionState),
    ]
    # encoded as they were (states as their values), with the fields added since (change
    # messages are not stored: an old process's and a new one's never meet)
    fresh, old = msgspec.msgpack.decode(encode(changes)), msgspec.msgpack.decode(OLD_CHANGES)
    for now, then in zip(fresh, old, strict=True):
        assert {name: value for name, value in now.items() if name in then} == then
        assert set(now) - set(then) <= {"created_at", "migrated", "answered", "timed_out"}


def test_a_state_is_written_as_its_value() -> None:
    assert msgspec.json.encode(WorkItemState.STARTED) == b'"started"'
    assert encode(TaskState.ENABLED) == encode("enabled")


def test_an_unknown_state_is_refused_at_the_decode_boundary() -> None:
    # a state field of the same length: still msgpack, no longer a state
    body = OLD_STATE.replace(b"\xa5state\xa8canceled", b"\xa5state\xa8cancelle", 1)
    with pytest.raises(msgspec.ValidationError, match="Invalid enum value 'cancelle'"):
        decoder_for(InstanceState).decode(body)


def test_each_work_item_job_carries_its_verb_and_the_verbs_map_to_states() -> None:
    jobs = [StartWorkItemJob, CompleteWorkItemJob, FailWorkItemJob, CancelWorkItemJob]
    jobs.append(ResetWorkItemJob)
    assert [job.verb for job in jobs] == list(WorkItemVerb)
    assert "verb" not in StartWorkItemJob.__struct_fields__  # a class constant, never stored
    assert set(engine_states.VERB_TARGETS) == set(WorkItemVerb)
    assert engine_states.VERB_TARGETS[WorkItemVerb.RESET] is WorkItemState.INITIALIZED


def test_the_engine_re_exports_the_enums() -> None:
    assert engine_states.TaskState is TaskState
    assert engine_states.WorkItemVerb is WorkItemVerb
    action = WorkItemAction(action=WorkItemVerb.FAIL, work_item_id="w")
    assert action.action == "fail"

"""What a run's successor keeps of it: the outputs of the steps it completed, by step (a
migration's new run of a flow, a resume of a failed or canceled run), and its workflows as a
migration's new instance reads them."""

from __future__ import annotations

from collections.abc import Collection, Container
from typing import Any, NamedTuple

import msgspec

from cronflow_actors.engine.fast_forward import place_of
from cronflow_actors.engine.kept import step_of
from cronflow_actors.engine.states import TaskState, WorkItemState
from cronflow_actors.flow.compile import is_user_step
from cronflow_actors.flow.context import step_error
from cronflow_actors.flow.envelope import read_envelope
from cronflow_actors.messages.engine import InstanceState, WorkflowRecord
from cronflow_actors.messages.migrations import CarriedChild, KeptEvent, MigrationSource
from cronflow_actors.net.spec import is_caught

__all__ = [
    "Answered",
    "MigrationLinks",
    "answered_errors",
    "carried_events",
    "carried_on",
    "links_of",
    "migrated_from",
    "sources_of",
]


def carried_events(state: InstanceState) -> tuple[KeptEvent, ...]:
    """The events the run ``state`` kept for its waiting steps while held, and those carried to
    it that not every step they are for has had, for the run that goes on from it (a
    migration's, a resume's): each publish once, with the steps it was kept for, named as every
    version names them (``KeptStep``): two item flows waiting for one event each hear it (chaos
    h27 F2), and no other step does (the second verifier's h27 V1, V2)."""
    events: dict[Any, KeptEvent] = {}
    for n, event in enumerate((*(state.kept or ()), *(state.carried or ()))):
        if event.carried:  # an offer to a step: its event is carried, that step among its own
            continue
        steps = event.steps
        if event.work_item_id:  # kept for a step of this run
            known = event.work_item_id in state.work_items
            steps = (step_of(state, event.work_item_id),) if known else ()
        key = event.publish or n
        before = events.get(key)
        if before is not None:  # kept for another step too
            steps = (*before.steps, *(s for s in steps if s not in before.steps))
        taken = event.taken or (before is not None and before.taken)
        events[key] = msgspec.structs.replace(
            event, work_item_id="", carried=False, steps=steps, taken=taken
        )
    return tuple(events.values())


def carried_on(
    state: InstanceState, steps: Container[str] | None, *, keys: bool = False
) -> tuple[dict[str, Any], list[str], list[CarriedChild]]:
    """What the run ``state`` hands the run that goes on from it (a migration's new run, a
    resume): the outputs of its root's steps that completed (``steps``' only, when given), which
    of them are failures their steps caught, and its children's (``completed_children``), with
    what it was handed itself and has not used yet: steps and items it had not reached. A
    second migration before the run reached them forgot them, and their functions ran again
    (chaos h27 F5)."""
    root = state.workflows[state.id]
    outputs = {k: v for k, v in completed_steps(state).items() if steps is None or k in steps}
    children = completed_children(state, keys=keys)
    record = state.migration
    if record is None:
        return outputs, caught_among(outputs, root.caught), children
    left = {k: v for k, v in record.fast_forward.items() if steps is None or k in steps}
    for old in record.children:  # (consumed as they were used: what is left was not reached)
        same = [c for c in children if (c.path, c.place) == (old.path, old.place)]
        kept = list(old.keys) if keys else []  # (a resume's, of items not begun again)
        if not same:
            old_caught = caught_among(old.outputs, old.caught)
            children.append(
                msgspec.structs.replace(old, items=list(old.items), keys=kept, caught=old_caught)
            )
        elif same[0].payload == old.payload:
            same[0].outputs, same[0].caught = _over(
                old.outputs, old.caught, same[0].outputs, same[0].caught or []
            )
            same[0].items = [*old.items, *same[0].items]
            same[0].keys = [*kept, *same[0].keys]
    merged, caught = _over(left, record.caught, outputs, caught_among(outputs, root.caught))
    return merged, caught, children


def _over(
    old: dict[str, Any], old_caught: list[str] | None, new: dict[str, Any], new_caught: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The outputs ``new`` over ``old`` (what a run was handed and had not used), and which of
    them are caught failures (``new_caught`` of ``new``, ``old_caught`` of ``old``)."""
    kept = [name for name in caught_among(old, old_caught) if name not in new]
    return {**old, **new}, [*kept, *new_caught]


_ANSWERED = (WorkItemState.COMPLETED, WorkItemState.FAILED)


class Answered(NamedTuple):
    """What ``answered_errors`` found: the errors by step, and the classes of those known."""

    errors: dict[str, str]
    types: dict[str, str]


def answered_errors(state: InstanceState, steps: Collection[str]) -> Answered:
    """The errors the fallbacks of the root steps ``steps`` (those carried over) answered in the
    run ``state``, by step, with those it was handed itself for steps it had not reached; and
    their classes, where known."""
    root, migration = state.workflows[state.id], state.migration
    answered: dict[str, tuple[str, str]] = {}
    if migration is not None:
        types = migration.answered_types
        answered = {name: (e, types.get(name, "")) for name, e in migration.answered.items()}
    for name in steps:
        record = root.tasks.get(name)
        if record is None or record.state != TaskState.COMPLETED:
            continue
        if record.carried_error:  # carried to it, and carried on
            answered[name] = (record.carried_error, record.carried_error_type)
        if record.children:  # it ran here: what this run answered, if anything (review h32
            answered.pop(name, None)  # F2), its items' or its child flows' (conform h36 F5)
            failed = _failed_child(state, record.children)
            if failed is not None:
                answered[name] = failed
        if record.error:  # a failure of the step's own (a group's deadline: review h33 F2)
            answered[name] = (record.error, record.error_type)
    ours = {name: said for name, said in answered.items() if name in steps}
    return Answered(
        {name: error for name, (error, _) in ours.items()},
        {name: kind for name, (_, kind) in ours.items() if kind},
    )


def _failed_child(state: InstanceState, children: list[str]) -> tuple[str, str] | None:
    """The error and class of the last of ``children`` that failed, as ``inspect`` shows its
    step: a work item that failed or completed with what an ``on_error`` answered (a caught
    failure, a wait's timeout: retest2 h33 F3), or a child flow (a subflow, a for_each's flow
    per item: its item's class, or its own)."""
    for child in reversed(children):
        item = state.work_items.get(child)
        if item is not None:
            if item.error and item.state in _ANSWERED:
                return item.error, item.error_type or ""
            continue
        flow = state.workflows.get(child)
        if flow is not None and flow.error:
            cause = state.work_items.get(flow.error_cause or "")
            kind = cause.error_type if cause is not None and cause.error_type else flow.error_type
            return step_error(flow.error) or "", kind or ""
    return None


def caught_among(outputs: dict[str, Any], caught: list[str] | None) -> list[str]:
    """Which of ``outputs`` are failures their steps caught, as ``caught`` (a workflow's or a
    carried record's) says (``net.spec.is_caught``)."""
    return [name for name, output in outputs.items() if is_caught(name, output, caught)]


def completed_steps(state: InstanceState) -> dict[str, Any]:
    """The outputs a flow's run ``state`` recorded for the root tasks it completed (its steps,
    by the compiler's naming, whatever version is registered)."""
    root = state.workflows[state.id]
    return {
        name: output
        for name, output in root.outputs.items()
        if is_user_step(name)
        and name in root.tasks
        and root.tasks[name].state == TaskState.COMPLETED
    }


def completed_children(state: InstanceState, *, keys: bool = False) -> list[CarriedChild]:
    """The steps the child workflows of a flow's run ``state`` (its subflows' runs, its
    ``for_each`` and ``batch`` items) completed, with their recorded outputs (and, with
    ``keys``, a resume's, the idempotency keys of those they began and did not complete): each
    child by its path, its place among the children there and its payload, which a child of the
    run that goes on from it must match to take them (``engine/fast_forward.py``)."""
    children: list[CarriedChild] = []
    for workflow in state.workflows.values():
        items = _completed_items(state, workflow)
        begun = begun_items(state, workflow) if keys else []
        if workflow.id == state.id:  # its steps' outputs: the MigrationRecord's own
            outputs = {}
        else:
            outputs = {
                name: workflow.outputs[name]
                for name, task in workflow.tasks.items()
                if task.state == TaskState.COMPLETED
                and name in workflow.outputs
                and is_user_step(name)
            }
        if outputs or begun or items:
            place = place_of(state.workflows, workflow)
            children.append(
                CarriedChild(
                    path=workflow.path,
                    place=place,
                    payload=workflow.payload,
                    outputs=outputs,
                    caught=caught_among(outputs, workflow.caught),
                    keys=begun,
                    items=items,
                )
            )
    return children


def _completed_items(state: InstanceState, workflow: WorkflowRecord) -> list[tuple[str, Any, Any]]:
    """(step, payload, output) of the work items of ``workflow`` that completed in steps that
    did not: a ``parallel`` or ``for_each`` half done (conform h26 H3: a migration or a resume
    called the done half's functions again)."""
    return [
        (item.task, item.payload, item.output)
        for item in state.work_items.values()
        if item.workflow_id == workflow.id
        and item.state == WorkItemState.COMPLETED
        and is_user_step(item.task)
        and item.task in workflow.tasks
        and workflow.tasks[item.task].state != TaskState.COMPLETED
    ]


def begun_items(state: InstanceState, workflow: WorkflowRecord) -> list[tuple[str, Any, str]]:
    """(step, payload, idempotency key: its own or the one it kept) of the work items of
    ``workflow`` that began in steps it did not complete and did not complete themselves: a
    resume's step (a
    ``for_each``'s item, a ``parallel``'s function) that failed keeps its own key (one key a step
    gave every item of a group another's: the reviewer's h26 H1)."""
    return [
        (item.task, item.payload, item.kept_key or item.id)  # (a resumed run's: the key it kept)
        for item in state.work_items.values()
        if item.workflow_id == workflow.id
        and item.state != WorkItemState.COMPLETED
        and is_user_step(item.task)
        and item.task in workflow.tasks
        and workflow.tasks[item.task].state != TaskState.COMPLETED
    ]


def sources_of(state: InstanceState) -> list[MigrationSource]:
    """The workflows of ``state`` as a migration carries them over, its root first."""
    ordered = sorted(state.workflows.values(), key=lambda w: w.id != state.id)
    return [
        MigrationSource(
            id=w.id,
            name=w.name,
            version=w.version,
            path=w.path,
            state=w.state,
            payload=w.payload,
            output=w.output,
            outputs=dict(w.outputs),
            caught=caught_among(w.outputs, w.caught),
            tasks={name: record.state for name, record in w.tasks.items()},
            generations={name: record.generation for name, record in w.tasks.items()},
            parent_id=w.parent_id,
            parent_task=w.parent_task,
        )
        for w in ordered
    ]


class MigrationLinks(msgspec.Struct, frozen=True, kw_only=True):
    """How an instance stands to migrations: the instance it was migrated from (and from which
    version), the one a migration replaced it with."""

    id: str
    version: str
    migrated_from: str | None = None
    from_version: str | None = None
    migrated_to: str | None = None


def links_of(state: InstanceState) -> MigrationLinks:
    """How the instance ``state`` stands to migrations (a resume carries its run's steps as a
    migration does, and is none)."""
    envelope = read_envelope(state.workflows[state.id].payload)
    replay_of = envelope.replay_of if envelope is not None else None
    migrated = migrated_from(state, replay_of)
    record = state.migration if migrated is not None else None
    return MigrationLinks(
        id=state.id,
        version=state.version,
        migrated_from=migrated,
        from_version=record.from_version if record is not None else None,
        migrated_to=state.migrated_to,
    )


def migrated_from(state: InstanceState, replay_of: str | None) -> str | None:
    """The run a migration replaced with this one (``state``, whose flow's envelope says it
    replays ``replay_of``); not the run a resume goes on from, which it carries as a migration
    would. A migration of a resume's run keeps the resume's envelope, which names another run
    (conform h34 F2: it read as no migration, and the run it replaced could be replayed)."""
    migration = state.migration
    if migration is None or migration.from_instance == replay_of:
        return None
    return migration.from_instance

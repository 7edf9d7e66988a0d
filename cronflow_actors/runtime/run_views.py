"""Runs as the API shows them: ``RunInfo`` (status, payload, output, error, each step) from a
run's last committed snapshot, ``inspect`` and ``list_runs``.

Which tasks of a run's net are steps is what the flow's ``CompiledFlow`` says (for a version
registered in this process); for any other run, the compiler's own rule (``is_user_step``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.states import FINAL_STATES
from cronflow_actors.errors import (
    ConfigurationError,
    NotFoundError,
    SnapshotDamagedError,
    class_name,
)
from cronflow_actors.flow.context import step_error
from cronflow_actors.messages import QueuedRun, SnapshotRecord
from cronflow_actors.messages.engine import (
    InstanceState,
    WorkflowRecord,
    WorkItemRecord,
)
from cronflow_actors.messages.states import TaskState
from cronflow_actors.net.spec import TaskKind, caught_in, event_waits, item_kind
from cronflow_actors.runtime.carried import migrated_from
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.flow_runs import is_flows_run
from cronflow_actors.runtime.ids import resume_id
from cronflow_actors.runtime.instances import InstanceDirectory
from cronflow_actors.runtime.pages import (
    PAGE_BYTES,
    Page,
    check_limit,
    decode_cursor,
    encode_cursor,
)
from cronflow_actors.runtime.pinning import BLOCKED, block_of, not_registered
from cronflow_actors.runtime.run_info import RunInfo, RunResult, RunStatus, as_listed
from cronflow_actors.runtime.run_trigger import read_trigger
from cronflow_actors.runtime.step_views import (
    DELAY,
    StepInfo,
    action_step,
    all_carried,
    began,
    child_kind,
    condition_failed,
    delayed,
    fell_back,
    is_step,
    reruns,
    step_status,
)
from cronflow_actors.runtime.successors import chain_end
from cronflow_actors.store import Store

__all__ = ["PAGE_BYTES", "RunInfo", "RunResult", "RunStatus", "RunViews", "StepInfo", "stored_run"]

logger = logging.getLogger(__name__)


async def stored_run(
    read: Callable[[str], Awaitable[SnapshotRecord]], store: Store, run_id: str
) -> SnapshotRecord | QueuedRun:
    """A run's snapshot, or its row in a flow's queue while it waits there; NotFoundError when
    it has neither. A queued run leaves the queue in the transaction that stores its snapshot,
    so one that starts between the two reads is read again: never a "no run" for a run that
    exists (another process's drain may start it at any moment)."""
    try:
        return await read(run_id)
    except NotFoundError:
        queued = await store.queued_run(run_id)
        if queued is not None:
            return queued
    try:
        return await read(run_id)
    except NotFoundError:
        advice = ""  # a child workflow's id, which a net's calls print (h25 newcomer F4)
        root = run_id.split(".", 1)[0]  # (of a run that is there: hostile h38 F4)
        if root and root != run_id and await store.load_snapshot(root) is not None:
            advice = (
                f"it names a part of run {root!r} (a child workflow, a work item): "
                "GET /workflows/{id} or `cronflow-actors net show` shows it"
            )
        raise NotFoundError("run", run_id, advice=advice) from None


class RunViews:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        registry: WorkflowRegistry,
        store: Store,
        instances: InstanceDirectory,
    ) -> None:
        self._catalog = catalog
        self._registry = registry
        self._store = store
        self._instances = instances
        self._read = instances.read

    async def inspect(self, run_id: str) -> RunInfo:
        found = await stored_run(self._read, self._store, run_id)
        if isinstance(found, QueuedRun):
            return self._queued_info(found)
        info = self.info(found)
        exists, resumed = self._store.instance_exists, resume_id(run_id)
        if info.status in ("failed", "canceled") and await exists(resumed):
            info = msgspec.structs.replace(info, resumed_as=resumed)
        if info.migrated_to is not None and not await exists(info.migrated_to):
            # (its successor starts in the commit that ends it, or not: a plan left pending)
            return msgspec.structs.replace(info, migration_pending=True)
        went = info.migrated_to or info.resumed_as  # (read on from there: this run is read)
        if went is None:
            return msgspec.structs.replace(info, migration_pending=False)
        current, pending = await chain_end(self._read, self._store, went)
        # (pending at its chain's end: a later hop's start failed, h42 versions F3)
        pending = pending and info.migrated_to is not None
        return msgspec.structs.replace(info, migration_pending=pending, current_run_id=current)

    def _queued_info(self, queued: QueuedRun) -> RunInfo:
        """A run waiting in its flow's queue: ``waiting``, with no steps yet."""
        payload, replay_of, by, _how = read_trigger(msgspec.msgpack.decode(queued.payload))
        return RunInfo(
            id=queued.instance_id,
            workflow=queued.workflow,
            status=RunStatus.WAITING,
            payload=payload,
            created_at=queued.queued_at,
            replay_of=replay_of,
            workflow_name=self._name(queued.workflow),
            started_by=by,
        )

    def info(self, snapshot: SnapshotRecord, *, steps: bool = True) -> RunInfo:
        """A run as ``inspect`` shows it, from its snapshot."""
        state = decode_state(snapshot.body, snapshot.instance_id)
        root = state.workflows.get(state.id)
        if root is None:
            raise NotFoundError("run", state.id)
        flows = self._is_flow(snapshot, state)  # a net's payload is its caller's, as given
        payload, replay_of, by, trigger = (
            read_trigger(root.payload) if flows else (root.payload, None, root.started_by, None)
        )
        cause = state.work_items.get(root.error_cause) if root.error_cause else None
        replaced = migrated_from(state, replay_of)
        return RunInfo(
            id=root.id,
            workflow=root.name,
            status=_status(snapshot, root),
            payload=payload,
            output=root.output,
            error=step_error(root.error) if flows else root.error,
            error_type=cause.error_type if cause is not None else root.error_type,
            steps=self._steps(state, root, flows) if steps else [],
            created_at=root.created_at,
            finished_at=root.finished_at,
            # a migration's run is no replay, whatever its envelope says (retest h33 F9: the
            # migration of a resume read "replay of" the run resumed)
            replay_of=replay_of if replaced is None else None,
            workflow_name=self._name(root.name),
            migrated_from=replaced,
            migrated_to=state.migrated_to,
            version=state.version,
            blocked=self._why_held(snapshot),
            started_by=by,
            trigger=trigger if steps else None,
        )

    def _is_flow(self, snapshot: SnapshotRecord, state: InstanceState) -> bool:
        """Whether a run is a flow's (its error in steps' words), registered here or, read
        without its code (``--db``), as its state says (``flow_runs.is_flows_run``)."""
        return is_flows_run(snapshot.workflow, lambda: state, flows=self._catalog.roots)

    def _why_held(self, snapshot: SnapshotRecord) -> str | None:
        """Why an unfinished run cannot run here, if it cannot: it is held (``blocked``), or
        its workflow is registered here at other versions only."""
        if snapshot.status == BLOCKED:
            return self._why_blocked(snapshot)
        versions = self._registry.versions(snapshot.workflow)
        if snapshot.terminal or not versions or snapshot.version in versions:
            return None  # (a workflow not registered at all: read without its code, --db)
        return not_registered(
            snapshot.instance_id,
            snapshot.workflow,
            snapshot.version,
            versions,
            shared=self._instances.shared,
        )

    def _why_blocked(self, snapshot: SnapshotRecord) -> str:
        try:
            spec = self._registry.get(snapshot.workflow, snapshot.version)
        except LookupError:
            return (
                f"held: the definition it started on changed under version "
                f"{snapshot.version!r}, and that version is not registered now"
            )
        block = block_of(snapshot, spec)
        if block is None:
            return "held until the next start: its definition is registered again"
        return block.reason

    def _name(self, workflow: str) -> str | None:
        flow = self._catalog.compiled.get(workflow)
        return flow.name if flow is not None else None

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RunInfo]:
        """Runs newest first, ``limit`` at a time (fewer when they are big: about 8 MB of stored
        state per page), from the store's indexes (steps left out). Runs still waiting in
        their flow's queue are among them, ``waiting`` as of when they were queued; one that
        starts while a client pages moves to its start time, so pages read across that moment
        may show it twice or not at all (``inspect`` always finds it)."""
        check_limit(limit)
        choices = [s.value for s in RunStatus]
        if status is not None and status not in choices:
            paused = "; a run paused for a person is 'waiting' (GET /paused, Runtime.list_paused)"
            said = paused if status == "paused" else ""  # (the metrics' word for it)
            raise ConfigurationError("status", status, f"one of {choices}{said}")
        before = decode_cursor(cursor) if cursor is not None else None
        queued: list[QueuedRun] = []
        ahead = limit + 1  # one row past the page: the last page has no cursor (console h43
        # F12: a last page exactly full offered one more, empty)
        if status in (None, RunStatus.WAITING):  # read first: one that starts meanwhile is
            # then in both reads (and shown once), never in neither
            queued = await self._store.list_queued(workflow=workflow, limit=ahead, before=before)
        snapshots = await self._store.list_runs(
            workflow=workflow, status=status, limit=ahead, before=before, max_bytes=PAGE_BYTES
        )
        started = {s.instance_id for s in snapshots}
        rows: list[tuple[tuple[float, str], SnapshotRecord | QueuedRun]] = [
            ((q.queued_at, q.instance_id), q) for q in queued if q.instance_id not in started
        ]
        rows += [((s.created_at, s.instance_id), s) for s in snapshots]
        rows.sort(key=lambda row: row[0], reverse=True)
        # A source that may have more past its last row bounds the page: a row of the other
        # older than that one would put the cursor past rows not yet shown.
        bounds = []
        capped = sum(len(s.body) for s in snapshots) >= PAGE_BYTES
        if capped and len(snapshots) < ahead:  # cut by size: is there a run past it? (an
            # empty last page said "No runs match.": retest h43 of console F12)
            last = (snapshots[-1].created_at, snapshots[-1].instance_id)
            past = await self._store.list_runs(
                workflow=workflow, status=status, limit=1, before=last
            )
            capped = bool(past)
        if len(snapshots) == ahead or capped:
            bounds.append((snapshots[-1].created_at, snapshots[-1].instance_id))
        if len(queued) == ahead:
            bounds.append((queued[-1].queued_at, queued[-1].instance_id))
        if bounds:
            floor = max(bounds)
            rows = [row for row in rows if row[0] >= floor]
        more = capped or len(rows) > limit
        rows = rows[:limit]
        runs = [
            self._listed(item)
            if isinstance(item, SnapshotRecord)
            else as_listed(self._queued_info(item), len(item.payload))  # (review h40 F4)
            for _, item in rows
        ]
        next_cursor = encode_cursor(*rows[-1][0]) if more and rows else None
        return Page(runs, next_cursor)

    def _listed(self, snapshot: SnapshotRecord) -> RunInfo:
        """A run in a listing; one whose stored state cannot be read is shown from its row (its
        flow, status and start), its error saying so, rather than failing the whole page (the
        others are readable; ``inspect`` of it answers the damage)."""
        try:
            return as_listed(self.info(snapshot, steps=False), len(snapshot.body))
        except SnapshotDamagedError as damaged:
            logger.error("listing runs: %s", damaged)
            try:
                status = RunStatus(snapshot.status)
            except ValueError:
                status = RunStatus.RUNNING  # a row from before the status column said more
            return RunInfo(
                id=snapshot.instance_id,
                workflow=snapshot.workflow,
                status=status,
                error=str(damaged),
                error_type=class_name(damaged),
                created_at=snapshot.created_at,
                workflow_name=self._name(snapshot.workflow),
                version=snapshot.version,
            )

    def _kind(self, state: InstanceState, workflow_id: str, item: WorkItemRecord) -> str:
        """An item's kind as recorded, but a net's (declared ``task``), for which its task's
        definition says what it waits for, if it does (``item_kind``: the record keeps the
        declared kind, which tells a flow's items apart), and an item from a snapshot before
        items kept their kind."""
        if item.kind and item.kind != "task":
            return item.kind
        found = self._task_kind(state, workflow_id, item.task)
        return item.kind if found == "unknown" and item.kind else found

    def _task_kind(self, state: InstanceState, workflow_id: str, task: str) -> str:
        """What a task is, from its definition if it is still registered (``unknown`` if not):
        its work items' kind, ``dummy``, or ``subflow`` (child workflows)."""
        try:
            root = self._registry.get(state.workflow, state.version)
        except LookupError:
            return "unknown"
        definition = root.descendant(state.workflows[workflow_id].path).tasks[task]
        if definition.work_item is not None:
            return item_kind(definition.work_item)
        return "dummy" if definition.kind is TaskKind.DUMMY else "subflow"

    def _net_events(self, state: InstanceState) -> dict[str, str]:
        """The event each task of a net's root waits for (a work item typed ``wait=WaitSpec(
        kind="event")``), as a flow's ``wait_for_event`` steps are shown (newcomer h32 F8)."""
        try:
            return event_waits(self._registry.get(state.workflow, state.version))
        except LookupError:
            return {}

    def _steps(self, state: InstanceState, root: WorkflowRecord, flows: bool) -> list[StepInfo]:
        """The run's steps (``flows``: a flow's, its item flows' errors in steps' words)."""
        steps = []
        user_steps = self._catalog.user_steps(state.workflow, state.version)
        events = (
            self._catalog.awaited_events(state.workflow, state.version)
            if flows
            else self._net_events(state)
        )
        for name, record in root.tasks.items():
            if name.startswith(DELAY) and record.state == TaskState.STARTED:
                steps.extend(delayed(name.removeprefix(DELAY), root, user_steps))
                continue
            if record.generation == 0 or not is_step(name, user_steps):
                continue  # never reached, or a construct's own plumbing
            items = [state.work_items[i] for i in record.children if i in state.work_items]
            children = [state.workflows[i] for i in record.children if i in state.workflows]
            if items:
                kind = self._kind(state, root.id, items[0])
            elif isinstance(user_steps, Mapping):  # a flow per item or chunk is its step's
                kind = user_steps[name].kind  # (newcomer h26: a batch shown as a subflow)
            else:  # a net's task, or a flow's whose version is not registered here
                kind = (
                    child_kind(children[0], flows)
                    if children
                    else record.carried_kind or self._task_kind(state, root.id, name)
                )
            actions = [state.action_records[i.id] for i in items if i.id in state.action_records]
            if actions:
                steps.append(action_step(name, kind, actions[-1]))
                continue
            starts = began(state, root.id, record, items, children)
            ends = [i.finished_at for i in items if i.finished_at] + [
                c.finished_at for c in children if c.finished_at
            ]
            errors = [i.error for i in items if i.error] + [
                step_error(c.error) if flows else c.error for c in children if c.error
            ]
            if record.carried_error:  # what its fallback answered in the run gone on from
                errors.append(record.carried_error)
            if record.error:  # a job's failure of the whole step (a parallel's deadline)
                errors.append(record.error)
            causes = [state.work_items.get(c.error_cause or "") for c in children]
            failed: list[Any] = [i for i in [*items, *causes] if i is not None and i.error_type]
            if children and not failed:  # a child failed by no item (a group's deadline in
                # it, a job's: conform h34 F1): the type its own record keeps
                failed = [c for c in children if c.error_type]
            status: str = record.state
            if len(items) == 1 and record.state != TaskState.COMPLETED and not record.error:
                status = step_status(items[0].state, kind)  # (not an on_error's answer, nor a
                # one-function race's deadline: its item canceled, the step failed)
            # a step canceled or failed part way (a for_each) has no output, whatever its
            # children recorded (h25-conform L1; newcomer h29 F1: a sibling item's result)
            ended_short = record.state in (TaskState.CANCELED, TaskState.FAILED)
            output = None if ended_short else root.outputs.get(name)
            error_type = record.error_type or (failed[-1].error_type if failed else None)
            error_type = error_type or record.carried_error_type or None
            if output is not None and caught_in(root, name) is not None:  # failed into its
                # fallback, which has not answered
                status, fallback = fell_back(state, root, name)
                output = None
                if fallback is not None and fallback.error:
                    errors.append(fallback.error)
                    error_type = fallback.error_type
            # carried: completed where the run went on from (its children too, all carried
            # over by a migration: conform h33 F2, a subflow read as run here)
            carried = not items and (
                all(all_carried(state, c.id) for c in children)
                if children
                else bool(record.carried_kind)
            )
            if carried:
                starts = ends = []
            steps.append(
                StepInfo(
                    id=name,
                    kind=kind,
                    status=status,
                    output=output,
                    error=errors[-1] if errors else None,
                    error_type=error_type,
                    attempts=0
                    if carried
                    else max((i.attempt for i in items), default=1 if children else 0),
                    started_at=min(starts) if starts else None,
                    finished_at=max(ends) if ends and record.state != TaskState.STARTED else None,
                    # the restarts that ran it again, not its functions' sum (chaos h31 F1)
                    redispatches=reruns(state, root.id, record, items, children),
                    event=events.get(name),
                    carried=carried,
                )
            )
        return condition_failed(steps, root) if flows else steps


def _status(snapshot: SnapshotRecord, root: WorkflowRecord) -> RunStatus:
    if root.state in FINAL_STATES:
        return RunStatus(root.state)
    if snapshot.status == BLOCKED:
        return RunStatus.BLOCKED
    if snapshot.status in ("running", "waiting"):
        return RunStatus(snapshot.status)
    return RunStatus.RUNNING  # a snapshot from before the status column said more

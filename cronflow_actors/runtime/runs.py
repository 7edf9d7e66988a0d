"""Runs of Cronflow-style workflows: trigger, wait, inspect, list, cancel, hooks.

A run is a root instance of a compiled ``Flow``; its id is the instance id. Runs are started and
changed through the instance directory (so they are as durable as any instance), read from the
last committed snapshot, and listed from the store's indexes a page at a time.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar

import msgspec

from cronflow_actors.calls import call_user
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.state_access import StateAccess
from cronflow_actors.errors import ConfigurationError, NotFoundError, RunFailedError
from cronflow_actors.flow.context import FlowContext, RunRef, flow_payload, unwrap_payload
from cronflow_actors.flow.secrets import NO_SECRETS, Secrets
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import SnapshotRecord
from cronflow_actors.messages.engine import (
    ActionRecord,
    InstanceState,
    WorkflowRecord,
    WorkItemRecord,
)
from cronflow_actors.messages.states import TaskState, WorkflowState, WorkItemState
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.queues import RunQueues
from cronflow_actors.store import Store

__all__ = [
    "Page",
    "RunFailedError",
    "RunInfo",
    "RunResult",
    "RunStatus",
    "Runs",
    "StepInfo",
    "decode_cursor",
    "encode_cursor",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_WAITING_KINDS = frozenset({"sleep", "delay", "event", "human", "pause"})
_FINAL = frozenset({"completed", "failed", "canceled"})
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
MAX_PAGE = 1000
PAGE_BYTES = 8 * 1024 * 1024
"""A page of runs holds their stored states up to about this size (a page of big runs is
shorter; its ``next_cursor`` goes on)."""


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: RunStatus
    output: Any = None
    error: str | None = None


class StepInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a run. A detached action (``kind="action"``) shows what became of it:
    ``dispatched`` until its handler reports, then ``completed`` or ``failed`` with its error;
    ``attempts`` counts its dispatches, ``redispatches`` those made after a restart found it
    still out; its times are its handler's. Its outcome never changes the run's status."""

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


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    workflow: str
    status: RunStatus
    payload: Any = None
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    """The class (``module.Name``) of the exception that failed the run, if a step raised."""
    steps: list[StepInfo] = msgspec.field(default_factory=list)
    created_at: float = 0.0
    finished_at: float | None = None
    replay_of: str | None = None
    """The run this one replays (``Runtime.replay``)."""
    workflow_name: str | None = None
    """The flow's ``define(name=...)`` (its id if none), while the flow is registered."""


class Page(list[T], Generic[T]):
    """One page of a listing: a list, and ``next_cursor`` to pass for the next page (None on
    the last page)."""

    def __init__(self, items: Iterable[T] = (), next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor


def encode_cursor(at: float, ident: str) -> str:
    """An opaque keyset cursor for (time, id)."""
    return base64.urlsafe_b64encode(msgspec.json.encode([at, ident])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (time, id) of a cursor made by ``encode_cursor``; ``ConfigurationError`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ident = msgspec.json.decode(raw, type=tuple[float, str])
    except (ValueError, TypeError, msgspec.DecodeError):
        raise ConfigurationError(
            "cursor", cursor, "a cursor returned by the previous page"
        ) from None
    return at, ident


def check_limit(limit: Any) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise ConfigurationError("limit", limit, f"a whole number from 1 to {MAX_PAGE}")
    return limit


StartRun = Callable[[str, Any, str | None, bool], Awaitable[str]]


class Runs:
    def __init__(
        self,
        *,
        catalog: FlowCatalog,
        registry: WorkflowRegistry,
        store: Store,
        clock: Clock,
        queues: RunQueues,
        start: StartRun,
        ready: Callable[[str], Awaitable[None]],
        read: Callable[[str], Awaitable[SnapshotRecord]],
        wait_workflow: Callable[[str], Awaitable[WorkflowInfo]],
        spawn: Callable[[Coroutine[Any, Any, None], str], Any],
        secrets: Mapping[str, Secrets] | None = None,
    ) -> None:
        self._secrets: Mapping[str, Secrets] = secrets if secrets is not None else {}
        self._catalog = catalog
        self._registry = registry
        self._store = store
        self._clock = clock
        self._queues = queues
        self._start = start
        self._ready = ready
        self._read = read
        self._wait_workflow = wait_workflow
        self._spawn = spawn

    # -- runs -------------------------------------------------------------------------------------

    async def trigger(
        self,
        workflow: str,
        payload: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        kind: str = "manual",
        instance_id: str | None = None,
        params: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
        replay_of: str | None = None,
    ) -> str:
        self._catalog.root(workflow)
        if instance_id is not None:
            check_instance_id(instance_id)
        await self._ready(workflow)  # a flow registered meanwhile: its queue is restored first
        stored = flow_payload(
            payload,
            headers=headers,
            kind=kind,
            params=params,
            raw_body=raw_body,
            replay_of=replay_of,
        )
        if self._queues.limited(workflow):
            return await self._queues.trigger(workflow, stored, instance_id)
        return await self._start(workflow, stored, instance_id, False)

    async def wait(self, run_id: str) -> RunResult:
        try:
            info = await self._wait_workflow(run_id)
        except NotFoundError:
            # queued under a concurrency limit (or started since): wait for its start, then
            # for its end; an id that was never started nor queued is still not found
            await self._queues.wait_started(run_id)
            info = await self._wait_workflow(run_id)
        return RunResult(
            id=run_id, status=RunStatus(str(info.state)), output=info.output, error=info.error
        )

    async def inspect(self, run_id: str) -> RunInfo:
        try:
            snapshot = await self._read(run_id)
        except NotFoundError:
            queued = await self._store.queued_run(run_id)
            if queued is None:
                raise NotFoundError("run", run_id) from None
            stored = msgspec.msgpack.decode(queued.payload)
            payload, _trigger = unwrap_payload(stored)
            return RunInfo(
                id=run_id,
                workflow=queued.workflow,
                status=RunStatus.WAITING,
                payload=payload,
                created_at=queued.queued_at,
                replay_of=_replay_of(stored),
                workflow_name=self._name(queued.workflow),
            )
        return self.info(snapshot)

    def info(self, snapshot: SnapshotRecord, *, steps: bool = True) -> RunInfo:
        """A run as ``inspect`` shows it, from its snapshot."""
        state = decode_state(snapshot.body)
        root = state.workflows.get(state.id)
        if root is None:
            raise NotFoundError("run", state.id)
        payload, _trigger = unwrap_payload(root.payload)
        cause = state.work_items.get(root.error_cause) if root.error_cause else None
        return RunInfo(
            id=root.id,
            workflow=root.name,
            status=_status(snapshot, root),
            payload=payload,
            output=root.output,
            error=root.error,
            error_type=cause.error_type if cause is not None else None,
            steps=self._steps(state, root) if steps else [],
            created_at=root.created_at,
            finished_at=root.finished_at,
            replay_of=_replay_of(root.payload),
            workflow_name=self._name(root.name),
        )

    def _name(self, workflow: str) -> str | None:
        flow = self._catalog.flows.get(workflow)
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
        state per page), from the store's indexes (steps left out)."""
        check_limit(limit)
        choices = [s.value for s in RunStatus]
        if status is not None and status not in choices:
            raise ConfigurationError("status", status, f"one of {choices}")
        before = decode_cursor(cursor) if cursor else None
        snapshots = await self._store.list_runs(
            workflow=workflow, status=status, limit=limit, before=before, max_bytes=PAGE_BYTES
        )
        runs = [self.info(snapshot, steps=False) for snapshot in snapshots]
        full = len(snapshots) == limit or sum(len(s.body) for s in snapshots) >= PAGE_BYTES
        last = snapshots[-1] if snapshots and full else None
        next_cursor = encode_cursor(last.created_at, last.instance_id) if last else None
        return Page(runs, next_cursor)

    def _kind(self, state: InstanceState, workflow_id: str, item: WorkItemRecord) -> str:
        if item.kind:
            return item.kind
        # a snapshot from before work items kept their kind: ask the definition, if it is
        # still registered (a run is shown without it, as "unknown")
        try:
            root = self._registry.get(state.workflow, state.version)
        except LookupError:
            return "unknown"
        spec = root.descendant(state.workflows[workflow_id].path)
        definition = spec.tasks[item.task].work_item
        return str(definition.kind) if definition is not None else "subflow"

    def _steps(self, state: InstanceState, root: WorkflowRecord) -> list[StepInfo]:
        steps = []
        for name, record in root.tasks.items():
            if record.generation == 0 or ":" in name or "#" in name:
                continue  # never reached, or a construct's own plumbing
            items = [state.work_items[i] for i in record.children if i in state.work_items]
            children = [state.workflows[i] for i in record.children if i in state.workflows]
            kind = self._kind(state, root.id, items[0]) if items else "subflow"
            actions = [state.action_records[i.id] for i in items if i.id in state.action_records]
            if actions:
                steps.append(_action_step(name, kind, actions[-1]))
                continue
            starts = [i.started_at for i in items if i.started_at] + [
                c.created_at for c in children
            ]
            ends = [i.finished_at for i in items if i.finished_at] + [
                c.finished_at for c in children if c.finished_at
            ]
            errors = [i.error for i in items if i.error] + [c.error for c in children if c.error]
            failed = [i for i in items if i.error_type]
            status: str = record.state
            if items and len(items) == 1:
                status = _step_status(items[0].state, kind)
            steps.append(
                StepInfo(
                    id=name,
                    kind=kind,
                    status=status,
                    output=root.outputs.get(name),
                    error=errors[-1] if errors else None,
                    error_type=failed[-1].error_type if failed else None,
                    attempts=sum(i.attempt for i in items) if items else len(children),
                    started_at=min(starts) if starts else None,
                    finished_at=max(ends) if ends and record.state != TaskState.STARTED else None,
                )
            )
        return steps

    # -- hooks -------------------------------------------------------------------------------------

    def finished(self, info: WorkflowInfo, body: bytes, raised: BaseException | None) -> None:
        """A root instance ended: free its place under the concurrency limit, and run its
        flow's hooks, once, off the transaction (the outcome's, then ``on_complete``).
        ``on_failure`` gets, as ``ctx.error``, the
        exception the failing step raised (``raised``), or else a ``RunFailedError`` built from
        the run's record (its class name and stored attributes)."""
        flow = self._catalog.flows.get(info.name)
        if flow is None or info.parent_id is not None:
            return
        self._queues.finished(info.name, info.id)
        hooks = flow.hooks
        outcome = {"completed": "on_success", "failed": "on_failure"}.get(info.state)
        names = [outcome, "on_complete"] if outcome else ["on_complete"]
        called = [(name, getattr(hooks, name)) for name in names if getattr(hooks, name)]
        if not called:
            return
        state = decode_state(body)
        root = state.workflows[info.id]
        error = None
        if info.state == WorkflowState.FAILED:
            error = raised if raised is not None else failure_of(state, root)
        ctx = self.context(root.name, root, last=root.output, error=error)

        async def call() -> None:
            for name, hook in called:  # the outcome's hook first, then on_complete
                try:
                    await call_user(hook, ctx)
                except Exception:
                    logger.exception("%s hook of run %s failed", name, info.id)

        self._spawn(call(), f"hooks {info.id}")

    def context(
        self, namespace: str, workflow: WorkflowRecord, *, last: Any, error: Any = None
    ) -> FlowContext:
        """A ``FlowContext`` for user code the runtime calls outside a step (hooks);
        ``namespace`` is the root workflow whose ``ctx.state`` it sees."""
        payload, trigger = unwrap_payload(workflow.payload)
        return FlowContext(
            payload=payload,
            last=last,
            steps=dict(workflow.outputs),
            run=RunRef(id=workflow.id, workflow_id=workflow.name, start_time=workflow.created_at),
            state=StateAccess(self._store, self._clock, f"workflow:{namespace}"),
            trigger=trigger,
            error=error,
            secrets=self._secrets.get(workflow.name, NO_SECRETS),
        )


def failure_of(state: InstanceState, root: WorkflowRecord) -> RunFailedError:
    """How a run failed, from its record: the message, and the failing exception's class and
    stored attributes when a step raised it."""
    item = state.work_items.get(root.error_cause) if root.error_cause else None
    if item is None:
        return RunFailedError(root.error or "failed")
    return RunFailedError(
        root.error or item.error or "failed", type=item.error_type, attributes=item.error_data
    )


def _replay_of(stored: Any) -> str | None:
    replayed = stored.get("replay_of") if isinstance(stored, dict) else None
    return replayed if isinstance(replayed, str) else None


def check_instance_id(instance_id: Any) -> None:
    if not isinstance(instance_id, str) or not _ID.fullmatch(instance_id):
        raise ConfigurationError("instance_id", instance_id, "1-100 letters, digits, '-' or '_'")


def _status(snapshot: SnapshotRecord, root: WorkflowRecord) -> RunStatus:
    if root.state in _FINAL:
        return RunStatus(root.state)
    if snapshot.status in ("running", "waiting"):
        return RunStatus(snapshot.status)
    return RunStatus.RUNNING  # a snapshot from before the status column said more


def _action_step(name: str, kind: str, record: ActionRecord) -> StepInfo:
    return StepInfo(
        id=name,
        kind=kind,
        status=record.status,
        error=record.error,
        error_type=record.error_type,
        attempts=record.attempts,
        started_at=record.started_at or record.dispatched_at,
        finished_at=record.finished_at,
        redispatches=record.redispatches,
    )


def _step_status(item_state: str, kind: str) -> str:
    if item_state == WorkItemState.STARTED and kind in _WAITING_KINDS:
        return "waiting"
    if item_state == WorkItemState.STARTED:
        return "running"
    if item_state == WorkItemState.INITIALIZED:
        return "pending"
    return item_state

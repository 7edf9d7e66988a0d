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

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.state_access import StateAccess
from cronflow_actors.engine.transaction import call_user
from cronflow_actors.errors import ConfigurationError, NotFoundError, RunFailedError
from cronflow_actors.flow.context import FlowContext, RunRef, flow_payload, unwrap_payload
from cronflow_actors.kernel import Clock
from cronflow_actors.messages import SnapshotRecord
from cronflow_actors.messages.engine import ActionRecord, InstanceState, WorkflowRecord
from cronflow_actors.runtime.catalog import FlowCatalog
from cronflow_actors.runtime.queues import ConcurrencyQueues
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

_WAITING_KINDS = frozenset({"sleep", "event", "human"})
_FINAL = frozenset({"completed", "failed", "canceled"})
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
MAX_PAGE = 1000


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
        queues: ConcurrencyQueues,
        start: StartRun,
        ready: Callable[[str], Awaitable[None]],
        read: Callable[[str], Awaitable[SnapshotRecord]],
        wait_workflow: Callable[[str], Awaitable[WorkflowInfo]],
        spawn: Callable[[Coroutine[Any, Any, None], str], Any],
    ) -> None:
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
    ) -> str:
        self._catalog.root(workflow)
        if instance_id is not None:
            check_instance_id(instance_id)
        await self._ready(workflow)  # a flow registered meanwhile: its queue is restored first
        stored = flow_payload(payload, headers=headers, kind=kind, params=params)
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
            payload, _trigger = unwrap_payload(msgspec.msgpack.decode(queued.payload))
            return RunInfo(
                id=run_id,
                workflow=queued.workflow,
                status=RunStatus.WAITING,
                payload=payload,
                created_at=queued.queued_at,
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
        )

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RunInfo]:
        """Runs newest first, ``limit`` at a time, from the store's indexes (steps left out)."""
        check_limit(limit)
        choices = [s.value for s in RunStatus]
        if status is not None and status not in choices:
            raise ConfigurationError("status", status, f"one of {choices}")
        before = decode_cursor(cursor) if cursor else None
        snapshots = await self._store.list_runs(
            workflow=workflow, status=status, limit=limit, before=before
        )
        runs = [self.info(snapshot, steps=False) for snapshot in snapshots]
        last = snapshots[-1] if len(snapshots) == limit else None
        next_cursor = encode_cursor(last.created_at, last.instance_id) if last else None
        return Page(runs, next_cursor)

    def _kind(self, state: InstanceState, workflow_id: str, task: str) -> str:
        root = self._registry.get(state.workflow, state.version)
        spec = root.descendant(state.workflows[workflow_id].path)
        definition = spec.tasks[task].work_item
        return str(definition.kind) if definition is not None else "subflow"

    def _steps(self, state: InstanceState, root: WorkflowRecord) -> list[StepInfo]:
        steps = []
        for name, record in root.tasks.items():
            if record.generation == 0 or ":" in name or "#" in name:
                continue  # never reached, or a construct's own plumbing
            items = [state.work_items[i] for i in record.children if i in state.work_items]
            children = [state.workflows[i] for i in record.children if i in state.workflows]
            kind = self._kind(state, root.id, name) if items else "subflow"
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
            status = record.state
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
                    finished_at=max(ends) if ends and record.state != "started" else None,
                )
            )
        return steps

    # -- hooks -------------------------------------------------------------------------------------

    def finished(self, info: WorkflowInfo, body: bytes, raised: BaseException | None) -> None:
        """A root instance ended: free its place under the concurrency limit, and run its
        flow's hook, once, off the transaction. ``on_failure`` gets, as ``ctx.error``, the
        exception the failing step raised (``raised``), or else a ``RunFailedError`` built from
        the run's record (its class name and stored attributes)."""
        flow = self._catalog.flows.get(info.name)
        if flow is None or info.parent_id is not None:
            return
        self._queues.finished(info.name, info.id)
        hook = flow.hooks.on_success if info.state == "completed" else None
        if info.state == "failed":
            hook = flow.hooks.on_failure
        if hook is None:
            return
        state = decode_state(body)
        root = state.workflows[info.id]
        error = None
        if info.state == "failed":
            error = raised if raised is not None else failure_of(state, root)
        ctx = self.context(root.name, root, last=root.output, error=error)

        async def call() -> None:
            try:
                await call_user(hook, ctx)
            except Exception:
                logger.exception("hook of run %s failed", info.id)

        self._spawn(call(), f"hook {info.id}")

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
            run=RunRef(id=workflow.id, workflow_id=workflow.name),
            state=StateAccess(self._store, self._clock, f"workflow:{namespace}"),
            trigger=trigger,
            error=error,
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
    if item_state == "started" and kind in _WAITING_KINDS:
        return "waiting"
    if item_state == "started":
        return "running"
    if item_state == "initialized":
        return "pending"
    return item_state

"""Runs of Cronflow-style workflows: trigger, wait, inspect, cancel, resume, events, hooks.

A run is a root instance of a compiled ``Flow``; its id is the instance id. Everything here reads
or changes instances through the ``Runtime``'s net calls, so it is as durable as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.state_access import StateAccess
from cronflow_actors.engine.transaction import call_user
from cronflow_actors.errors import EngineError, InstanceExistsError, NotFoundError
from cronflow_actors.flow.builder import Flow
from cronflow_actors.flow.context import FlowContext, RunRef, flow_payload, unwrap_payload
from cronflow_actors.messages.engine import InstanceState, WorkflowRecord

if TYPE_CHECKING:
    from cronflow_actors.runtime.runtime import Runtime

__all__ = ["PausedRun", "ResumeError", "RunInfo", "RunResult", "RunStatus", "Runs", "StepInfo"]

logger = logging.getLogger(__name__)

_WAITING_KINDS = frozenset({"sleep", "event", "human"})
_QUEUES = "cronflow:queues"
"""Key-value namespace of the runs waiting for a place under a flow's concurrency limit."""


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
    id: str
    kind: str
    status: str
    output: Any = None
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    workflow: str
    status: RunStatus
    payload: Any = None
    output: Any = None
    error: str | None = None
    steps: list[StepInfo] = msgspec.field(default_factory=list)
    created_at: float = 0.0
    finished_at: float | None = None


class PausedRun(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    run_id: str
    workflow: str
    step: str
    description: str = ""
    metadata: Mapping[str, Any] = msgspec.field(default_factory=dict)
    paused_at: float | None = None
    expires_at: float | None = None
    last: Any = None


class ResumeError(EngineError, LookupError):
    """``resume`` was given a token that is unknown, or whose pause has already ended."""

    def __init__(self, token: str, reason: str, *, ended: bool = False) -> None:
        self.token = token
        self.ended = ended
        """True when the token is known but its pause is over (a conflict, not a miss)."""
        super().__init__(f"cannot resume {token!r}: {reason}")


class RunFailedError(EngineError):
    """What ``ctx.error`` holds in an ``on_failure`` hook."""


class Runs:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.flows: dict[str, Flow] = {}
        """Every flow this runtime knows, subflows included."""
        self.roots: set[str] = set()
        """The flows registered themselves (the ones that can be triggered)."""
        self._active: dict[str, set[str]] = {}
        self._queues: dict[str, list[dict[str, Any]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._started: dict[str, asyncio.Future[None]] = {}

    def register(self, flow: Flow) -> Any:
        spec = flow.build()
        for child in _subflows(flow):
            self.flows.setdefault(child.id, child)
        self.flows[flow.id] = flow
        self.roots.add(flow.id)
        return spec

    # -- runs -------------------------------------------------------------------------------------

    async def trigger(
        self,
        workflow: str,
        payload: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        kind: str = "manual",
        instance_id: str | None = None,
    ) -> str:
        if workflow not in self.roots:
            known = sorted(self.roots)
            raise NotFoundError("flow", workflow, f"this runtime (registered flows: {known})")
        stored = flow_payload(payload, headers=headers, kind=kind)
        limit = self.flows[workflow].concurrency
        if limit is None:
            return await self.rt.start_workflow(workflow, stored, instance_id=instance_id)
        async with self._lock(workflow):
            active = self._active.setdefault(workflow, set())
            queue = self._queues.setdefault(workflow, [])
            if len(active) < limit and not queue:
                run_id = await self.rt.start_workflow(workflow, stored, instance_id=instance_id)
                active.add(run_id)
                return run_id
            if instance_id is not None:
                await self.rt._check_new_id(instance_id)
                if any(entry["id"] == instance_id for entry in queue):
                    raise InstanceExistsError(instance_id)
            run_id = instance_id or self.rt._new_id()
            queue.append({"id": run_id, "payload": stored, "queued_at": self.rt.clock.now()})
            await self._save_queue(workflow)
            self._started[run_id] = asyncio.get_running_loop().create_future()
            return run_id

    def _lock(self, workflow: str) -> asyncio.Lock:
        return self._locks.setdefault(workflow, asyncio.Lock())

    async def _save_queue(self, workflow: str) -> None:
        now = self.rt.clock.now()
        await self.rt.store.kv_set(_QUEUES, workflow, self._queues.get(workflow, []), now=now)

    async def restore(self, workflow: str) -> None:
        """After recovery: count the runs still active and start queued ones while there is room."""
        flow = self.flows[workflow]
        if flow.concurrency is None:
            return
        active = self._active.setdefault(workflow, set())
        for state in await self._unfinished():
            if state.workflow == workflow:
                active.add(state.id)
        stored = await self.rt.store.kv_get(_QUEUES, workflow, now=self.rt.clock.now(), default=[])
        self._queues[workflow] = list(stored)
        loop = asyncio.get_running_loop()
        for entry in self._queues[workflow]:
            self._started.setdefault(entry["id"], loop.create_future())
        await self._drain(workflow)

    async def _drain(self, workflow: str) -> None:
        limit = self.flows[workflow].concurrency or 0
        async with self._lock(workflow):
            active = self._active.setdefault(workflow, set())
            queue = self._queues.setdefault(workflow, [])
            while queue and len(active) < limit:
                entry = queue[0]
                # InstanceExistsError: started before a crash; only its removal was lost
                with contextlib.suppress(InstanceExistsError):
                    await self.rt.start_workflow(
                        workflow, entry["payload"], instance_id=entry["id"]
                    )
                active.add(entry["id"])
                queue.pop(0)
                await self._save_queue(workflow)
                started = self._started.pop(entry["id"], None)
                if started is not None and not started.done():
                    started.set_result(None)

    async def wait(self, run_id: str, limit: float | None = None) -> RunResult:
        async def finished() -> Any:
            started = self._started.get(run_id)
            if started is not None:  # queued behind the flow's concurrency limit
                await asyncio.shield(started)
            return await self.rt.wait_workflow(run_id)

        info = await asyncio.wait_for(finished(), limit)
        return RunResult(
            id=run_id, status=RunStatus(str(info.state)), output=info.output, error=info.error
        )

    async def inspect(self, run_id: str) -> RunInfo:
        for workflow, queue in self._queues.items():
            for entry in queue:
                if entry["id"] == run_id:
                    payload, _trigger = unwrap_payload(entry["payload"])
                    return RunInfo(
                        id=run_id,
                        workflow=workflow,
                        status=RunStatus.WAITING,
                        payload=payload,
                        created_at=entry["queued_at"],
                    )
        return self.info(await self.rt._state(run_id))

    def info(self, state: InstanceState) -> RunInfo:
        """A run as ``inspect`` shows it, from its instance state."""
        root = state.workflows.get(state.id)
        if root is None:
            raise NotFoundError("run", state.id)
        payload, _trigger = unwrap_payload(root.payload)
        return RunInfo(
            id=root.id,
            workflow=root.name,
            status=self.status(state, root),
            payload=payload,
            output=root.output,
            error=root.error,
            steps=self._steps(state, root),
            created_at=root.created_at,
            finished_at=root.finished_at,
        )

    async def recent(
        self, *, workflow: str | None, status: str | None, limit: int, offset: int
    ) -> list[RunInfo]:
        """Recent runs, newest first, filtered by workflow and status (each snapshot is read
        once)."""
        window = None if status else limit + offset
        snapshots = await self.rt.store.list_snapshots(workflow=workflow, limit=window)
        runs = [self.info(decode_state(snapshot.body)) for snapshot in snapshots]
        if status:
            runs = [run for run in runs if run.status == status]
        return runs[offset : offset + limit]

    def status(self, state: InstanceState, root: WorkflowRecord) -> RunStatus:
        if root.state in ("completed", "failed", "canceled"):
            return RunStatus(root.state)
        busy = False
        waiting = False
        for item in state.work_items.values():
            if item.state != "started":
                continue
            if self._kind(state, item.workflow_id, item.task) in _WAITING_KINDS:
                waiting = True
            else:
                busy = True
        if busy:
            return RunStatus.RUNNING
        # nothing runs: waiting on a sleep, an event, a human, or a retry's timer
        return RunStatus.WAITING if waiting or state.jobs else RunStatus.RUNNING

    def _kind(self, state: InstanceState, workflow_id: str, task: str) -> str:
        root = self.rt.registry.get(state.workflow, state.version)
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
            starts = [i.started_at for i in items if i.started_at] + [
                c.created_at for c in children
            ]
            ends = [i.finished_at for i in items if i.finished_at] + [
                c.finished_at for c in children if c.finished_at
            ]
            errors = [i.error for i in items if i.error] + [c.error for c in children if c.error]
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
                    attempts=sum(i.attempt for i in items) if items else len(children),
                    started_at=min(starts) if starts else None,
                    finished_at=max(ends) if ends and record.state != "started" else None,
                )
            )
        return steps

    async def cancel(self, run_id: str) -> None:
        await self.rt.cancel_workflow(run_id)

    # -- human in the loop -------------------------------------------------------------------------

    async def resume(self, token: str, payload: Any = None) -> None:
        """Complete the pause ``token`` with ``payload`` (``approved``, ``reason`` and
        ``approved_by`` are read from it when it is a dict)."""
        try:
            state = await self.rt._state(token)
        except NotFoundError:
            state = None
        item = state.work_items.get(token) if state is not None else None
        if state is None or item is None:
            raise ResumeError(token, "no run is paused with this token")
        flow = self.flows.get(state.workflows[item.workflow_id].name)
        if flow is None or item.task not in flow.humans:
            raise ResumeError(token, "it is not the token of a human_in_the_loop step")
        if item.state != "started":
            raise ResumeError(token, f"the pause has already ended ({item.state})", ended=True)
        data = payload if isinstance(payload, dict) else {}
        record = {
            "approved": bool(data.get("approved", False)),
            "reason": data.get("reason", "resumed"),
            "approved_by": data.get("approved_by", "human"),
            "status": "resumed",
            "timed_out": False,
            "payload": payload,
            "token": token,
        }
        await self.rt.complete_work_item(token, record)

    async def list_paused(self) -> list[PausedRun]:
        paused = []
        for state in await self._unfinished():
            for item in state.work_items.values():
                if item.state != "started":
                    continue
                workflow = state.workflows[item.workflow_id]
                flow = self.flows.get(workflow.name)
                if flow is None or item.task not in flow.humans:
                    continue
                node = flow.humans[item.task]
                expires = (
                    item.started_at + node.timeout if node.timeout and item.started_at else None
                )
                paused.append(
                    PausedRun(
                        token=item.id,
                        run_id=state.id,
                        workflow=workflow.name,
                        step=item.task,
                        description=node.description,
                        metadata=node.metadata,
                        paused_at=item.started_at,
                        expires_at=expires,
                        last=workflow.last,
                    )
                )
        return paused

    # -- events ------------------------------------------------------------------------------------

    async def publish_event(self, name: str, payload: Any = None) -> list[str]:
        """Start every flow listening with ``on_event(name)`` and wake every step waiting for
        ``name`` whose filter accepts the payload. Returns the ids of the runs started."""
        started = []
        event = {"name": name, "payload": payload, "timestamp": self.rt.clock.now()}
        for flow in list(self.flows.values()):
            if name in flow.events:
                run_payload = (
                    {"event": event, **payload} if isinstance(payload, dict) else {"event": event}
                )
                started.append(await self.trigger(flow.id, run_payload, kind="event"))
        for state in await self._unfinished():
            for item in list(state.work_items.values()):
                if item.state != "started":
                    continue
                listener = self.flows.get(state.workflows[item.workflow_id].name)
                node = listener.waits.get(item.task) if listener is not None else None
                if node is None or node.event != name:
                    continue
                if node.filter is not None:
                    try:
                        workflow = state.workflows[item.workflow_id]
                        ctx = self._context(state.workflow, workflow, last=workflow.last)
                        if not await call_user(node.filter, payload, ctx):
                            continue
                    except Exception:
                        logger.exception(
                            "the filter of %s raised; the event is not delivered", item.id
                        )
                        continue
                try:
                    await self.rt.complete_work_item(item.id, payload)
                except EngineError:
                    continue  # it stopped waiting meanwhile
        return started

    async def _unfinished(self) -> list[InstanceState]:
        states = []
        for actor in list(self.rt._live.values()):
            body = actor.committed_body
            if body is not None:
                state = decode_state(body)
                root = state.workflows.get(state.id)
                if root is not None and root.state not in ("completed", "failed", "canceled"):
                    states.append(state)
        return states

    def _context(
        self, namespace: str, workflow: WorkflowRecord, *, last: Any, error: Any = None
    ) -> FlowContext:
        """A ``FlowContext`` for user code the runtime calls outside a step (event filters,
        hooks); ``namespace`` is the root workflow whose ``ctx.state`` it sees."""
        payload, trigger = unwrap_payload(workflow.payload)
        return FlowContext(
            payload=payload,
            last=last,
            steps=dict(workflow.outputs),
            run=RunRef(id=workflow.id, workflow_id=workflow.name),
            state=StateAccess(self.rt.store, self.rt.clock, f"workflow:{namespace}"),
            trigger=trigger,
            error=error,
        )

    # -- hooks -------------------------------------------------------------------------------------

    def finished(self, root: WorkflowRecord) -> None:
        """A root instance finished: free its place under the concurrency limit, and run its
        flow's hook, once, off the transaction."""
        flow = self.flows.get(root.name)
        if flow is None or root.parent_id is not None:
            return
        if flow.concurrency is not None:
            self._active.setdefault(root.name, set()).discard(root.id)
            self.rt.system.create_task(self._drain(root.name), name=f"queue {root.name}")
        hook = flow.hooks.on_success if root.state == "completed" else None
        if root.state == "failed":
            hook = flow.hooks.on_failure
        if hook is None:
            return
        error = RunFailedError(root.error or "failed") if root.state == "failed" else None
        ctx = self._context(root.name, root, last=root.output, error=error)

        async def call() -> None:
            try:
                await call_user(hook, ctx)
            except Exception:
                logger.exception("hook of run %s failed", root.id)

        self.rt.system.create_task(call(), name=f"hook {root.id}")


def _step_status(item_state: str, kind: str) -> str:
    if item_state == "started" and kind in _WAITING_KINDS:
        return "waiting"
    if item_state == "started":
        return "running"
    if item_state == "initialized":
        return "pending"
    return item_state


def _subflows(flow: Flow) -> list[Flow]:
    from cronflow_actors.flow.builder import SubflowNode, _walk

    found = []
    for node in _walk(flow._root):
        if isinstance(node, SubflowNode) and isinstance(node.flow, Flow):
            found.append(node.flow)
            found.extend(_subflows(node.flow))
    return found

"""A flow's hooks, called when one of its runs ends: the outcome's (``on_success`` or
``on_failure``), then ``on_complete``; off the transaction, after the end is durable, and at
least once (``engine/endings.py``: the end records them owed until they have been called, so a
restart calls them again). A hook that raises is logged; it changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import msgspec

from cronflow_actors.calls import BlockingRunner, InOrder
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.context import WorkflowInfo
from cronflow_actors.engine.report_failure import say_failed
from cronflow_actors.engine.state_access import StateAccess
from cronflow_actors.errors import RunFailedError
from cronflow_actors.flow.compile import WAITING_KINDS, is_user_step
from cronflow_actors.flow.context import (
    FlowContext,
    RunRef,
    failed_step,
    step_error,
    trigger_info,
)
from cronflow_actors.flow.envelope import open_envelope
from cronflow_actors.flow.options import Hooks
from cronflow_actors.flow.secrets import NO_SECRETS, Secrets
from cronflow_actors.kernel import Clock
from cronflow_actors.messages.engine import InstanceState, WorkflowRecord
from cronflow_actors.messages.states import WorkflowState, WorkItemState
from cronflow_actors.store import Store

__all__ = ["FlowEndHooks", "RunHooks", "failure_of", "say_run_failed"]

Spawn = Callable[[Coroutine[Any, Any, None], str], Any]
"""``spawn(coroutine, name)``: run it as a task of the runtime."""


class RunHooks:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        spawn: Spawn,
        run_blocking: BlockingRunner | None = None,
        in_order: InOrder | None = None,
        secrets: Mapping[str, Secrets] | None = None,
        admitted: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._admitted = admitted
        """Awaited before each end hook begins (``ActorSystem.wait_admitted``): a process paused
        past its lease calls none of the hooks its ended runs owe, which the process that took
        over calls (they stay owed), as it begins none of the steps it had committed."""
        self._run_blocking = run_blocking
        """Where a plain-``def`` hook runs (the blocking pool), so it cannot stall the loop."""
        self._in_order = in_order if in_order is not None else InOrder()
        """A run's callbacks in order: its ``on_start`` (after a commit) before its outcome's."""
        self._store = store
        self._clock = clock
        self._spawn = spawn
        self._secrets: Mapping[str, Secrets] = secrets if secrets is not None else {}

    def finished(
        self,
        hooks: Hooks,
        info: WorkflowInfo,
        body: bytes,
        raised: BaseException | None,
        done: Callable[[], None] | None = None,
    ) -> None:
        """A run (a root instance of a flow with ``hooks``) ended: run its hooks off the
        transaction (the outcome's, then ``on_complete``), then ``done()`` (not if the calls
        were cut: a stop). ``on_failure`` gets, as ``ctx.error``, the exception the failing
        step raised (``raised``), or else a ``RunFailedError`` built from the run's record
        (its class name and stored attributes)."""
        called = hooks_for(hooks, str(info.state))
        if not called:
            if done is not None:
                done()
            return
        state = decode_state(body, info.id)
        root = state.workflows[info.id]
        error = None
        if info.state == WorkflowState.FAILED:
            error = raised if raised is not None else failure_of(state, root)
        ctx = self.context(root.name, root, last=root.output, error=error)
        ctx.run = msgspec.structs.replace(
            ctx.run,
            status=str(info.state),
            error=step_error(root.error) or root.error,
            unfinished=steps_ended(state, (WorkItemState.CANCELED, WorkItemState.FAILED)),
            completed=steps_ended(state, (WorkItemState.COMPLETED,)),
        )
        self._spawn(self._call(called, ctx, info.id, done), f"hooks {info.id}")

    async def _call(
        self,
        called: list[tuple[str, Any]],
        ctx: FlowContext,
        run_id: str,
        done: Callable[[], None] | None,
    ) -> None:
        for name, hook in called:  # the outcome's hook first, then on_complete
            what = f"{name} hook of run {run_id}"
            if self._admitted is not None:
                await self._admitted()
            await self._in_order.call(run_id, hook, ctx, what=what, run_blocking=self._run_blocking)
        if done is not None:
            done()

    def context(
        self, namespace: str, workflow: WorkflowRecord, *, last: Any, error: Any = None
    ) -> FlowContext:
        """A ``FlowContext`` for user code the runtime calls outside a step (hooks);
        ``namespace`` is the root workflow whose ``ctx.state`` it sees."""
        envelope = open_envelope(workflow.payload)
        return FlowContext(
            payload=envelope.payload,
            last=last,
            steps=dict(workflow.outputs),
            run=RunRef(id=workflow.id, workflow_id=workflow.name, start_time=workflow.created_at),
            state=StateAccess(self._store, self._clock, f"workflow:{namespace}"),
            trigger=trigger_info(envelope),
            error=error,
            secrets=self._secrets.get(workflow.name, NO_SECRETS),
        )


def hooks_for(hooks: Hooks, state: str) -> list[tuple[str, Any]]:
    """The hooks a run that ended in ``state`` calls, by name, in order."""
    # read as fields (no getattr, no table): every run that ends asks, most have none
    called: list[tuple[str, Any]] = []
    if state == WorkflowState.COMPLETED and hooks.on_success:
        called.append(("on_success", hooks.on_success))
    elif state == WorkflowState.FAILED and hooks.on_failure:
        called.append(("on_failure", hooks.on_failure))
    if hooks.on_complete:
        called.append(("on_complete", hooks.on_complete))
    return called


class FlowEndHooks:
    """The engine's ``EndHooks`` (``engine/endings.py``): the hooks of the registered flows'
    runs, found by the run's flow."""

    def __init__(self, compiled: Mapping[str, Any], run_hooks: RunHooks) -> None:
        self._compiled = compiled
        """Flow name -> its compiled flow (the catalog's, which registrations add to)."""
        self._run_hooks = run_hooks

    def owed(self, workflow: str, state: str) -> bool:
        compiled = self._compiled.get(workflow)
        return compiled is not None and bool(hooks_for(compiled.hooks, state))

    def call(
        self,
        info: WorkflowInfo,
        body: bytes,
        raised: BaseException | None,
        done: Callable[[], None],
    ) -> None:
        compiled = self._compiled.get(info.name)
        if compiled is None:  # its flow is not registered here any more: nothing to call
            done()
            return
        self._run_hooks.finished(compiled.hooks, info, body, raised, done)


def steps_ended(state: InstanceState, ended: tuple[WorkItemState, ...]) -> dict[str, list[str]]:
    """The user steps of the run ``state`` (its subflows' and items' runs too) whose work items'
    handlers began and ended in one of the states ``ended`` (completed; canceled mid-call or
    failed: unfinished): step -> their keys. Not a wait, a pause or a sleep, which ran nothing
    under a key (the verifier's h28 N2), nor an item a migration or a resume carried over,
    which ran in the run before, under its key (conform h32 F2: listed under this run's)."""
    found: dict[str, list[str]] = {}
    for item in state.work_items.values():
        began = item.started_at is not None and item.kind not in WAITING_KINDS
        if item.state in ended and began and not item.carried and is_user_step(item.task):
            found.setdefault(item.task, []).append(item.kept_key or item.id)
    return found


def failure_of(state: InstanceState, root: WorkflowRecord) -> RunFailedError:
    """How a run failed, from its record: the message, and the failing exception's class and
    stored attributes when a step raised it."""
    item = state.work_items.get(root.error_cause) if root.error_cause else None
    said = step_error(root.error)
    if item is None:  # (a condition's or a router's raise: its class, conform h32 F5)
        return RunFailedError(said or "failed", type=root.error_type)
    return RunFailedError(
        said or item.error or "failed", type=item.error_type, attributes=item.error_data
    )


def say_run_failed(info: WorkflowInfo, *, flow: bool) -> None:
    """The WARNING of a run that failed with no handler's raise behind it (a wait's timeout, or
    its own): a flow's in the words ``inspect`` shows (``step 'x': ...``), with its ``step``."""
    if flow:
        say_failed(info.id, info.name, step_error(info.error), failed_step(info.error))
    else:
        say_failed(info.id, info.name, info.error, None)

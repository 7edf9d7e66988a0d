"""``ctx`` for Cronflow-style handlers, built from the engine's context of a work item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["FlowContext", "RunRef", "TriggerInfo", "flow_payload", "unwrap_payload"]


class RunRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    workflow_id: str
    start_time: float = 0.0
    """When the run started (seconds since the epoch, the runtime's clock)."""


class TriggerInfo(msgspec.Struct, frozen=True, kw_only=True):
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    kind: str = "manual"
    params: Mapping[str, str] = msgspec.field(default_factory=dict)
    """A webhook's path parameters (``/orders/:id`` -> ``{"id": ...}``)."""


def flow_payload(
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    kind: str = "manual",
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """How a flow run's trigger is stored as the workflow payload."""
    stored = {"payload": payload, "headers": dict(headers or {}), "kind": kind}
    if params:
        stored["params"] = dict(params)
    return stored


def unwrap_payload(stored: Any) -> tuple[Any, TriggerInfo]:
    if isinstance(stored, dict) and "payload" in stored and "headers" in stored:
        trigger = TriggerInfo(
            headers=stored["headers"],
            kind=stored.get("kind", "manual"),
            params=stored.get("params", {}),
        )
        return stored["payload"], trigger
    return stored, TriggerInfo()


class FlowContext:
    """What a step, action, condition or hook gets.

    ``payload`` (the trigger's payload), ``last`` (output of the last step that ran on this
    path; actions do not change it), ``steps[id]`` (the output of step ``id``), ``step_name``
    (the id of the step, condition or loop being run), ``run.id``, ``run.workflow_id`` and
    ``run.start_time``, ``state`` (persistent key-value state of this workflow:
    ``await ctx.state.get/set/incr/delete``), ``trigger.headers``, ``attempt`` (1 on the first
    try), ``idempotency_key`` (stable across retries and restarts), ``error`` (in ``on_error``
    and ``on_failure``).
    """

    __slots__ = (
        "attempt",
        "error",
        "idempotency_key",
        "last",
        "payload",
        "run",
        "state",
        "step_name",
        "steps",
        "trigger",
    )

    def __init__(
        self,
        *,
        payload: Any,
        last: Any,
        steps: Mapping[str, Any],
        run: RunRef,
        state: Any,
        trigger: TriggerInfo,
        attempt: int = 1,
        idempotency_key: str = "",
        error: BaseException | None = None,
        step_name: str = "",
    ) -> None:
        self.payload = payload
        self.step_name = step_name
        self.last = last
        self.steps = steps
        self.run = run
        self.state = state
        self.trigger = trigger
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.error = error

    @classmethod
    def of(cls, engine_ctx: Any, step_ids: frozenset[str]) -> FlowContext:
        """From an engine ctx (handler, router or activity) of a flow's workflow."""
        payload, trigger = unwrap_payload(engine_ctx.payload)
        workflow = engine_ctx.parent
        outputs = engine_ctx.outputs or {}
        return cls(
            payload=payload,
            last=engine_ctx.last,
            steps={k: v for k, v in outputs.items() if k in step_ids},
            run=RunRef(
                id=workflow.id if workflow else "",
                workflow_id=workflow.name if workflow else "",
                start_time=workflow.created_at if workflow else 0.0,
            ),
            state=engine_ctx.state,
            trigger=trigger,
            attempt=engine_ctx.attempt or 1,
            idempotency_key=engine_ctx.idempotency_key or "",
            step_name=_step_name(engine_ctx),
        )

    @classmethod
    def of_run(cls, engine_ctx: Any) -> FlowContext:
        """From the engine ctx of a workflow activity: the run is ``engine_ctx.workflow``."""
        payload, trigger = unwrap_payload(engine_ctx.payload)
        run = engine_ctx.workflow
        return cls(
            payload=payload,
            last=engine_ctx.last,
            steps={},
            run=RunRef(id=run.id, workflow_id=run.name, start_time=run.created_at),
            state=engine_ctx.state,
            trigger=trigger,
        )

    def __repr__(self) -> str:
        return f"<FlowContext run={self.run.id} step={self.step_name} last={self.last!r}>"


def _step_name(engine_ctx: Any) -> str:
    """The user's id for the element: a step's task, or the ``if_``/``while_`` whose condition
    runs (the compiler names its own tasks ``if:<id>``, ``while:<id>``)."""
    task = engine_ctx.task
    if task is None:
        return ""
    name: str = task.name
    return name.rsplit(":", 1)[-1]

"""``ctx`` for Cronflow-style handlers, built from the engine's context of a work item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from cronflow_actors.flow.secrets import NO_SECRETS, Secrets

__all__ = ["FlowContext", "RunRef", "TriggerInfo", "flow_payload", "unwrap_payload"]


class RunRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    workflow_id: str


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
    replay_of: str | None = None,
) -> dict[str, Any]:
    """How a flow run's trigger is stored as the workflow payload (``replay_of``: the run it
    replays)."""
    stored = {"payload": payload, "headers": dict(headers or {}), "kind": kind}
    if params:
        stored["params"] = dict(params)
    if replay_of is not None:
        stored["replay_of"] = replay_of
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
    path; actions do not change it), ``steps[id]`` (the output of step ``id``), ``run.id`` and
    ``run.workflow_id``, ``state`` (persistent key-value state of this workflow:
    ``await ctx.state.get/set/incr/delete``), ``trigger.headers``, ``attempt`` (1 on the first
    try), ``idempotency_key`` (stable across retries and restarts), ``error`` (in ``on_error``
    and ``on_failure``), ``secrets`` (the flow's ``define(secrets=...)``, read-only, never
    persisted).
    """

    __slots__ = (
        "attempt",
        "error",
        "idempotency_key",
        "last",
        "payload",
        "run",
        "secrets",
        "state",
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
        secrets: Secrets = NO_SECRETS,
    ) -> None:
        self.payload = payload
        self.last = last
        self.steps = steps
        self.run = run
        self.state = state
        self.trigger = trigger
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.error = error
        self.secrets = secrets

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
            ),
            state=engine_ctx.state,
            trigger=trigger,
            attempt=engine_ctx.attempt or 1,
            idempotency_key=engine_ctx.idempotency_key or "",
            secrets=engine_ctx.secrets or NO_SECRETS,
        )

    def __repr__(self) -> str:
        return f"<FlowContext run={self.run.id} last={self.last!r}>"

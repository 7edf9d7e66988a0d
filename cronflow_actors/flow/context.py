"""``ctx`` for Cronflow-style handlers, built from the engine's context of a work item."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NoReturn

import msgspec

from cronflow_actors.errors import CancelRunRequested, RunFailedError, class_name
from cronflow_actors.flow.envelope import TriggerEnvelope, flow_payload, read_envelope
from cronflow_actors.flow.secrets import NO_SECRETS, Secrets
from cronflow_actors.net.spec import is_caught

__all__ = [
    "FlowContext",
    "PollContext",
    "RunRef",
    "TriggerInfo",
    "flow_payload",
    "step_error",
    "trigger_info",
    "unwrap_payload",
    "user_step",
]


_NONE: Mapping[str, list[str]] = MappingProxyType({})
"""No steps (a default made once: a run's ref is made for every step)."""


class RunRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    """The run's id; in a step of a subflow or of an item's flow, that part's (``<run>.f8``),
    its name ``workflow_id`` the child flow's: ``root_id`` is the run's."""
    workflow_id: str
    start_time: float = 0.0
    """When the run started (seconds since the epoch, the runtime's clock)."""
    status: str = ""
    """In a run's end hooks, how it ended: ``completed``, ``failed`` or ``canceled`` ("" in a
    step: the run goes on)."""
    error: str | None = None
    """In a run's end hooks, its recorded error: why it failed, or the reason it was canceled
    (a canceled run's hook has no ``ctx.error``: it did not fail)."""
    unfinished: Mapping[str, list[str]] = _NONE
    """In a run's end hooks, the steps (of the run and its subflows' and items' runs) whose
    work began and did not complete, a cancel or the run's timeout cutting it or it failing:
    step id -> the idempotency keys it ran under. What a compensation undoes by key: a step cut
    while its plain ``def`` still runs in its thread may finish after the hook is called."""
    completed: Mapping[str, list[str]] = _NONE
    """In a run's end hooks, the steps (of the run and its subflows' and items' runs: a charge
    inside a subflow, which ``ctx.steps`` does not show) whose work completed in this run: step
    id -> the idempotency keys they ran under (conform h31 F1). Steps a migration or a resume
    carried over completed in the run before, under that run's keys."""

    @property
    def root_id(self) -> str:
        """The id of the run this step belongs to, which ``inspect`` and the API take: ``id``
        itself, but in a subflow's or an item's step (conform h32 F8: ``<run>.f8`` is refused
        there, a part of a run)."""
        return self.id.split(".", 1)[0]


class TriggerInfo(msgspec.Struct, frozen=True, kw_only=True):
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    kind: str = "manual"
    params: Mapping[str, str] = msgspec.field(default_factory=dict)
    """A webhook's path parameters (``/orders/:id`` -> ``{"id": ...}``)."""
    raw_body: bytes | None = None
    """The exact body of the request that started the run, for a webhook with
    ``parse_raw_body=True`` (else None); kept with the run, so it survives a restart."""
    query: Mapping[str, str] = msgspec.field(default_factory=dict)
    """A webhook's query parameters (``/oauth/callback?code=...`` -> ``{"code": ...}``)."""
    replay_of: str | None = None
    """The run this one replays (``Runtime.replay``), if it does: its trigger is that run's,
    headers and all, and its payload that run's or the replay's own."""


def unwrap_payload(stored: Any) -> tuple[Any, TriggerInfo]:
    """A stored flow payload's user payload and trigger (``flow/envelope.py``)."""
    envelope = read_envelope(stored)
    if envelope is None:
        return stored, TriggerInfo()
    return envelope.payload, trigger_info(envelope)


def trigger_info(envelope: TriggerEnvelope) -> TriggerInfo:
    """``ctx.trigger`` of a run started with ``envelope``."""
    return TriggerInfo(
        headers=envelope.headers,
        kind=envelope.kind,
        params=envelope.params,
        raw_body=envelope.raw_body,
        query=envelope.query,
        replay_of=envelope.replay_of,
    )


class PollContext(msgspec.Struct, frozen=True, kw_only=True):
    """What an ``on_poll`` function gets: ``workflow_id``, ``state`` (the flow's persistent
    key-value state, the same as its runs' ``ctx.state``: a place for a cursor), ``now`` (the
    tick's time, epoch seconds, on the runtime's clock) and ``interval`` (seconds)."""

    workflow_id: str
    state: Any
    now: float
    interval: float


class FlowContext:
    """What a step, action, condition or hook gets.

    ``payload`` (the trigger's payload), ``last`` (output of the last step that ran on this
    path; actions do not change it), ``steps[id]`` (the output of step ``id``), ``step_name``
    (the id of the step, condition or loop being run), ``run.id``, ``run.workflow_id`` and
    ``run.start_time``, ``state`` (persistent key-value state of this workflow:
    ``await ctx.state.get/set/incr/delete`` in an ``async def`` step, the same calls without
    ``await`` in a plain ``def`` step or hook, which runs on a pool thread; a condition runs on
    the loop: an ``async def`` one awaits them), ``trigger.headers``, ``attempt`` (1 on the first
    try), ``idempotency_key`` (stable across retries and restarts), ``redispatches`` (how many
    times a restart ran this step again: it had started and its end was not recorded, so it may
    have done its work before; 0 in the first process), ``error`` (in ``on_error``
    and ``on_failure``) and ``error_type`` (its class's qualified name,
    ``"builtins.KeyError"``, whether ``error`` is the raised exception or a record of it),
    ``secrets`` (the flow's ``define(secrets=...)``, read-only, never persisted).
    """

    __slots__ = (
        "_published",
        "attempt",
        "error",
        "idempotency_key",
        "last",
        "payload",
        "redispatches",
        "run",
        "secrets",
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
        secrets: Secrets = NO_SECRETS,
        redispatches: int = 0,
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
        self.redispatches = redispatches
        self.error = error
        self.secrets = secrets
        self._published: dict[str, int] | None = None

    @property
    def error_type(self) -> str | None:
        """The qualified class name of ``error`` (None when there is none): the raised
        exception's class, or the class a ``RunFailedError`` record names, so one fallback
        serves a step (which gets the exception) and a group (which gets its record)."""
        error = self.error
        if error is None:
            return None
        if isinstance(error, RunFailedError) and error.type:
            return error.type
        return class_name(error)

    def publish_event(
        self, name: str, payload: Any = None, *, idempotency_key: str | None = None
    ) -> Any:
        """Publish event ``name`` from a step, as ``rt.publish_event`` does (Cronflow's
        ``publishEvent``): start the flows listening, wake the steps waiting (this run's
        too). Its idempotency key is by default the step's own with the event's name and which
        of this attempt's publishes of it this is, so a step run again (a retry, a restart, a
        resume) publishes once: its first attempt's payload, a later attempt that sends another
        answered as the first was; ``idempotency_key`` to name it yourself (then, as for
        ``rt.publish_event``, another payload under it is refused). ``await`` it in an ``async
        def`` step; a plain ``def`` step gets the ``PublishResult`` itself."""
        if not self.state.publishes:  # (the reviewer's h28 L2: it asked for a key, then failed)
            raise ValueError(
                f"ctx.publish_event({name!r}) works in a run's steps and actions, not in a hook "
                "or a poll: publish the event from a step, or with rt.publish_event"
            )
        key = idempotency_key
        if key is None:
            if not self.idempotency_key:
                raise ValueError(
                    f"publish_event({name!r}) outside a step has no key of its own: give it "
                    "idempotency_key=..., or publish from a step"
                )
            counts = self._published = self._published or {}
            nth = counts[name] = counts.get(name, -1) + 1
            key = f"{self.idempotency_key}:{name}:{nth}"
        # with the step's own key, the first attempt's publish stands: a later one that sends
        # another payload (a timestamp) is answered as that one was, not refused for good (the
        # verifier's h28 N1), nor published again (the second verifier's h28: heard twice)
        return self.state.publish_event(name, payload, key, once=idempotency_key is None)

    def cancel(self, reason: str = "") -> NoReturn:
        """End this run as canceled, with ``reason`` as its error (Cronflow's
        ``ctx.cancel(reason)``): from a step, it raises ``CancelRunRequested``, which the
        step's handler lets through (it is no failure: no retry, no fallback, no circuit
        breaker counts it); the run's steps still open are canceled, as by ``rt.cancel``. In an
        action (detached) it is the action's failure only: the run goes on."""
        raise CancelRunRequested(reason)

    def __getattr__(self, name: str) -> Any:
        """Only for a name ``ctx`` lacks: an error that says what to write instead."""
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _BUILDING:
            hint = (
                "a for_each or batch function (item, ctx) runs once per item; to build a flow "
                "for each item, name its second parameter 'flow': lambda item, flow: "
                "flow.step(...)"
            )
        elif name == "sleep":
            hint = "a durable wait is a node of the flow: .sleep(id, duration) between steps"
        else:
            names = sorted([*(n for n in self.__slots__ if not n.startswith("_")), "error_type"])
            hint = f"ctx has {', '.join(names)}, cancel(reason) and publish_event(name, payload)"
        raise AttributeError(f"'FlowContext' object has no attribute {name!r}: {hint}")

    @classmethod
    def of(cls, engine_ctx: Any, step_ids: frozenset[str]) -> FlowContext:
        """From an engine ctx (handler, router or activity) of a flow's workflow."""
        # unwrap_payload(engine_ctx.payload) and a copy of the outputs, in one decoding: the
        # envelope copied straight into its type (a payload stored bare is not one: it is the
        # user's payload; the outputs, by task name, always decode)
        try:
            envelope, outputs = engine_ctx.payload_and_outputs_as(TriggerEnvelope)
        except msgspec.ValidationError:
            payload, trigger = engine_ctx.payload, TriggerInfo()
            outputs = engine_ctx.outputs or {}
        else:
            payload, trigger = envelope.payload, trigger_info(envelope)
        workflow, task = engine_ctx.parent, engine_ctx.task
        steps = StepOutputs()
        marked = engine_ctx.caught  # (None: recorded before it was kept; told by shape)
        for step, output in outputs.items():  # (a comprehension: a call)
            if step in step_ids and not is_caught(step, output, marked):
                steps[step] = output  # (not a construct's failure its fallback answers)
        # what __init__ does, written out: keywords to a call are a dict each time (3.11), and
        # this runs for every step
        ctx = cls.__new__(cls)
        ctx.payload = payload
        # the user's id for the element: a step's task, or the if_/while_ whose condition runs,
        # the step whose delay or fallback this is
        ctx.step_name = "" if task is None else user_step(task.name)
        ctx.last = engine_ctx.last
        ctx.steps = steps
        if workflow:
            ctx.run = RunRef(
                id=workflow.id, workflow_id=workflow.name, start_time=workflow.created_at
            )
        else:
            ctx.run = RunRef(id="", workflow_id="")
        ctx.state = engine_ctx.state
        ctx.trigger = trigger
        ctx.attempt = engine_ctx.attempt or 1
        ctx.idempotency_key = engine_ctx.idempotency_key or ""
        ctx.redispatches = engine_ctx.redispatches
        ctx._published = None
        ctx.error = None
        ctx.secrets = engine_ctx.secrets or NO_SECRETS
        return ctx

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
            secrets=engine_ctx.secrets or NO_SECRETS,
        )

    def __repr__(self) -> str:
        return f"<FlowContext run={self.run.id} step={self.step_name} last={self.last!r}>"


class StepOutputs(dict[str, Any]):
    """``ctx.steps``: the outputs of the steps that ran, by id; a step that has none (a typo,
    or one that has not run on this path) is a ``KeyError`` that lists those that have."""

    __slots__ = ()

    def __missing__(self, step: str) -> Any:
        raise KeyError(f"no step {step!r} has an output here (steps that have: {sorted(self)})")


@functools.lru_cache(maxsize=4096)  # asked for every step's ctx, of a few names
def user_step(task: str) -> str:
    """The user's id for a task of a flow's net: the task's name, but for the tasks the
    compiler names itself (``if:<id>``, ``while:<id>``, ``delay:<id>``, ``<id>:on_error``,
    ...), the id of the element they belong to."""
    before, colon, after = task.partition(":")
    if not colon:
        return task
    return after if before in _PREFIXES else before


_PREFIXES = frozenset({"if", "end_if", "while", "end_while", "delay"})

_ENGINE_WORDS = re.compile(r"task '([^'\\]*)': (?:(?:work item|child workflow) '[^']*': )?")
"""What the engine writes before the error of a task that failed its workflow (through a work
item or a child workflow, or on its own: a ``parallel``'s deadline)."""

_CONDITION_WORDS = re.compile(r"router of task '((?:if|while):[^'\\]*)': ")
"""What the engine writes before the error of an ``if_``'s or ``while_``'s condition."""


def step_error(error: str | None) -> str | None:
    """A flow run's error as its user reads it: each ``task 'x': work item '<id>': `` the net
    engine wrote before it (``child workflow`` for a subflow) is ``step 'x': ``, with the
    step's own id (``step 'sub': step 'charge': ValueError: ...``). Only the chain at the
    start is the engine's: the exception's own message is left as it was."""
    if not error:
        return error
    said, at = [], 0
    while found := _ENGINE_WORDS.match(error, at):
        said.append(f"step {user_step(found.group(1))!r}: ")
        at = found.end()
    if found := _CONDITION_WORDS.match(error, at):  # (conform h31 F6: the engine's words)
        said.append(f"step {user_step(found.group(1))!r}: its condition raised ")
        at = found.end()
    return "".join(said) + error[at:] if said else error


def failed_step(error: str | None) -> str | None:
    """The step a flow run's ``error`` (as the engine wrote it) says it failed at: the first
    task of its chain, by the user's id (None: no step's)."""
    found = _ENGINE_WORDS.match(error or "") or _CONDITION_WORDS.match(error or "")
    return user_step(found.group(1)) if found else None


def failed_condition(error: str | None) -> tuple[str, str] | None:
    """The ``if_`` or ``while_`` whose condition raised and failed the run, if its ``error``
    (as the engine wrote it) says so: its kind (``if``, ``while``) and id."""
    found = _CONDITION_WORDS.match(error or "")
    if found is None:
        return None
    kind, _, element = found.group(1).partition(":")
    return kind, element


_BUILDING = frozenset(
    {"step", "action", "if_", "parallel", "race", "while_", "for_each", "batch", "subflow"}
    | {"wait_for_event", "human_in_the_loop", "pause", "delay", "log", "on_error", "retry"}
)
"""What a flow builder has and a ctx has not: a per-item function mistaken for a builder."""

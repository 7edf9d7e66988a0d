"""What user code gets as ``ctx``: activities, routers, policies, action callbacks and handlers.

Everything a context lets user code *change* is recorded as an intent and carried out by the
engine right after the user function returns: ``ctx.work_item.initialize(payload)`` returns the
new work item's id at once, and the item is initialized (its ``on_initialized`` run, its
auto-start queued) when the activity is done. So plain ``def`` activities and ``async def`` ones
behave the same, and an activity that raises changes nothing (its transaction is rolled back).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import msgspec

from cronflow_actors.engine.migration_sources import MigrationSources
from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemState, WorkItemVerb
from cronflow_actors.errors import (
    AutoTriggerAlreadySetError,
    SchedulingNotAllowedError,
)
from cronflow_actors.messages import decoder_for, encode, plain_copy
from cronflow_actors.messages.engine import Principal, Stats
from cronflow_actors.net.marking import Route

__all__ = [
    "ChildWorkflows",
    "Context",
    "MigrationSources",
    "RouteBuilder",
    "TaskInfo",
    "Transition",
    "WorkItemHandle",
    "WorkItemInfo",
    "WorkItems",
    "WorkflowInfo",
    "not_called",
]


def not_called(_ctx: Any) -> None:
    """What a terminate calls in place of each activity (``Transaction.terminating``): none of
    the instance's code runs."""


class WorkflowInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A read-only view of a workflow instance (root or child)."""

    id: str
    name: str
    version: str = ""
    state: WorkflowState
    payload: Any = None
    output: Any = None
    error: str | None = None
    parent_id: str | None = None
    parent_task: str | None = None
    created_at: float = 0.0
    """When the instance was initialized (the clock's time)."""


class TaskInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    generation: int
    state: TaskState


class WorkItemInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A read-only view of a work item, as ``Runtime.work_items()`` returns it."""

    id: str
    name: str
    task: str
    generation: int
    workflow_id: str
    state: WorkItemState
    payload: Any = None
    output: Any = None
    error: str | None = None
    attempt: int = 0
    token: str | None = None
    """The resume token while it waits for a human (``WaitSpec(kind="pause")``)."""


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    """The change a policy is asked about: ``prev_state`` -> ``next_state`` of a child (a work
    item, or a composite task's child workflow), ``child_id``. A policy is also asked once as
    its task starts, with ``started -> completed`` and no ``child_id`` (Tasquencer's
    ``maybeComplete``): a "first completion wins" policy reads ``child_id`` to tell them apart
    (h42 net F1: it completed the task at its first start)."""

    prev_state: str | None
    next_state: str
    child_id: str | None = None


class RouteBuilder:
    """``ctx.route`` in a router: name where the token goes."""

    __slots__ = ()

    @staticmethod
    def to_task(name: str) -> Route:
        """Route to a successor task (through the condition the task -> task flow made)."""
        return Route("task", name)

    @staticmethod
    def to_condition(name: str) -> Route:
        """Route to an output condition."""
        return Route("condition", name)


ROUTE = RouteBuilder()

Scheduler = Callable[[float, Any], str]


class WorkItems:
    """``ctx.work_item`` in a task's activities: initialize work items of this task's generation
    and list them. In ``on_work_item_state_changed`` it also says which item changed how."""

    def __init__(
        self,
        initialize: Callable[[Any], str] | None,
        ids: Callable[[], list[str]],
        *,
        id: str | None = None,
        prev_state: str | None = None,
        next_state: str | None = None,
        info: WorkItemInfo | None = None,
    ) -> None:
        self._initialize = initialize
        self._ids = ids
        self.id = id
        self.prev_state = prev_state
        self.next_state = next_state
        self.info = info
        """The work item that changed (in ``on_work_item_state_changed``)."""

    def initialize(self, payload: Any = None) -> str:
        """Initialize a work item of this task; returns its id. Its ``on_initialized`` runs and
        its auto-start (if any) is queued once the activity returns."""
        if self._initialize is None:
            raise SchedulingNotAllowedError("a teardown activity (work items cannot be added)")
        return self._initialize(payload)

    def ids(self) -> list[str]:
        """Ids of this task's work items in its current generation."""
        return self._ids()


class ChildWorkflows:
    """``ctx.workflow`` in a composite task's activities: initialize child workflows and list
    them. For a dynamic composite task, ``initialize(name, payload)`` picks the child type."""

    def __init__(
        self,
        initialize: Callable[[str | None, Any], str] | None,
        ids: Callable[[], list[str]],
        *,
        dynamic: bool,
        id: str | None = None,
        name: str | None = None,
        prev_state: str | None = None,
        next_state: str | None = None,
        info: WorkflowInfo | None = None,
    ) -> None:
        self._initialize = initialize
        self._ids = ids
        self._dynamic = dynamic
        self.id = id
        self.name = name
        self.prev_state = prev_state
        self.next_state = next_state
        self.info = info
        """In ``on_workflow_state_changed``: the child that changed (its payload, output)."""

    def initialize(self, *args: Any) -> str:
        """``initialize(payload=None)``; for a dynamic composite task
        ``initialize(name, payload=None)``. Returns the child workflow's id."""
        if self._initialize is None:
            raise SchedulingNotAllowedError("a teardown activity (workflows cannot be added)")
        if self._dynamic:
            if not args or not isinstance(args[0], str):
                raise TypeError(
                    "a dynamic composite task initializes a named child: "
                    "ctx.workflow.initialize(name, payload=None)"
                )
            return self._initialize(args[0], args[1] if len(args) > 1 else None)
        if len(args) > 1:
            raise TypeError("ctx.workflow.initialize takes one payload argument")
        return self._initialize(None, args[0] if args else None)

    def ids(self) -> list[str]:
        """Ids of this task's child workflows in its current generation."""
        return self._ids()


class WorkItemHandle:
    """``ctx.work_item`` in a work item's own activities and actions.

    ``on_initialized`` may call ``start(payload)``; ``on_started`` one of ``complete(payload)``,
    ``fail(payload)``, ``cancel(payload)``. Each records an auto-trigger that the engine runs once
    the activity returns; a second call in the same activity is an error.
    """

    def __init__(
        self,
        info: WorkItemInfo,
        allowed: frozenset[str] = frozenset(),
        doing: WorkItemVerb | None = None,
    ) -> None:
        self.info = info
        self._doing = doing
        """In an action's callback: the action's own move, which the engine makes once the
        callback returns (asked for there, it is that move: nothing more)."""
        self.id = info.id
        self.name = info.name
        self.payload = info.payload
        self._allowed = allowed
        self.trigger: tuple[WorkItemVerb, Any] | None = None

    def _set(self, action: WorkItemVerb, payload: Any) -> None:
        if action == self._doing:
            return  # (Tasquencer's transition functions are idempotent: a port may call it)
        if self._doing is not None:
            raise SchedulingNotAllowedError(
                f"the {self._doing} action's callback",
                f"ctx.work_item.{action}() cannot be asked from the {self._doing} action's "
                f"callback of work item {self.id!r}: the engine makes the {self._doing} once the "
                "callback returns, and a callback sets no other move (on_started may, with "
                "ctx.work_item.complete()/fail()/cancel())",
            )
        if action not in self._allowed:
            allowed = sorted(map(str, self._allowed)) or "none"
            raise SchedulingNotAllowedError(
                f"this activity for work item {self.id!r}: auto-trigger {str(action)!r} "
                f"(auto-triggers here: {allowed})"
            )
        if self.trigger is not None:
            raise AutoTriggerAlreadySetError(self.id, str(self.trigger[0]), str(action))
        self.trigger = (action, payload)

    def start(self, payload: Any = None) -> None:
        self._set(WorkItemVerb.START, payload)

    def complete(self, payload: Any = None) -> None:
        self._set(WorkItemVerb.COMPLETE, payload)

    def fail(self, payload: Any = None) -> None:
        self._set(WorkItemVerb.FAIL, payload)

    def cancel(self, payload: Any = None) -> None:
        self._set(WorkItemVerb.CANCEL, payload)


@cache
def _with_outputs(kind: Any) -> msgspec.msgpack.Decoder[tuple[Any, dict[str, Any]]]:
    """The decoder of ``(payload as kind, outputs)`` (``Context.payload_and_outputs_as``)."""
    return msgspec.msgpack.Decoder(tuple[kind, dict[str, Any]])


class Context:
    """The ``ctx`` user code receives. Which attributes are set depends on where it runs:

    - ``workflow``: the workflow (workflow activities) or ``ChildWorkflows`` (composite tasks);
    - ``task``: ``TaskInfo`` (task activities, routers, policies);
    - ``work_item``: ``WorkItems`` (task activities), ``WorkItemHandle`` (work item activities,
      actions) or ``WorkItemInfo`` (handlers);
    - ``parent``: the enclosing workflow's ``WorkflowInfo`` (and ``parent_task`` for a child
      workflow's activities);
    - ``payload`` and ``outputs``: the workflow's initialize payload and the latest output of each
      of its tasks, and ``last`` its last output; ``output``: the completing task's (routers);
    - ``transition`` and ``stats`` (policies), ``route`` (routers), ``principal`` and
      ``is_internal`` (actions), ``attempt``, ``idempotency_key``, ``redispatches`` (handlers);
    - ``secrets``: the secrets of the workflow it runs in, when the runtime has some for it;
    - ``execution_mode`` (``"normal"`` or ``"fast_forward"``) and ``migrating_from``: in an
      instance a migration started, the old instance's workflows (``MigrationSources``).
    """

    __slots__ = (
        "_copies",
        "_last",
        "_outputs",
        "_payload",
        "_scheduler",
        "_where",
        "admitted",
        "after_commit",
        "answered_error",
        "answered_told",
        "answered_type",
        "attempt",
        "caught",
        "clock",
        "error",
        "execution_mode",
        "failure_answered",
        "idempotency_key",
        "is_internal",
        "migrating_from",
        "output",
        "parent",
        "parent_task",
        "principal",
        "redispatches",
        "route",
        "run_blocking",
        "secrets",
        "state",
        "stats",
        "task",
        "transition",
        "work_item",
        "workflow",
    )

    def __init__(
        self,
        *,
        where: str,
        scheduler: Scheduler | None = None,
        workflow: Any = None,
        task: TaskInfo | None = None,
        work_item: Any = None,
        parent: WorkflowInfo | None = None,
        parent_task: TaskInfo | None = None,
        payload: Any = None,
        outputs: Mapping[str, Any] | None = None,
        last: Any = None,
        output: Any = None,
        transition: Transition | None = None,
        stats: Stats | None = None,
        principal: Principal | None = None,
        is_internal: bool = True,
        attempt: int = 0,
        idempotency_key: str | None = None,
        redispatches: int = 0,
    ) -> None:
        self._where = where
        self._scheduler = scheduler
        self.workflow = workflow
        self.task = task
        self.work_item = work_item
        self.parent = parent
        self.parent_task = parent_task
        self._copies: dict[str, Any] = {}
        self._payload = payload
        self._outputs = outputs if outputs is not None else {}
        self._last = last
        self.output = output
        self.transition = transition
        self.stats = stats
        self.principal = principal
        self.is_internal = is_internal
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.redispatches = redispatches
        self.route = ROUTE
        self.error: Any = None
        self.caught: list[str] | None = None
        """The tasks of its workflow whose output is a failure they caught (``WorkflowRecord.
        caught``): a flow's ``ctx.steps`` leaves those out."""
        self.answered_error: str | None = None
        """A handler's: the error its step's ``on_error`` answered (``Type: message``), if so; a
        router's of a task a migration or resume carried: the error its fallback answered in
        the run it came from (a loop its fallback ended is not gone round again)."""
        self.answered_type: str | None = None
        """A handler's: the class (``module.Name``) of the error its ``on_error`` answered."""
        self.answered_told = False
        """A handler's: the failure its ``on_error`` answered was logged where it happened (a
        group's function, a loop's body): its answer is not logged again."""
        self.failure_answered = False
        """A handler's: its task catches its failure (an ``on_error`` answers it, a net's
        ``catch()``): logged as a warning, not as an error."""
        self.state: Any = None
        self.secrets: Any = None
        self.run_blocking: Any = None
        self.clock: Any = None
        """The runtime's clock (handlers): ``await ctx.clock.sleep(seconds)``."""
        self.admitted: Any = None
        """A handler's: ``await ctx.admitted()`` before it calls user code again within its
        attempt (an action's next try, a fallback, an ``on_retry``): at once while the
        runtime's lease is renewed; a process paused past it waits for its heartbeat's word,
        and never calls it (``CancelledError``) once the lease is lost (crash h41 F1)."""
        self.after_commit: Any = None
        """``ctx.after_commit(fn)``: call ``fn()`` once this change is durable (activities):
        at most once, after the run's earlier callbacks; a plain ``fn`` on the blocking pool's
        thread (not the loop's: it may block), an ``async def`` one on the loop."""
        self.execution_mode = "normal"
        """``"fast_forward"`` in the call that a migration starts an instance with, and in its
        task migrators for its life (spec section 9); a later call's activities see
        ``"normal"``, as any call's."""
        self.migrating_from: Any = None
        """In a migrated instance: the old instance's workflows (``MigrationSources``)."""

    # The instance's own values, copied the first time user code reads them: what a handler or
    # activity does to them never reaches the recorded state (a step's output, the payload).

    @property
    def payload(self) -> Any:
        """The workflow's initialize payload (a copy)."""
        return self._copied("payload", self._payload)

    @payload.setter
    def payload(self, value: Any) -> None:
        self._payload = value
        self._copies.pop("payload", None)

    def payload_as(self, kind: Any) -> Any:
        """The initialize payload as ``kind`` (a msgspec type), copied: ``payload`` converted
        to ``kind``, in one decoding (``msgspec.ValidationError`` if it is not one)."""
        return decoder_for(kind).decode(encode(self._payload))

    def payload_and_outputs_as(self, kind: Any) -> tuple[Any, dict[str, Any]]:
        """``payload_as(kind)`` and ``outputs``, copied in one decoding (a flow's step reads
        both: one round trip through msgpack for the two, not one each)."""
        return _with_outputs(kind).decode(encode((self._payload, self._outputs)))

    @property
    def outputs(self) -> Mapping[str, Any]:
        """The latest output of each of the workflow's tasks (a copy)."""
        copied: Mapping[str, Any] = self._copied("outputs", self._outputs)
        return copied

    @outputs.setter
    def outputs(self, value: Mapping[str, Any]) -> None:
        self._outputs = value
        self._copies.pop("outputs", None)

    @property
    def last(self) -> Any:
        """The workflow's last output (a copy)."""
        return self._copied("last", self._last)

    @last.setter
    def last(self, value: Any) -> None:
        self._last = value
        self._copies.pop("last", None)

    def _copied(self, name: str, value: Any) -> Any:
        if value is None or type(value) in (str, int, float, bool):
            return value
        copies = self._copies
        if name not in copies:
            copies[name] = plain_copy(value)  # (the state's: plain already)
        return copies[name]

    def register_scheduled(self, delay: float, job: Any) -> str:
        """Run ``job`` (from ``net.jobs``) ``delay`` seconds from now as an internal call, unless
        the element whose activity registered it finishes (completes, fails, is canceled, reset
        or disabled) first. Durable: it survives a restart. Returns the job's timer id."""
        if self._scheduler is None:
            raise SchedulingNotAllowedError(self._where)
        if not math.isfinite(delay):  # NaN: no due time the store can keep; inf: never due
            raise ValueError(f"register_scheduled's delay must be a finite number, got {delay!r}")
        return self._scheduler(delay, job)

    def __repr__(self) -> str:
        return f"<Context {self._where}>"

"""NetSpec: the immutable description of a YAWL-style net, built once and validated once.

Conditions are places, tasks are transitions. Flows run condition -> task and task -> condition;
a task -> task flow gets an implicit condition named ``"{from}__to__{to}"``. A NetSpec holds the
user's callables (routers, handlers, activities, policies) as opaque values: this layer never
calls them, it only describes structure and computes markings. A task's work is a
``WorkItemSpec`` (how it runs: a handler, detached, a wait, or manual), and its custom actions
are ``ActionSpec``s (schema, policy, callback).
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from enum import StrEnum
from typing import Any

import msgspec

from cronflow_actors.net.durations import parse_duration

__all__ = [
    "CAUGHT",
    "MAX_OUTSIDE_STATE",
    "MAX_VERSION",
    "MAX_WORK_ITEMS",
    "ActionSpec",
    "CaughtFailure",
    "ConditionSpec",
    "Descendants",
    "JoinType",
    "NetSpec",
    "SplitType",
    "TaskKind",
    "TaskSpec",
    "WaitSpec",
    "WorkItemSpec",
    "caught",
    "caught_in",
    "event_waits",
    "implicit_condition_name",
    "is_caught",
    "item_kind",
    "pause_details",
    "read_caught",
    "version_problem",
]


class SplitType(StrEnum):
    """How a completing task produces tokens: on every output, exactly one, or a chosen set."""

    AND = "and"
    XOR = "xor"
    OR = "or"


class JoinType(StrEnum):
    """When a task is enabled: every input marked, any input marked, or the OR-join rule."""

    AND = "and"
    XOR = "xor"
    OR = "or"


class TaskKind(StrEnum):
    TASK = "task"
    COMPOSITE = "composite"
    DYNAMIC_COMPOSITE = "dynamic_composite"
    DUMMY = "dummy"


class WaitSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """What a started work item waits for, kept as a durable wake-up row while it waits, so the
    instance need not stay in memory.

    ``kind="event"``: the item completes with the payload of an event named ``event`` that
    ``accept(ctx, payload)`` (None: every one) accepts; ``accept`` runs on the instance's turn,
    and it and ``check`` see who published the event as ``ctx.principal`` (None: the process's
    own publish), the place to keep an event to the net's callers.
    ``kind="pause"``: the item waits for a human; starting it draws a random resume token
    (``WorkItemInfo.token``), and ``resume(token, ...)`` completes it. ``details(ctx)`` returns a
    dict that listings of the waits show (description, metadata); ``timeout`` (seconds, or a
    duration such as ``"1d"``) says when the wait expires in those listings (the expiry itself
    is the front end's job).
    """

    kind: str
    event: str = ""
    accept: Any = None
    check: Any = None
    """``check(ctx, payload)`` of an accepted event: True, or what is wrong with it (the item
    then fails with that, instead of completing)."""
    details: Any = None
    timeout: float | str | None = None
    """Seconds once made: a duration given as a string is read then (``ValueError`` for one
    that is no duration, where it used to fail every start of the item: newcomer h38 F2)."""
    notify: Any = None
    """``notify(ctx)``, called once the wait is durable, off the instance's turn (a plain
    function on the blocking pool), to tell someone (a pause's ``on_pause``): at least once, as
    the commit that opens the wait records it owed until the call ends, and a restart that finds
    it owed calls it again while the same wait is open. An error it raises is logged."""

    def __post_init__(self) -> None:
        if self.timeout is not None:
            seconds = parse_duration(self.timeout, f"the {self.kind} wait's timeout")
            msgspec.structs.force_setattr(self, "timeout", seconds)

    def hears(self, event: str) -> bool:
        """Whether an item waiting on this waits for ``event``."""
        return self.kind == "event" and self.event == event


class ActionSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A custom action: the external boundary of one transition.

    ``schema`` is the msgspec type the payload is converted to (None: no payload), ``policy``
    decides who may call it (None: any authenticated caller), ``callback(ctx, payload)`` runs
    before the transition and can veto it by raising.
    """

    schema: Any = None
    policy: Any = None
    callback: Any = None


class WorkItemSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A work item type. With a ``handler`` it is automated: started and completed by the engine
    with the handler's result (failed with its exception); without one it waits for actions."""

    name: str
    handler: Any = None
    actions: Mapping[str, ActionSpec] = msgspec.field(default_factory=dict)
    activities: Mapping[str, Any] = msgspec.field(default_factory=dict)
    kind: str = "task"
    """What it is to its front end (the Cronflow API marks steps, sleeps, waits, ...)."""
    sets_last: bool = True
    """Whether its output becomes the workflow's ``last`` output when it completes."""
    detached: bool = False
    """Completed at once when started; the handler then runs on its own, its outcome ignored."""
    durable: bool = True
    """For a detached item: run its handler again after a crash if it had not finished."""
    wait: WaitSpec | None = None
    """What it waits for while started (an event, a human), as a durable wake-up row."""
    records_as: str | None = None
    """A task whose output its output also becomes (a fallback standing in for that task)."""


def item_kind(spec: WorkItemSpec) -> str:
    """What a work item of ``spec`` is to metrics and views: its kind, or for one of a net's
    plain types that waits (``wait=``), what it waits for (``event``, ``pause``): its wait was
    counted as a step's work (newcomer h32 F2). Its declared kind stays its definition's."""
    wait = spec.wait
    return wait.kind if wait is not None and spec.kind == "task" else spec.kind


def event_waits(spec: NetSpec) -> dict[str, str]:
    """The event each task of ``spec`` waits for, by task: those whose work item is typed
    ``wait=WaitSpec(kind="event")``; those of its composite tasks' nets are theirs (what a
    net's instance awaits in all: ``awaited``)."""
    found = {}
    for name, task in spec.tasks.items():
        wait = task.work_item.wait if task.work_item is not None else None
        if wait is not None and wait.kind == "event":
            found[name] = wait.event
    return found


def awaited(spec: NetSpec) -> list[str]:
    """The events the work items of ``spec`` (and of the nets its composite tasks run) wait for."""
    found: set[str] = set()
    seen: set[int] = set()
    todo = [spec]
    while todo:
        net = todo.pop()
        if id(net) in seen:
            continue
        seen.add(id(net))
        found.update(event_waits(net).values())
        todo.extend(child for task in net.tasks.values() for child in task.subworkflows)
    return sorted(found)


CAUGHT = ":caught"
"""The key of the failure record a catching task completes with (``caught``)."""


class CaughtFailure(msgspec.Struct, frozen=True, kw_only=True):
    """How a catching task failed: the message, and the failing exception's class and stored
    attributes when a handler raised it."""

    error: str
    error_type: str | None = None
    error_data: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        """As the task's output (plain values, stored with the instance)."""
        return {CAUGHT: msgspec.to_builtins(self)}


def caught(output: Any) -> CaughtFailure | None:
    """The failure a catching task completed with, as its router's ``ctx.output`` gives it (a
    ``CaughtFailure``, which no payload or output can be), or None for a real output."""
    return output if type(output) is CaughtFailure else None


def is_caught(name: str, output: Any, marked: Container[str] | None) -> bool:
    """Whether task ``name``'s ``output`` is the failure it caught. Which tasks did is kept
    beside their outputs (``marked``: a ``WorkflowRecord.caught``, or what a migration or a
    resume carried of it), never told by an output's shape, which any payload or step may have
    (conform h30 F2: a published event ran a saga's compensation); what was recorded before
    they were kept (``marked`` None) tells by the shape."""
    return name in marked if marked is not None else read_caught(output) is not None


def caught_in(workflow: Any, name: str) -> CaughtFailure | None:
    """The failure task ``name`` of ``workflow`` (a ``WorkflowRecord``) completed with by
    catching it (``is_caught``), or None."""
    output = workflow.outputs.get(name)
    return read_caught(output) if is_caught(name, output, workflow.caught) else None


def read_caught(output: Any) -> CaughtFailure | None:
    """A failure record (``CaughtFailure.record``) as stored: the failure, or None for any other
    value (one of that shape whose value is no failure record included: the final checker's h29
    N1). Only for an output already known to be a caught failure's (``caught_in``)."""
    if isinstance(output, dict) and len(output) == 1 and CAUGHT in output:
        try:
            return msgspec.convert(output[CAUGHT], CaughtFailure)
        except msgspec.ValidationError:
            return None
    return None


def implicit_condition_name(source: str, target: str) -> str:
    """The name of the condition a task -> task flow creates."""
    return f"{source}__to__{target}"


class ConditionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A place. ``inputs`` are the tasks that put tokens in it, ``outputs`` those that take them."""

    name: str
    implicit: bool = False
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


MAX_WORK_ITEMS = 1_000
"""A task's ``max_work_items`` unless its builder says (``TaskBuilder.max_work_items``)."""
MAX_OUTSIDE_STATE = 16 * 1024 * 1024
"""The most state (bytes, encoded) an outside caller's call may leave an instance with (more:
``InstanceTooLargeError``; the net's own code is not bounded)."""


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A transition, with everything the engine needs to run it."""

    name: str
    kind: TaskKind = TaskKind.TASK
    split: SplitType = SplitType.AND
    join: JoinType = JoinType.AND
    inputs: tuple[str, ...] = ()
    """The conditions in the task's preset, in declaration order."""
    outputs: tuple[str, ...] = ()
    """The conditions in the task's postset, in declaration order."""
    cancel_tasks: frozenset[str] = frozenset()
    """Tasks its completion cancels (its cancellation region; never itself)."""
    cancel_conditions: frozenset[str] = frozenset()
    """Conditions its completion empties."""
    router: Any = None
    work_item: Any = None
    subworkflows: tuple[Any, ...] = ()
    policy: Any = None
    activities: Mapping[str, Any] = msgspec.field(default_factory=dict)
    reduce: Any = None
    """``reduce(items) -> output`` of the task when it completes (None: the last item's)."""
    catch: bool = False
    """A failure completes the task with a failure record as its output (``CaughtFailure``)
    instead of failing it and its workflow."""
    max_work_items: int = MAX_WORK_ITEMS
    """The most work items outside callers' ``initialize`` may bring one generation to."""

    def child(self, name: str | None = None) -> NetSpec | None:
        """The child workflow ``name`` of a (dynamic) composite task (None: its first one)."""
        for spec in self.subworkflows:
            if name is None or spec.name == name:
                return spec  # type: ignore[no-any-return]
        return None


class NetSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False, weakref=True):
    """An immutable, validated net. Compared and hashed by identity, so it can key caches."""

    name: str
    version: str = ""
    start: str
    end: str
    conditions: Mapping[str, ConditionSpec]
    tasks: Mapping[str, TaskSpec]
    activities: Mapping[str, Any] = msgspec.field(default_factory=dict)
    actions: Mapping[str, Any] = msgspec.field(default_factory=dict)
    """Custom ``initialize`` / ``cancel`` actions (``ActionSpec``); the others are internal-only."""
    deprecated: bool = False
    output: str = "task"
    """The workflow's output: the completing task's (``"task"``), or its last (``"last"``)."""

    def task(self, name: str) -> TaskSpec:
        return self.tasks[name]

    def condition(self, name: str) -> ConditionSpec:
        return self.conditions[name]

    def descendant(self, path: Sequence[str]) -> NetSpec:
        """The definition a child workflow runs, from its path of (composite task, child
        workflow name) pairs below this one."""
        spec = self
        for index in range(0, len(path), 2):
            child = spec.tasks[path[index]].child(path[index + 1])
            if child is None:
                raise KeyError(f"{spec.name!r} has no child workflow at {list(path[: index + 2])}")
            spec = child
        return spec


class Descendants(dict[tuple[str, ...], NetSpec]):
    """The definitions the workflows of one instance run, by their path below ``root``
    (``NetSpec.descendant``), each looked up once: ``descendants[path]``, a plain subscript
    (asked two dozen times a transaction, so no method call on a hit)."""

    __slots__ = ("root",)

    def __init__(self, root: NetSpec) -> None:
        super().__init__({(): root})
        self.root = root

    def __missing__(self, path: tuple[str, ...]) -> NetSpec:
        spec = self[path] = self.root.descendant(path)
        return spec


def pause_details(value: Any, *, where: str = "", lenient: bool = False) -> dict[str, Any]:
    """What a wait's ``details(ctx)`` returned, as the listings of pauses read it: a dict of
    ``description`` (a string), ``metadata`` (a dict) and ``approval_url`` (a string), a
    string its description, None nothing. Anything else is a ``TypeError`` that says what to
    return (``where``: whose details); ``lenient``, for what was stored before it was checked,
    drops what does not fit (a string stored broke every listing of pauses: newcomer h36 F1)."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"description": value}
    wrong = None if isinstance(value, Mapping) else f"returned {type(value).__name__}"
    details = dict(value) if wrong is None else {}
    for key, kind in (("description", str), ("metadata", Mapping), ("approval_url", str)):
        if key in details and details[key] is not None and not isinstance(details[key], kind):
            wrong = wrong or f"gave {key!r} as {type(details[key]).__name__}"
            del details[key]
    if wrong is not None and not lenient:
        raise TypeError(
            f"{where or 'a wait'}'s details {wrong}: return a dict such as "
            "{'description': 'a string', 'metadata': {...}, 'approval_url': 'a string'}, or "
            "a string (its description)"
        )
    return details


MAX_VERSION = 200
"""Characters of a version's name at most (a migration's target over HTTP is bounded so)."""


def version_problem(version: object) -> str | None:
    """What is wrong with a workflow's ``version``, if anything: a name (``"v2"``). An int was
    taken, and every run of it then read as a damaged snapshot (devx h40 F1)."""
    if isinstance(version, str) and version.strip() and len(version) <= MAX_VERSION:
        return None
    return (
        f"version must be a non-empty string of at most {MAX_VERSION} characters, as in "
        f"version='v2', got {version!r}"
    )

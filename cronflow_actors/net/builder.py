"""The net builder: ``net.workflow(...)...build()`` -> an immutable, validated ``NetSpec``.

Builders only record what they are told; ``build()`` checks the whole definition and raises one
``InvalidWorkflowError`` that lists every problem it found (unknown names, a missing start or end
condition, an XOR or OR split without a router, unreachable elements, ...), so a definition is
fixed in one round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

import msgspec

from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.net.spec import (
    ConditionSpec,
    JoinType,
    NetSpec,
    SplitType,
    TaskKind,
    TaskSpec,
    WaitSpec,
    implicit_condition_name,
)

__all__ = [
    "ActionSpec",
    "TaskBuilder",
    "WorkItemBuilder",
    "WorkItemSpec",
    "WorkflowBuilder",
    "action",
    "composite_task",
    "dummy_task",
    "dynamic_composite_task",
    "task",
    "work_item",
    "workflow",
]

WORKFLOW_ACTIVITIES = frozenset(
    {"on_initialized", "on_started", "on_completed", "on_failed", "on_canceled"}
)
_TASK_COMMON = frozenset(
    {"on_enabled", "on_started", "on_completed", "on_failed", "on_canceled", "on_disabled"}
)
TASK_ACTIVITIES: Mapping[TaskKind, frozenset[str]] = {
    TaskKind.TASK: _TASK_COMMON | {"on_work_item_state_changed"},
    TaskKind.COMPOSITE: _TASK_COMMON | {"on_workflow_state_changed"},
    TaskKind.DYNAMIC_COMPOSITE: _TASK_COMMON | {"on_workflow_state_changed"},
    TaskKind.DUMMY: _TASK_COMMON,
}
WORK_ITEM_ACTIVITIES = frozenset(
    {"on_initialized", "on_started", "on_completed", "on_failed", "on_canceled", "on_reset"}
)
WORK_ITEM_ACTIONS = frozenset({"initialize", "start", "complete", "fail", "cancel", "reset"})
WORKFLOW_ACTIONS = frozenset({"initialize", "cancel"})


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


def action(schema: Any = None, *, policy: Any = None, callback: Any = None) -> ActionSpec:
    """Declare a custom action (see ``ActionSpec``); undeclared actions are internal-only."""
    return ActionSpec(schema=schema, policy=policy, callback=callback)


def _check_callable(value: Any, what: str, problems: list[str]) -> None:
    if value is not None and not callable(value):
        problems.append(f"{what} must be a function or coroutine function, got {value!r}")


def _check_activities(
    owner: str, given: Mapping[str, Any], allowed: frozenset[str], problems: list[str]
) -> None:
    for name, fn in given.items():
        if name not in allowed:
            problems.append(f"{owner} has no activity {name!r}; activities: {sorted(allowed)}")
        else:
            _check_callable(fn, f"{owner} activity {name!r}", problems)


class WorkItemBuilder:
    """``net.work_item(name, handler=...)``, with ``.actions(...)`` and ``.activities(...)``."""

    def __init__(
        self,
        name: str,
        handler: Callable[..., Any] | None = None,
        *,
        kind: str = "task",
        sets_last: bool = True,
        detached: bool = False,
        durable: bool = True,
        wait: WaitSpec | None = None,
        records_as: str | None = None,
    ) -> None:
        self.name = name
        self._handler = handler
        self._records_as = records_as
        self._kind = kind
        self._sets_last = sets_last
        self._detached = detached
        self._durable = durable
        self._wait = wait
        self._actions: dict[str, Any] = {}
        self._activities: dict[str, Any] = {}

    def actions(self, **actions: ActionSpec) -> Self:
        self._actions.update(actions)
        return self

    def activities(self, **activities: Callable[..., Any]) -> Self:
        self._activities.update(activities)
        return self

    def _build(self, problems: list[str]) -> WorkItemSpec:
        owner = f"work item {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"a work item needs a non-empty name, got {self.name!r}")
        _check_callable(self._handler, f"{owner} handler", problems)
        for name, spec in self._actions.items():
            if name not in WORK_ITEM_ACTIONS:
                problems.append(
                    f"{owner} has no action {name!r}; actions: {sorted(WORK_ITEM_ACTIONS)}"
                )
            elif not isinstance(spec, ActionSpec):
                problems.append(f"{owner} action {name!r} must be declared with net.action(...)")
            else:
                _check_callable(spec.policy, f"{owner} action {name!r} policy", problems)
                _check_callable(spec.callback, f"{owner} action {name!r} callback", problems)
        _check_activities(owner, self._activities, WORK_ITEM_ACTIVITIES, problems)
        wait = self._wait
        if wait is not None:
            if not isinstance(wait, WaitSpec) or wait.kind not in ("event", "pause"):
                problems.append(f"{owner} wait must be a WaitSpec of kind 'event' or 'pause'")
            elif wait.kind == "event" and not wait.event:
                problems.append(f"{owner} waits for an event but names none")
            else:
                _check_callable(wait.accept, f"{owner} event filter", problems)
                _check_callable(wait.check, f"{owner} event check", problems)
                _check_callable(wait.details, f"{owner} wait details", problems)
            if self._handler is not None or self._detached:
                problems.append(f"{owner} has a handler, so it cannot also wait")
        return WorkItemSpec(
            name=self.name,
            handler=self._handler,
            actions=dict(self._actions),
            activities=dict(self._activities),
            kind=self._kind,
            sets_last=self._sets_last,
            detached=self._detached,
            durable=self._durable,
            wait=wait,
            records_as=self._records_as,
        )


def work_item(
    name: str,
    *,
    handler: Callable[..., Any] | None = None,
    kind: str = "task",
    sets_last: bool = True,
    detached: bool = False,
    durable: bool = True,
    wait: WaitSpec | None = None,
    records_as: str | None = None,
) -> WorkItemBuilder:
    """A work item type; with ``handler`` it runs automatically when started. ``detached``: it
    completes at once when started and its handler runs on its own (``durable``: again after a
    crash). ``sets_last``: its output becomes the workflow's ``last``. ``kind`` is a label.
    ``wait``: what it waits for while started (``WaitSpec``: an event or a human).
    ``records_as``: a task whose output this item's output also becomes when it completes."""
    return WorkItemBuilder(
        name,
        handler,
        kind=kind,
        sets_last=sets_last,
        detached=detached,
        durable=durable,
        wait=wait,
        records_as=records_as,
    )


class TaskBuilder:
    """What ``net.task``, ``net.composite_task``, ``net.dynamic_composite_task`` and
    ``net.dummy_task`` return: chain ``.split()``, ``.join()``, ``.route()``, ``.policy()`` and
    ``.activities()`` on it."""

    def __init__(
        self,
        kind: TaskKind,
        work: WorkItemBuilder | Callable[..., Any] | None = None,
        children: Iterable[Any] = (),
    ) -> None:
        self.kind = kind
        self._work = work
        self._children = list(children)
        self._split: Any = SplitType.AND
        self._join: Any = JoinType.AND
        self._router: Any = None
        self._policy: Any = None
        self._reduce: Any = None
        self._catch = False
        self._activities: dict[str, Any] = {}

    def split(self, split_type: str) -> Self:
        self._split = split_type
        return self

    def join(self, join_type: str) -> Self:
        self._join = join_type
        return self

    def route(self, router: Callable[..., Any]) -> Self:
        self._router = router
        return self

    def output(self, reduce: Callable[..., Any]) -> Self:
        """``reduce(items)`` gives the task's output when it completes, from the work items of
        its generation (``WorkItemInfo``s in creation order); by default the output is that of
        the work item that completed last."""
        self._reduce = reduce
        return self

    def policy(self, policy: Callable[..., Any]) -> Self:
        self._policy = policy
        return self

    def catch(self) -> Self:
        """When the task fails (its policy says so), complete it instead, with the failure as
        its output (``failure_of(output)`` reads it), so its router can send the flow to a
        fallback; the workflow does not fail."""
        self._catch = True
        return self

    def activities(self, **activities: Callable[..., Any]) -> Self:
        self._activities.update(activities)
        return self


def task(work: WorkItemBuilder | Callable[..., Any] | None = None) -> TaskBuilder:
    """A task with one work item type: a ``net.work_item(...)``, a handler function (an automated
    work item named after the task), or nothing (a manual work item named after the task)."""
    return TaskBuilder(TaskKind.TASK, work)


def composite_task(child: WorkflowBuilder | NetSpec) -> TaskBuilder:
    """A task whose work is instances of another workflow."""
    return TaskBuilder(TaskKind.COMPOSITE, children=[child])


def dynamic_composite_task(children: Iterable[WorkflowBuilder | NetSpec]) -> TaskBuilder:
    """A task whose work is instances of any of several workflows, chosen at run time."""
    return TaskBuilder(TaskKind.DYNAMIC_COMPOSITE, children=children)


def dummy_task() -> TaskBuilder:
    """A task without work: it passes enabled -> started -> completed as soon as it is enabled."""
    return TaskBuilder(TaskKind.DUMMY)


_KIND_METHOD = {
    TaskKind.TASK: "task",
    TaskKind.COMPOSITE: "composite_task",
    TaskKind.DYNAMIC_COMPOSITE: "dynamic_composite_task",
    TaskKind.DUMMY: "dummy_task",
}


class WorkflowBuilder:
    """``net.workflow(name, version=...)``: declare conditions, tasks, flows; then ``build()``."""

    def __init__(self, name: str, version: str = "v1") -> None:
        self.name = name
        self.version = version
        self._start: list[str] = []
        self._end: list[str] = []
        self._conditions: list[str] = []
        self._tasks: list[tuple[str, TaskBuilder, TaskKind]] = []
        self._flows: list[tuple[str, str, str]] = []  # (method, source, target)
        self._regions: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        self._activities: dict[str, Any] = {}
        self._actions: dict[str, Any] = {}
        self._deprecated = False
        self._output = "task"

    # -- declarations -----------------------------------------------------------------------------

    def start_condition(self, name: str) -> Self:
        self._start.append(name)
        return self

    def end_condition(self, name: str) -> Self:
        self._end.append(name)
        return self

    def condition(self, name: str) -> Self:
        self._conditions.append(name)
        return self

    def task(self, name: str, builder: TaskBuilder) -> Self:
        self._tasks.append((name, builder, TaskKind.TASK))
        return self

    def composite_task(self, name: str, builder: TaskBuilder) -> Self:
        self._tasks.append((name, builder, TaskKind.COMPOSITE))
        return self

    def dynamic_composite_task(self, name: str, builder: TaskBuilder) -> Self:
        self._tasks.append((name, builder, TaskKind.DYNAMIC_COMPOSITE))
        return self

    def dummy_task(self, name: str, builder: TaskBuilder | None = None) -> Self:
        self._tasks.append((name, builder or dummy_task(), TaskKind.DUMMY))
        return self

    def connect_condition(self, condition: str, *tasks: str) -> Self:
        """Flows from a condition to one or more tasks."""
        self._flows.extend(("connect_condition", condition, t) for t in tasks)
        if not tasks:
            self._flows.append(("connect_condition", condition, ""))
        return self

    def connect_task(self, task: str, *targets: str) -> Self:
        """Flows from a task to tasks (through implicit conditions) and/or conditions."""
        self._flows.extend(("connect_task", task, t) for t in targets)
        if not targets:
            self._flows.append(("connect_task", task, ""))
        return self

    def cancellation_region(
        self, task: str, *, tasks: Iterable[str] = (), conditions: Iterable[str] = ()
    ) -> Self:
        """When ``task`` completes, cancel ``tasks`` and empty ``conditions``."""
        self._regions.append((task, tuple(tasks), tuple(conditions)))
        return self

    def activities(self, **activities: Callable[..., Any]) -> Self:
        self._activities.update(activities)
        return self

    def actions(self, **actions: ActionSpec) -> Self:
        """Custom ``initialize`` / ``cancel`` actions (undeclared ones are internal-only)."""
        self._actions.update(actions)
        return self

    def output(self, source: str) -> Self:
        """What the workflow's output is when it completes: ``"task"`` (default) the output of
        the task whose completion marked the end condition, ``"last"`` the workflow's last
        output (of the work items that set it, and the tasks that reduce their items)."""
        self._output = source
        return self

    def deprecated(self, deprecated: bool = True) -> Self:
        """Mark this version deprecated: its running instances go on, new ones are refused."""
        self._deprecated = deprecated
        return self

    # -- build ------------------------------------------------------------------------------------

    def build(self) -> NetSpec:
        """Validate the whole definition and return its NetSpec.

        Raises ``InvalidWorkflowError`` listing every problem found.
        """
        problems: list[str] = []
        spec = self._build(problems)
        if problems:
            raise InvalidWorkflowError(self.name, problems)
        assert spec is not None
        return spec

    def _build(self, problems: list[str]) -> NetSpec | None:  # noqa: PLR0915 - one pass, in order
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"a workflow needs a non-empty name, got {self.name!r}")
        start = self._single("start condition", self._start, "start_condition", problems)
        end = self._single("end condition", self._end, "end_condition", problems)
        if self._output not in ("task", "last"):
            problems.append(f"output({self._output!r}): the output is 'task' or 'last'")

        declared: dict[str, str] = {}  # name -> "condition" | "task"
        for name in [*self._start, *self._end, *self._conditions]:
            self._declare(name, "condition", declared, problems)
        for name, _builder, _kind in self._tasks:
            self._declare(name, "task", declared, problems)

        inputs: dict[str, list[str]] = {name: [] for name, _, _ in self._tasks}
        outputs: dict[str, list[str]] = {name: [] for name, _, _ in self._tasks}
        implicit: list[str] = []
        seen_flows: set[tuple[str, str]] = set()
        for method, source, target in self._flows:
            if not target:
                problems.append(f"{method}({source!r}) names no target")
                continue
            if (source, target) in seen_flows:
                problems.append(f"the flow {source!r} -> {target!r} is declared twice")
                continue
            seen_flows.add((source, target))
            source_kind, target_kind = declared.get(source), declared.get(target)
            if method == "connect_condition":
                if source_kind != "condition":
                    problems.append(self._not_a("condition", source, source_kind, method))
                if target_kind != "task":
                    problems.append(
                        f"connect_condition({source!r}, ...) names {target!r}, "
                        f"which is {self._what(target, target_kind)}; a condition flows into tasks"
                    )
                if source_kind == "condition" and target_kind == "task":
                    inputs[target].append(source)
            else:
                if source_kind != "task":
                    problems.append(self._not_a("task", source, source_kind, method))
                    continue
                if target_kind == "task":
                    condition = implicit_condition_name(source, target)
                    if condition in declared:
                        problems.append(
                            f"the flow {source!r} -> {target!r} needs the implicit condition "
                            f"{condition!r}, but that name is already declared"
                        )
                        continue
                    implicit.append(condition)
                    outputs[source].append(condition)
                    inputs[target].append(condition)
                elif target_kind == "condition":
                    outputs[source].append(target)
                else:
                    problems.append(
                        f"connect_task({source!r}, ...) names {target!r}, which is "
                        f"{self._what(target, target_kind)}"
                    )

        condition_names = [n for n, k in declared.items() if k == "condition"] + implicit
        condition_set = set(condition_names)
        if start is not None and start in condition_set:
            for name, targets in outputs.items():
                if start in targets:
                    problems.append(f"task {name!r} flows into the start condition {start!r}")
        if end is not None and end in condition_set:
            for name, sources in inputs.items():
                if end in sources:
                    problems.append(f"the end condition {end!r} flows into task {name!r}")

        regions = self._regions_by_task(declared, condition_set, start, end, problems)
        tasks: dict[str, TaskSpec] = {}
        for name, builder, method_kind in self._tasks:
            built = self._build_task(
                name,
                builder=builder,
                method_kind=method_kind,
                inputs=inputs,
                outputs=outputs,
                problems=problems,
            )
            if built is not None:
                cancel_tasks, cancel_conditions = regions.get(name, (frozenset(), frozenset()))
                tasks[name] = msgspec.structs.replace(
                    built, cancel_tasks=cancel_tasks, cancel_conditions=cancel_conditions
                )
        _check_activities(
            f"workflow {self.name!r}", self._activities, WORKFLOW_ACTIVITIES, problems
        )
        for action_name, spec in self._actions.items():
            if action_name not in WORKFLOW_ACTIONS:
                problems.append(
                    f"workflow {self.name!r} has no action {action_name!r}; "
                    f"actions: {sorted(WORKFLOW_ACTIONS)}"
                )
            elif not isinstance(spec, ActionSpec):
                problems.append(
                    f"workflow action {action_name!r} must be declared with net.action(...)"
                )

        conditions = {
            c: ConditionSpec(
                name=c,
                implicit=c in implicit,
                inputs=tuple(t for t in outputs if c in outputs[t]),
                outputs=tuple(t for t in inputs if c in inputs[t]),
            )
            for c in condition_names
        }
        if start is not None and end is not None and start in conditions and end in conditions:
            self._check_reachability(
                start,
                end,
                conditions=conditions,
                inputs=inputs,
                outputs=outputs,
                problems=problems,
            )
        if problems or start is None or end is None:
            return None
        return NetSpec(
            name=self.name,
            version=self.version,
            start=start,
            end=end,
            conditions=conditions,
            tasks=tasks,
            activities=dict(self._activities),
            actions=dict(self._actions),
            deprecated=self._deprecated,
            output=self._output,
        )

    # -- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _single(what: str, names: list[str], method: str, problems: list[str]) -> str | None:
        if not names:
            problems.append(f"the workflow has no {what}; declare one with .{method}(name)")
            return None
        if len(names) > 1:
            problems.append(f"the workflow declares {len(names)} {what}s {names}; it needs one")
        return names[-1]

    @staticmethod
    def _declare(name: str, kind: str, declared: dict[str, str], problems: list[str]) -> None:
        if not isinstance(name, str) or not name:
            problems.append(f"a {kind} needs a non-empty name, got {name!r}")
            return
        if name in declared:
            problems.append(f"the name {name!r} is declared twice (as {declared[name]} and {kind})")
            return
        declared[name] = kind

    @staticmethod
    def _what(name: str, kind: str | None) -> str:
        return "not declared" if kind is None else f"a {kind}"

    def _not_a(self, expected: str, name: str, kind: str | None, method: str) -> str:
        return (
            f"{method}({name!r}, ...) needs a {expected}, but {name!r} is {self._what(name, kind)}"
        )

    def _regions_by_task(
        self,
        declared: Mapping[str, str],
        conditions: set[str],
        start: str | None,
        end: str | None,
        problems: list[str],
    ) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        regions: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        for trigger, tasks, region_conditions in self._regions:
            where = f"cancellation_region({trigger!r})"
            if declared.get(trigger) != "task":
                problems.append(
                    f"{where}: {trigger!r} is {self._what(trigger, declared.get(trigger))}"
                )
                continue
            if trigger in regions:
                problems.append(f"{where} is declared twice; give all its elements in one call")
                continue
            for name in tasks:
                if declared.get(name) != "task":
                    problems.append(f"{where}: {name!r} is not a declared task")
                elif name == trigger:
                    problems.append(f"{where}: a task cannot be in its own cancellation region")
            for name in region_conditions:
                if name not in conditions:
                    problems.append(f"{where}: {name!r} is not a condition of the workflow")
                elif name in (start, end):
                    problems.append(f"{where}: the start and end conditions cannot be cancelled")
            regions[trigger] = (
                frozenset(t for t in tasks if t != trigger),
                frozenset(region_conditions),
            )
        return regions

    def _build_task(
        self,
        name: str,
        *,
        builder: TaskBuilder,
        method_kind: TaskKind,
        inputs: Mapping[str, list[str]],
        outputs: Mapping[str, list[str]],
        problems: list[str],
    ) -> TaskSpec | None:
        where = f"task {name!r}"
        if not isinstance(builder, TaskBuilder):
            problems.append(
                f"{where}: expected net.task(...), net.composite_task(...), "
                f"net.dynamic_composite_task(...) or net.dummy_task(), got {builder!r}"
            )
            return None
        if builder.kind is not method_kind:
            problems.append(
                f"{where} is declared with .{_KIND_METHOD[method_kind]}() but built with "
                f"net.{_KIND_METHOD[builder.kind]}(); use .{_KIND_METHOD[builder.kind]}()"
            )
        split = _enum(SplitType, builder._split, f"{where} split", problems)
        join = _enum(JoinType, builder._join, f"{where} join", problems)
        if split in (SplitType.XOR, SplitType.OR) and builder._router is None:
            problems.append(f"{where} has a {split.value} split but no router; add .route(fn)")
        if split is SplitType.AND and builder._router is not None:
            problems.append(f"{where} has a router but an and split; routers serve xor and or")
        _check_callable(builder._router, f"{where} router", problems)
        _check_callable(builder._policy, f"{where} policy", problems)
        _check_callable(builder._reduce, f"{where} output reducer", problems)
        _check_activities(where, builder._activities, TASK_ACTIVITIES[builder.kind], problems)
        if not inputs.get(name):
            problems.append(f"{where} has no incoming flow; connect a condition or task to it")
        if not outputs.get(name):
            problems.append(f"{where} has no outgoing flow; connect it with .connect_task()")

        work: WorkItemSpec | None = None
        if builder.kind is TaskKind.TASK:
            source = builder._work
            if source is None:
                work = WorkItemSpec(name=name)
            elif isinstance(source, WorkItemBuilder):
                work = source._build(problems)
            elif callable(source):
                work = WorkItemSpec(name=name, handler=source)
            else:
                problems.append(
                    f"{where}: net.task() takes a net.work_item(...), a handler function or "
                    f"nothing, got {source!r}"
                )
        children: list[NetSpec] = []
        for child in builder._children:
            if isinstance(child, NetSpec):
                children.append(child)
            elif isinstance(child, WorkflowBuilder):
                child_problems: list[str] = []
                built = child._build(child_problems)
                problems.extend(
                    f"{where}, child workflow {child.name!r}: {p}" for p in child_problems
                )
                if built is not None:
                    children.append(built)
            else:
                problems.append(
                    f"{where}: a child workflow must be a net.workflow(...), got {child!r}"
                )
        if builder.kind is TaskKind.DYNAMIC_COMPOSITE:
            names = [c.name for c in children]
            if not builder._children:
                problems.append(f"{where}: a dynamic composite task needs at least one workflow")
            if len(set(names)) != len(names):
                problems.append(f"{where}: child workflow names must be unique, got {names}")
            if "on_enabled" not in builder._activities:
                problems.append(
                    f"{where}: a dynamic composite task needs an on_enabled activity that picks "
                    "its child workflows with ctx.workflow.initialize(name, payload)"
                )
        if split is None or join is None:
            return None
        return TaskSpec(
            name=name,
            kind=builder.kind,
            split=split,
            join=join,
            inputs=tuple(inputs.get(name, ())),
            outputs=tuple(outputs.get(name, ())),
            router=builder._router,
            work_item=work,
            subworkflows=tuple(children),
            policy=builder._policy,
            reduce=builder._reduce,
            catch=builder._catch,
            activities=dict(builder._activities),
        )

    @staticmethod
    def _check_reachability(
        start: str,
        end: str,
        *,
        conditions: Mapping[str, ConditionSpec],
        inputs: Mapping[str, list[str]],
        outputs: Mapping[str, list[str]],
        problems: list[str],
    ) -> None:
        forward: dict[str, list[str]] = {c: list(conditions[c].outputs) for c in conditions}
        backward: dict[str, list[str]] = {c: list(conditions[c].inputs) for c in conditions}
        for name in outputs:
            forward[name] = list(outputs[name])
            backward[name] = list(inputs[name])

        def reach(origin: str, edges: Mapping[str, list[str]]) -> set[str]:
            found = {origin}
            todo = [origin]
            while todo:
                for following in edges.get(todo.pop(), ()):
                    if following not in found:
                        found.add(following)
                        todo.append(following)
            return found

        from_start = reach(start, forward)
        to_end = reach(end, backward)
        for name in [*outputs, *(c for c in conditions if not conditions[c].implicit)]:
            if name not in from_start:
                problems.append(f"{name!r} cannot be reached from the start condition {start!r}")
            elif name not in to_end:
                problems.append(f"{name!r} cannot reach the end condition {end!r}")


def _enum(
    kind: type[SplitType] | type[JoinType], value: Any, what: str, problems: list[str]
) -> Any:
    try:
        return kind(value)
    except ValueError:
        problems.append(f"{what} is {value!r}; use one of {[m.value for m in kind]}")
        return None


def workflow(name: str, version: str = "v1") -> WorkflowBuilder:
    """Start a net workflow definition."""
    return WorkflowBuilder(name, version)

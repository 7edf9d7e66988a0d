"""The net builder: ``net.workflow(...)...build()`` -> an immutable, validated ``NetSpec``.

Builders only record what they are told; ``build()`` checks the whole definition and raises one
``InvalidWorkflowError`` that lists every problem it found (unknown names, a missing start or end
condition, an XOR or OR split without a router, unreachable elements, ...), so a definition is
fixed in one round. The rules themselves are in ``validation.py``; ``build()`` runs them in
order (names, flows, start and end, cancellation regions, tasks, the workflow's own activities
and actions, reachability) and assembles the specs (``spec.py``) once nothing is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

import msgspec

from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.net import validation as check
from cronflow_actors.net.dead_joins import check_and_joins
from cronflow_actors.net.spec import (
    MAX_WORK_ITEMS,
    ActionSpec,
    JoinType,
    NetSpec,
    SplitType,
    TaskKind,
    TaskSpec,
    WaitSpec,
    WorkItemSpec,
    version_problem,
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


def action(schema: Any = None, *, policy: Any = None, callback: Any = None) -> ActionSpec:
    """Declare a custom action (see ``ActionSpec``); undeclared actions are internal-only."""
    return ActionSpec(schema=schema, policy=policy, callback=callback)


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
        check.check_work_item(
            self.name,
            handler=self._handler,
            actions=self._actions,
            activities=self._activities,
            wait=self._wait,
            detached=self._detached,
            problems=problems,
        )
        return WorkItemSpec(
            name=self.name,
            handler=self._handler,
            actions=dict(self._actions),
            activities=dict(self._activities),
            kind=self._kind,
            sets_last=self._sets_last,
            detached=self._detached,
            durable=self._durable,
            wait=self._wait,
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
    ``net.dummy_task`` return: chain ``.split()``, ``.join()``, ``.route()``, ``.policy()``,
    ``.max_work_items()`` and ``.activities()`` on it."""

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
        self._max_work_items = MAX_WORK_ITEMS
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
        its output, so its router can send the flow to a fallback; the workflow does not fail.
        The router's ``ctx.output`` is then a ``CaughtFailure`` (``net.caught(ctx.output)``
        reads it, None for a real output: no payload or output, whatever its shape, is one)."""
        self._catch = True
        return self

    def max_work_items(self, most: int) -> Self:
        """The most work items (a composite task's: child workflows) outside callers (an
        ``initialize`` action over HTTP, or with a principal) may bring one generation of the
        task to: 1,000 unless said. Each is kept in the instance's state, which every change
        writes again, so a caller with the right to initialize could otherwise make each change
        of the instance slower without end. The net's own code (activities, jobs,
        ``rt.initialize_work_item`` without a principal) is not bounded."""
        if not isinstance(most, int) or isinstance(most, bool) or most < 1:
            raise ValueError(f"max_work_items takes a whole number from 1, got {most!r}")
        self._max_work_items = most
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

    def _build(self, problems: list[str]) -> NetSpec | None:
        """The NetSpec, or None when ``problems`` (every one found, in order) are not empty."""
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"a workflow needs a non-empty name, got {self.name!r}")
        if (version := version_problem(self.version)) is not None:
            problems.append(version)
        if self._output not in ("task", "last"):
            problems.append(f"output({self._output!r}): the output is 'task' or 'last'")
        named = len(problems)  # what follows up to the wiring: names and flows
        start = check.single("start condition", self._start, "start_condition", problems)
        end = check.single("end condition", self._end, "end_condition", problems)
        task_names = [name for name, _, _ in self._tasks]
        declared = check.declare_names(
            [*self._start, *self._end, *self._conditions], task_names, problems
        )
        wiring = check.wire_flows(self._flows, declared, task_names, problems)
        misnamed = len(problems) > named  # paths through a misnamed net are its consequences
        condition_names = {n for n, k in declared.items() if k == "condition"}
        condition_names.update(wiring.implicit)
        check.check_boundaries(start, end, wiring, condition_names, problems)
        regions = check.regions_by_task(
            self._regions, declared, condition_names, start=start, end=end, problems=problems
        )
        tasks = self._build_tasks(wiring, regions, problems)
        check.check_activities(
            f"workflow {self.name!r}", self._activities, check.WORKFLOW_ACTIVITIES, problems
        )
        check.check_workflow_actions(self.name, self._actions, problems)
        conditions = wiring.conditions(declared)
        if start in conditions and end in conditions and not misnamed:  # (devx h40 F11: 9 for 1)
            check.check_reachability(start, end, conditions, wiring, problems)
            check_and_joins(start, conditions, tasks, problems)
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

    def _build_tasks(
        self,
        wiring: check.Wiring,
        regions: Mapping[str, tuple[frozenset[str], frozenset[str]]],
        problems: list[str],
    ) -> dict[str, TaskSpec]:
        tasks: dict[str, TaskSpec] = {}
        for name, builder, declared_as in self._tasks:
            built = _build_task(name, builder, declared_as, wiring, problems)
            if built is not None:
                cancel_tasks, cancel_conditions = regions.get(name, (frozenset(), frozenset()))
                tasks[name] = msgspec.structs.replace(
                    built, cancel_tasks=cancel_tasks, cancel_conditions=cancel_conditions
                )
        return tasks


def _build_task(
    name: str,
    builder: TaskBuilder,
    declared_as: TaskKind,
    wiring: check.Wiring,
    problems: list[str],
) -> TaskSpec | None:
    """One task's spec (None when it cannot be built), its problems added to ``problems``."""
    where = f"task {name!r}"
    if not isinstance(builder, TaskBuilder):
        problems.append(
            f"{where}: expected net.task(...), net.composite_task(...), "
            f"net.dynamic_composite_task(...) or net.dummy_task(), got {builder!r}"
        )
        return None
    split, join = check.check_task(
        name,
        kind=builder.kind,
        declared_as=declared_as,
        split=builder._split,
        join=builder._join,
        router=builder._router,
        policy=builder._policy,
        reduce=builder._reduce,
        activities=builder._activities,
        wiring=wiring,
        problems=problems,
    )
    work = _work_item_of(name, builder, problems)
    children = _children_of(where, builder, problems)
    check.check_task_children(
        where,
        kind=builder.kind,
        names=[c.name for c in children],
        given=len(builder._children),
        activities=builder._activities,
        problems=problems,
    )
    if split is None or join is None:
        return None
    return TaskSpec(
        name=name,
        kind=builder.kind,
        split=split,
        join=join,
        inputs=tuple(wiring.inputs.get(name, ())),
        outputs=tuple(wiring.outputs.get(name, ())),
        router=builder._router,
        work_item=work,
        subworkflows=tuple(children),
        policy=builder._policy,
        reduce=builder._reduce,
        catch=builder._catch,
        max_work_items=builder._max_work_items,
        activities=dict(builder._activities),
    )


def _work_item_of(name: str, builder: TaskBuilder, problems: list[str]) -> WorkItemSpec | None:
    """The work item type of a plain task: declared, a handler's, or a manual one."""
    if builder.kind is not TaskKind.TASK:
        return None
    source = builder._work
    if source is None:
        return WorkItemSpec(name=name)
    if isinstance(source, WorkItemBuilder):
        return source._build(problems)
    if callable(source):
        check.check_callable(source, f"task {name!r} handler", problems, "handler(ctx)")
        return WorkItemSpec(name=name, handler=source)
    problems.append(
        f"task {name!r}: net.task() takes a net.work_item(...), a handler function or "
        f"nothing, got {source!r}"
    )
    return None


def _children_of(where: str, builder: TaskBuilder, problems: list[str]) -> list[NetSpec]:
    """The child workflows of a (dynamic) composite task, each built (with its own problems)."""
    children: list[NetSpec] = []
    for child in builder._children:
        if isinstance(child, NetSpec):
            children.append(child)
        elif isinstance(child, WorkflowBuilder):
            child_problems: list[str] = []
            built = child._build(child_problems)
            problems.extend(f"{where}, child workflow {child.name!r}: {p}" for p in child_problems)
            if built is not None:
                children.append(built)
        else:
            problems.append(f"{where}: a child workflow must be a net.workflow(...), got {child!r}")
    return children


def workflow(name: str, version: str = "v1") -> WorkflowBuilder:
    """Start a net workflow definition."""
    return WorkflowBuilder(name, version)

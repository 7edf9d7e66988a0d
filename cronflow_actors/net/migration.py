"""Migrations between two versions of a workflow (spec/tasquencer-semantics.md section 9).

    to_v2 = (net.migration("v1", "v2", workflow="hire")      # or net.migration(hire_v1, hire_v2)
             .initializer(seed)                              # once, as the new root starts
             .finalizer(report)                              # when the migrated root ends
             .task_migrators({"hire/screen": lambda ctx: "fast_forward",
                              "interview/book": lambda ctx: "continue"})
             .build())
    rt.register(to_v2)
    new_id = await rt.migrate(old_id, "v2")

A migration does not change the running instance: it cancels the old root (reason
``migration``: its ``cancel`` action is skipped, its activities run) and starts a new root of
the target version in fast-forward mode, which runs from the start condition through the new
version's own net. Every time one of its tasks is enabled (for the life of the instance), the
task's migrator, if it has one, answers ``fast_forward`` (the task is started and completed at
once: no activities, no children, its output the one the old instance recorded for it; routers,
cancellation regions and tokens still run) or ``continue`` (the normal enable path; children the
migrator initialized are the task's). A task without a migrator takes the normal path.

A migrator is keyed ``"<workflow name>/<task name>"``, the workflow being the root or any child
workflow of the target version. Its ``ctx`` is a task activity's (``ctx.work_item.initialize``
or ``ctx.workflow.initialize``, ``ctx.register_scheduled``), with ``ctx.migrating_from`` (the
old instance's workflows: ``MigrationSource``) and ``ctx.execution_mode == "fast_forward"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any, Self

import msgspec

from cronflow_actors.errors import MigrationError
from cronflow_actors.net.spec import NetSpec

__all__ = [
    "MigrationBuilder",
    "MigrationMode",
    "MigrationSpec",
    "ended_first",
    "migration",
    "missing_task_paths",
    "refused",
    "task_paths",
]


def refused(
    subject: str, problem: str, advice: str, kind: type[MigrationError] = MigrationError
) -> MigrationError:
    """A ``MigrationError`` (or ``kind`` of one: a replay's) saying what (``subject``), what is
    wrong, and what to do."""
    return kind(f"{subject}: {problem}; {advice}")


def ended_first(instance_id: str, state: str) -> MigrationError:
    """A migration refused because the old root ended (``state``) before its cancel: found as
    it was read, or as the cancel was sent (one answer for both: the chaos tester's h28 L1)."""
    return refused(
        f"instance {instance_id!r}",
        f"it ended ({state}) before the migration could cancel it",
        "nothing was migrated from there on; start a new instance if one is needed",
    )


class MigrationMode(StrEnum):
    """What a task migrator answers."""

    FAST_FORWARD = "fast_forward"
    """The task's work was done in the old instance: complete it at once, silently."""
    CONTINUE = "continue"
    """Run the task as usual (its activities, its children)."""


class MigrationSpec(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A built migration of workflow ``workflow`` from ``from_version`` to ``to_version``.

    ``initializer(ctx)`` runs in the new root's first transaction, before its first tasks are
    enabled (``ctx.workflow``: the new root, ``ctx.migrating_from``); ``finalizer(ctx)`` runs
    when the migrated root ends (``ctx.workflow.state``: completed, failed or canceled);
    ``task_migrators`` map ``"workflow/task"`` to ``migrator(ctx) -> "fast_forward" |
    "continue"``. All three may be plain or ``async`` functions."""

    workflow: str
    from_version: str
    to_version: str
    initializer: Any = None
    finalizer: Any = None
    task_migrators: Mapping[str, Any] = msgspec.field(default_factory=dict)

    @property
    def pair(self) -> tuple[str, str]:
        return (self.from_version, self.to_version)

    def migrator(self, workflow: str, task: str) -> Any:
        """The migrator of ``task`` in workflow ``workflow`` (None: the task has none)."""
        return self.task_migrators.get(f"{workflow}/{task}")


def _walk(spec: NetSpec) -> Iterator[NetSpec]:
    yield spec
    for task in spec.tasks.values():
        for child in task.subworkflows:
            yield from _walk(child)


def task_paths(spec: NetSpec) -> set[str]:
    """Every ``"workflow/task"`` of ``spec`` and of its child workflows."""
    return {f"{net.name}/{task}" for net in _walk(spec) for task in net.tasks}


def missing_task_paths(migration: MigrationSpec, target: NetSpec) -> list[str]:
    """The migrator keys of ``migration`` that name no task of ``target`` (or its children)."""
    known = task_paths(target)
    return sorted(key for key in migration.task_migrators if key not in known)


class MigrationBuilder:
    """What ``net.migration(...)`` returns: chain ``.initializer()``, ``.finalizer()`` and
    ``.task_migrators()`` (in any order, each optional), then ``.build()``."""

    def __init__(self, source: str | NetSpec, target: str | NetSpec, workflow: str | None) -> None:
        self._source = source
        self._target = target
        self._workflow = workflow
        self._initializer: Any = None
        self._finalizer: Any = None
        self._migrators: dict[str, Any] = {}
        self._problems: list[str] = []

    def initializer(self, fn: Any) -> Self:
        self._initializer = fn
        return self

    def finalizer(self, fn: Any) -> Self:
        self._finalizer = fn
        return self

    def task_migrators(self, migrators: Mapping[str, Any]) -> Self:
        """Add migrators, ``{"workflow/task": fn}``; a key given again replaces the earlier."""
        if not isinstance(migrators, Mapping):
            self._problems.append(
                f'task_migrators takes a dict {{"workflow/task": fn}}, got {migrators!r}'
            )
            return self
        self._migrators.update(migrators)
        return self

    def build(self) -> MigrationSpec:
        """Check the whole migration and return it; ``MigrationError`` lists every problem."""
        problems = list(self._problems)
        source_version, source_name = _version_of(self._source, "from", problems)
        target_version, target_name = _version_of(self._target, "to", problems)
        names = {n for n in (self._workflow, source_name, target_name) if n is not None}
        workflow = self._workflow or target_name or source_name
        if len(names) > 1:
            problems.append(f"the versions belong to different workflows: {sorted(names)}")
        if workflow is None:
            problems.append(
                "no workflow named: pass the specs, net.migration(v1_spec, v2_spec), or "
                "net.migration('v1', 'v2', workflow='name')"
            )
        if source_version is not None and source_version == target_version:
            problems.append(f"from and to are the same version {source_version!r}")
        for role, fn in (("initializer", self._initializer), ("finalizer", self._finalizer)):
            if fn is not None and not callable(fn):
                problems.append(f"the {role} must be a function, got {fn!r}")
        for key, fn in self._migrators.items():
            if not isinstance(key, str) or key.count("/") != 1 or "" in key.split("/"):
                problems.append(f"task migrator key {key!r}: write it 'workflow/task'")
            if not callable(fn):
                problems.append(f"task migrator {key!r} must be a function, got {fn!r}")
        spec = MigrationSpec(
            workflow=workflow or "",
            from_version=source_version or "",
            to_version=target_version or "",
            initializer=self._initializer,
            finalizer=self._finalizer,
            task_migrators=dict(self._migrators),
        )
        if isinstance(self._target, NetSpec):
            for key in missing_task_paths(spec, self._target):
                problems.append(_no_such_task(key, self._target))
        if problems:
            subject = f"migration of {workflow!r} {source_version!r} -> {target_version!r}"
            raise refused(subject, "; ".join(problems), "fix them and build it again")
        return spec


def _no_such_task(key: str, target: NetSpec) -> str:
    return (
        f"task migrator {key!r} names no task of {target.name!r} {target.version!r} "
        f"(its tasks: {sorted(task_paths(target))})"
    )


def _version_of(value: Any, role: str, problems: list[str]) -> tuple[str | None, str | None]:
    if isinstance(value, NetSpec):
        return value.version, value.name
    if isinstance(value, str) and value:
        return value, None
    problems.append(f"{role}: a version name or a NetSpec, got {value!r}")
    return None, None


def migration(
    from_version: str | NetSpec, to_version: str | NetSpec, *, workflow: str | None = None
) -> MigrationBuilder:
    """Define a migration from ``from_version`` to ``to_version`` (version names, with
    ``workflow=``, or the two ``NetSpec``s, whose name and versions it then takes and whose
    tasks the migrator keys are checked against at once)."""
    return MigrationBuilder(from_version, to_version, workflow)

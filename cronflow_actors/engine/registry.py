"""Registered workflow definitions: several versions of one name side by side.

New instances start on the newest active version unless a version is named; a deprecated
version refuses new instances while its running ones go on (and are recovered after a restart).
"""

from __future__ import annotations

from cronflow_actors.errors import (
    ConfigurationError,
    DuplicateWorkflowError,
    UnknownWorkflowError,
    WorkflowDeprecatedError,
)
from cronflow_actors.net.migration import (
    MigrationSpec,
    missing_task_paths,
    refused,
    task_paths,
)
from cronflow_actors.net.spec import NetSpec, awaited

__all__ = ["WorkflowRegistry"]


class WorkflowRegistry:
    def __init__(self) -> None:
        self._versions: dict[str, dict[str, NetSpec]] = {}
        self._deprecated: set[tuple[str, str]] = set()
        self._migrations: dict[str, dict[tuple[str, str], MigrationSpec]] = {}
        self._waited: set[str] = set()
        """The events some registered workflow's work items wait for (it only grows)."""

    def register(self, spec: NetSpec, *, deprecated: bool = False) -> None:
        """Add ``spec`` under its name and version. Registering the same spec again is a no-op;
        another spec under a taken name and version is refused."""
        if not isinstance(spec, NetSpec):
            raise ConfigurationError("workflow", spec, "a NetSpec from net.workflow(...).build()")
        versions = self._versions.setdefault(spec.name, {})
        known = versions.get(spec.version)
        if known is not None and known is not spec:
            raise DuplicateWorkflowError(spec.name, spec.version)
        versions[spec.version] = spec
        self._waited.update(awaited(spec))
        if deprecated or spec.deprecated:
            self._deprecated.add((spec.name, spec.version))
        else:
            self._deprecated.discard((spec.name, spec.version))

    def deprecate(self, name: str, version: str) -> None:
        self.get(name, version)
        self._deprecated.add((name, version))

    def is_deprecated(self, name: str, version: str) -> bool:
        return (name, version) in self._deprecated

    def names(self) -> list[str]:
        return sorted(self._versions)

    def __contains__(self, name: object) -> bool:
        """Whether a workflow of ``name`` is registered, at any version."""
        return name in self._versions

    def pairs(self) -> list[tuple[str, str]]:
        """Every (name, version) registered, deprecated ones too (their instances run)."""
        return [
            (name, version) for name, versions in self._versions.items() for version in versions
        ]

    def waited_events(self) -> set[str]:
        """The events some work item of a registered workflow (a child workflow's too) waits
        for: a flow's ``wait_for_event``, a net's ``WaitSpec(kind="event")``."""
        return self._waited

    def versions(self, name: str) -> list[str]:
        return list(self._versions.get(name, {}))

    def get(self, name: str, version: str) -> NetSpec:
        """The spec of one registered version (deprecated ones too: running instances need it)."""
        spec = self._versions.get(name, {}).get(version)
        if spec is None:
            raise UnknownWorkflowError(name, version, self._listing())
        return spec

    def for_new_instance(self, name: str, version: str | None = None) -> NetSpec:
        """The spec a new instance starts on: the named version, or the newest active one."""
        versions = self._versions.get(name)
        if not versions:
            raise UnknownWorkflowError(name, version, self._listing())
        active = [v for v in versions if (name, v) not in self._deprecated]
        if version is None:
            if not active:
                raise WorkflowDeprecatedError(name, list(versions)[-1], active)
            return versions[active[-1]]
        spec = self.get(name, version)
        if (name, version) in self._deprecated:
            raise WorkflowDeprecatedError(name, version, active)
        return spec

    # -- migrations (spec section 9) ---------------------------------------------------------------

    def register_migration(self, migration: MigrationSpec) -> None:
        """Add a migration between two registered versions of one workflow. Refused, changing
        nothing (``MigrationError``): a version not registered, a migrator for a task the
        target version does not have, a second migration for the same pair. Registering the
        same migration again is a no-op."""
        if not isinstance(migration, MigrationSpec):
            raise ConfigurationError("migration", migration, "a net.migration(...).build()")
        name, pair = migration.workflow, migration.pair
        subject = f"migration of {name!r} {pair[0]!r} -> {pair[1]!r}"
        known = self._versions.get(name, {})
        missing = [v for v in pair if v not in known]
        if missing:
            raise refused(
                subject,
                f"version(s) {missing} not registered (registered: {list(known)})",
                "register both versions first, then the migration",
            )
        unknown = missing_task_paths(migration, known[pair[1]])
        if unknown:
            raise refused(
                subject,
                f"task migrators {unknown} name no task of version {pair[1]!r} "
                f"(its tasks: {sorted(task_paths(known[pair[1]]))})",
                "key each migrator 'workflow/task' after a task of the target version",
            )
        taken = self._migrations.setdefault(name, {}).get(pair)
        if taken is not None and taken is not migration:
            raise refused(
                subject, "another migration is registered for that pair", "register one per pair"
            )
        self._migrations[name][pair] = migration

    def migration(self, name: str, from_version: str, to_version: str) -> MigrationSpec | None:
        """The migration registered from ``from_version`` to ``to_version`` (None: none)."""
        return self._migrations.get(name, {}).get((from_version, to_version))

    def migrations(self, name: str) -> list[MigrationSpec]:
        """The migrations registered for workflow ``name``, in registration order."""
        return list(self._migrations.get(name, {}).values())

    def _listing(self) -> list[str]:
        return [f"{n} {v}" for n, vs in sorted(self._versions.items()) for v in vs]

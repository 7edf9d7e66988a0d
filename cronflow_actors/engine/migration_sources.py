"""``ctx.migrating_from``: what a migration's new instance reads of the instance it came from."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cronflow_actors.engine.states import TaskState, WorkflowState
from cronflow_actors.messages.migrations import MigrationSource

__all__ = ["MigrationSources"]


class MigrationSources:
    """``ctx.migrating_from``: the workflows of the instance a migration came from, as the
    migration left them (its root canceled). The root's fields read directly
    (``ctx.migrating_from.outputs["screen"]``, ``.tasks["screen"]``); ``workflows(name)``
    lists the workflows of one name (child workflows of composite tasks)."""

    __slots__ = ("_sources",)

    def __init__(self, sources: list[MigrationSource]) -> None:
        self._sources = sources

    @property
    def root(self) -> MigrationSource:
        return self._sources[0]

    @property
    def id(self) -> str:
        return self.root.id

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def version(self) -> str:
        return self.root.version

    @property
    def state(self) -> WorkflowState:
        return self.root.state

    @property
    def payload(self) -> Any:
        return self.root.payload

    @property
    def outputs(self) -> Mapping[str, Any]:
        return self.root.outputs

    @property
    def tasks(self) -> Mapping[str, TaskState]:
        return self.root.tasks

    @property
    def generations(self) -> Mapping[str, int]:
        """How many times each task of the root was enabled: in a loop, which round it was
        in, where ``tasks`` says only how the last round ended (conform h38 F2)."""
        return self.root.generations

    def workflows(self, name: str | None = None) -> list[MigrationSource]:
        """The old instance's workflows named ``name`` (None: all), in creation order."""
        return [s for s in self._sources if name is None or s.name == name]

    def __iter__(self) -> Iterator[MigrationSource]:
        return iter(self._sources)

    def __repr__(self) -> str:
        return f"<MigrationSources of {self.id} ({len(self._sources)} workflows)>"

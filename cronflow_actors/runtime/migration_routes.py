"""Which versions a migration goes through: the shortest route of registered migrations
(``net.migration`` pairs) from an instance's version to the one asked for, or straight there
for a Cronflow-style flow (its recorded step outputs carried over)."""

from __future__ import annotations

from collections import deque

from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.net.migration import refused
from cronflow_actors.runtime.catalog import FlowCatalog

__all__ = ["route_of"]


def route_of(
    registry: WorkflowRegistry,
    catalog: FlowCatalog,
    workflow: str,
    from_version: str,
    to_version: str,
    *,
    held: bool = False,
) -> list[str]:
    """The versions a migration of ``workflow`` goes through to ``to_version``. A flow's run
    ``held`` because its version's definition changed under it (``blocked``) may migrate to
    that version's definition as it is now (its recorded step outputs carried over)."""
    subject = f"migration of {workflow!r} {from_version!r} -> {to_version!r}"
    versions = registry.versions(workflow)
    if to_version not in versions:
        raise refused(
            subject,
            f"version {to_version!r} is not registered (registered: {versions})",
            "register it first",
        )
    if to_version == from_version:
        if held and catalog.user_steps(workflow, to_version) is not None:
            return [to_version]  # onto the definition as it is now, outputs carried over
        raise refused(subject, "the instance runs that version", "name another one")
    if registry.is_deprecated(workflow, to_version):
        raise refused(subject, f"version {to_version!r} is deprecated", "migrate to an active one")
    edges: dict[str, list[str]] = {}
    for migration in registry.migrations(workflow):
        edges.setdefault(migration.from_version, []).append(migration.to_version)
    route = _shortest(edges, from_version, to_version)
    if route is not None:
        return route
    if catalog.user_steps(workflow, to_version) is not None:
        return [to_version]  # a flow: its recorded step outputs carried straight over
    if from_version not in versions:  # a migration needs both versions (versions h44 F3)
        raise refused(
            subject,
            f"the instance's version {from_version!r} is not registered here (registered: "
            f"{versions}), and a net's migration names both versions",
            f"register version {from_version!r} again beside {to_version!r}, with "
            f"net.migration between them, then migrate it",
        )
    pairs = registry.migrations(workflow)
    registered = [f"{m.from_version}->{m.to_version}" for m in pairs]
    raise refused(
        subject,
        f"no route of registered migrations leads there (registered: {registered})",
        "register net.migration(from, to, ...) for each step of the way",
    )


def _shortest(edges: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """The versions after ``start`` on a shortest route to ``goal`` (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        version = queue.popleft()
        if version == goal:
            route = []
            while version != start:
                route.append(version)
                version = came_from[version]
            return route[::-1]
        for following in edges.get(version, []):
            if following not in seen:
                seen.add(following)
                came_from[following] = version
                queue.append(following)
    return None

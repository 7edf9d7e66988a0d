"""The Cronflow-style flows a runtime knows: the ones registered, and their subflows.

The flows themselves are compiled to nets and run by the engine; what the runtime still reads
here is what lives outside the net: triggers (webhooks, schedules, events), hooks and the
concurrency limit.
"""

from __future__ import annotations

import re

from cronflow_actors.errors import InvalidWorkflowError, NotFoundError
from cronflow_actors.flow.builder import Flow, SubflowNode, walk
from cronflow_actors.net.spec import NetSpec

__all__ = ["API_PREFIXES", "FlowCatalog"]

API_PREFIXES = frozenset(
    {"runs", "events", "resume", "paused", "workflows", "work-items", "healthz", "readyz"}
    | {"metrics", "openapi.json"}
)
"""The first path segments of the HTTP API's own routes: a webhook may not take them."""


class FlowCatalog:
    def __init__(self) -> None:
        self.flows: dict[str, Flow] = {}
        """Every flow this runtime knows, subflows included."""
        self.roots: set[str] = set()
        """The flows registered themselves (the ones that can be triggered)."""

    def compile(self, flow: Flow) -> NetSpec:
        """Check and compile ``flow`` (``InvalidWorkflowError`` lists every problem); changes
        nothing (``add`` it once its net is registered)."""
        spec = flow.build()
        problems = self._webhook_clashes(flow)
        if problems:
            raise InvalidWorkflowError(flow.id, problems)
        return spec

    def add(self, flow: Flow) -> None:
        for child in _subflows(flow):
            self.flows.setdefault(child.id, child)
        self.flows[flow.id] = flow
        self.roots.add(flow.id)

    def _webhook_clashes(self, flow: Flow) -> list[str]:
        taken = {
            (hook.method, _shape(hook.route)): (other, hook.path)
            for other in self.roots - {flow.id}
            for hook in self.flows[other].webhooks
        }
        problems = []
        for hook in flow.webhooks:
            first = hook.route.strip("/").split("/", 1)[0]
            if first in API_PREFIXES:
                problems.append(
                    f"on_webhook({hook.path!r}): /{first} belongs to the HTTP API; "
                    "choose another path (under /webhooks/, say)"
                )
            elif (hook.method, _shape(hook.route)) in taken:
                other, path = taken[hook.method, _shape(hook.route)]
                problems.append(
                    f"on_webhook({hook.path!r}): flow {other!r} already takes "
                    f"{hook.method} {path}; choose another path or method"
                )
        return problems

    def root(self, workflow: str) -> Flow:
        """A registered flow, one that can be triggered."""
        if workflow not in self.roots:
            known = sorted(self.roots)
            raise NotFoundError("flow", workflow, f"this runtime (registered flows: {known})")
        return self.flows[workflow]

    def listening(self, event: str) -> list[Flow]:
        """The registered flows started by ``event`` (``on_event``)."""
        return [self.flows[name] for name in sorted(self.roots) if event in self.flows[name].events]


def _shape(route: str) -> str:
    """A route with its parameters unnamed: /a/{x} and /a/{y} take the same requests."""
    return re.sub(r"\{[^}]*\}", "{}", route)


def _subflows(flow: Flow) -> list[Flow]:
    found = []
    for node in walk(flow._root):
        if isinstance(node, SubflowNode) and isinstance(node.flow, Flow):
            found.append(node.flow)
            found.extend(_subflows(node.flow))
    return found

"""The Cronflow-style flows a runtime knows: the ones registered, and their subflows.

The flows themselves are compiled to nets and run by the engine; what the runtime still reads
here is what lives outside the net: triggers (webhooks, schedules, events), hooks and the
concurrency limit.
"""

from __future__ import annotations

from cronflow_actors.errors import NotFoundError
from cronflow_actors.flow.builder import Flow, SubflowNode, walk
from cronflow_actors.net.spec import NetSpec

__all__ = ["FlowCatalog"]


class FlowCatalog:
    def __init__(self) -> None:
        self.flows: dict[str, Flow] = {}
        """Every flow this runtime knows, subflows included."""
        self.roots: set[str] = set()
        """The flows registered themselves (the ones that can be triggered)."""

    def register(self, flow: Flow) -> NetSpec:
        """Check and compile ``flow`` (``InvalidWorkflowError`` lists every problem)."""
        spec = flow.build()
        for child in _subflows(flow):
            self.flows.setdefault(child.id, child)
        self.flows[flow.id] = flow
        self.roots.add(flow.id)
        return spec

    def root(self, workflow: str) -> Flow:
        """A registered flow, one that can be triggered."""
        if workflow not in self.roots:
            known = sorted(self.roots)
            raise NotFoundError("flow", workflow, f"this runtime (registered flows: {known})")
        return self.flows[workflow]

    def listening(self, event: str) -> list[Flow]:
        """The registered flows started by ``event`` (``on_event``)."""
        return [self.flows[name] for name in sorted(self.roots) if event in self.flows[name].events]


def _subflows(flow: Flow) -> list[Flow]:
    found = []
    for node in walk(flow._root):
        if isinstance(node, SubflowNode) and isinstance(node.flow, Flow):
            found.append(node.flow)
            found.extend(_subflows(node.flow))
    return found

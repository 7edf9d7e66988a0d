"""``CompiledFlow``: a flow compiled, the one artifact the runtime reads.

It holds the ``NetSpec`` the engine runs and everything about the flow that lives outside the
net: which of the net's tasks are the user's steps (the others are a construct's own
plumbing), the triggers, hooks, limits, secrets, the waits and pauses, the subflows compiled
with it, and how the flow describes itself. Nothing downstream reads the builder or decodes
the compiler's task names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec

from cronflow_actors.flow.definition import FlowDefinition, FlowTriggers
from cronflow_actors.flow.introspect import WorkflowDescription
from cronflow_actors.flow.nodes import EventNode, HumanNode
from cronflow_actors.flow.options import Hooks
from cronflow_actors.flow.workflow_options import RateLimit
from cronflow_actors.net.spec import NetSpec

__all__ = ["Compilable", "CompiledFlow", "Resolve", "StepMeta"]


class StepMeta(msgspec.Struct, frozen=True, kw_only=True):
    """One user step of a compiled flow: a task of the net named by the step's id."""

    kind: str
    """step, action, while, parallel, race, for_each, batch, sleep, delay, event, human, pause
    or subflow."""
    mockable: bool = False
    """Its function can be replaced for one run (``replay(mock_steps=...)``)."""


class CompiledFlow(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A flow compiled (``Flow.compile()``): what the runtime registers, serves and shows."""

    id: str
    name: str
    version: str
    tags: tuple[str, ...]
    spec: NetSpec
    """The net the engine runs."""
    steps: Mapping[str, StepMeta]
    """The user's steps by task name, in the flow's order (``if_`` branches included)."""
    triggers: FlowTriggers
    hooks: Hooks
    concurrency: int | None
    rate_limit: RateLimit | None
    queue: str | None
    secrets: Mapping[str, Any]
    description: WorkflowDescription
    """What ``get_workflows()`` and ``GET /flows`` say of it."""
    subflows: tuple[CompiledFlow, ...] = ()
    """The flows it runs as subflows, given as flows (theirs too), each once."""
    waits: Mapping[str, EventNode] = msgspec.field(default_factory=dict)
    """Its ``wait_for_event`` steps by task name."""
    humans: Mapping[str, HumanNode] = msgspec.field(default_factory=dict)
    """Its ``human_in_the_loop`` and ``pause`` steps by task name."""
    definition: FlowDefinition | None = None
    """What it was compiled from (a replay with mocks compiles a copy)."""

    @property
    def mockable(self) -> list[str]:
        """The ids of the steps whose function a mock can replace."""
        return [name for name, meta in self.steps.items() if meta.mockable]

    def with_subflows(self) -> list[CompiledFlow]:
        """This flow and its subflows (theirs too), each once."""
        found = {self.id: self}
        for child in self.subflows:
            found.setdefault(child.id, child)
        return list(found.values())


@runtime_checkable
class Compilable(Protocol):
    """What a subflow given as a flow is: something that compiles (a ``Flow``)."""

    id: str

    def compile(self, resolve: Resolve | None = None) -> CompiledFlow: ...


Resolve = Callable[[str], CompiledFlow | Compilable | None]
"""``resolve(flow_id)``: a flow registered on the runtime (for subflows named by id), compiled
or not."""

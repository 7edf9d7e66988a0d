"""The Cronflow-style flows a runtime knows: the ones registered, as compiled.

A flow is registered as its ``CompiledFlow`` (``flow/compiled.py``): the net the engine runs,
and what lives outside the net (triggers, hooks, limits, secrets, which tasks are the user's
steps, how the flow describes itself). The runtime reads only that artifact; the ``Flow``
objects registered are kept as given, for callers that hold them.

Several versions of one flow (``define("x", version="v2")``) are registered side by side: runs
of each version go on on it, and the flow's current version, the one new runs take and whose
triggers (webhooks, schedules, polls, events) are served, is the last one registered that is
not deprecated (the last one registered, when all are).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping

import msgspec

from cronflow_actors.errors import InvalidWorkflowError, NotFoundError, did_you_mean
from cronflow_actors.flow.builder import Flow
from cronflow_actors.flow.compiled import CompiledFlow
from cronflow_actors.flow.introspect import (
    FlowTrigger,
    FlowVersion,
    RateLimitInfo,
    WorkflowDescription,
)
from cronflow_actors.flow.triggers import WebhookSpec
from cronflow_actors.net.fingerprint import fingerprint
from cronflow_actors.net.spec import NetSpec

__all__ = [
    "API_PREFIXES",
    "FlowCatalog",
    "FlowTrigger",
    "FlowVersion",
    "RateLimitInfo",
    "WorkflowDescription",
]

API_PREFIXES = frozenset(
    {"runs", "events", "resume", "paused", "workflows", "work-items", "healthz", "readyz"}
    | {"metrics", "openapi.json", "flows", "ui"}
)
"""The first path segments of the HTTP API's own routes: a webhook may not take them."""


class FlowCatalog:
    def __init__(
        self,
        nets: Callable[[str], list[str]] = lambda name: [],
        waits: Callable[[], set[str]] = set,
    ) -> None:
        self._nets = nets
        """A workflow name -> the versions of a net registered under it (none: no net)."""
        self._waits = waits
        """The events some registered workflow's work item waits for."""
        self.compiled: dict[str, CompiledFlow] = {}
        """The flows registered (the ones that can be triggered), by id, as compiled: each
        one's current version."""
        self.flows: dict[str, Flow] = {}
        """The ``Flow`` objects registered, by id, as they were given (the current version)."""
        self.roots: set[str] = set()
        """The ids of the flows registered."""
        self._versions: dict[tuple[str, str], CompiledFlow] = {}
        """Every version registered, by (flow id, version): what the runs of each one show."""
        self._given: dict[tuple[str, str], Flow] = {}
        self._order: dict[str, list[str]] = {}
        """Flow id -> its versions, in the order they were registered."""
        self._deprecated: set[tuple[str, str]] = set()

    def compile(self, flow: Flow) -> CompiledFlow:
        """Check and compile ``flow`` (``InvalidWorkflowError`` lists every problem); changes
        nothing (``add`` it once its net is registered). A subflow named by id is one of the
        registered flows."""
        compiled = flow.compile(resolve=self.resolve)
        problems = self._webhook_clashes(compiled)
        versions = self._nets(compiled.id)
        if versions and compiled.id not in self.roots:
            problems.append(
                f"a net workflow is registered under this id (versions {versions}): a flow and a "
                "net cannot share a name (a run is a flow's or a net's by its name: its callers' "
                "rights follow); give the flow another id"
            )
        if problems:
            raise InvalidWorkflowError(compiled.id, problems)
        return compiled

    def checked_net(self, spec: NetSpec) -> NetSpec:
        """``spec``, a net's, when no flow is registered under its name; ``InvalidWorkflowError``
        (nothing registered) otherwise: its instances would be taken for the flow's runs, resumed
        and canceled past its policies (hostile h29 H2)."""
        if spec.name in self.roots:
            problem = (
                "a flow is registered under this name: a net and a flow cannot share one (a run "
                "is a flow's or a net's by its name: its callers' rights follow); give the net "
                "another name"
            )
            raise InvalidWorkflowError(spec.name, [problem])
        return spec

    def resolve(self, flow_id: str) -> CompiledFlow | None:
        """A registered flow, or None (for subflows named by id)."""
        return self.compiled.get(flow_id)

    def add(self, flow: Flow, compiled: CompiledFlow, *, deprecated: bool = False) -> None:
        """Register a version of a flow (its net registered already); the flow's current
        version is chosen again. ``flow`` cannot change from now on: its runs run what was
        compiled here (devx h40 F7)."""
        key = (compiled.id, compiled.version)
        self._versions[key] = compiled
        self._given[key] = flow
        flow._register()  # it runs as compiled here: it cannot change from now on
        order = self._order.setdefault(compiled.id, [])
        if compiled.version not in order:
            order.append(compiled.version)
        if deprecated:
            self._deprecated.add(key)
        else:
            self._deprecated.discard(key)
        self.roots.add(compiled.id)
        self._choose(compiled.id)

    def deprecate(self, flow_id: str, version: str) -> bool:
        """New runs of the flow take another version; False if that is not a flow's version
        registered here."""
        if (flow_id, version) not in self._versions:
            return False
        self._deprecated.add((flow_id, version))
        self._choose(flow_id)
        return True

    def versions(self, flow_id: str) -> list[FlowVersion]:
        """The versions of a registered flow, in the order they were registered."""
        current = self.compiled.get(flow_id)
        return [
            FlowVersion(
                version=version,
                deprecated=(flow_id, version) in self._deprecated,
                current=current is not None and current.version == version,
                fingerprint=fingerprint(self._versions[flow_id, version].spec),
            )
            for version in self._order.get(flow_id, [])
        ]

    def _choose(self, flow_id: str) -> None:
        order = self._order[flow_id]
        active = [v for v in order if (flow_id, v) not in self._deprecated]
        version = (active or order)[-1]
        self.compiled[flow_id] = self._versions[flow_id, version]
        self.flows[flow_id] = self._given[flow_id, version]

    def _webhook_clashes(self, flow: CompiledFlow) -> list[str]:
        taken = {
            (hook.method, _shape(hook.route)): (other, hook.path)
            for other, hook in self.webhooks()
            if other != flow.id
        }
        problems = []
        for hook in flow.triggers.webhooks:
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

    def root(self, workflow: str) -> CompiledFlow:
        """A registered flow, one that can be triggered."""
        found = self.compiled.get(workflow)
        if found is None:
            known = sorted(self.roots)
            where = f"this runtime (registered flows: {known})"
            if isinstance(workflow, str) and self._nets(workflow):
                raise NotFoundError(
                    "flow",
                    workflow,
                    where,
                    advice=f"{workflow!r} is a net workflow: start it with "
                    "Runtime.start_workflow (POST /workflows, cronflow-actors net start)",
                )
            raise NotFoundError("flow", workflow, where)
        return found

    def is_net(self, workflow: str) -> bool:
        """Whether ``workflow`` is a net workflow registered here (no flow of its name is)."""
        return workflow not in self.compiled and bool(self._nets(workflow))

    def descriptions(self) -> list[WorkflowDescription]:
        """The registered flows, by id (each as its current version, with all its versions)."""
        return [self.description(name) for name in sorted(self.roots)]

    def description(self, flow_id: str) -> WorkflowDescription:
        """A registered flow as its current version describes it, with all its versions."""
        described = self.root(flow_id).description
        return msgspec.structs.replace(described, versions=self.versions(flow_id))

    def listening(self, event: str) -> list[CompiledFlow]:
        """The registered flows started by ``event`` (``on_event``)."""
        found = (self.compiled[name] for name in sorted(self.roots))
        return [flow for flow in found if event in flow.triggers.events]

    def unheard(self, event: str) -> str | None:
        """What to tell of a publish of ``event`` that reached nothing, when no registered flow
        starts on it and no registered step waits for it (a misspelt name is answered so, not
        as one every waiting step's filter refused: newcomer h38 F5); None when some do."""
        starts = {name for root in self.roots for name in self.compiled[root].triggers.events}
        heard = starts | self._waits()
        if event in heard:
            return None
        said = f"no flow starts on {event!r} and no step waits for it{did_you_mean(event, heard)}"
        if not heard:  # (retest h38 R9: "...: none")
            return f"{said}; no flow here starts on or waits for any event"
        known = ", ".join(sorted(heard)[:20])
        return f"{said}; the events flows here start on or wait for: {known}"

    def webhooks(self) -> list[tuple[str, WebhookSpec]]:
        """(flow id, webhook) of every registered flow's webhooks, by flow id."""
        return [
            (name, hook)
            for name in sorted(self.roots)
            for hook in self.compiled[name].triggers.webhooks
        ]

    def user_steps(self, workflow: str, version: str) -> Container[str] | None:
        """The task names that are user steps in runs of ``workflow``'s ``version``; None when
        that version is not a flow registered here."""
        found = self._versions.get((workflow, version))
        return found.steps if found is not None else None

    def awaited_events(self, workflow: str, version: str) -> Mapping[str, str]:
        """The event each ``wait_for_event`` step of ``workflow``'s ``version`` waits for, by
        task name (empty when that version is not a flow registered here)."""
        found = self._versions.get((workflow, version))
        return {} if found is None else {name: w.event for name, w in found.waits.items()}


def _shape(route: str) -> str:
    """A route with its parameters unnamed: /a/{x} and /a/{y} take the same requests."""
    return re.sub(r"\{[^}]*\}", "{}", route)

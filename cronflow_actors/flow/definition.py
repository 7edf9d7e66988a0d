"""What a ``cf.define(...)`` chain says, as data: the compiler's input.

``Flow.definition()`` takes this snapshot of the builder: the nodes in order, the triggers, the
hooks, limits and descriptive options. The compiler (``flow/compile.py``) turns it into a
``CompiledFlow``; a per-item flow (``for_each(..., lambda item, flow: ...)``) is one of these too,
and a replay with mocks compiles a copy whose nodes have other functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from cronflow_actors.flow.cron import CronSchedule
from cronflow_actors.flow.nodes import Node
from cronflow_actors.flow.options import Hooks
from cronflow_actors.flow.triggers import PollSpec, WebhookSpec
from cronflow_actors.flow.workflow_options import RateLimit

__all__ = ["FlowDefinition", "FlowTriggers"]


class FlowTriggers(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """How a flow's runs start besides by hand: its ``on_webhook``, ``on_schedule``,
    ``on_interval``, ``on_event`` and ``on_poll`` triggers."""

    webhooks: tuple[WebhookSpec, ...] = ()
    schedules: tuple[CronSchedule, ...] = ()
    intervals: tuple[float, ...] = ()
    """Seconds between runs, one per ``on_interval``."""
    events: tuple[str, ...] = ()
    event_schemas: Mapping[str, Any] = msgspec.field(default_factory=dict)
    """The schema of each ``on_event`` that has one, by event name."""
    polls: tuple[PollSpec, ...] = ()


class FlowDefinition(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A flow as its chain defined it (checked by ``Flow.build``, compiled by ``compile_flow``)."""

    id: str
    name: str
    """What the flow is called in listings (its id unless given)."""
    description: str = ""
    tags: tuple[str, ...] = ()
    version: str = "v1"
    nodes: tuple[Node, ...] = ()
    triggers: FlowTriggers = msgspec.field(default_factory=FlowTriggers)
    hooks: Hooks = msgspec.field(default_factory=Hooks)
    timeout: float | None = None
    """Seconds a run may take before it fails."""
    concurrency: int | None = None
    rate_limit: RateLimit | None = None
    queue: str | None = None
    secrets: Mapping[str, Any] = msgspec.field(default_factory=dict)
    """Names to ``cf.env(...)`` or values (``ctx.secrets``; never persisted)."""
    skip_when_empty: bool = False
    """A per-item flow: a payload marked empty ends it at once."""

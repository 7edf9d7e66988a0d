"""The Cronflow-style front end: ``cf.define(...)`` chains compiled to a NetSpec.

    orders = cf.define("order-flow", concurrency=10, timeout="30m")
    orders.step("validate", validate, retry=cf.Retry(attempts=3)).action("notify", notify)

Pure definitions: ``Flow.compile()`` turns one into a ``CompiledFlow`` (its ``NetSpec`` and all
the runtime needs besides); the net engine runs the net, the runtime registers the artifact and
serves its triggers.
"""

from cronflow_actors.flow.builder import Flow, define
from cronflow_actors.flow.compiled import CompiledFlow, StepMeta
from cronflow_actors.flow.context import FlowContext, PollContext, RunRef, TriggerInfo
from cronflow_actors.flow.cron import CatchUp, CronExpression, CronSchedule
from cronflow_actors.flow.definition import FlowDefinition, FlowTriggers
from cronflow_actors.flow.envelope import TriggerEnvelope
from cronflow_actors.flow.options import Cache, CircuitBreaker, Hooks, Retry
from cronflow_actors.flow.secrets import EnvSecret, Secrets, env
from cronflow_actors.flow.triggers import (
    PollSpec,
    WebhookProblem,
    WebhookRequest,
    WebhookResponse,
    WebhookSpec,
)
from cronflow_actors.flow.workflow_options import RateLimit

__all__ = [
    "Cache",
    "CatchUp",
    "CircuitBreaker",
    "CompiledFlow",
    "CronExpression",
    "CronSchedule",
    "EnvSecret",
    "Flow",
    "FlowContext",
    "FlowDefinition",
    "FlowTriggers",
    "Hooks",
    "PollContext",
    "PollSpec",
    "RateLimit",
    "Retry",
    "RunRef",
    "Secrets",
    "StepMeta",
    "TriggerEnvelope",
    "TriggerInfo",
    "WebhookProblem",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookSpec",
    "define",
    "env",
]

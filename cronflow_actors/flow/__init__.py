"""The Cronflow-style front end: ``cf.define(...)`` chains compiled to a NetSpec.

    orders = cf.define("order-flow", concurrency=10, timeout="30m")
    orders.step("validate", validate, retry=cf.Retry(attempts=3)).action("notify", notify)

Pure definitions: the net engine runs them; the runtime registers them and serves their triggers.
"""

from cronflow_actors.flow.builder import Flow, define
from cronflow_actors.flow.context import FlowContext, PollContext, RunRef, TriggerInfo
from cronflow_actors.flow.cron import CatchUp, CronExpression, CronSchedule
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
    "CronExpression",
    "CronSchedule",
    "EnvSecret",
    "Flow",
    "FlowContext",
    "Hooks",
    "PollContext",
    "PollSpec",
    "RateLimit",
    "Retry",
    "RunRef",
    "Secrets",
    "TriggerInfo",
    "WebhookProblem",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookSpec",
    "define",
    "env",
]

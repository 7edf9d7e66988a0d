"""The Cronflow-style front end: ``cf.define(...)`` chains compiled to a NetSpec.

    orders = cf.define("order-flow", concurrency=10, timeout="30m")
    orders.step("validate", validate, retry=cf.Retry(attempts=3)).action("notify", notify)

Pure definitions: the net engine runs them; the runtime registers them and serves their triggers.
"""

from cronflow_actors.flow.builder import Flow, WebhookSpec, define
from cronflow_actors.flow.context import FlowContext, RunRef, TriggerInfo
from cronflow_actors.flow.cron import CatchUp, CronExpression, CronSchedule
from cronflow_actors.flow.options import Hooks, Retry

__all__ = [
    "CatchUp",
    "CronExpression",
    "CronSchedule",
    "Flow",
    "FlowContext",
    "Hooks",
    "Retry",
    "RunRef",
    "TriggerInfo",
    "WebhookSpec",
    "define",
]

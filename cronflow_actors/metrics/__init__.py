"""Metrics: every metric defined once (``RuntimeMetrics``), one registry per runtime."""

from cronflow_actors.metrics.live import RUN_STATUSES, LiveGauges, LiveSample
from cronflow_actors.metrics.registry import HTTP_METHODS, TRIGGERS, WAIT_KINDS, RuntimeMetrics

__all__ = [
    "HTTP_METHODS",
    "RUN_STATUSES",
    "TRIGGERS",
    "WAIT_KINDS",
    "LiveGauges",
    "LiveSample",
    "RuntimeMetrics",
]

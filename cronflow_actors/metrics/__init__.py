"""Metrics: every metric defined once (``RuntimeMetrics``), one registry per runtime."""

from cronflow_actors.metrics.exposition import OPENMETRICS, TEXT, wants_openmetrics
from cronflow_actors.metrics.families import CounterFamily, HistogramFamily
from cronflow_actors.metrics.live import RUN_STATUSES, LiveGauges, LiveSample
from cronflow_actors.metrics.registry import (
    HTTP_METHODS,
    MANUAL,
    TIMED_OUT,
    TRIGGERS,
    WAIT_KINDS,
    RuntimeMetrics,
)

__all__ = [
    "HTTP_METHODS",
    "MANUAL",
    "OPENMETRICS",
    "RUN_STATUSES",
    "TEXT",
    "TIMED_OUT",
    "TRIGGERS",
    "WAIT_KINDS",
    "CounterFamily",
    "HistogramFamily",
    "LiveGauges",
    "LiveSample",
    "RuntimeMetrics",
    "wants_openmetrics",
]

"""Metrics: every metric defined once (``RuntimeMetrics``), one registry per runtime."""

from cronflow_actors.metrics.registry import RuntimeMetrics

__all__ = ["RuntimeMetrics"]

"""Metrics: every metric name and label set defined once, on a per-runtime CollectorRegistry.

Built with the engine and runtime issues; this layer holds nothing yet.
"""

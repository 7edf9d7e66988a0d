"""Every metric of a runtime, defined once, on a registry of its own.

Names follow Prometheus conventions (prefix ``cronflow_``, base units, counters end in ``_total``);
labels only take values from finite sets (workflow type, step kind, outcome, route template,
method, status), never run ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["RuntimeMetrics"]

_DURATIONS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400)


class _Live(Collector):
    """Gauges read when scraped: actors alive by kind, timers armed."""

    def __init__(self, actors: Callable[[], dict[str, int]], timers: Callable[[], int]) -> None:
        self._actors = actors
        self._timers = timers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        alive = GaugeMetricFamily("cronflow_actors_alive", "Actors alive by kind", labels=["kind"])
        for kind, count in sorted(self._actors().items()):
            alive.add_metric([kind], count)
        yield alive
        yield GaugeMetricFamily(
            "cronflow_timers_armed", "Durable timers armed", value=self._timers()
        )


class RuntimeMetrics:
    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs_started = Counter(
            "cronflow_runs_started_total", "Root instances started", ["workflow"], registry=r
        )
        self.runs_finished = Counter(
            "cronflow_runs_finished_total",
            "Root instances finished, by outcome",
            ["workflow", "outcome"],
            registry=r,
        )
        self.run_duration = Histogram(
            "cronflow_run_duration_seconds",
            "Time from start to finish of root instances",
            ["workflow"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.steps_finished = Counter(
            "cronflow_steps_finished_total",
            "Work items finished, by kind and outcome",
            ["workflow", "kind", "outcome"],
            registry=r,
        )
        self.step_duration = Histogram(
            "cronflow_step_duration_seconds",
            "Time from start to finish of work items",
            ["workflow", "kind"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.retries = Counter(
            "cronflow_step_retries_total", "Failed attempts retried", ["workflow"], registry=r
        )
        self.recovered = Counter(
            "cronflow_recovered_runs_total", "Instances rebuilt from the store on start", registry=r
        )
        self.cron_fires = Counter(
            "cronflow_schedule_fires_total", "Runs started by schedules", ["workflow"], registry=r
        )
        self.polls = Counter(
            "cronflow_polls_total",
            "Calls of on_poll functions, by outcome (ok, failed)",
            ["workflow", "outcome"],
            registry=r,
        )
        self.poll_items = Counter(
            "cronflow_poll_items_total",
            "Items returned by on_poll functions, by outcome (started, seen, refused)",
            ["workflow", "outcome"],
            registry=r,
        )
        self.http_requests = Counter(
            "cronflow_http_requests_total",
            "HTTP requests, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.store_batches = Counter(
            "cronflow_store_commits_total", "Group commits of the store's writer", registry=r
        )
        Info("cronflow_build", "Version of cronflow-actors", registry=r).info({"version": version})

    def watch(self, actors: Callable[[], dict[str, int]], timers: Callable[[], int]) -> None:
        self.registry.register(_Live(actors, timers))

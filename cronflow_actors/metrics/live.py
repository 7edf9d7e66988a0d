"""Gauges read when scraped, from a sample the runtime takes on its event loop.

Some values cannot be read from the thread that renders ``/metrics``: the actor registry and the
timer heap belong to the event loop, and the counts of runs in flight by status live in the
store (waiting runs are not in memory). So the runtime takes a ``LiveSample`` on the loop (the
store's part through its reader, cached for a second or so) and hands it to ``LiveGauges``;
rendering then only reads that immutable sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["RUN_STATUSES", "LiveGauges", "LiveSample"]

RUN_STATUSES = ("running", "waiting", "paused")
"""The statuses of runs in flight: ``paused`` are waiting runs with an open human pause (they
are not counted as ``waiting`` too)."""


@dataclass(frozen=True)
class LiveSample:
    """What the gauges show until the next sample."""

    runs_in_flight: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(workflow, status) -> runs; status from ``RUN_STATUSES``."""
    runs_queued: Mapping[str, int] = field(default_factory=dict)
    """workflow -> runs waiting for a place under its concurrency limit."""
    actors: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """actor kind -> (alive, messages waiting in their mailboxes)."""
    timers_armed: int = 0
    starts_waiting: int = 0
    """New runs waiting for a place under ``max_active_runs`` (``runtime/admission.py``)."""
    pool_threads: int = 0
    pool_busy: int = 0
    pool_queued: int = 0
    workflows: tuple[str, ...] = ()
    """Registered workflow types: each gets every series of runs in flight and queued, 0 when it
    has no run there (so a dashboard shows 0, not "no data")."""


class LiveGauges(Collector):
    """Renders the latest ``LiveSample`` (an empty one until the first is taken)."""

    def __init__(self) -> None:
        self._sample = LiveSample()

    @property
    def current(self) -> LiveSample:
        return self._sample

    def update(self, sample: LiveSample) -> None:
        self._sample = sample  # one reference swap: a render sees the old sample or the new one

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sample = self._sample
        in_flight = GaugeMetricFamily(
            "cronflow_runs_in_flight",
            "Runs not finished, by workflow and status (running; waiting, for a timer or an "
            "event; paused, at a flow's human step: the API says waiting for both; a net "
            "instance whose work items wait to be started by hand is waiting), counted from "
            "the store's indexes",
            labels=["workflow", "status"],
        )
        workflows = sorted({*sample.workflows, *(w for w, _ in sample.runs_in_flight)})
        for workflow in workflows:
            for status in RUN_STATUSES:
                in_flight.add_metric(
                    [workflow, status], sample.runs_in_flight.get((workflow, status), 0)
                )
        yield in_flight
        queued = GaugeMetricFamily(
            "cronflow_runs_queued",
            "Runs waiting for a place under their workflow's concurrency limit",
            labels=["workflow"],
        )
        for workflow in sorted({*sample.workflows, *sample.runs_queued}):
            queued.add_metric([workflow], sample.runs_queued.get(workflow, 0))
        yield queued
        alive = GaugeMetricFamily("cronflow_actors_alive", "Actors alive, by kind", labels=["kind"])
        mailbox = GaugeMetricFamily(
            "cronflow_mailbox_depth",
            "Messages waiting in the mailboxes of the actors of a kind",
            labels=["kind"],
        )
        for kind, (count, depth) in sorted(sample.actors.items()):
            alive.add_metric([kind], count)
            mailbox.add_metric([kind], depth)
        yield alive
        yield mailbox
        yield GaugeMetricFamily(
            "cronflow_timers_armed", "Durable timers held in memory", value=sample.timers_armed
        )
        yield GaugeMetricFamily(
            "cronflow_starts_waiting",
            "New runs waiting for a place in memory under max_active_runs (nothing written yet)",
            value=sample.starts_waiting,
        )
        yield GaugeMetricFamily(
            "cronflow_blocking_pool_threads",
            "Threads of the pool that runs plain-def handlers",
            value=sample.pool_threads,
        )
        yield GaugeMetricFamily(
            "cronflow_blocking_pool_busy_threads",
            "Pool threads running a call",
            value=sample.pool_busy,
        )
        yield GaugeMetricFamily(
            "cronflow_blocking_pool_queued_calls",
            "Calls waiting for a pool thread",
            value=sample.pool_queued,
        )

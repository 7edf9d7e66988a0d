"""Every metric of a runtime, defined once, on a registry of its own.

Names follow Prometheus conventions (prefix ``cronflow_``, base units, counters end in ``_total``);
labels only take values from finite sets (workflow type, step kind, action name, outcome,
trigger, route template, method, status), never run ids. Counters and histograms are the
families of ``families.py``: they write no ``_created`` series (which would double the series of
each, and which Prometheus does not use) and render fast. The process and Python GC collectors
are on.

Who feeds what (so each value comes from the place that knows it):

- the state changes of durable transactions (``runtime/telemetry.py``): runs, steps, waits,
  retries, schedule-to-start, actions;
- the store's writer: commits, their latency and batch size;
- the schedules: fires and lag; the runtime's start: recovered runs;
- a probe task on the event loop: its lag;
- the HTTP edge: requests and latency (``http/instrumentation.py``), webhook duplicates and
  signature failures;
- the runtime's pinning of definitions (``runtime/pinning.py``): runs blocked;
- a sample taken on the loop when scraped (``live.py``): runs in flight by status and queued
  (from the store's indexes), actors, timers, the blocking pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from cronflow_actors.metrics.families import CounterFamily, HistogramFamily
from cronflow_actors.metrics.live import LiveGauges

__all__ = [
    "HTTP_METHODS",
    "TRIGGERS",
    "WAIT_KINDS",
    "RuntimeMetrics",
]

TRIGGERS = frozenset(
    {"manual", "api", "webhook", "schedule", "event", "poll", "replay", "migration"}
)
"""Values of the ``trigger`` label; anything else is counted as ``other``."""
WAIT_KINDS = frozenset({"human", "pause", "event", "sleep", "delay"})
"""Step kinds that wait (for a person, an event, a timer) rather than work: their time goes to
``cronflow_wait_duration_seconds``, not to the step durations."""
MANUAL = "manual"
"""The wait kind of a net work item a caller starts (no handler, no wait): from its creation to
its start (or its end, canceled with its task), it waits for a person or a system to take it."""
_ENDED = ("completed", "failed", "canceled")
TIMED_OUT = "timed_out"
"""A wait's outcome when its deadline ended it (a human step nobody answered, an event that did
not come), whether the wait then reads completed (a human step's timeout answer) or failed."""
_DEADLINED = frozenset({"human", "pause", "event"})
"""The wait kinds a deadline can end (sleeps and delays end at theirs by design)."""
_RUN_ENDED = (*_ENDED, "migrated")
"""A run's outcomes: ``migrated``, canceled for a migration (its run goes on in another)."""
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Values of the ``method`` label; any other method is counted as ``other``."""

# Bucket bounds, seconds unless said otherwise. Few enough to keep a render of hundreds of
# workflow types fast, spread to put p50/p95/p99 of each quantity between two bounds.
# runs and waits in steps of 1-2.5-5 where they are short: a run of 14 ms and one of 29 ms fell in
# one bucket 10-50 ms wide, read as 30 ms and 48 ms (metrics h41 F8)
_RUN = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
_STEP = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300)
_WAIT = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 14400, 86400, 604800)
_FAST = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
_LOOP = (*_FAST, 10, 30, 60)  # a blocked loop's stall read as itself, not as "5 s" (h39 F2)
_LAG = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 3600)
_BATCH = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000)  # items
_HTTP = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class RuntimeMetrics:
    """The metrics of one runtime on ``self.registry``. Feed them through the attributes;
    ``live`` takes the sampled gauges."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        # -- runs ------------------------------------------------------------------------------
        self.runs_started = CounterFamily(
            "cronflow_runs_started_total",
            "Runs (root instances) started, by workflow and what started them",
            ["workflow", "trigger"],
            registry=r,
        )
        self.runs_finished = CounterFamily(
            "cronflow_runs_finished_total",
            "Runs finished, by workflow and outcome (completed, failed, canceled; migrated: "
            "canceled for a migration, counted as the run that replaces it starts; one whose "
            "migration is given up is counted canceled then)",
            ["workflow", "outcome"],
            registry=r,
        )
        self.run_duration = HistogramFamily(
            "cronflow_run_duration_seconds",
            "Time from the start of a run to its end",
            ["workflow"],
            buckets=_RUN,
            unit="seconds",
            registry=r,
        )
        self.recovered = CounterFamily(
            "cronflow_recovered_runs_total",
            "Runs with work in flight loaded from the store when the runtime started",
            registry=r,
        )

        # -- steps, waits, actions --------------------------------------------------------------
        self.steps_finished = CounterFamily(
            "cronflow_steps_finished_total",
            "Steps (work items that are not waits or detached actions) finished, by workflow, "
            "kind and outcome (completed, failed, canceled)",
            ["workflow", "kind", "outcome"],
            registry=r,
        )
        self.step_duration = HistogramFamily(
            "cronflow_step_duration_seconds",
            "Time from the start of a step's attempt to its end",
            ["workflow", "kind"],
            buckets=_STEP,
            unit="seconds",
            registry=r,
        )
        self.schedule_to_start = HistogramFamily(
            "cronflow_step_schedule_to_start_seconds",
            "Time from a step's start being durable to its handler beginning to run",
            ["workflow"],
            buckets=_FAST,
            unit="seconds",
            registry=r,
        )
        self.retries = CounterFamily(
            "cronflow_step_retries_total",
            "Failed step attempts that are tried again",
            ["workflow"],
            registry=r,
        )
        self.waits_finished = CounterFamily(
            "cronflow_waits_finished_total",
            "Waits (human, pause, event, sleep, delay; manual: a net work item until a caller "
            "started it) ended, by workflow, kind and outcome (completed, failed, canceled; "
            "timed_out: its deadline ended it)",
            ["workflow", "kind", "outcome"],
            registry=r,
        )
        self.polls = CounterFamily(
            "cronflow_polls_total",
            "Calls of on_poll functions, by outcome (ok, failed)",
            ["workflow", "outcome"],
            registry=r,
        )
        self.poll_items = CounterFamily(
            "cronflow_poll_items_total",
            "Items returned by on_poll functions, by outcome (started, seen, refused)",
            ["workflow", "outcome"],
            registry=r,
        )
        self.wait_duration = HistogramFamily(
            "cronflow_wait_duration_seconds",
            "Time a run waited for a person (human; manual: a net work item, until a caller "
            "started it), an event or a timer (sleep)",
            ["workflow", "kind"],
            buckets=_WAIT,
            unit="seconds",
            registry=r,
        )
        self.steps_rerun = CounterFamily(
            "cronflow_steps_rerun_total",
            "Steps whose handler ran again because a restart (or a takeover) found its attempt "
            "started and unreported (at-least-once; the attempt count stays)",
            ["workflow", "kind"],
            registry=r,
        )
        self.actions_dispatched = CounterFamily(
            "cronflow_actions_dispatched_total",
            "Detached actions handed to an action actor (again after a restart included)",
            ["workflow", "action"],
            registry=r,
        )
        self.actions_redispatched = CounterFamily(
            "cronflow_actions_redispatched_total",
            "Detached actions dispatched again because a restart found them still out",
            ["workflow", "action"],
            registry=r,
        )
        self.actions_finished = CounterFamily(
            "cronflow_actions_finished_total",
            "Detached actions finished, by workflow, action and outcome (completed, failed)",
            ["workflow", "action", "outcome"],
            registry=r,
        )
        self.action_duration = HistogramFamily(
            "cronflow_action_duration_seconds",
            "How long a detached action's handler ran",
            ["workflow", "action"],
            buckets=_STEP,
            unit="seconds",
            registry=r,
        )

        # -- schedules ------------------------------------------------------------------------
        self.cron_fires = CounterFamily(
            "cronflow_schedule_fires_total",
            "Runs started by cron schedules and intervals",
            ["workflow"],
            registry=r,
        )
        self.cron_lag = HistogramFamily(
            "cronflow_schedule_lag_seconds",
            "Time from a schedule's tick to the start of its run",
            ["workflow"],
            buckets=_LAG,
            unit="seconds",
            registry=r,
        )

        # -- the store and the process ----------------------------------------------------------
        self.store_commits = CounterFamily(
            "cronflow_store_commits_total",
            "Transactions committed by the store's writer (group commits)",
            registry=r,
        )
        self.store_commit_duration = HistogramFamily(
            "cronflow_store_commit_duration_seconds",
            "Time the store's writer took for one transaction, commit included",
            buckets=_FAST,
            unit="seconds",
            registry=r,
        )
        self.store_batch_size = HistogramFamily(
            "cronflow_store_commit_batch_size",
            "Writes (state changes, key-value operations) committed by one transaction",
            buckets=_BATCH,
            registry=r,
        )
        self.loop_lag = HistogramFamily(
            "cronflow_event_loop_lag_seconds",
            "How late the event loop ran a probe that asked to be woken at a given time",
            buckets=_LOOP,
            unit="seconds",
            registry=r,
        )

        # -- HTTP -----------------------------------------------------------------------------
        self.http_requests = CounterFamily(
            "cronflow_http_requests_total",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_errors = CounterFamily(
            "cronflow_http_errors_total",
            "HTTP requests answered with an error, by route template and class (4xx, 5xx); "
            "each route's series exist from the start at 0, so a rate sees the first error",
            ["route", "class"],
            registry=r,
        )
        self.http_duration = HistogramFamily(
            "cronflow_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response",
            ["route", "method", "status"],
            buckets=_HTTP,
            unit="seconds",
            registry=r,
        )
        self.webhook_duplicates = CounterFamily(
            "cronflow_webhook_duplicates_total",
            "Webhook deliveries whose idempotency key had already started a run",
            ["workflow"],
            registry=r,
        )
        self.webhook_signature_failures = CounterFamily(
            "cronflow_webhook_signature_failures_total",
            "Webhook deliveries refused because their HMAC signature did not match",
            ["workflow"],
            registry=r,
        )

        # -- sampled gauges, build info, the process --------------------------------------------
        # Few series: rendered by prometheus_client, from a registry of their own as well.
        self._others = o = CollectorRegistry(auto_describe=True)
        self.live = LiveGauges()
        o.register(self.live)
        build = Info("cronflow_build", "Version of cronflow-actors", registry=o)
        build.info({"version": version})
        self.flow_info = Info(
            "cronflow_flow",
            "The flows registered: id, name, version and tags (comma-separated), for dashboards",
            ["workflow"],
            registry=o,
        )
        self.runs_blocked = Gauge(
            "cronflow_runs_blocked",
            "Runs held because the definition registered under their version changed since "
            "they started (status blocked): migrate them, or register their old definition",
            ["workflow"],
            registry=o,
        )
        self.runs_unregistered = Gauge(
            "cronflow_runs_unregistered",
            "Unfinished runs on a version of their workflow this process does not register: "
            "nothing runs them until that version is registered again beside the others, or "
            "they are migrated or canceled",
            ["workflow"],
            registry=o,
        )
        for collector in (
            self.live,
            build,
            self.flow_info,
            self.runs_blocked,
            self.runs_unregistered,
            ProcessCollector(registry=o),
            PlatformCollector(registry=o),
            GCCollector(registry=o),
        ):
            r.register(collector)
        self._families = [
            c for c in vars(self).values() if isinstance(c, CounterFamily | HistogramFamily)
        ]

    def workflow_registered(
        self,
        workflow: str,
        triggers: Iterable[str],
        steps: Mapping[str, str],
        *,
        manual: bool = False,
    ) -> None:
        """Make the series of a registered workflow at zero: those of its runs (started by each
        of ``triggers``, ended in each outcome), and of its ``steps`` (id -> kind: waits, detached
        actions, the others by kind; no ``triggers``: it runs as another's child, no run series),
        and the ``manual`` waits' when it has work items a caller starts.
        Prometheus' ``rate`` and ``increase`` need a sample before a series' first event: a
        series born at its first failure hides that failure from every panel and alert."""
        triggers = list(triggers)
        for trigger in triggers:
            self.runs_started.labels(workflow, trigger)
        if triggers:
            for outcome in _RUN_ENDED:
                self.runs_finished.labels(workflow, outcome)
            self.run_duration.labels(workflow)
            self.runs_blocked.labels(workflow)  # a gauge: 0 until a run of it is held
            self.runs_unregistered.labels(workflow)
        if "schedule" in triggers:
            self.cron_fires.labels(workflow)
            self.cron_lag.labels(workflow)
        if "webhook" in triggers:
            self.webhook_duplicates.labels(workflow)
            self.webhook_signature_failures.labels(workflow)
        if "poll" in triggers:
            for outcome in ("ok", "failed"):
                self.polls.labels(workflow, outcome)
            for outcome in ("started", "seen", "refused"):
                self.poll_items.labels(workflow, outcome)
        for family in (self.retries, self.schedule_to_start):
            family.labels(workflow)
        waits = {kind for kind in steps.values() if kind in WAIT_KINDS}
        for kind in (*waits, MANUAL) if manual else waits:
            for outcome in (*_ENDED, TIMED_OUT) if kind in _DEADLINED else _ENDED:
                self.waits_finished.labels(workflow, kind, outcome)
            self.wait_duration.labels(workflow, kind)
        for step, kind in steps.items():
            if kind in WAIT_KINDS:
                pass
            elif kind == "action":  # detached: measured as an action
                for family in (
                    self.actions_dispatched,
                    self.actions_redispatched,
                    self.action_duration,
                ):
                    family.labels(workflow, step)
                for outcome in _ENDED[:2]:
                    self.actions_finished.labels(workflow, step, outcome)
            else:  # canceled too: a run canceled as its step ran (metrics h41 F9)
                for outcome in _ENDED:
                    self.steps_finished.labels(workflow, kind, outcome)
                self.step_duration.labels(workflow, kind)
                self.steps_rerun.labels(workflow, kind)

    def flow_registered(self, workflow: str, name: str, version: str, tags: list[str]) -> None:
        """``cronflow_flow_info{workflow, name, version, tags}``: one series per flow."""
        details = {"name": name, "version": version, "tags": ",".join(tags)}
        self.flow_info.labels(workflow).info(details)

    def render(self, openmetrics: bool = False) -> bytes:
        """Every metric in Prometheus' text format (0.0.4), or in OpenMetrics 1.0 (ending in
        ``# EOF``); the same series ``generate_latest(self.registry)`` gives, faster."""
        out: list[str] = []
        for family in self._families:
            family.render(out, openmetrics)
        if openmetrics:
            rest: bytes = generate_openmetrics(self._others)  # type: ignore[no-untyped-call]
        else:
            rest = generate_latest(self._others)
        return "".join(out).encode() + rest

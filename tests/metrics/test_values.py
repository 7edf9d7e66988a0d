"""The metrics agree with what happened: after a scripted workload on a real serve (completed,
failed and retried steps, failing and succeeding actions, paused and waiting runs, duplicates,
bad signatures, wrong requests), the counters, gauges and histogram counts equal the numbers of
runs, steps, retries, actions and waits, in serve's /metrics and in Prometheus alike; and after a
crash, an action dispatched again is counted and shown as such."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.metrics.prom import PrometheusServer, Series, running_prometheus
from tests.metrics.serve import ROOT, ServeProcess, running_serve
from tests.metrics.workload import Workload

APP = str(Path(__file__).with_name("workload_app.py").relative_to(ROOT))


def value(text: str, name: str, **labels: str) -> float:
    """A sample of a /metrics text (0 when it has no such series)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """serve with workload_app, after the script below; every run has settled."""
    with running_serve(tmp_path_factory.mktemp("serve"), APP) as serve:
        w = Workload(serve.url)
        try:
            completing = [w.order(50), w.order(50)]
            completing += [w.order(50, flaky=True), w.order(50, flaky=True)]  # one retry each
            completing += [w.order(60, notify_fails=True), w.order(70, delivery="d-1")]
            assert w.order(70, delivery="d-1") is None  # a duplicate delivery starts nothing
            failing = [w.order(0), w.order(-5)]  # validate raises: the run fails
            big = [w.order(5000), w.order(9000)]  # they pause for a person
            waiting = w.start("paid")  # waits for an event nobody publishes
            assert w.signed(good=False) == 401
            w.wrong_requests()  # one 404, one 405
            for run_id in [*completing, *failing]:
                assert run_id is not None
                w.wait_settled(run_id)
            for run_id in big:
                assert run_id is not None
                w.wait_for_status(run_id, "waiting")
            w.wait_until("two pauses", lambda: len(w.paused()) == 2)
            resumed = w.paused()[0]
            w.resume(resumed["token"])
            w.wait_settled(resumed["run_id"])
            w.wait_for_status(waiting, "waiting")
        finally:
            w.close()
        yield serve


# (metric, labels) -> what the script above makes happen
EXPECTED = {
    # 6 completing orders + 2 failing + 2 big; the duplicate started nothing
    ("cronflow_runs_started_total", ("orders", "webhook")): 10,
    ("cronflow_runs_started_total", ("paid", "webhook")): 1,
    ("cronflow_runs_finished_total", ("orders", "completed")): 7,  # 6 + the resumed big one
    ("cronflow_runs_finished_total", ("orders", "failed")): 2,
    ("cronflow_run_duration_seconds_count", ("orders",)): 9,
    # validate, reserve, ship of 7 completed runs; validate, reserve of the paused one
    ("cronflow_steps_finished_total", ("orders", "step", "completed")): 23,
    ("cronflow_steps_finished_total", ("orders", "step", "failed")): 2,
    ("cronflow_steps_finished_total", ("paid", "step", "completed")): 1,
    # every attempt: 23 + 2 failed + the 2 failed attempts that were retried
    ("cronflow_step_duration_seconds_count", ("orders", "step")): 27,
    ("cronflow_step_retries_total", ("orders",)): 2,
    # every attempt that ran a handler: 23 + 2 failed + 2 retried
    ("cronflow_step_schedule_to_start_seconds_count", ("orders",)): 27,
    ("cronflow_waits_finished_total", ("orders", "human", "completed")): 1,
    ("cronflow_waits_finished_total", ("orders", "sleep", "completed")): 7,
    ("cronflow_wait_duration_seconds_count", ("orders", "human")): 1,
    ("cronflow_wait_duration_seconds_count", ("orders", "sleep")): 7,
    # notify goes out for every order past reserve: 7 completed + the paused one
    ("cronflow_actions_dispatched_total", ("orders", "notify")): 8,
    ("cronflow_actions_finished_total", ("orders", "notify", "completed")): 7,
    ("cronflow_actions_finished_total", ("orders", "notify", "failed")): 1,
    ("cronflow_action_duration_seconds_count", ("orders", "notify")): 8,
    ("cronflow_runs_in_flight", ("orders", "running")): 0,
    ("cronflow_runs_in_flight", ("orders", "waiting")): 0,
    ("cronflow_runs_in_flight", ("orders", "paused")): 1,
    ("cronflow_runs_in_flight", ("paid", "waiting")): 1,
    ("cronflow_runs_queued", ("limited",)): 0,
    ("cronflow_webhook_duplicates_total", ("orders",)): 1,
    ("cronflow_webhook_signature_failures_total", ("signed",)): 1,
    ("cronflow_http_requests_total", ("unmatched", "GET", "404")): 1,
    ("cronflow_http_requests_total", ("/runs", "DELETE", "405")): 1,
    ("cronflow_http_requests_total", ("/webhooks/signed", "POST", "401")): 1,
    ("cronflow_http_requests_total", ("/webhooks/orders", "POST", "202")): 10,
    ("cronflow_http_requests_total", ("/webhooks/orders", "POST", "200")): 1,
    # each route's error series from the start: the first error is an increase from 0 (newcomer
    # h29 F4), and a route that answered none says 0
    ("cronflow_http_errors_total", ("unmatched", "4xx")): 1,
    ("cronflow_http_errors_total", ("/runs", "4xx")): 1,
    ("cronflow_http_errors_total", ("/webhooks/signed", "4xx")): 1,
    ("cronflow_http_errors_total", ("/webhooks/orders", "4xx")): 0,
    ("cronflow_http_errors_total", ("/webhooks/orders", "5xx")): 0,
}
LABELS = {
    "cronflow_runs_started_total": ("workflow", "trigger"),
    "cronflow_runs_finished_total": ("workflow", "outcome"),
    "cronflow_run_duration_seconds_count": ("workflow",),
    "cronflow_steps_finished_total": ("workflow", "kind", "outcome"),
    "cronflow_step_duration_seconds_count": ("workflow", "kind"),
    "cronflow_step_retries_total": ("workflow",),
    "cronflow_step_schedule_to_start_seconds_count": ("workflow",),
    "cronflow_waits_finished_total": ("workflow", "kind", "outcome"),
    "cronflow_wait_duration_seconds_count": ("workflow", "kind"),
    "cronflow_actions_dispatched_total": ("workflow", "action"),
    "cronflow_actions_finished_total": ("workflow", "action", "outcome"),
    "cronflow_action_duration_seconds_count": ("workflow", "action"),
    "cronflow_runs_in_flight": ("workflow", "status"),
    "cronflow_runs_queued": ("workflow",),
    "cronflow_webhook_duplicates_total": ("workflow",),
    "cronflow_webhook_signature_failures_total": ("workflow",),
    "cronflow_http_requests_total": ("route", "method", "status"),
    "cronflow_http_errors_total": ("route", "class"),
}


def labelled(name: str, values: tuple[str, ...]) -> dict[str, str]:
    return dict(zip(LABELS[name], values, strict=True))


def test_serve_counts_exactly_what_the_script_did(scripted: ServeProcess) -> None:
    text = scripted.metrics_text()
    found = {
        (name, values): value(text, name, **labelled(name, values)) for name, values in EXPECTED
    }
    assert found == EXPECTED
    # actions are not steps, waits are not step durations, and nothing was dispatched again
    never = [
        ("cronflow_steps_finished_total", {"kind": "action", "outcome": "completed"}),
        ("cronflow_step_duration_seconds_count", {"kind": "human"}),
        ("cronflow_actions_redispatched_total", {"action": "notify"}),
    ]
    for name, labels in never:
        assert value(text, name, workflow="orders", **labels) == 0, name


@pytest.fixture(scope="module")
def scraping(
    prometheus_binaries: None, scripted: ServeProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    with running_prometheus(
        tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{scripted.port}"]
    ) as server:
        yield server


def test_prometheus_reads_the_same_numbers(
    scripted: ServeProcess, scraping: PrometheusServer
) -> None:
    def equals(expected: float) -> object:
        def check(result: list[Series]) -> bool:
            return len(result) == 1 and result[0].value == expected

        return check

    for (name, values), expected in EXPECTED.items():
        matchers = ",".join(f'{k}="{v}"' for k, v in labelled(name, values).items())
        scraping.wait_for(f"sum({name}{{{matchers}}})", equals(expected), timeout=20)  # type: ignore[arg-type]


def samples(text: str, name: str, **labels: str) -> list[float]:
    """The values of the series of ``name`` whose labels include ``labels`` (present or not,
    where ``value`` reads a missing series as 0)."""
    return [
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def test_a_first_failure_shows_in_prometheus_rates(
    prometheus_binaries: None, tmp_path: Path
) -> None:
    """A workflow's series exist at zero from its registration, so Prometheus has a sample
    before the first event: the first failed run of a process shows in ``increase`` (a series
    born at that failure would read 0 there, and the failure-rate alert would never fire)."""
    with running_serve(tmp_path, APP) as serve:
        text = serve.metrics_text()
        for name, labels in [
            ("cronflow_runs_started_total", {"trigger": "webhook"}),
            ("cronflow_runs_started_total", {"trigger": "manual"}),
            ("cronflow_runs_finished_total", {"outcome": "failed"}),
            ("cronflow_runs_finished_total", {"outcome": "completed"}),
            ("cronflow_steps_finished_total", {"kind": "step", "outcome": "failed"}),
            ("cronflow_waits_finished_total", {"kind": "human", "outcome": "completed"}),
            ("cronflow_actions_finished_total", {"action": "notify", "outcome": "failed"}),
            ("cronflow_actions_redispatched_total", {"action": "notify"}),  # (h22 L3)
            ("cronflow_steps_rerun_total", {"kind": "step"}),
            ("cronflow_step_retries_total", {}),
            ("cronflow_step_duration_seconds_count", {"kind": "step"}),
        ]:
            assert samples(text, name, workflow="orders", **labels) == [0.0], (name, labels)
        # and each operation's documented answers: a route's first request shows in rates and
        # latency quantiles (newcomer h31 F3: a rare cancel or approval was missing)
        for route, method, status in [
            ("/webhooks/orders", "POST", "202"),
            ("/runs/{run_id}/cancel", "POST", "200"),
            ("/resume/{token}", "POST", "200"),
            ("/workflows", "POST", "201"),
        ]:
            labels = {"route": route, "method": method, "status": status}
            for name in (
                "cronflow_http_requests_total",
                "cronflow_http_request_duration_seconds_count",
            ):
                assert samples(text, name, **labels) == [0.0], (name, labels)
        assert samples(text, "cronflow_http_requests_total", status="404") == []  # (no 4xx made)
        failed = 'cronflow_runs_finished_total{workflow="orders",outcome="failed"}'
        (tmp_path / "prometheus").mkdir()
        with running_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{serve.port}"]) as prom:
            prom.wait_for(failed, lambda result: len(result) == 1, timeout=20)  # scraped at 0
            w = Workload(serve.url)
            try:
                run_id = w.order(0)  # validate raises: the run fails
                assert run_id is not None
                w.wait_settled(run_id)
            finally:
                w.close()

            def risen(result: list[Series]) -> bool:
                return len(result) == 1 and result[0].value > 0

            prom.wait_for(f"increase({failed}[1m])", risen, timeout=20)
            delivered = 'cronflow_http_requests_total{route="/webhooks/orders",status="202"}'
            prom.wait_for(f"increase({delivered}[1m])", risen, timeout=20)


def test_an_action_dispatched_again_after_a_crash_is_counted_and_shown_as_such(
    tmp_path: Path,
) -> None:
    lease = ("--lease-seconds", "0.5", "--wait-for-lease")
    with running_serve(tmp_path, APP, *lease) as first:
        w = Workload(first.url)
        try:
            run_id = w.order(50, hang=60)  # its notify hangs in the first process
            assert run_id is not None
            run = w.wait_for_status(run_id, "completed")
            [notify] = [step for step in run["steps"] if step["id"] == "notify"]
            assert (notify["status"], notify["attempts"]) == ("dispatched", 1)
        finally:
            w.close()
        os.kill(first.pid, signal.SIGKILL)  # a crash, with the action out
    with running_serve(tmp_path, APP, *lease) as second:
        w = Workload(second.url)
        try:
            run = w.wait_settled(run_id)
        finally:
            w.close()
        [notify] = [step for step in run["steps"] if step["id"] == "notify"]
        assert (notify["status"], notify["attempts"], notify["redispatches"]) == (
            "completed",
            2,
            1,
        )
        assert run["status"] == "completed"
        text = second.metrics_text()
        assert value(text, "cronflow_recovered_runs_total") == 1
        counted = {"workflow": "orders", "action": "notify"}
        assert value(text, "cronflow_actions_redispatched_total", **counted) == 1
        assert value(text, "cronflow_actions_dispatched_total", **counted) == 1
        assert value(text, "cronflow_actions_finished_total", **counted, outcome="completed") == 1

"""The fast families and ``RuntimeMetrics.render``: the same series, values and metadata as
prometheus_client's own rendering of the registry, in both formats; histogram semantics; and
consistent readings while other threads observe."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from cronflow_actors.metrics import (
    OPENMETRICS,
    TEXT,
    CounterFamily,
    HistogramFamily,
    RuntimeMetrics,
    wants_openmetrics,
)
from cronflow_actors.metrics.families import _FOLD_AT


def busy_metrics() -> RuntimeMetrics:
    metrics = RuntimeMetrics("9.9.9")
    metrics.runs_started.labels("orders", "webhook").inc()
    metrics.runs_started.labels(workflow="orders", trigger="manual").inc(3)
    metrics.runs_finished.labels('odd "name" \\ with\nnewline', "failed").inc()
    for seconds in (0.004, 0.05, 0.05, 7, 90_000):
        metrics.run_duration.labels("orders").observe(seconds)
    metrics.step_duration.labels("orders", "step").observe(0.001)  # exactly on a bound
    metrics.store_commits.inc()
    metrics.store_commit_duration.observe(0.002)
    metrics.http_requests.labels("/runs/{run_id}", "GET", "404").inc()
    return metrics


def families(text: str, parse: object) -> dict[str, tuple[str, str, str, list[tuple[object, ...]]]]:
    parsed = {}
    for family in parse(text):  # type: ignore[operator]
        samples = sorted(
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for s in family.samples
            if not s.name.startswith(("process_", "python_gc_"))  # they move between renders
        )
        parsed[family.name] = (family.type, family.documentation, family.unit, samples)
    return parsed


def test_render_gives_what_prometheus_client_gives_in_the_text_format() -> None:
    metrics = busy_metrics()
    ours = families(metrics.render().decode(), parse_text)
    theirs = families(generate_latest(metrics.registry).decode(), parse_text)
    assert ours == theirs
    assert ours["cronflow_run_duration_seconds"][3][-1] == (
        "cronflow_run_duration_seconds_sum",
        (("workflow", "orders"),),
        90_007.104,
    )


def test_render_gives_what_prometheus_client_gives_in_openmetrics() -> None:
    metrics = busy_metrics()
    text = metrics.render(openmetrics=True).decode()
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    ours = families(text, parse_openmetrics)
    theirs = families(generate_openmetrics(metrics.registry).decode(), parse_openmetrics)
    assert ours == theirs
    assert ours["cronflow_run_duration_seconds"][2] == "seconds"  # its UNIT


def test_the_rendered_text_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/install-test-deps installs it)")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=busy_metrics().render().decode(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_histogram_buckets_are_inclusive_upper_bounds_and_cumulative() -> None:
    registry = CollectorRegistry()
    histogram = HistogramFamily("t_seconds", "t", buckets=(1, 2), unit="seconds", registry=registry)
    for value in (0.5, 1, 1.5, 2, 3):
        histogram.observe(value)

    def bucket(le: str) -> float | None:
        return registry.get_sample_value("t_seconds_bucket", {"le": le})

    assert (bucket("1.0"), bucket("2.0"), bucket("+Inf")) == (2, 4, 5)
    assert registry.get_sample_value("t_seconds_count") == 5
    assert registry.get_sample_value("t_seconds_sum") == 8


def test_families_refuse_what_would_make_bad_series() -> None:
    registry = CollectorRegistry()
    counter = CounterFamily("c_total", "c", ["a", "b"], registry=registry)
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels("1", "2").inc(-1)
    with pytest.raises(ValueError, match="label values"):
        counter.labels("1")
    with pytest.raises(ValueError, match="give the labels"):
        counter.labels(a="1")
    with pytest.raises(ValueError, match="has labels"):
        counter.inc()
    with pytest.raises(ValueError, match="ends in _total"):
        CounterFamily("c", "c")
    with pytest.raises(ValueError, match="must rise"):
        HistogramFamily("h", "h", buckets=(2, 1))
    with pytest.raises(ValueError, match="ends in _seconds"):
        HistogramFamily("h", "h", buckets=(1,), unit="seconds")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        CounterFamily("c_total", "again", registry=registry)


def test_a_render_while_threads_observe_always_reads_consistent_histograms() -> None:
    metrics = RuntimeMetrics("1")
    series = metrics.step_duration.labels("w", "step")

    def observe() -> None:
        for _ in range(50_000):
            series.observe(0.003)
            series.observe(4)

    threads = [threading.Thread(target=observe) for _ in range(3)]
    for thread in threads:
        thread.start()
    renders = 0
    while any(thread.is_alive() for thread in threads) or not renders:
        samples = {}
        for family in parse_text(metrics.render().decode()):
            if family.name == "cronflow_step_duration_seconds":
                samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
        count = samples[("cronflow_step_duration_seconds_count", None)]
        assert samples[("cronflow_step_duration_seconds_bucket", "+Inf")] == count
        renders += 1
    for thread in threads:
        thread.join()
    assert (
        metrics.registry.get_sample_value(
            "cronflow_step_duration_seconds_count", {"workflow": "w", "kind": "step"}
        )
        == 300_000
    )  # no observation lost


def test_updates_wait_in_a_bounded_queue_until_read_and_are_counted_in_order() -> None:
    registry = CollectorRegistry()
    counter = CounterFamily("q_total", "q", ["a"], registry=registry).labels("x")
    histogram = HistogramFamily("q_seconds", "q", buckets=(1, 2), registry=registry)
    series = histogram.labels()
    for n in range(1, 1001):  # nobody reads: a writer folds its series' queue now and then
        counter.inc(0.1)
        series.observe(n % 3)
    assert len(counter._queued) < _FOLD_AT
    assert len(series._queued) < _FOLD_AT
    summed = 0.0
    for _ in range(1000):
        summed += 0.1
    assert registry.get_sample_value("q_total", {"a": "x"}) == summed  # added in order
    assert registry.get_sample_value("q_seconds_bucket", {"le": "1.0"}) == 667
    assert registry.get_sample_value("q_seconds_count") == 1000
    assert registry.get_sample_value("q_seconds_sum") == 1000
    assert not counter._queued
    assert not series._queued


def test_a_value_that_is_no_number_is_refused_by_the_update_that_gives_it() -> None:
    series = HistogramFamily("n_seconds", "n", buckets=(1,)).labels()
    counter = CounterFamily("n_total", "n").labels()
    with pytest.raises(TypeError):
        series.observe([1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        counter.inc(None)  # type: ignore[arg-type]
    series.observe(2)
    assert series.get() == ([0, 1], 2.0)  # the series goes on


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("", False),
        ("*/*", False),
        ("text/plain;version=0.0.4", False),
        # Prometheus 2.42's header
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            True,
        ),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text;version=2.0.0", False),
        ("application/openmetrics-text;version=1.0.0;q=0", False),
    ],
)
def test_openmetrics_is_served_to_scrapers_that_ask_for_it(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics
    assert OPENMETRICS.startswith("application/openmetrics-text; version=1.0.0")
    assert TEXT.startswith("text/plain; version=0.0.4")

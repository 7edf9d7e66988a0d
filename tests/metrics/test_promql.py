"""The PromQL helpers: names an expression reads, names an exposition exports, and promtool's
verdict on whether expressions parse."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from cronflow_actors.metrics.registry import RuntimeMetrics
from tests.metrics.promql import PromqlNames, exported_names, promql_names, promql_parse_errors


def names(metrics: set[str], labels: set[str]) -> PromqlNames:
    return PromqlNames(frozenset(metrics), frozenset(labels))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("up", names({"up"}, set())),
        (
            "histogram_quantile(0.95, sum by (le, workflow) "
            '(rate(cronflow_run_duration_seconds_bucket{workflow=~"order.*"}[5m])))',
            names({"cronflow_run_duration_seconds_bucket"}, {"le", "workflow"}),
        ),
        (
            "sum(rate(cronflow_steps_finished_total[1m])) without (instance, job)"
            " / on (workflow) group_left (kind) cronflow_runs_started_total",
            names(
                {"cronflow_steps_finished_total", "cronflow_runs_started_total"},
                {"instance", "job", "workflow", "kind"},
            ),
        ),
        (
            '{__name__="cronflow_build_info", version!=""} or {__name__=~"cronflow_.*"}',
            names({"cronflow_build_info"}, {"version"}),
        ),
        (
            'label_replace(up, "host", "$1", "instance", "(.*):.*")',
            names({"up"}, {"instance"}),
        ),
        (
            'label_join(sum(x) by (k), "dst", ",", "src") + on (k) group_right y',
            names({"x", "y"}, {"k", "src"}),
        ),
        (
            'label_join(cronflow_build_info, "both", "-", "job", `version`)',
            names({"cronflow_build_info"}, {"job", "version"}),
        ),
        (
            "max_over_time(rate(a_total[1m])[5m:30s] offset 1h) > bool 0.5 * Inf"
            " unless b @ start() and -c + 1e3 atan2 0x1F",
            names({"a_total", "b", "c"}, set()),
        ),
        (
            "SUM BY (kind) (cronflow_actors_alive) # a comment names no_metric\n"
            ' + count_values("v", x)',
            names({"cronflow_actors_alive", "x"}, {"kind"}),
        ),
        (
            "topk(3, sum by (route) (cronflow_http_requests_total))",
            names({"cronflow_http_requests_total"}, {"route"}),
        ),
    ],
)
def test_promql_names_lists_the_metrics_and_labels_an_expression_reads(
    expression: str, expected: PromqlNames
) -> None:
    assert promql_names(expression) == expected


def test_exported_names_include_series_suffixes_scrape_labels_and_untouched_families() -> None:
    metrics = RuntimeMetrics("1.2.3")
    metrics.runs_started.labels(workflow="w", trigger="manual").inc()
    metrics.run_duration.labels(workflow="w").observe(0.2)
    exported = exported_names(generate_latest(metrics.registry).decode())
    assert {
        "cronflow_runs_started_total",
        "cronflow_run_duration_seconds_bucket",
        "cronflow_run_duration_seconds_count",
        "cronflow_run_duration_seconds_sum",
        "cronflow_build_info",
        "cronflow_step_retries_total",  # no sample yet: its name comes from its type
        "cronflow_step_duration_seconds_bucket",
        "up",
    } <= exported.metrics
    assert "cronflow_runs_started" not in exported.metrics
    assert {"workflow", "le", "version", "job", "instance"} <= exported.labels
    assert "outcome" not in exported.labels  # only a sample of runs_finished would carry it


def test_promtool_accepts_valid_expressions_and_names_each_invalid_one(
    prometheus_binaries: None,
) -> None:
    good = [
        "up",
        'sum by (le) (rate(cronflow_run_duration_seconds_bucket{workflow="w"}[5m]))',
        "histogram_quantile(0.9, x)",
    ]
    assert promql_parse_errors(good) == {}
    bad = ["sum(rate(x[5m]) by", "rate(x)", 'x{a="b"']
    errors = promql_parse_errors([*good, *bad])
    assert set(errors) == set(bad)
    assert "parse error" in errors["sum(rate(x[5m]) by"]
    assert "expected type range vector" in errors["rate(x)"]

"""grafana/: the dashboards, alert rules, scrape config and provisioning files are valid, every
query parses and names only what the runtime exports, and with a real Prometheus scraping a real
serve under a scripted workload, every panel query returns data."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from tests.metrics.grafana import (
    GRAFANA,
    RATE_INTERVAL,
    alert_expressions,
    dashboards,
    panels,
    queries,
    variable_queries,
)
from tests.metrics.prom import JOB, PrometheusServer, Series, running_prometheus
from tests.metrics.promql import exported_names, promql_names, promql_parse_errors
from tests.metrics.serve import ServeProcess, running_serve
from tests.metrics.workload import BackgroundLoad

ROOT = GRAFANA.parent
SCHEMA_VERSION = 39


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("promtool") or "promtool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=GRAFANA / "prometheus",
    )


# -- the files themselves ----------------------------------------------------------------------


def test_the_dashboards_pin_their_schema_and_ask_which_prometheus_to_use() -> None:
    boards = dashboards()
    assert set(boards) == {"cronflow-overview.json", "cronflow-runtime.json"}
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert board["schemaVersion"] == SCHEMA_VERSION, name
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in panels(board):
            where = f"{name} / {panel['title']!r}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["description"], f"{where} says nothing about what it shows"
            assert panel["targets"], f"{where} has no query"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where
        for variable in variables.values():
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == "${datasource}"


def test_the_overview_and_runtime_pages_show_what_an_operator_asks_first() -> None:
    titles = {name: {p["title"] for p in panels(board)} for name, board in dashboards().items()}
    overview, runtime = titles["cronflow-overview.json"], titles["cronflow-runtime.json"]
    assert {
        "Runs started per second",
        "Success rate",
        "Run duration",
        "Step duration",
        "Failed runs per second by workflow",
        "Runs in flight by status",
        "Runs queued",
    } <= overview
    assert {
        "Commit latency",
        "Event-loop lag",
        "Actors alive by kind",
        "Blocking pool",
        "Requests per second by route",
        "Request latency by route (p95)",
    } <= runtime
    durations = {q.expr for q in queries() if q.panel == "Run duration"}
    assert {"histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,"} == {
        expr.split(" ")[0] for expr in durations
    }


def test_the_readme_describes_every_panel() -> None:
    readme = (GRAFANA / "README.md").read_text()
    missing = [q.panel for q in queries() if f"**{q.panel}**" not in readme]
    assert missing == []


def test_a_rate_reads_as_requests_only_on_the_http_panels() -> None:
    """Runs, steps, commits and collections per second read "req/s" (metrics h41 F10)."""
    units = {
        panel["title"]: panel["fieldConfig"]["defaults"].get("unit")
        for dashboard in dashboards().values()
        for panel in panels(dashboard)
        if panel["type"] != "row"
    }
    requests = {title for title, unit in units.items() if unit == "reqps"}
    http = {q.panel for q in queries() if "cronflow_http_" in q.expr}
    assert requests
    assert requests <= http
    assert units["Runs started per second"] == units["Commits per second"] == "ops"


def test_a_count_of_the_whole_database_is_not_added_up_over_processes() -> None:
    """Every process of a cluster exports the database's runs in flight and queued (counted
    from its indexes): summed over processes, two processes showed twice the runs (the
    newcomer's h26 F2). Such a gauge is taken once: the max over the processes."""
    store_wide = ("cronflow_runs_in_flight", "cronflow_runs_queued")
    found = [q for q in queries() if any(name in q.promql for name in store_wide)]
    assert found
    for query in found:
        # the max over processes only: over the workflows too, a panel of all of them showed
        # the largest one's count (newcomer h36 F2)
        inner = query.promql.split("max by (", 1)
        assert inner[0] in ("", "sum by (status) ("), (query.panel, query.promql)
        assert "workflow" in inner[1].split(")", 1)[0], (query.panel, query.promql)


def test_every_panel_and_rule_expression_parses(prometheus_binaries: None) -> None:
    expressions = [q.promql for q in queries()] + list(alert_expressions().values())
    assert len(expressions) > 40
    assert promql_parse_errors(expressions) == {}


def test_the_alert_rules_pass_their_unit_tests_and_the_scrape_config_is_valid(
    prometheus_binaries: None,
) -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    alerts = set(alert_expressions())
    assert {
        "CronflowRunFailureRateHigh",
        "CronflowStoreCommitsSlow",
        "CronflowScheduleLagging",
        "CronflowEventLoopLagging",
        "CronflowRuntimeDown",
    } <= alerts
    tests = yaml.safe_load((GRAFANA / "prometheus" / "alerts_test.yml").read_text())
    tested_alerts = {
        case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]
    }
    assert tested_alerts == alerts  # every alert has a unit test


def test_the_re_runs_of_a_restart_show_on_their_panel(
    prometheus_binaries: None, tmp_path: Path
) -> None:
    """A restart runs its cut steps again before it listens, so its first scrape reads 1: a
    rate saw no change from the process before (which had read 1 too, or whose last scrape
    was a drain's length earlier) and the panel said 0 after every restart (newcomer h39 F1).
    The panel's queries, evaluated by promtool over such a restart's samples, read 1."""
    panel = "Runs again after restarts, and held runs"
    reruns = [q.promql for q in queries() if q.panel == panel and q.ref in ("A", "B")]
    assert len(reruns) == 2
    labels = '{job="cronflow", instance="a:8000", workflow="orders"'
    # the process before read 1 (its own start's re-run) until minute 3; the next one, up at
    # minute 5, read 1 again (one more step run again); scraped every minute
    series = [
        {"series": f'cronflow_steps_rerun_total{labels}, kind="step"}}', "values": "1 1 1 1 _ 1 1"},
        {
            "series": f'cronflow_actions_redispatched_total{labels}, action="notify"}}',
            "values": "0 0 0 0 _ 1 1",
        },
    ]
    cases = [
        {
            "expr": expr,
            "eval_time": "6m",
            "exp_samples": [{"labels": '{workflow="orders"}', "value": 1}],
        }
        for expr in reruns
    ]
    tests = {"tests": [{"interval": "1m", "input_series": series, "promql_expr_test": cases}]}
    (tmp_path / "panel_test.yml").write_text(yaml.safe_dump(tests))
    tested = promtool("test", "rules", str(tmp_path / "panel_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_writes_per_commit_reads_one_on_a_quiet_runtime(
    prometheus_binaries: None, tmp_path: Path
) -> None:
    # every commit one write: the panel read 0.5, a median estimated within the bucket up to 1,
    # where grafana/README promised about 1 (newcomer h33 F7); its mean reads 1
    [mean] = [q for q in queries() if q.panel == "Writes per commit" and q.ref == "A"]
    one_write = 'cronflow_store_commit_batch_size_{}{{instance="a",job="cronflow"}}'
    series = [
        {"series": one_write.format("sum"), "values": "0+1x20"},
        {"series": one_write.format("count"), "values": "0+1x20"},
    ]
    for bound in ("1.0", "2.0", "+Inf"):
        bucket = one_write.format("bucket").replace("{", f'{{le="{bound}",')
        series.append({"series": bucket, "values": "0+1x20"})
    expression = mean.promql.replace(RATE_INTERVAL, "1m")
    test = {
        "tests": [
            {
                "interval": "15s",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": expression, "eval_time": "4m", "exp_samples": [{"value": 1}]}
                ],
            }
        ]
    }
    written = tmp_path / "writes_test.yml"
    written.write_text(yaml.safe_dump(test))
    tested = promtool("test", "rules", str(written))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_scrape_config_and_provisioning_fit_together() -> None:
    prometheus = yaml.safe_load((GRAFANA / "prometheus" / "prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert (job["job_name"], job["metrics_path"]) == (JOB, "/metrics")  # what the alerts watch
    assert prometheus["rule_files"] == ["alerts.yml"]
    provisioning = GRAFANA / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "cronflow.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]
    [provider] = yaml.safe_load((provisioning / "dashboards" / "cronflow.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


# -- against a real serve and a real Prometheus ----------------------------------------------------


@pytest.fixture(scope="module")
def workload_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """serve with tests/metrics/workload_app.py, after one round of everything it counts (so
    every labelled family has samples)."""
    app = str(Path(__file__).with_name("workload_app.py").relative_to(ROOT))
    with running_serve(tmp_path_factory.mktemp("serve"), app) as serve:
        with BackgroundLoad(serve.url, limit=30) as load:
            load.wait(rounds=3)
        assert load.errors == []
        yield serve


@pytest.fixture(scope="module")
def workload_prometheus(
    prometheus_binaries: None,
    workload_serve: ServeProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusServer]:
    with running_prometheus(
        tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{workload_serve.port}"]
    ) as server:
        server.wait_for(f'up{{job="{JOB}"}} == 1', timeout=20)
        yield server


def test_every_query_names_only_metrics_and_labels_the_runtime_exports(
    workload_serve: ServeProcess,
) -> None:
    exported = exported_names(workload_serve.metrics_text())
    problems = []
    named = [(str(q), q.promql) for q in queries()]
    named += [(f"alert {alert}", expr) for alert, expr in alert_expressions().items()]
    for where, expression in named:
        used = promql_names(expression)
        unknown = sorted((used.metrics - exported.metrics) | (used.labels - exported.labels))
        if unknown:
            problems.append(f"{where}: {unknown}")
    for board, variable, metric, label in variable_queries():
        if metric not in exported.metrics or label not in exported.labels:
            problems.append(f"{board} variable {variable}: {metric} / {label}")
    assert problems == []


def test_the_exposition_of_a_busy_serve_passes_promtool_and_parses_as_openmetrics(
    prometheus_binaries: None, workload_serve: ServeProcess
) -> None:
    text = workload_serve.metrics_text()
    checked = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = httpx.get(
        f"{workload_serve.url}/metrics", headers={"accept": accept}, trust_env=False
    )
    families = {f.name for f in openmetrics_families(response.text)}
    assert {"cronflow_runs_started", "cronflow_run_duration_seconds", "cronflow_build"} <= families


def finite(result: list[Series]) -> bool:
    return any(not math.isnan(series.value) for series in result)


def test_every_panel_query_returns_data_from_prometheus_under_a_workload(
    workload_serve: ServeProcess, workload_prometheus: PrometheusServer
) -> None:
    empty = []
    with BackgroundLoad(workload_serve.url, limit=90) as load:
        for query in queries():
            try:
                workload_prometheus.wait_for(query.promql, finite, timeout=20)
            except AssertionError as error:
                empty.append(f"{query}: {error}")
    assert load.errors == []
    assert empty == []

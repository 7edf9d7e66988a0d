"""Today's metrics through the harness: promtool lints a real serve's exposition, and a real
Prometheus scrapes that serve and answers queries about it."""

from __future__ import annotations

import shutil
import subprocess
from importlib.metadata import version

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.metrics.prom import JOB, PrometheusServer, Series
from tests.metrics.promql import exported_names, promql_names, promql_parse_errors
from tests.metrics.serve import ServeProcess

ORDER = {"order_id": "o-1", "customer": "ada", "amount": 50, "items": ["book"]}
WORKFLOW = "order-processing"


def start_order(serve: ServeProcess) -> str:
    response = httpx.post(f"{serve.url}/webhooks/orders", json=ORDER, trust_env=False)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def runs_started(serve: ServeProcess) -> float:
    """What serve itself says now, whatever the trigger (Prometheus may be one scrape behind)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(serve.metrics_text())
        for sample in family.samples
        if sample.name == "cronflow_runs_started_total"
        and sample.labels.get("workflow") == WORKFLOW
    )


def test_promtool_check_metrics_accepts_the_exposition_of_serve(
    prometheus_binaries: None, serve: ServeProcess
) -> None:
    start_order(serve)  # so labelled families carry samples too
    text = serve.metrics_text()
    assert "cronflow_runs_started_total" in text
    checked = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # promtool prints one line per problem; an exposition it finds nothing in prints nothing
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_prometheus_scrapes_serve_and_reads_its_build_info(prometheus: PrometheusServer) -> None:
    (up,) = prometheus.wait_for(f'up{{job="{JOB}"}} == 1')
    assert up.labels["instance"].startswith("127.0.0.1:")
    (info,) = prometheus.wait_for("cronflow_build_info")
    assert info.labels["version"] == version("cronflow-actors")
    assert info.value == 1


def test_a_run_started_over_http_shows_up_in_prometheus(
    serve: ServeProcess, prometheus: PrometheusServer
) -> None:
    before = runs_started(serve)
    start_order(serve)

    def counted(result: list[Series]) -> bool:
        return bool(result) and result[0].value >= before + 1

    (series,) = prometheus.wait_for(
        f'sum(cronflow_runs_started_total{{workflow="{WORKFLOW}"}})', counted, timeout=10
    )
    (series,) = prometheus.query(
        f'cronflow_runs_started_total{{workflow="{WORKFLOW}",trigger="webhook"}}'
    )
    assert series.labels["job"] == JOB


def test_a_dashboard_style_query_parses_names_only_exported_series_and_has_data(
    serve: ServeProcess, prometheus: PrometheusServer
) -> None:
    # the check the dashboards will get, end to end on one query
    query = "sum by (workflow, le) (rate(cronflow_step_duration_seconds_bucket[1m]))"
    start_order(serve)
    assert promql_parse_errors([query]) == {}
    used, exported = promql_names(query), exported_names(serve.metrics_text())
    assert used.metrics <= exported.metrics
    assert used.labels <= exported.labels
    result = prometheus.wait_for(query, timeout=10)
    assert {s.labels["workflow"] for s in result} == {WORKFLOW}


def test_prometheus_scrapes_nothing_but_the_loopback_serve(
    serve: ServeProcess, prometheus: PrometheusServer
) -> None:
    targets = prometheus.targets()
    assert [t["scrapeUrl"] for t in targets] == [f"{serve.url}/metrics"]

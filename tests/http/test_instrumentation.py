"""Request metrics see every answer (404, 405 and 500 included) by route template; /metrics
speaks OpenMetrics to a scraper that asks for it; webhook duplicates and bad signatures are
counted."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import cronflow_actors as cf
from cronflow_actors.http.auth import sign_request
from cronflow_actors.http.instrumentation import RequestMetrics
from cronflow_actors.metrics import RuntimeMetrics
from tests.http.conftest import Serve

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def flow() -> cf.Flow:
    return (
        cf.define("orders")
        .step("a", lambda ctx: 1)
        .on_webhook("/webhooks/orders/{id}", idempotency_key="x-delivery")
    )


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_every_answer_is_counted_and_timed_by_route_template(serve: Serve) -> None:
    rt, client = await serve([flow()])
    assert (await client.post("/webhooks/orders/o-1", json={})).status_code == 202
    assert (await client.post("/webhooks/orders/o-2", json={})).status_code == 202
    assert (await client.get("/no/such/route")).status_code == 404
    assert (await client.delete("/runs")).status_code == 405
    assert (await client.request("BREW", "/runs")).status_code == 405
    assert (await client.get("/runs/unknown-run")).status_code == 404
    text = (await client.get("/metrics")).text
    made = samples(text, "cronflow_http_requests_total")
    requests = {labels: count for labels, count in made.items() if count}
    assert requests == {
        (("method", "POST"), ("route", "/webhooks/orders/{id}"), ("status", "202")): 2,
        (("method", "GET"), ("route", "unmatched"), ("status", "404")): 1,
        (("method", "DELETE"), ("route", "/runs"), ("status", "405")): 1,
        (("method", "other"), ("route", "/runs"), ("status", "405")): 1,
        (("method", "GET"), ("route", "/runs/{run_id}"), ("status", "404")): 1,
    }  # the /metrics request being answered is counted once its response is sent
    # each operation's documented answers exist from the start, at 0 until one is given
    assert made[(("method", "GET"), ("route", "/runs"), ("status", "200"))] == 0
    assert made[(("method", "POST"), ("route", "/runs/{run_id}/cancel"), ("status", "200"))] == 0
    assert (("method", "GET"), ("route", "/runs/{run_id}"), ("status", "200")) in made
    # timed too, but for a 4xx, which any client can provoke on every route and method: each
    # would be a histogram of 16 series (metrics h41 F5)
    latency = samples(text, "cronflow_http_request_duration_seconds_count")
    assert latency == {labels: n for labels, n in made.items() if labels[2][1][0] != "4"}
    sums = samples(text, "cronflow_http_request_duration_seconds_sum")
    assert sorted(labels for labels in requests if labels in sums) == [
        (("method", "POST"), ("route", "/webhooks/orders/{id}"), ("status", "202"))
    ]
    assert all(0 < sums[labels] < 5 for labels in requests if labels in sums)
    again = samples((await client.get("/metrics")).text, "cronflow_http_requests_total")
    assert again[(("method", "GET"), ("route", "/metrics"), ("status", "200"))] == 1
    assert "o-1" not in text
    await rt.wait_idle()


async def test_a_long_polls_wait_is_timed_apart_from_the_reads_of_its_route(serve: Serve) -> None:
    """``run``'s long polls put a p95 of 8.75 s on ``/runs/{run_id}``, which answers in
    milliseconds (newcomer h35 F7): a read that waits is labelled ``/runs/{run_id}?wait``."""
    rt, client = await serve([cf.define("held").human_in_the_loop("ok")])
    run_id = (await client.post("/runs", json={"workflow": "held"})).json()["run_id"]
    await rt.wait_idle()
    for wait in ("1", "0", "00"):
        assert (await client.get(f"/runs/{run_id}", params={"wait": wait})).status_code == 200
    assert (await client.get(f"/runs/{run_id}")).status_code == 200
    made = samples((await client.get("/metrics")).text, "cronflow_http_requests_total")
    ok = (("method", "GET"), ("route", "/runs/{run_id}"), ("status", "200"))
    waited = (("method", "GET"), ("route", "/runs/{run_id}?wait"), ("status", "200"))
    assert (made[ok], made[waited]) == (3, 1)


async def test_an_app_that_raises_is_counted_as_a_500() -> None:
    metrics = RuntimeMetrics("test")

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("bug")

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    middleware = RequestMetrics(broken, metrics=metrics)
    scope = {"type": "http", "method": "POST", "path": "/x"}
    with pytest.raises(RuntimeError, match="bug"):
        await middleware(scope, None, send)
    labels = {"route": "unmatched", "method": "POST", "status": "500"}
    assert metrics.registry.get_sample_value("cronflow_http_requests_total", labels) == 1


async def test_metrics_speak_openmetrics_when_asked_and_never_show_created_series(
    serve: Serve,
) -> None:
    _rt, client = await serve([flow()])
    await client.post("/webhooks/orders/o-1", json={})
    plain = await client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert not plain.text.endswith("# EOF\n")
    opened = await client.get("/metrics", headers={"accept": OPENMETRICS})
    assert opened.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert opened.text.endswith("# EOF\n")
    assert "# UNIT cronflow_run_duration_seconds seconds" in opened.text
    for text in (plain.text, opened.text):
        assert "_created" not in text
        assert "process_cpu_seconds_total" in text
        assert "python_gc_collections_total" in text


async def test_webhook_duplicates_and_bad_signatures_are_counted(serve: Serve) -> None:
    signed = (
        cf.define("signed")
        .step("a", lambda ctx: 1)
        .on_webhook("/webhooks/signed", hmac_secret="s3cret")
    )
    rt, client = await serve([flow(), signed])
    for _ in range(3):
        await client.post("/webhooks/orders/o-1", json={}, headers={"x-delivery": "d-1"})
    body = json.dumps({"a": 1}).encode()
    now = int(time.time())
    json_body = {"content-type": "application/json"}
    good = {
        **json_body,
        "x-signature-256": sign_request("s3cret", "POST", "/webhooks/signed", body, at=now),
    }
    assert (await client.post("/webhooks/signed", content=body, headers=good)).status_code == 202
    bad = {**json_body, "x-signature-256": f"t={now},v2={'0' * 64}"}
    assert (await client.post("/webhooks/signed", content=body, headers=bad)).status_code == 401
    unsigned = await client.post("/webhooks/signed", content=body, headers=json_body)
    assert unsigned.status_code == 401
    text = (await client.get("/metrics")).text
    # each webhook flow's series exist from its registration, at zero until something happens
    duplicates = samples(text, "cronflow_webhook_duplicates_total")
    assert duplicates == {(("workflow", "orders"),): 2, (("workflow", "signed"),): 0}
    failures = samples(text, "cronflow_webhook_signature_failures_total")
    assert failures == {(("workflow", "signed"),): 2, (("workflow", "orders"),): 0}
    await rt.wait_idle()

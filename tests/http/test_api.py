"""The HTTP API against a real uvicorn server: webhooks, runs, events, resume, errors."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors.cli.client import Client
from cronflow_actors.cli.exits import Exit
from cronflow_actors.errors import ApiError
from tests.http.conftest import Serve


class OrderIn(msgspec.Struct):
    order_id: str
    amount: int


def order_flow(seen: list[Any]) -> cf.Flow:
    async def record(ctx: Any) -> dict[str, Any]:
        seen.append(dict(ctx.trigger.headers))
        return {"order": ctx.payload["order_id"], "amount": ctx.payload["amount"]}

    return (
        cf.define("orders")
        .step("record", record)
        .on_webhook(
            "/webhooks/order",
            schema=OrderIn,
            validate=lambda r: True if r.payload["amount"] <= 1000 else "amount over 1000",
            condition=lambda request: request.headers.get("x-test") != "skip",
            idempotency_key="Idempotency-Key",
            keep_headers=["X-Trace", "Authorization", "Cookie"],
        )
    )


async def test_a_webhook_starts_a_run(serve: Serve) -> None:
    seen: list[Any] = []
    rt, client = await serve([order_flow(seen)])
    response = await client.post(
        "/webhooks/order",
        json={"order_id": "o1", "amount": 5},
        headers={"X-Trace": "t1", "Authorization": "Bearer secret", "Cookie": "s=1"},
    )
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    assert response.headers["location"] == f"/runs/{run_id}"
    assert (await rt.wait(run_id, timeout=5)).output == {"order": "o1", "amount": 5}
    # Only the headers the flow keeps, and never credentials, even when it asks for them.
    assert seen == [{"x-trace": "t1"}]
    snapshot = await rt.store.load_snapshot(run_id)
    assert snapshot is not None
    assert b"secret" not in snapshot.body
    assert b"s=1" not in snapshot.body
    run = (await client.get(f"/runs/{run_id}")).json()
    assert run["status"] == "completed"
    assert run["output"] == {"order": "o1", "amount": 5}
    assert [s["id"] for s in run["steps"]] == ["record"]
    whole = await client.post("/webhooks/order", json={"order_id": "o2", "amount": 5.0})
    assert whole.status_code == 202, whole.text  # an integer to /openapi.json (hostile h45 F1)
    assert (await rt.wait(whole.json()["run_id"], timeout=5)).output == {"order": "o2", "amount": 5}


async def test_webhook_refusals_create_no_run(serve: Serve) -> None:
    seen: list[Any] = []
    rt, client = await serve([order_flow(seen)], max_body=200)
    bad_type = await client.post("/webhooks/order", json={"order_id": "o1", "amount": "five"})
    assert bad_type.status_code == 400
    assert bad_type.headers["content-type"] == "application/problem+json"
    assert bad_type.json()["path"] == "$.amount"
    assert bad_type.json()["type"] == "urn:cronflow:problem:invalid-payload"
    assert "Expected `int`, got `str`" in bad_type.json()["detail"]
    fraction = await client.post("/webhooks/order", json={"order_id": "o1", "amount": 1.5})
    assert (fraction.status_code, fraction.json()["path"]) == (400, "$.amount")
    missing = await client.post("/webhooks/order", json={"amount": 1})
    assert missing.status_code == 400
    assert "order_id" in missing.json()["detail"]
    too_big = await client.post("/webhooks/order", json={"order_id": "o1", "amount": 5000})
    assert too_big.status_code == 400
    assert too_big.json()["detail"].endswith("amount over 1000")
    skipped = await client.post(
        "/webhooks/order", json={"order_id": "o1", "amount": 1}, headers={"X-Test": "skip"}
    )
    assert (skipped.status_code, skipped.json()["condition_met"]) == (200, False)
    as_json = {"Content-Type": "application/json"}
    malformed = await client.post("/webhooks/order", content=b"{not json", headers=as_json)
    assert malformed.status_code == 400
    as_text = await client.post(
        "/webhooks/order",
        content=b'{"order_id": "o1", "amount": 1}',
        headers={"Content-Type": "text/plain"},
    )
    assert as_text.status_code == 415  # a form another site could post: refused
    huge = await client.post("/webhooks/order", content=b"[" + b"1," * 200 + b"1]", headers=as_json)
    assert huge.status_code == 413
    wrong_method = await client.get("/webhooks/order")
    assert wrong_method.status_code == 405
    unknown = await client.post("/nowhere", json={})
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "no route /nowhere")
    assert await rt.store.list_snapshots() == []


async def test_the_idempotency_key_deduplicates(serve: Serve) -> None:
    rt, client = await serve([order_flow([])])
    body = {"order_id": "o1", "amount": 5}
    first = await client.post("/webhooks/order", json=body, headers={"Idempotency-Key": "k1"})
    second = await client.post("/webhooks/order", json=body, headers={"Idempotency-Key": "k1"})
    other = await client.post("/webhooks/order", json=body, headers={"Idempotency-Key": "k2"})
    assert first.status_code == 202
    assert (second.status_code, second.json()) == (
        200,
        {"run_id": first.json()["run_id"], "duplicate": True},
    )
    assert other.json()["run_id"] != first.json()["run_id"]
    assert len(await rt.store.list_snapshots()) == 2
    # another body under a key: no retry, and it was answered as done while lost (the hostile
    # client's finding 6): refused, nothing started
    changed = {"order_id": "o2", "amount": 999}
    reused = await client.post("/webhooks/order", json=changed, headers={"Idempotency-Key": "k1"})
    assert reused.status_code == 422
    assert reused.json()["type"] == "urn:cronflow:problem:idempotency-key-reused"
    assert reused.json()["title"] == "Unprocessable content"  # it said "Error" (newcomer h23)
    assert first.json()["run_id"] in reused.json()["detail"]
    assert len(await rt.store.list_snapshots()) == 2


async def test_runs_events_resume_cancel_and_health(serve: Serve) -> None:
    approval = (
        cf.define("approval")
        .human_in_the_loop("ok", description="approve")
        .step("after", lambda ctx: ctx.last["approved"])
    )
    waiter = cf.define("waiter").wait_for_event("paid", "paid").step("s", lambda ctx: ctx.last)
    picky = cf.define("picky").wait_for_event("p", "paid", filter=lambda payload, ctx: 1 / 0)
    listener = cf.define("listener").on_event("signup").step("s", lambda ctx: ctx.payload["user"])
    rt, client = await serve([approval, waiter, listener, picky])
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    started = await client.post("/runs", json={"workflow": "approval", "payload": {"n": 1}})
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    await rt.wait_idle()
    [pause] = await rt.list_paused()
    resumed = await client.post(f"/resume/{pause.token}", json={"approved": True})
    assert resumed.status_code == 200
    assert (await rt.wait(run_id, timeout=5)).output is True
    again = await client.post(f"/resume/{pause.token}", json={"approved": True})
    assert again.status_code == 409
    assert (await client.post("/resume/unknown", json={})).status_code == 404

    waiting = (await client.post("/runs", json={"workflow": "waiter"})).json()["run_id"]
    stuck = (await client.post("/runs", json={"workflow": "picky"})).json()["run_id"]
    await rt.wait_idle()
    published = await client.post("/events/paid", json={"amount": 3})
    assert published.status_code == 202
    assert published.json()["delivered"] == [waiting]
    assert published.json()["filter_errors"] == [
        {"run_id": stuck, "detail": "ZeroDivisionError: division by zero"}
    ]
    assert (await rt.wait(waiting, timeout=5)).output == {"amount": 3}
    signup = await client.post("/events/signup", json={"user": "u1"})
    [listener_run] = signup.json()["started"]
    assert (await rt.wait(listener_run, timeout=5)).output == "u1"

    doomed = (await client.post("/runs", json={"workflow": "approval"})).json()["run_id"]
    await rt.wait_idle()
    for body, said in [
        ({"reason": "a\nb"}, "the body's reason is 'a\\nb'; expected a string of at most 500"),
        (
            {"reason": 3},
            'expected nothing or {"reason": "why", "terminate": false}: Expected `str`',
        ),
        ({"why": "x"}, "Object contains unknown field `why`"),
    ]:
        refused = await client.post(f"/runs/{doomed}/cancel", json=body)
        assert refused.status_code == 400, body
        assert said in refused.json()["detail"]
    assert (await client.get(f"/runs/{doomed}")).json()["status"] == "waiting"  # nothing done
    canceled = await client.post(f"/runs/{doomed}/cancel", json={"reason": "duplicate order"})
    assert canceled.status_code == 200
    shown = (await client.get(f"/runs/{doomed}")).json()
    assert (shown["status"], shown["error"]) == ("canceled", "duplicate order")
    listing = (await client.get("/runs", params={"workflow": "approval"})).json()["runs"]
    assert {r["id"] for r in listing} == {run_id, doomed}
    canceled = (await client.get("/runs", params={"status": "canceled"})).json()["runs"]
    assert [r["id"] for r in canceled] == [doomed]
    assert (await client.get("/runs", params={"limit": "x"})).status_code == 400
    assert (await client.get("/runs/nope")).status_code == 404
    assert (await client.post("/runs", json={"workflow": "nope"})).status_code == 404
    assert (await client.post("/runs", json=[1])).status_code == 400


async def test_a_run_whose_stored_snapshot_is_damaged_is_a_500_that_names_it(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    rt, client = await serve([cf.define("plain").step("s", lambda ctx: ctx.payload)])
    run_id = (await client.post("/runs", json={"workflow": "plain", "payload": 1})).json()["run_id"]
    assert (await rt.wait(run_id, timeout=5)).output == 1
    assert (await client.get(f"/runs/{run_id}")).status_code == 200
    with sqlite3.connect(rt.store.path) as connection:  # damaged outside the runtime
        connection.execute("UPDATE instances SET body = x'c1' WHERE instance_id = ?", (run_id,))
    response = await client.get(f"/runs/{run_id}")
    assert response.status_code == 500
    problem = response.json()
    assert problem["type"] == "urn:cronflow:problem:damaged-snapshot"
    assert f"the snapshot of run '{run_id}' cannot be read" in problem["detail"]
    assert "restore the database from a backup" in problem["detail"]
    assert (await client.get("/healthz")).status_code == 200  # the others are served on
    # a listing shows it from its row, with the damage as its error, and the others in full
    other = (await client.post("/runs", json={"workflow": "plain", "payload": 2})).json()
    assert (await rt.wait(other["run_id"], timeout=5)).output == 2
    listed = await client.get("/runs")
    assert listed.status_code == 200
    runs = {run["id"]: run for run in listed.json()["runs"]}
    assert runs[other["run_id"]]["output"] == 2
    damaged = runs[run_id]
    assert (damaged["workflow"], damaged["status"], damaged["output"]) == (
        "plain",
        "completed",
        None,
    )
    assert damaged["error"].startswith(f"the snapshot of run '{run_id}' cannot be read")
    assert damaged["error_type"] == "cronflow_actors.errors.SnapshotDamagedError"
    logged = [r for r in caplog.records if r.levelname == "ERROR" and run_id in r.getMessage()]
    assert logged
    assert logged[0].getMessage().startswith(f"GET /runs/{run_id}: the snapshot")
    # the CLI's client: not found or conflict (3), not "retry later" (4: unreachable)
    cli = Client(str(client.base_url))
    with pytest.raises(ApiError) as refused:
        await asyncio.to_thread(cli.call, "GET", f"/runs/{run_id}")
    assert refused.value.exit_code == Exit.NOT_FOUND_OR_CONFLICT
    assert str(refused.value).startswith("the server cannot read this run: the snapshot of run")
    assert "retry" not in str(refused.value)


async def test_the_openapi_document_describes_routes_and_webhook_schemas(serve: Serve) -> None:
    _rt, client = await serve([order_flow([])])
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    hook = document["paths"]["/webhooks/order"]["post"]
    # what no JSON schema says of a body, said in words (console h40 F3)
    for route in ("/webhooks/order", "/runs"):
        words = document["paths"][route]["post"]["requestBody"]["description"]
        assert "An integer beyond 64 bits" in words
        assert "400 number-out-of-range" in words
    ref = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["order_id", "amount"]
    # bounded as the server decodes: beyond 64 bits is a 400 (schemathesis, hostile client 8)
    assert schema["properties"]["amount"] == {
        "type": "integer",
        "minimum": -(2**63),
        "maximum": 2**64 - 1,
    }
    assert {"/runs", "/runs/{run_id}", "/events/{name}", "/resume/{token}"} <= set(
        document["paths"]
    )
    run_info = document["components"]["schemas"]["RunInfo"]
    assert {"id", "status", "steps"} <= set(run_info["properties"])


async def test_metrics_are_exported_for_prometheus(serve: Serve) -> None:
    rt, client = await serve([order_flow([])])
    run_id = (await client.post("/webhooks/order", json={"order_id": "o1", "amount": 5})).json()[
        "run_id"
    ]
    await rt.wait(run_id, timeout=5)
    await client.post("/webhooks/order", json={"order_id": "o1"})
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'cronflow_runs_started_total{trigger="webhook",workflow="orders"} 1.0' in text
    assert 'cronflow_runs_finished_total{outcome="completed",workflow="orders"} 1.0' in text
    assert (
        'cronflow_steps_finished_total{kind="step",outcome="completed",workflow="orders"} 1.0'
        in text
    )
    assert 'cronflow_run_duration_seconds_count{workflow="orders"} 1.0' in text
    assert (
        'cronflow_http_requests_total{method="POST",route="/webhooks/order",status="202"} 1.0'
        in text
    )
    assert (
        'cronflow_http_requests_total{method="POST",route="/webhooks/order",status="400"} 1.0'
        in text
    )
    assert 'cronflow_build_info{version="' in text
    assert 'cronflow_actors_alive{kind="WorkflowActor"} 0.0' in text
    assert run_id not in text  # labels never carry run ids


async def test_webhook_path_parameters_reach_ctx_trigger_params(serve: Serve) -> None:
    flow = (
        cf.define("orders")
        .step("who", lambda ctx: dict(ctx.trigger.params))
        .on_webhook("/webhooks/orders/:id/items/{item}")
    )
    rt, client = await serve([flow])
    response = await client.post("/webhooks/orders/o-7/items/book", json={})
    assert response.status_code == 202
    result = await rt.wait(response.json()["run_id"], timeout=5)
    assert result.output == {"id": "o-7", "item": "book"}
    assert (await client.post("/webhooks/orders/o-7", json={})).status_code == 404


async def test_a_webhooks_query_reaches_ctx_trigger_query_and_its_replay(serve: Serve) -> None:
    """A GET webhook has no body: its query (an OAuth callback's ``?code=``) is what it says.
    It used to reach only the webhook's callbacks, never the run; the run keeps it now."""
    flow = (
        cf.define("oauth")
        .step("code", lambda ctx: [dict(ctx.trigger.query), ctx.payload])
        .on_webhook("/webhooks/oauth", method="GET")
    )
    rt, client = await serve([flow])
    response = await client.get("/webhooks/oauth", params={"code": "c-1", "state": "s"})
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    assert (await rt.wait(run_id, timeout=5)).output == [{"code": "c-1", "state": "s"}, None]
    replayed = await rt.wait(await rt.replay(run_id), timeout=5)
    assert replayed.output == [{"code": "c-1", "state": "s"}, None]
    started = await rt.wait(await rt.trigger("oauth"), timeout=5)
    assert started.output == [{}, None]  # none: not a webhook's run


def test_webhooks_may_not_clash_with_each_other_or_the_api() -> None:
    rt = cf.Runtime()
    rt.register(cf.define("a").step("s", str).on_webhook("/webhooks/orders/:id"))
    with pytest.raises(cf.errors.InvalidWorkflowError) as clash:
        rt.register(cf.define("b").step("s", str).on_webhook("/webhooks/orders/{order}"))
    assert "flow 'a' already takes POST /webhooks/orders/:id" in str(clash.value)
    rt.register(cf.define("c").step("s", str).on_webhook("/webhooks/orders/{o}", method="PUT"))
    with pytest.raises(cf.errors.InvalidWorkflowError) as reserved:
        rt.register(cf.define("d").step("s", str).on_webhook("/runs/mine"))
    assert "/runs belongs to the HTTP API" in str(reserved.value)
    with pytest.raises(cf.errors.InvalidWorkflowError) as console:
        rt.register(cf.define("e").step("s", str).on_webhook("/ui/hook"))
    assert "/ui belongs to the HTTP API" in str(console.value)
    assert sorted(rt.catalog.roots) == ["a", "c"]


def test_a_refused_registration_changes_nothing() -> None:
    rt = cf.Runtime()
    first = cf.define("a").step("s", str).on_webhook("/webhooks/a")
    rt.register(first)
    with pytest.raises(cf.errors.ConfigurationError):
        rt.register(cf.define("a").step("t", str).on_webhook("/webhooks/other"))  # same version
    assert rt.catalog.flows["a"] is first


async def test_a_query_parameter_given_twice_is_refused_not_read_as_its_last(
    serve: Serve,
) -> None:
    rt, client = await serve([cf.define("plain").step("s", lambda ctx: ctx.payload)])
    await rt.wait(await rt.trigger("plain", 1), timeout=5)
    for query in ("status=completed&status=failed", "limit=1&limit=2", "workflow=a&workflow=b"):
        refused = await client.get(f"/runs?{query}")
        assert refused.status_code == 400, query
        problem = refused.json()
        assert problem["type"] == "urn:cronflow:problem:invalid-argument"
        assert problem["detail"].endswith("is given 2 times; give it once")
    assert len((await client.get("/runs?status=completed")).json()["runs"]) == 1
    paused = await client.get("/runs?status=paused")  # the metrics' word: said where those are
    assert paused.status_code == 400
    assert "a run paused for a person is 'waiting' (GET /paused" in paused.json()["detail"]
    document = (await client.get("/openapi.json")).json()
    [at] = document["paths"]["/runs/{run_id}/state"]["get"]["parameters"][1:]
    assert at["schema"]["minLength"] == 1  # '?at=' is refused, and the document says so


async def test_a_query_parameter_its_route_does_not_take_is_refused_naming_those_it_does(
    serve: Serve,
) -> None:
    """``?limitt=5`` listed the default page, ``next-fires?limit=`` (its parameter is ``count``)
    the default five fires, and the client read either as its answer (hostile h26 L2). A name
    the route's operation does not declare is a 400 naming the ones it takes, before anything
    is done; a webhook's query is its sender's and reaches the flow as it was."""
    plain = cf.define("plain").step("s", lambda ctx: ctx.payload)
    hook = (
        cf.define("hook")
        .on_webhook("/webhooks/hook")
        .step("s", lambda ctx: dict(ctx.trigger.query))
    )
    timed = cf.define("timed").on_schedule("0 * * * *").step("s", str)
    rt, client = await serve([plain, hook, timed])
    await rt.wait(await rt.trigger("plain", 1), timeout=5)
    refusals = {
        "/runs?limitt=5&bogus=1": "GET /runs has no query parameter 'bogus', 'limitt'; it takes "
        "cursor, limit, status, workflow",
        "/flows/timed/next-fires?limit=9": "has no query parameter 'limit'; it takes count",
        "/runs?limit=1&Status=failed": "'Status'",
        "/runs/x/trace?verbose": "GET /runs/{run_id}/trace takes no query parameter (given: "
        "'verbose')",
    }
    for url, words in refusals.items():
        refused = await client.get(url)
        assert refused.status_code == 400, url
        assert refused.json()["type"] == "urn:cronflow:problem:invalid-argument"
        assert words in refused.json()["detail"], refused.json()
    assert (await client.head("/runs?limitt=5")).status_code == 400
    run_id = (await client.get("/runs?limit=1")).json()["runs"][0]["id"]
    cancel = await client.post(f"/runs/{run_id}/cancel?force=true")
    assert cancel.status_code == 400
    assert "takes no query parameter (given: 'force')" in cancel.json()["detail"]
    assert (await rt.inspect(run_id)).status == "completed"  # nothing was done
    [fires] = (await client.get("/flows/timed/next-fires?count=2")).json()["schedules"]
    assert len(fires["next"]) == 2
    started = await client.post("/webhooks/hook?tenant=7&anything=x", json={})
    assert started.status_code == 202, started.text
    result = await rt.wait(started.json()["run_id"], timeout=5)
    assert result.output == {"tenant": "7", "anything": "x"}
    document = (await client.get("/openapi.json")).json()
    assert "400" in document["paths"]["/runs/{run_id}/trace"]["get"]["responses"]
    # what machines poll takes any query: a scrape's params, a probe's cache-buster
    for polled in ("/healthz?probe=1", "/readyz?_=1", "/metrics?name[]=x", "/openapi.json?v=2"):
        assert (await client.get(polled)).status_code == 200, polled


class Typed(msgspec.Struct):
    n: int


async def test_an_event_published_twice_with_its_idempotency_key_starts_its_flows_once(
    serve: Serve,
) -> None:
    flow = cf.define("on-paid").on_event("paid").step("s", lambda ctx: ctx.payload["n"])
    rt, client = await serve([flow])
    keyed = {"Idempotency-Key": "order-7"}
    first = await client.post("/events/paid", json={"n": 7, "at": 1}, headers=keyed)
    again = await client.post("/events/paid", json={"n": 7, "at": 1}, headers=keyed)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["started"] == first.json()["started"]
    assert len(await rt.list_runs()) == 1
    # the key names its payload: another one under it is no retry, and was answered as the
    # first while it was dropped (hostile h23 L2, h24 M3); its keys' order is no difference
    other = await client.post("/events/paid", json={"n": 8}, headers=keyed)
    assert (other.status_code, other.json()["type"]) == (
        422,
        "urn:cronflow:problem:idempotency-key-reused",
    )
    assert "sent before with another payload" in other.json()["detail"]
    json_type = {"Content-Type": "application/json"}
    reordered = await client.post(
        "/events/paid", content=b'{"at": 1, "n": 7}', headers=keyed | json_type
    )
    assert reordered.json()["started"] == first.json()["started"]
    # a publish every flow refused names nothing: its key is free for the mended payload
    strict = cf.define("typed").on_event("typed", schema=Typed).step("s", lambda ctx: 1)
    rt.register(strict)
    bad = await client.post("/events/typed", json={"n": "x"}, headers={"Idempotency-Key": "t"})
    assert bad.status_code == 400
    good = await client.post("/events/typed", json={"n": 1}, headers={"Idempotency-Key": "t"})
    assert good.status_code == 202, good.text
    with pytest.raises(cf.errors.IdempotencyKeyReusedError):  # the Python API's word
        await rt.publish_event("typed", {"n": 2}, idempotency_key="t")
    assert len(await rt.list_runs()) == 2
    both = [("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    refused = await client.post("/events/paid", json={"n": 8}, headers=both)
    assert refused.status_code == 400
    assert refused.json()["type"] == "urn:cronflow:problem:ambiguous-headers"
    document = (await client.get("/openapi.json")).json()
    parameters = document["paths"]["/events/{name}"]["post"]["parameters"]
    assert "Idempotency-Key" in [p["name"] for p in parameters]


class Stamped(msgspec.Struct):
    order_id: str
    ref: str = msgspec.field(default_factory=lambda: __import__("uuid").uuid4().hex)


async def test_a_retry_is_the_same_body_however_its_schema_converts_it(serve: Serve) -> None:
    """A header key's retry is compared as the body was sent (JSON as read), not as a schema
    converted it: a field the schema fills in itself (a generated id) made an honest retry a
    422, and 1 and true compared equal, so another body was a duplicate and lost (the second
    hostile client's 2 and 3)."""
    stamped = (
        cf.define("stamped")
        .step("s", lambda ctx: ctx.payload["order_id"])
        .on_webhook("/hooks/stamped", schema=Stamped, idempotency_key="Idempotency-Key")
    )
    plain = (
        cf.define("plain")
        .step("s", lambda ctx: ctx.payload)
        .on_webhook("/hooks/plain", idempotency_key="Idempotency-Key")
    )
    _rt, client = await serve([stamped, plain])
    key = {"Idempotency-Key": "k-1"}
    first = await client.post("/hooks/stamped", json={"order_id": "o1"}, headers=key)
    again = await client.post("/hooks/stamped", content=b'{ "order_id" : "o1" }', headers={
        **key, "Content-Type": "application/json"})  # fmt: skip
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["run_id"] == first.json()["run_id"]
    assert (await client.post("/hooks/plain", json={"a": 1}, headers=key)).status_code == 202
    as_bool = await client.post("/hooks/plain", json={"a": True}, headers=key)
    assert as_bool.status_code == 422
    same = await client.post("/hooks/plain", json={"a": 1.0}, headers=key)  # one number
    assert same.status_code == 200


async def test_liveness_and_readiness_agree_once_the_database_file_is_gone(
    serve: Serve, tmp_path: Path
) -> None:
    # /healthz read only the runtime's failure, which /readyz's own look at the store set: in
    # between, a removed database file was 503 on every write and 'ok' to the liveness probe
    # (the third hostile client's L2)
    rt, client = await serve([cf.define("quick").step("s", lambda ctx: 1)])
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    for suffix in ("", "-wal", "-shm"):
        os.remove(f"{tmp_path / 'http0.db'}{suffix}")
    health = await client.get("/healthz")
    assert health.status_code == 503, health.text
    assert "was removed" in health.json()["detail"]
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]["runtime"]) == (503, "failed")
    assert rt.failure is not None


async def test_an_event_name_over_the_limit_is_a_400_not_a_202_to_nobody(serve: Serve) -> None:
    rt, client = await serve([cf.define("listener").on_event("paid").step("s", lambda ctx: 1)])
    refused = await client.post(f"/events/{'x' * 201}", json={})
    assert refused.status_code == 400, refused.text
    assert "at most 200 characters" in refused.json()["detail"]
    assert (await client.post("/events/paid", json={})).status_code == 202
    assert len(await rt.list_runs()) == 1


async def test_a_publish_the_runtime_cuts_is_a_503_naming_what_it_did(serve: Serve) -> None:
    """Its 503 became a 500: the problem's body had no place for the runs that heard it
    (retest-pg h43 N1)."""
    from cronflow_actors.errors import StoreFailedError
    from tests.flow.test_entry_failures import cut_at, two_waiting

    rt, client = await serve([])
    first, second = await two_waiting(rt)
    cut_at(rt, second, StoreFailedError("the store", "the disk is full"))
    answer = await client.post("/events/cut", json={"n": 1})
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    body = answer.json()
    assert (body["type"].rsplit(":", 1)[-1], body["started"], body["delivered"]) == (
        "publish-interrupted",
        [],
        [first],
    )

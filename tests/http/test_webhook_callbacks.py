"""Webhook callbacks against a real uvicorn server: each takes one ``cf.WebhookRequest``; a
callback that raises is a 500 problem naming it (its traceback logged); ``header_validator``;
``parse_raw_body`` keeps the exact body for the run, across a restart; ``on_success`` and
``on_error`` give the answer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn

import cronflow_actors as cf
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.http.app import create_app
from tests.http.conftest import Serve

JSON = {"Content-Type": "application/json"}


class Order(msgspec.Struct):
    order_id: str
    amount: int = 1


async def test_every_callback_gets_one_request_object(serve: Serve) -> None:
    seen: dict[str, cf.WebhookRequest] = {}

    def keep(name: str, answer: Any = True) -> Any:
        def callback(request: cf.WebhookRequest) -> Any:
            seen[name] = request
            return answer

        return callback

    async def validate(request: cf.WebhookRequest) -> bool:  # async callbacks are awaited
        seen["validate"] = request
        return True

    flow = (
        cf.define("orders")
        .step("take", lambda ctx: ctx.payload)
        .on_webhook(
            "/webhooks/shops/:shop/orders",
            schema=Order,
            header_validator=keep("header_validator"),
            validate=validate,
            condition=keep("condition"),
            idempotency_key=keep("idempotency_key", "k-1"),
            on_success=lambda request, run_id: seen.setdefault("on_success", request) and None,
        )
    )
    rt, client = await serve([flow])
    answer = await client.post(
        "/webhooks/shops/s-9/orders?source=app",
        content=b'{"order_id": "o-1"}',
        headers={**JSON, "X-Trace": "t-1"},
    )
    assert answer.status_code == 202, answer.text
    assert set(seen) == {
        "header_validator",
        "validate",
        "condition",
        "idempotency_key",
        "on_success",
    }
    for name, request in seen.items():
        assert isinstance(request, cf.WebhookRequest), name
        assert (request.method, request.path) == ("POST", "/webhooks/shops/s-9/orders"), name
        assert request.params == {"shop": "s-9"}, name
        assert request.query == {"source": "app"}, name
        assert request.headers["x-trace"] == "t-1", name
        assert request.raw_body is None, name  # not kept without parse_raw_body
    # the header validator sees the payload as sent, the later callbacks as the schema made it
    assert seen["header_validator"].payload == {"order_id": "o-1"}
    assert seen["validate"].payload == {"order_id": "o-1", "amount": 1}
    assert seen["on_success"].payload == {"order_id": "o-1", "amount": 1}
    result = await rt.wait(answer.json()["run_id"], timeout=5)
    assert result.output == {"order_id": "o-1", "amount": 1}


async def test_a_header_validator_refuses_with_a_400_that_says_why(serve: Serve) -> None:
    def api_key(request: cf.WebhookRequest) -> bool | str:
        if "x-api-key" not in request.headers:
            return False
        return True if request.headers["x-api-key"] == "k" else "x-api-key is not a known key"

    flow = (
        cf.define("keyed")
        .step("take", lambda ctx: ctx.payload)
        .on_webhook("/webhooks/keyed", schema=Order, header_validator=api_key)
    )
    rt, client = await serve([flow])
    wrong = await client.post(
        "/webhooks/keyed", json={"order_id": 1}, headers={"X-Api-Key": "other"}
    )
    assert wrong.status_code == 400
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json()["type"] == "urn:cronflow:problem:invalid-headers"
    # checked before the schema: a caller without the key learns nothing of the payload's shape
    assert wrong.json()["detail"] == "refused by header_validator(): x-api-key is not a known key"
    missing = await client.post("/webhooks/keyed", json={"order_id": "o"})
    assert missing.status_code == 400
    assert "it returned False; return True to accept" in missing.json()["detail"]
    assert await rt.store.list_snapshots() == []
    right = await client.post("/webhooks/keyed", json={"order_id": "o"}, headers={"X-Api-Key": "k"})
    assert right.status_code == 202


@pytest.mark.parametrize(
    "callback", ["header_validator", "validate", "condition", "idempotency_key"]
)
async def test_a_callback_that_raises_is_a_problem_naming_it(
    serve: Serve, callback: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: cf.WebhookRequest) -> Any:
        raise LookupError("the lookup table is gone")

    flow = (
        cf.define("fragile")
        .step("take", lambda ctx: ctx.payload)
        .on_webhook("/webhooks/fragile", **{callback: broken})
    )
    rt, client = await serve([flow])
    with caplog.at_level(logging.ERROR, logger="cronflow_actors.http.routes.webhooks"):
        answer = await client.post("/webhooks/fragile", json={"n": 1})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:cronflow:problem:webhook-callback-failed"
    assert problem["callback"] == callback
    assert f"{callback} callback raised LookupError" in problem["detail"]
    assert "lookup table" not in problem["detail"]  # the message stays in the server's log
    [record] = [r for r in caplog.records if r.exc_info]
    assert f"the {callback} callback of webhook POST /webhooks/fragile raised" in record.message
    assert "the lookup table is gone" in caplog.text  # with its traceback
    assert await rt.store.list_snapshots() == []


async def test_on_success_gives_the_answer_of_an_accepted_request(serve: Serve) -> None:
    calls: list[tuple[Any, str]] = []

    def answer(request: cf.WebhookRequest, run_id: str) -> Any:
        calls.append((request.payload, run_id))
        if request.payload.get("plain"):
            return {"received": True, "run": run_id}
        return cf.WebhookResponse(
            body={"ok": True}, status=200, headers={"X-Run-Id": run_id, "Location": "/elsewhere"}
        )

    flow = (
        cf.define("answered")
        .step("take", lambda ctx: ctx.payload)
        .on_webhook("/webhooks/answered", on_success=answer, idempotency_key="Idempotency-Key")
    )
    rt, client = await serve([flow])
    plain = await client.post("/webhooks/answered", json={"plain": True})
    run_id = calls[-1][1]
    assert (plain.status_code, plain.json()) == (202, {"received": True, "run": run_id})
    assert plain.headers["location"] == f"/runs/{run_id}"  # the standard headers stay
    assert plain.headers["content-type"] == "application/json"
    full = await client.post("/webhooks/answered", json={}, headers={"Idempotency-Key": "a"})
    other_run = calls[-1][1]
    assert (full.status_code, full.json()) == (200, {"ok": True})
    assert full.headers["x-run-id"] == other_run
    assert full.headers["location"] == "/elsewhere"  # the callback's header wins
    # a duplicate is an accepted request too: on_success hears of the first run
    again = await client.post("/webhooks/answered", json={}, headers={"Idempotency-Key": "a"})
    assert (again.status_code, calls[-1][1]) == (200, other_run)
    for run in (run_id, other_run):
        assert (await rt.wait(run, timeout=5)).status == "completed"
    assert len(await rt.store.list_snapshots()) == 2


@pytest.mark.parametrize(
    "returned",
    [
        pytest.param("raise", id="raises"),
        pytest.param(cf.WebhookResponse(status=99), id="bad-status"),
        pytest.param(cf.WebhookResponse(headers={"X-N": 1}), id="bad-header"),  # type: ignore[dict-item]
        pytest.param({"not json": object()}, id="not-json"),
    ],
)
async def test_a_failing_on_success_keeps_the_standard_answer(
    serve: Serve, returned: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_success(request: cf.WebhookRequest, run_id: str) -> Any:
        if returned == "raise":
            raise RuntimeError("cannot render the answer")
        return returned

    flow = (
        cf.define("answered")
        .step("take", lambda ctx: ctx.payload)
        .on_webhook("/webhooks/answered", on_success=on_success)
    )
    rt, client = await serve([flow])
    with caplog.at_level(logging.ERROR, logger="cronflow_actors.http.routes.webhooks"):
        answer = await client.post("/webhooks/answered", json={"n": 1})
    assert answer.status_code == 202
    run_id = answer.json()["run_id"]
    assert answer.headers["location"] == f"/runs/{run_id}"
    assert "the on_success callback of webhook POST /webhooks/answered failed" in caplog.text
    assert (await rt.wait(run_id, timeout=5)).output == {"n": 1}


async def test_on_error_gives_the_answer_of_a_refused_request(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    problems: list[tuple[cf.WebhookRequest, cf.WebhookProblem]] = []

    def on_error(request: cf.WebhookRequest, problem: cf.WebhookProblem) -> Any:
        problems.append((request, problem))
        if problem.path is not None:  # a schema refusal: tell the provider all is well
            return cf.WebhookResponse(status=200, body={"ignored": problem.path})
        if problem.status == 415:
            raise RuntimeError("on_error itself fails")
        return {"error": problem.detail}

    flow = (
        cf.define("strict")
        .step("take", lambda ctx: ctx.payload)
        .on_webhook(
            "/webhooks/strict",
            schema=Order,
            required_headers=["X-Shop"],
            validate=lambda request: "too much" if request.payload["amount"] > 9 else True,
            on_error=on_error,
        )
    )
    rt, client = await serve([flow])
    shop = {"X-Shop": "s"}
    mistyped = await client.post("/webhooks/strict", json={"order_id": 7}, headers=shop)
    assert (mistyped.status_code, mistyped.json()) == (200, {"ignored": "$.order_id"})
    request, problem = problems[-1]
    assert request.payload == {"order_id": 7}
    assert (problem.status, problem.type) == (400, "urn:cronflow:problem:invalid-payload")
    assert "Expected `str`, got `int`" in problem.detail
    too_much = await client.post(
        "/webhooks/strict", json={"order_id": "o", "amount": 10}, headers=shop
    )
    assert too_much.status_code == 400  # the problem's status, the callback's body
    assert too_much.headers["content-type"] == "application/json"
    assert too_much.json() == {"error": "refused by validate(): too much"}
    no_shop = await client.post("/webhooks/strict", json={"order_id": "o"})
    assert no_shop.json() == {"error": "missing (or empty) required headers: ['x-shop']"}
    # an empty value names nothing: it was taken as given (the hostile client's finding 9)
    blank = await client.post("/webhooks/strict", json={"order_id": "o"}, headers={"X-Shop": ""})
    assert blank.json() == {"error": "missing (or empty) required headers: ['x-shop']"}
    assert problems[-1][0].payload is None  # refused before its body was read
    # twice, empty or not: which shop? (two empty ones were joined into ", ", which passed,
    # and two shops into "a, b": hostile h32 M1)
    for values in (("", ""), ("a", "b")):
        twice = [("X-Shop", value) for value in values]
        refused = await client.post("/webhooks/strict", json={"order_id": "o"}, headers=twice)
        assert refused.json() == {"error": "the request has more than one x-shop header"}
        assert problems[-1][1].type == "urn:cronflow:problem:ambiguous-headers"
    with caplog.at_level(logging.ERROR, logger="cronflow_actors.http.routes.webhooks"):
        as_text = await client.post(
            "/webhooks/strict", content=b"{}", headers={**shop, "Content-Type": "text/plain"}
        )
    assert as_text.status_code == 415  # on_error raised: the standard problem goes out
    assert as_text.headers["content-type"] == "application/problem+json"
    assert "the on_error callback of webhook POST /webhooks/strict failed" in caplog.text
    assert await rt.store.list_snapshots() == []
    accepted = await client.post("/webhooks/strict", json={"order_id": "o"}, headers=shop)
    assert accepted.status_code == 202
    assert len(problems) == 7


def stripe_like(secret: str, body: bytes, moment: int) -> str:
    """Another signature scheme than the built-in one: over "<t>.<body>", as Stripe signs."""
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256)
    return f"t={moment},v1={digest.hexdigest()}"


def signed_flow(hold: bool = False) -> cf.Flow:
    def signature_ok(request: cf.WebhookRequest) -> bool | str:
        assert request.raw_body is not None
        given = request.headers.get("stripe-signature", "")
        moment = int(given.split(",")[0].removeprefix("t=") or 0)
        good = hmac.compare_digest(given, stripe_like("whsec", request.raw_body, moment))
        return True if good else "bad Stripe-Signature"

    flow = cf.define("stripe").step("first", lambda ctx: ctx.trigger.raw_body)
    if hold:
        flow = flow.human_in_the_loop("hold", description="until a restart")
    return flow.step("raw", lambda ctx: ctx.trigger.raw_body.decode()).on_webhook(
        "/webhooks/stripe", parse_raw_body=True, validate=signature_ok
    )


async def test_the_raw_body_serves_other_signature_schemes(serve: Serve) -> None:
    rt, client = await serve([signed_flow()])
    body = b'{ "b": 2,  "a": 1 }'  # key order and spacing are part of what was signed
    headers = {**JSON, "Stripe-Signature": stripe_like("whsec", body, 1_700_000_000)}
    accepted = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    result = await rt.wait(accepted.json()["run_id"], timeout=5)
    assert result.output == body.decode()
    info = await rt.inspect(accepted.json()["run_id"])
    assert info.steps[0].output == body  # bytes, exactly as sent
    assert info.payload == {"b": 2, "a": 1}
    forged = await client.post("/webhooks/stripe", content=b'{"b": 3, "a": 1}', headers=headers)
    assert (forged.status_code, forged.json()["detail"]) == (
        400,
        "refused by validate(): bad Stripe-Signature",
    )


@asynccontextmanager
async def served(
    db: Path, workflows: list[Any]
) -> AsyncIterator[tuple[cf.Runtime, httpx.AsyncClient]]:
    """A real server over a runtime on ``db``, stopped on leaving (to start another)."""
    runtime = cf.Runtime(db=db, workflows=workflows)
    config = uvicorn.Config(
        create_app(runtime), host="127.0.0.1", port=0, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        try:
            yield runtime, client
        finally:
            server.should_exit = True
            await task


async def test_the_raw_body_is_kept_with_the_run_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "raw.db"
    body = b'{"amount":  5,\n "currency": "eur"}'
    headers = {**JSON, "Stripe-Signature": stripe_like("whsec", body, 1_700_000_000)}
    async with served(db, [signed_flow(hold=True)]) as (rt, client):
        answer = await client.post("/webhooks/stripe", content=body, headers=headers)
        assert answer.status_code == 202
        run_id = answer.json()["run_id"]
        await rt.wait_idle()
        [pause] = await rt.list_paused()
    async with cf.Runtime(db=db, workflows=[signed_flow(hold=True)]) as again:
        await again.resume(pause.token, {"approved": True})
        assert (await again.wait(run_id, timeout=5)).output == body.decode()
        [first, _hold, _raw] = (await again.inspect(run_id)).steps
        assert first.output == body


async def test_the_openapi_document_says_what_callbacks_may_answer(serve: Serve) -> None:
    flow = (
        cf.define("custom")
        .step("take", lambda ctx: ctx.payload)
        .on_webhook(
            "/webhooks/custom",
            header_validator=lambda request: True,
            on_success=lambda request, run_id: {"accepted": run_id},
            on_error=lambda request, problem: {"error": problem.detail},
        )
    )
    _rt, client = await serve([flow])
    operation = (await client.get("/openapi.json")).json()["paths"]["/webhooks/custom"]["post"]
    responses = operation["responses"]
    assert responses["202"]["content"]["application/json"]["schema"] == {}
    assert "default" in responses
    assert "500" in responses  # the header validator may raise
    assert set(responses["400"]["content"]) == {"application/problem+json", "application/json"}


async def test_an_idempotency_key_is_compared_by_value_and_type(serve: Serve) -> None:
    flow = keyed_flow(idempotency_key=lambda request: request.payload.get("k"))
    _rt, client = await serve([flow])

    async def post(key: Any) -> httpx.Response:
        answer = await client.post("/h/key", json={"k": key})
        assert answer.status_code in (200, 202), answer.text
        return answer

    # falsy keys are keys: 0 and false de-duplicate as any other
    for key in (0, False, [], {}, 0.5, "o-1", [1, "a"], {"b": 1, "a": [2]}):
        first, again = await post(key), await post(key)
        assert (first.status_code, again.status_code) == (202, 200), key
        assert again.json() == {"run_id": first.json()["run_id"], "duplicate": True}
    # keys of different types are different keys, however they print
    for one, other in ((1, "1"), ([1], "[1]"), (True, "true"), (True, 1), (0, False)):
        assert (await post(one)).json()["run_id"] != (await post(other)).json()["run_id"]
    # a number is one key however it is written; an object's keys in any order
    assert (await post(2.0)).json()["run_id"] == (await post(2)).json()["run_id"]
    same = await client.post("/h/key", content=b'{"k": {"a": [2], "b": 1}}', headers=JSON)
    assert same.json()["duplicate"] is True
    # None and the empty string are no key: each request starts a run
    for key in (None, ""):
        assert (await post(key)).status_code == (await post(key)).status_code == 202
    # a string keeps the name it had before keys told types apart (its id the runtime's own)
    digest = hashlib.sha256(b"o-1").hexdigest()
    assert (await post("o-1")).json()["run_id"] == f"hook:{uuid.uuid5(KEYS, f'keyed|{digest}').hex}"


async def test_a_key_names_a_run_of_its_path_parameters_only(serve: Serve) -> None:
    """Two tenants of one webhook (``/hooks/t/{tenant}``) that pick the same key: the second
    was answered as a duplicate of the first tenant's run (its id told to it), or a 422 naming
    it (the hostile client's h25 M1). A key names a run of its path's parameters."""
    by_header = cf.define("tenanted").step("take", lambda ctx: ctx.trigger.params)
    by_header = by_header.on_webhook("/hooks/t/{tenant}", idempotency_key="Idempotency-Key")
    by_call = cf.define("tenanted2").step("take", lambda ctx: ctx.trigger.params)
    by_call = by_call.on_webhook(
        "/hooks/k/{tenant}", idempotency_key=lambda request: request.headers.get("x-key")
    )
    _rt, client = await serve([by_header, by_call])
    for path, header in (("/hooks/t", "Idempotency-Key"), ("/hooks/k", "x-key")):
        acme = await client.post(f"{path}/acme", json={"order": 7}, headers={header: "order-7"})
        globex = await client.post(f"{path}/globex", json={"o": 1}, headers={header: "order-7"})
        again = await client.post(f"{path}/acme", json={"order": 7}, headers={header: "order-7"})
        assert (acme.status_code, globex.status_code, again.status_code) == (202, 202, 200)
        assert globex.json()["run_id"] != acme.json()["run_id"]
        assert again.json() == {"run_id": acme.json()["run_id"], "duplicate": True}


async def test_a_retry_from_before_keys_held_parameters_finds_its_run(serve: Serve) -> None:
    """A run an earlier version started for a key on a path with parameters was named without
    them: a retry across the upgrade started a second run (the reviewer's h25 M2). It is found
    when its webhook started it with the same parameters, and only then."""
    flow = cf.define("tenants").step("take", lambda ctx: ctx.trigger.params)
    flow = flow.on_webhook("/hooks/tn/{tenant}", idempotency_key="Idempotency-Key")
    rt, client = await serve([flow])
    digest = hashlib.sha256(b"order-7").hexdigest()
    before = f"hook:{uuid.uuid5(KEYS, f'tenants|{digest}').hex}"  # without the parameters
    started = await rt.runs.trigger(
        "tenants", {"order": 7}, kind="webhook", instance_id=before, derived=True,
        params={"tenant": "acme"},
    )  # fmt: skip
    assert started == before
    key = {"Idempotency-Key": "order-7"}
    again = await client.post("/hooks/tn/acme", json={"order": 7}, headers=key)
    assert (again.status_code, again.json()) == (200, {"run_id": before, "duplicate": True})
    other = await client.post("/hooks/tn/globex", json={"order": 7}, headers=key)
    assert other.status_code == 202
    assert other.json()["run_id"] != before


def keyed_flow(**webhook: Any) -> cf.Flow:
    """A flow started at ``/h/key`` with the ``webhook`` options given (its key, a condition);
    its one step answers the payload."""
    return cf.define("keyed").step("take", lambda ctx: ctx.payload).on_webhook("/h/key", **webhook)


KEYS = uuid.UUID("0d5b8f5e-4a6b-4c2f-9d71-6b1f0b2a3c44")  # webhooks' namespace of run ids


async def test_a_key_that_is_no_string_finds_the_run_it_started_before_keys_had_types(
    serve: Serve,
) -> None:
    # an int key was named by its str() before, as 32 hex digits: a retry that spans the
    # upgrade starts nothing
    flow = keyed_flow(idempotency_key=lambda request: request.payload.get("k"))
    rt, client = await serve([flow])
    before = uuid.uuid5(KEYS, f"keyed|{hashlib.sha256(b'42').hexdigest()}").hex
    assert await rt.runs.trigger("keyed", {"k": 42}, kind="webhook", instance_id=before) == before
    again = await client.post("/h/key", json={"k": 42})
    assert (again.status_code, again.json()) == (200, {"run_id": before, "duplicate": True})
    assert len(await rt.list_runs()) == 1


async def test_no_client_takes_the_run_a_key_names_before_its_delivery(serve: Serve) -> None:
    # anyone who may POST /runs could work out the id a key named (32 hex digits) and take it,
    # with a payload of theirs, for this flow or another: the genuine delivery was then answered
    # as that run's duplicate (200) or a 409, and lost (the third hostile client's H1)
    keyed = keyed_flow(idempotency_key="Idempotency-Key")
    other = cf.define("other").step("o", lambda ctx: "squatted")
    rt, client = await serve([keyed, other])
    for key, flow in (("order-9", "keyed"), ("order-10", "other")):
        legacy = uuid.uuid5(KEYS, f"keyed|{hashlib.sha256(key.encode()).hexdigest()}").hex
        named = f"hook:{legacy}"
        refused = await client.post("/runs", json={"workflow": flow, "instance_id": named})
        assert (refused.status_code, "instance_id" in refused.text) == (400, True)
        # the id earlier versions derived is anyone's to choose: a client's run under it is no
        # delivery's
        squat = {"workflow": flow, "instance_id": legacy, "payload": {"forged": True}}
        assert (await client.post("/runs", json=squat)).status_code == 202
        headers = {"Idempotency-Key": key}
        answer = await client.post("/h/key", json={"n": 1}, headers=headers)
        assert (answer.status_code, answer.json()) == (202, {"run_id": named}), answer.text
        assert (await rt.wait(named, timeout=5)).output == {"n": 1}
        again = await client.post("/h/key", json={"n": 1}, headers=headers)
        assert (again.status_code, again.json()) == (200, {"run_id": named, "duplicate": True})


async def test_no_replay_takes_the_run_a_key_named_before_its_delivery(serve: Serve) -> None:
    """A replay copies its run's trigger (a webhook's, its path parameters) and runs under an id
    of the caller's choice: replayed under the id an earlier version gave a key, it was found as
    the run a webhook started for that key, and the sender's delivery, when it came, was
    answered as its duplicate and never ran (hostile h26 H1). A replay is no delivery's."""
    flow = cf.define("tenants").step("take", lambda ctx: ctx.payload)
    flow = flow.on_webhook("/hooks/tn/{tenant}", idempotency_key="Idempotency-Key")
    rt, client = await serve([flow])
    first = await client.post("/hooks/tn/acme", json={"n": 1}, headers={"Idempotency-Key": "o-1"})
    assert first.status_code == 202
    await rt.wait(first.json()["run_id"], timeout=5)
    digest = hashlib.sha256(b"o-2").hexdigest()
    for legacy in (
        uuid.uuid5(KEYS, f"tenants|{digest}").hex,  # the two ids earlier versions gave o-2
        f"hook:{uuid.uuid5(KEYS, f'tenants|{digest}').hex}",
    ):
        replayed = await client.post(
            f"/runs/{first.json()['run_id']}/replay",
            json={"instance_id": legacy, "payload": {"n": "forged"}},
        )
        if legacy.startswith("hook:"):  # a derived id: no client's
            assert replayed.status_code == 400, replayed.text
            continue
        assert replayed.status_code == 202, replayed.text
        await rt.wait(legacy, timeout=5)
    delivery = await client.post(
        "/hooks/tn/acme", json={"n": 2}, headers={"Idempotency-Key": "o-2"}
    )
    assert delivery.status_code == 202, delivery.text
    assert (await rt.wait(delivery.json()["run_id"], timeout=5)).output == {"n": 2}


@pytest.mark.parametrize("kind", ["tick", "hook", "poll", "event"])
async def test_post_runs_refuses_every_kind_of_derived_id(serve: Serve, kind: str) -> None:
    rt, client = await serve([cf.define("flow").step("s", lambda ctx: 1)])
    answer = await client.post(
        "/runs", json={"workflow": "flow", "instance_id": f"{kind}:{'a' * 32}"}
    )
    assert (answer.status_code, "instance_id" in answer.text) == (400, True)
    assert await rt.list_runs() == []


async def test_a_key_whose_run_id_code_gave_another_flow_is_a_409_not_its_answer(
    serve: Serve,
) -> None:
    # only the runtime's triggers give a derived id (rt.runs.trigger(derived=True); rt.trigger
    # refuses it): a run of another flow under it is never the delivery's answer
    keyed = keyed_flow(idempotency_key="Idempotency-Key")
    other = cf.define("other").step("o", lambda ctx: "squatted")
    rt, client = await serve([keyed, other])
    digest = hashlib.sha256(b"order-9").hexdigest()
    taken = f"hook:{uuid.uuid5(KEYS, f'keyed|{digest}').hex}"
    with pytest.raises(ConfigurationError, match="instance_id"):
        await rt.trigger("other", instance_id=taken)
    assert await rt.runs.trigger("other", instance_id=taken, derived=True) == taken
    answer = await client.post("/h/key", json={"n": 1}, headers={"Idempotency-Key": "order-9"})
    assert answer.status_code == 409
    problem = answer.json()
    assert problem["type"] == "urn:cronflow:problem:instance-exists"
    assert f"names run {taken}, which is not a run of flow 'keyed'" in problem["detail"]
    assert "'other'" not in problem["detail"]  # another flow's name is not the caller's to know
    assert [run.workflow for run in await rt.list_runs()] == ["other"]


async def test_a_keyed_retry_whose_run_exists_is_its_duplicate_whatever_the_condition(
    serve: Serve,
) -> None:
    quota = [True]  # the condition says yes once (a quota), then no

    def condition(request: cf.WebhookRequest) -> bool:
        return quota.pop() if quota else False

    flow = keyed_flow(idempotency_key="Idempotency-Key", condition=condition)
    rt, client = await serve([flow])
    headers = {"Idempotency-Key": "order-1", **JSON}
    first = await client.post("/h/key", content=b'{"n": 1}', headers=headers)
    assert first.status_code == 202
    again = await client.post("/h/key", content=b'{"n": 1}', headers=headers)
    assert (again.status_code, again.json()) == (
        200,
        {"run_id": first.json()["run_id"], "duplicate": True},
    )
    other = await client.post("/h/key", content=b"{}", headers={"Idempotency-Key": "o-2", **JSON})
    assert other.json() == {"run_id": None, "condition_met": False}  # a new key: it is asked
    assert len(await rt.list_runs()) == 1


async def test_two_idempotency_key_headers_are_refused_as_ambiguous(serve: Serve) -> None:
    flow = keyed_flow(idempotency_key="Idempotency-Key")
    rt, client = await serve([flow])
    both = [("Idempotency-Key", "a-1"), ("Idempotency-Key", "a-2"), *JSON.items()]
    refused = await client.post("/h/key", content=b"{}", headers=both)
    assert refused.status_code == 400
    assert refused.json()["type"] == "urn:cronflow:problem:ambiguous-headers"
    assert "more than one Idempotency-Key header" in refused.json()["detail"]
    assert await rt.list_runs() == []


async def test_an_idempotency_key_that_is_no_json_value_is_a_clear_500(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    flow = (
        cf.define("keyed")
        .step("take", lambda ctx: ctx.payload)
        .on_webhook("/h/bytes", idempotency_key=lambda request: b"k")
        .on_webhook("/h/nan", idempotency_key=lambda request: float("nan"))
    )
    rt, client = await serve([flow])
    with caplog.at_level(logging.ERROR, logger="cronflow_actors.http.routes.webhooks"):
        for path, shown in (("/h/bytes", "bytes b'k'"), ("/h/nan", "float nan")):
            refused = await client.post(path, json={})
            assert refused.status_code == 500, refused.text
            problem = refused.json()
            assert problem["callback"] == "idempotency_key"
            assert shown in problem["detail"], problem
            assert "return a string, a number, a bool" in problem["detail"]
    assert "the idempotency_key callback of webhook POST /h/bytes" in caplog.text
    assert await rt.list_runs() == []


async def test_a_webhooks_key_header_is_read_as_utf8(serve: Serve) -> None:
    """A webhook read its ``Idempotency-Key`` header as Latin-1 (``ключ`` named another run
    than the same key given anywhere else) and took bytes that are not UTF-8, where
    ``/events`` and ``/runs`` refuse them (hostile h31 L1)."""
    flow = cf.define("utf").step("s", lambda ctx: 1)
    _rt, client = await serve([flow.on_webhook("/hooks/utf", idempotency_key="Idempotency-Key")])
    key = {"Idempotency-Key": "ключ-é".encode()}
    first = await client.post("/hooks/utf", json={}, headers=key)
    again = await client.post("/hooks/utf", json={}, headers=key)
    assert (first.status_code, again.status_code) == (202, 200)
    digest = hashlib.sha256("ключ-é".encode()).hexdigest()
    assert first.json()["run_id"] == f"hook:{uuid.uuid5(KEYS, f'utf|{digest}').hex}"
    bad = await client.post("/hooks/utf", json={}, headers={"Idempotency-Key": b"\xff\xfe"})
    assert (bad.status_code, bad.json()["type"]) == (400, "urn:cronflow:problem:invalid-header")
    assert "not UTF-8" in bad.json()["detail"]
    # nor a control character, which /events refuses in its key too (hostile h32 L5)
    for sent in (b"\x01ctl", b"k\tk"):
        bad = await client.post("/hooks/utf", json={}, headers={"Idempotency-Key": sent})
        assert (bad.status_code, bad.json()["type"]) == (400, "urn:cronflow:problem:invalid-header")
        assert "holds a character that is not printable" in bad.json()["detail"]
    # the headers a run keeps and its callbacks see read so too (hostile h32 L3: "Ã¼")
    seen: list[dict[str, str]] = []
    kept = cf.define("kept").step("s", lambda ctx: dict(ctx.trigger.headers))
    rt, other = await serve(
        [
            kept.on_webhook(
                "/hooks/kept",
                keep_headers=["X-Agent"],
                validate=lambda r: seen.append(r.headers) or True,
            )
        ]
    )
    sent = {"X-Agent": "ü-agent".encode(), "X-Raw": b"\xff"}
    run_id = (await other.post("/hooks/kept", json={}, headers=sent)).json()["run_id"]
    assert (await rt.wait(run_id, timeout=5)).output == {"x-agent": "ü-agent"}
    assert (seen[0]["x-agent"], seen[0]["x-raw"]) == ("ü-agent", "\xff")  # (not UTF-8: as sent)
    # a kept header with a control character is refused, as the key's is (hostile h33 L4: the
    # run kept "a\x01b", shown in listings and steps); a tab is a header's own
    # nor a line separator or a bidi control, as a cancel's reason (review h33 F6)
    for value in (b"a\x01b", b"x\x7fy", "a\u2028b".encode(), "\u202egnp.exe".encode()):
        refused = await other.post("/hooks/kept", json={}, headers={"X-Agent": value})
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"] == (
            "the x-agent header holds a control character, a line separator or a bidi control; "
            "a header this webhook keeps is text of one line (a tab aside)"
        )
    tabbed = await other.post(
        "/hooks/kept", json={}, headers={"X-Agent": b"a\tb", "X-Raw": b"\x01"}
    )
    assert tabbed.status_code == 202  # (a header it does not keep is not its to refuse)
    assert (await rt.wait(tabbed.json()["run_id"], timeout=5)).output == {"x-agent": "a\tb"}


async def test_an_empty_key_header_is_refused_not_taken_for_no_key(serve: Serve) -> None:
    """``Idempotency-Key:`` with nothing in it (a client's unset variable) was no key: each
    retry of a keyed webhook or a publish started another run (hostile h44 F4)."""
    flow = cf.define("keyed").step("s", lambda ctx: 1)
    heard = cf.define("heard").on_event("thing.made").step("s", lambda ctx: 1)
    rt, client = await serve(
        [flow.on_webhook("/hooks/keyed", idempotency_key="Idempotency-Key"), heard]
    )
    for path in ("/hooks/keyed", "/events/thing.made"):  # (a blank one arrives empty: HTTP
        # trims a header's value)
        refused = await client.post(path, json={}, headers={"Idempotency-Key": ""})
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["type"] == "urn:cronflow:problem:invalid-header"
        assert "the Idempotency-Key header is empty" in refused.json()["detail"]
        assert "leave the header out" in refused.json()["detail"]
    assert await rt.list_runs() == []
    assert (await client.post("/hooks/keyed", json={})).status_code == 202  # no header: no key

"""Bearer tokens, principals and policies over HTTP; webhook tokens and HMAC signatures."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import InvalidWorkflowError
from cronflow_actors.http.app import create_app
from cronflow_actors.http.auth import Signatures, Tokens, sign, sign_request
from cronflow_actors.messages.engine import StartWorkflow
from tests.http.conftest import Serve

ADA = cf.Principal(id="ada", scopes=frozenset({"review:write"}))
BOB = cf.Principal(id="bob", scopes=frozenset({"review:read"}))
ADMIN = cf.Principal(id="root", scopes=frozenset({"hire:admin"}))
TOKENS = {"t-ada": ADA, "t-bob": BOB, "t-admin": ADMIN}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Review(msgspec.Struct):
    approved: bool


def hire() -> net.NetSpec:
    review = net.work_item("review").actions(
        start=net.action(),
        complete=net.action(Review, policy=net.require_scope("review:write")),
    )
    return (
        net.workflow("hire")
        .start_condition("start")
        .end_condition("end")
        .task("review", net.task(review))
        .connect_condition("start", "review")
        .connect_task("review", "end")
        .actions(initialize=net.action(), cancel=net.action(policy=net.require_scope("hire:admin")))
        .build()
    )


async def test_tokens_principals_and_policies(serve: Serve) -> None:
    rt, client = await serve([hire()], tokens=TOKENS)
    assert (await client.get("/healthz")).status_code == 200  # open
    assert (await client.get("/runs")).status_code == 401
    assert (await client.get("/runs", headers=bearer("forged"))).status_code == 401
    assert (await client.get("/runs", headers=bearer("t-bob"))).status_code == 200
    assert (await client.post("/workflows", json={"workflow": "hire"})).status_code == 401
    created = await client.post("/workflows", json={"workflow": "hire"}, headers=bearer("t-bob"))
    assert created.status_code == 201
    workflow_id = created.json()["workflow_id"]
    items = await client.get(
        f"/workflows/{workflow_id}/tasks/review/work-items", headers=bearer("t-bob")
    )
    [item] = items.json()["work_items"]
    start = f"/work-items/{item['id']}/start"
    assert (await client.post(start)).status_code == 401
    assert (await rt.work_item(item["id"])).state == "initialized"
    assert (await client.post(start, headers=bearer("t-bob"))).json()["state"] == "started"
    complete = f"/work-items/{item['id']}/complete"
    denied = await client.post(complete, json={"approved": True}, headers=bearer("t-bob"))
    assert denied.status_code == 403
    invalid = await client.post(complete, json={"approved": "yes"}, headers=bearer("t-ada"))
    assert invalid.status_code == 400
    assert invalid.json()["path"] == "$.approved"  # as a webhook's 400 says it (h22 L7)
    internal_only = await client.post(f"/work-items/{item['id']}/fail", headers=bearer("t-ada"))
    assert internal_only.status_code == 403
    assert (await rt.work_item(item["id"])).state == "started"
    done = await client.post(complete, json={"approved": True}, headers=bearer("t-ada"))
    assert (done.status_code, done.json()["state"], done.json()["output"]) == (
        200,
        "completed",
        {"approved": True},
    )
    workflow = (await client.get(f"/workflows/{workflow_id}", headers=bearer("t-ada"))).json()
    assert (workflow["state"], workflow["tasks"]) == ("completed", {"review": "completed"})
    assert (
        await client.post(
            f"/work-items/{item['id']}/complete", json={"approved": True}, headers=bearer("t-ada")
        )
    ).status_code == 409
    other = (
        await client.post("/workflows", json={"workflow": "hire"}, headers=bearer("t-ada"))
    ).json()
    refused = await client.post(
        f"/workflows/{other['workflow_id']}/cancel", headers=bearer("t-ada")
    )
    assert refused.status_code == 403
    assert await rt.workflow_state(other["workflow_id"]) == "initialized"
    admin = {"Authorization": "Bearer t-admin"}
    canceled = await client.post(
        f"/workflows/{other['workflow_id']}/cancel", json={"reason": "role filled"}, headers=admin
    )
    assert canceled.status_code == 200
    assert (await rt.workflow(other["workflow_id"])).error == "role filled"


def hire_in_person() -> net.NetSpec:
    """``hire`` whose review waits for a person: its start draws a resume token."""
    review = net.work_item("review", wait=net.WaitSpec(kind="pause")).actions(
        start=net.action(),
        complete=net.action(Review, policy=net.require_scope("review:write")),
    )
    task = net.task(review)
    return (
        net.workflow("hire-in-person")
        .start_condition("start")
        .end_condition("end")
        .task("review", task)
        .connect_condition("start", "review")
        .connect_task("review", "end")
        .actions(initialize=net.action())
        .build()
    )


async def test_a_net_pause_resumed_by_its_token_asks_the_items_complete_policy(
    serve: Serve,
) -> None:
    """``POST /resume/{token}`` completed a net's work item that waits for a person for a token
    its ``complete`` policy refuses (the token is listed to any reader), recorded as the
    process's own call (hostile h28 H1). It is that caller's ``complete``: policy asked,
    principal recorded; a flow's pause is any writing token's, as before."""
    paused = cf.define("approve").human_in_the_loop("ok", description="ok?")
    rt, client = await serve(
        [hire_in_person(), paused.step("done", lambda ctx: ctx.last)], tokens=TOKENS
    )
    created = await client.post(
        "/workflows", json={"workflow": "hire-in-person"}, headers=bearer("t-bob")
    )
    workflow_id = created.json()["workflow_id"]
    listed = f"/workflows/{workflow_id}/tasks/review/work-items"
    [item] = (await client.get(listed, headers=bearer("t-bob"))).json()["work_items"]
    started = await client.post(f"/work-items/{item['id']}/start", headers=bearer("t-bob"))
    token = started.json()["token"]
    denied = await client.post(f"/resume/{token}", json={"approved": True}, headers=bearer("t-bob"))
    assert denied.status_code == 403
    assert "require_scope('review:write') denied it" in denied.json()["detail"]
    assert (await rt.work_item(item["id"])).state == "started"
    done = await client.post(f"/resume/{token}", json={"approved": True}, headers=bearer("t-ada"))
    assert done.status_code == 200
    assert (await rt.work_item(item["id"])).state == "completed"
    spans = [s.span for s in (await rt.trace(workflow_id)).roots]
    [complete] = [s for s in spans if s.operation == "Action.complete"]
    assert complete.attributes["principal"] == "ada"

    begun = await client.post("/runs", json={"workflow": "approve"}, headers=bearer("t-bob"))
    run_id = begun.json()["run_id"]
    await rt.wait_idle()
    [pause] = await rt.list_paused()
    resumed = await client.post(
        f"/resume/{pause.token}", json={"approved": True}, headers=bearer("t-bob")
    )
    assert resumed.status_code == 200
    assert (await rt.wait(run_id, timeout=5)).status == "completed"


async def test_without_tokens_net_actions_are_anonymous(serve: Serve) -> None:
    rt, client = await serve([hire()])
    created = await client.post("/workflows", json={"workflow": "hire"})
    assert created.status_code == 401  # an anonymous principal cannot pass an action
    assert await rt.store.list_snapshots() == []


async def test_webhooks_can_require_a_token_or_a_signature(serve: Serve) -> None:
    secret = "s3cret"
    flow = (
        cf.define("guarded")
        .step("s", lambda ctx: ctx.payload)
        .on_webhook("/hooks/token", require_token=True)
        .on_webhook("/hooks/signed", hmac_secret=secret, signature_tolerance=60)
    )
    rt, client = await serve([flow], tokens=TOKENS)
    assert (await client.post("/hooks/token", json={"a": 1})).status_code == 401
    assert (
        await client.post("/hooks/token", json={"a": 1}, headers=bearer("nope"))
    ).status_code == 401
    accepted = await client.post("/hooks/token", json={"a": 1}, headers=bearer("t-bob"))
    assert accepted.status_code == 202
    assert (await rt.inspect(accepted.json()["run_id"])).started_by == "bob"  # who sent it
    body = b'{"b": 2}'
    now = int(time.time())

    def signed_at(moment: int, content: bytes = body) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Signature-256": sign_request(secret, "POST", "/hooks/signed", content, at=moment),
        }

    for headers, fragment in [
        ({}, "not signed"),
        ({"X-Signature-256": "sha256=00"}, "must be 't=<unix seconds>,v2="),
        ({"X-Signature-256": f"t={now},v2={'0' * 64}"}, "does not match"),
        ({"X-Signature-256": "t=1,v2=é".encode()}, "must be"),  # non-ASCII: still a 401
        (signed_at(now - 3600), "away from the server's time"),
        (signed_at(now, b'{"b": 3}'), "does not match"),  # signed another body
    ]:
        refused = await client.post("/hooks/signed", content=body, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["content-type"] == "application/problem+json"
        assert fragment in refused.json()["detail"], (headers, refused.json())
        # a 401 must carry a challenge (RFC 9110 15.5.2; hostile h45 F3)
        assert refused.headers["www-authenticate"] == 'Signature realm="webhook"'
    signed = await client.post("/hooks/signed", content=body, headers=signed_at(now))
    assert signed.status_code == 202
    assert (await rt.wait(signed.json()["run_id"], timeout=5)).output == {"b": 2}
    # The same signed request again, within the tolerance: a replay, refused.
    replayed = await client.post("/hooks/signed", content=body, headers=signed_at(now))
    assert replayed.status_code == 401
    assert "replay" in replayed.json()["detail"]
    assert replayed.headers["www-authenticate"] == 'Signature realm="webhook"'
    assert len(await rt.store.list_snapshots()) == 2
    # refused with nothing written: each replay moved the signature's counter and expiry on
    # (hostile h45 F9)
    [(key, _)] = (await rt.store.kv_items("cronflow:webhook-signatures", now=time.time())).items()
    stored = await rt.store.kv_get("cronflow:webhook-signatures", key, now=time.time())
    for _ in range(3):
        again = await client.post("/hooks/signed", content=body, headers=signed_at(now))
        assert again.status_code == 401
    assert await rt.store.kv_get("cronflow:webhook-signatures", key, now=time.time()) == stored


async def test_metrics_need_a_token_when_tokens_are_configured(serve: Serve) -> None:
    _rt, client = await serve([hire()], tokens=TOKENS)
    refused = await client.get("/metrics")
    assert refused.status_code == 401
    # a scraper is told of the token of its own it may have (newcomer h31 F8: not said)
    assert "--metrics-token" in refused.json()["detail"]
    assert (await client.get("/metrics", headers=bearer("t-bob"))).status_code == 200
    _rt2, own = await serve([hire()], tokens=TOKENS, metrics_token="m-1")
    assert (await own.get("/metrics", headers=bearer("t-bob"))).status_code == 401
    assert (await own.get("/metrics", headers=bearer("m-1"))).status_code == 200


async def test_a_read_only_token_reads_and_changes_nothing(serve: Serve) -> None:
    watcher = cf.Principal("grafana", scopes=frozenset({"review:write", "hire:admin"}))
    flow = (
        cf.define("guarded")
        .human_in_the_loop("approve", description="approve")
        .step("s", lambda ctx: ctx.last)
        .on_webhook("/hooks/token", require_token=True)
        .on_webhook("/hooks/token-get", method="GET", require_token=True)
    )
    rt, client = await serve(
        [hire(), flow], tokens={**TOKENS, "t-watch": watcher}, read_only_tokens={"t-watch"}
    )
    watch = bearer("t-watch")
    run_id = (
        await client.post("/runs", json={"workflow": "guarded"}, headers=bearer("t-ada"))
    ).json()["run_id"]
    await rt.wait_idle()
    [paused] = await rt.list_paused()
    workflow_id = (
        await client.post("/workflows", json={"workflow": "hire"}, headers=bearer("t-ada"))
    ).json()["workflow_id"]
    # it reads whatever a token reads
    for path in ("/runs", f"/runs/{run_id}", "/paused", f"/workflows/{workflow_id}", "/metrics"):
        assert (await client.get(path, headers=watch)).status_code == 200, path
    assert (await client.head("/runs", headers=watch)).status_code in (200, 405)
    # and nothing else: whatever its scopes say to net policies
    for method, path, body in [
        ("POST", "/runs", {"workflow": "guarded"}),
        ("POST", f"/runs/{run_id}/cancel", None),
        ("POST", f"/resume/{paused.token}", {"approved": True}),
        ("POST", "/events/paid", {"x": 1}),
        ("POST", "/workflows", {"workflow": "hire"}),
        ("POST", f"/workflows/{workflow_id}/cancel", None),
        ("POST", "/hooks/token", {"a": 1}),
        ("GET", "/hooks/token-get?a=1", None),
    ]:
        refused = await client.request(method, path, json=body, headers=watch)
        assert refused.status_code == 403, (method, path, refused.text)
        problem = refused.json()
        assert problem["type"].endswith("read-only-token"), problem
        assert "'grafana' is read-only" in problem["detail"], problem
        assert "nothing was changed" in problem["detail"], problem
    # nothing changed: one run, still waiting at its pause; the net instance as it was
    assert [run.id for run in await rt.list_runs("guarded")] == [run_id]
    assert (await rt.inspect(run_id)).status == "waiting"
    assert await rt.workflow_state(workflow_id) == "initialized"
    # the same requests with a token that may write go through
    resumed = await client.post(
        f"/resume/{paused.token}", json={"approved": True}, headers=bearer("t-ada")
    )
    assert resumed.status_code == 200, resumed.text
    assert (await rt.wait(run_id, timeout=5)).status == "completed"


def test_a_read_only_token_has_the_big_body_budget_of_its_reads_only() -> None:
    """A big body sent with a read-only token waits in the anonymous callers' budget: the
    request it comes with can change nothing (an open webhook), so it is no known writer's."""
    tokens = Tokens({"t-ada": ADA, "t-watch": BOB}, read_only={"t-watch"})

    def scope(method: str, token: str) -> dict[str, Any]:
        return {"method": method, "headers": [(b"authorization", f"Bearer {token}".encode())]}

    assert tokens.known(scope("POST", "t-ada"))
    assert tokens.known(scope("GET", "t-watch"))
    assert not tokens.known(scope("POST", "t-watch"))
    assert tokens.match("t-watch") == BOB  # a read-only token is still who it is


def test_a_read_only_entry_must_name_a_configured_token() -> None:
    with pytest.raises(ValueError, match="read_only names tokens that are not configured: 1"):
        create_app(cf.Runtime(db=":memory:", workflows=[]), tokens=TOKENS, read_only_tokens={"x"})


def test_a_principal_takes_its_id_positionally() -> None:
    ada = cf.Principal("ada", scopes=frozenset({"review:write"}))
    assert (ada.id, ada.scopes) == ("ada", frozenset({"review:write"}))
    assert ada == cf.Principal(id="ada", scopes=frozenset({"review:write"}))


SECRET = "s3cret"


def signed(
    body: bytes, *, content_type: str = "application/json", path: str = "/hooks/signed"
) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "X-Signature-256": sign_request(SECRET, "POST", path, body),
    }


def signed_json(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}


def raises_once(error: Exception) -> Callable[[cf.WebhookRequest], bool]:
    """A webhook ``condition`` that raises ``error`` the first time, then says yes."""
    failures = [error]

    def condition(request: cf.WebhookRequest) -> bool:
        if failures:
            raise failures.pop()
        return True

    return condition


def signed_flow(**webhook: Any) -> cf.Flow:
    """A flow started by a webhook at ``/hooks/signed`` signed with ``SECRET``, with the
    ``webhook`` options given; its one step answers the payload."""
    return (
        cf.define("signed")
        .step("s", lambda ctx: ctx.payload)
        .on_webhook("/hooks/signed", hmac_secret=SECRET, **webhook)
    )


async def test_a_signed_request_refused_after_its_signature_may_be_sent_again(
    serve: Serve,
) -> None:
    condition = raises_once(RuntimeError("the condition's service is down"))
    flow = (
        cf.define("signed")
        .step("s", lambda ctx: ctx.payload)
        .on_webhook("/hooks/signed", hmac_secret=SECRET, schema=dict[str, int])
        .on_webhook("/hooks/flaky", hmac_secret=SECRET, condition=condition)
    )
    rt, client = await serve([flow])
    body = b'{"b": 2}'
    flaky = signed(body, path="/hooks/flaky")
    failed = await client.post("/hooks/flaky", content=body, headers=flaky)
    assert (failed.status_code, failed.json()["callback"]) == (500, "condition")
    retried = await client.post("/hooks/flaky", content=body, headers=flaky)
    assert retried.status_code == 202, retried.text
    headers = signed(body, content_type="text/plain")
    as_text = await client.post("/hooks/signed", content=body, headers=headers)
    assert as_text.status_code == 415, as_text.text
    # The same signature with the right media type: not a replay, the first was refused.
    fixed = await client.post("/hooks/signed", content=body, headers=signed_json(headers))
    assert fixed.status_code == 202, fixed.text
    assert (await rt.wait(fixed.json()["run_id"], timeout=5)).output == {"b": 2}
    # Accepted once, it is spent: the same request again is a replay.
    again = await client.post("/hooks/signed", content=body, headers=signed_json(headers))
    assert (again.status_code, "replay" in again.json()["detail"]) == (401, True)
    assert len(await rt.store.list_snapshots()) == 2
    # A bad signature is still refused before anything else is looked at.
    forged = {**signed(body, content_type="text/plain"), "X-Signature-256": "t=1,v2=" + "0" * 64}
    assert (await client.post("/hooks/signed", content=body, headers=forged)).status_code == 401


async def test_a_signed_retry_with_its_idempotency_key_is_answered_as_a_duplicate(
    serve: Serve,
) -> None:
    succeeded: list[str] = []
    flow = signed_flow(
        idempotency_key="X-Delivery", on_success=lambda request, run_id: succeeded.append(run_id)
    )
    rt, client = await serve([flow])
    body = b'{"b": 2}'
    headers = {**signed(body), "X-Delivery": "d-1"}
    first = await client.post("/hooks/signed", content=body, headers=headers)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    retry = await client.post("/hooks/signed", content=body, headers=headers)
    assert (retry.status_code, retry.json()) == (200, {"run_id": run_id, "duplicate": True})
    # the key it names came from an unsigned header: answered plainly, on_success not called
    assert succeeded == [run_id]
    # The key header is not signed: a replay that changes it names no run, and starts none.
    other_key = await client.post(
        "/hooks/signed", content=body, headers={**headers, "X-Delivery": "d-2"}
    )
    assert (other_key.status_code, "replay" in other_key.json()["detail"]) == (401, True)
    assert [run.id for run in await rt.list_runs()] == [run_id]


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "idempotency-key"])
async def test_identical_signed_requests_at_once_start_one_run(serve: Serve, keyed: bool) -> None:
    rt, client = await serve([signed_flow(idempotency_key="X-Delivery" if keyed else None)])
    body = b'{"b": 2}'
    headers = {**signed(body), "X-Delivery": "d-1"}
    answers = await asyncio.gather(
        *(client.post("/hooks/signed", content=body, headers=headers) for _ in range(20))
    )
    statuses = Counter(answer.status_code for answer in answers)
    # the others: replays (401), or with its key duplicates of the run (200), as its retry
    # sent later is; they were replays when they came before the run had started (the
    # hostile client's F3: a 401 that told them to send the key they sent)
    assert statuses == ({202: 1, 200: 19} if keyed else {202: 1, 401: 19}), statuses
    assert len(await rt.list_runs()) == 1


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "key-from-a-callback"])
async def test_a_signature_claimed_by_a_request_whose_run_never_started_starts_it_once(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, keyed: bool
) -> None:
    # what a kill -9 between the claim's commit and the start's leaves: a spent signature and no
    # run; here the claim is kept by a start that failed with its give-back lost. Without a key
    # the run is named by the signature: the same request sent again starts it, once. With a
    # key (which a replay may change: a callback may read a header) it stays a replay.
    async def lost(self: Any, signature: Any) -> None:
        return None

    flow = signed_flow(
        condition=raises_once(RuntimeError("killed")),
        idempotency_key=(lambda request: request.headers.get("x-id")) if keyed else None,
    )
    rt, client = await serve([flow])
    monkeypatch.setattr(Signatures, "release", lost)
    body = b'{"n": 7}'
    headers = {**signed(body), "X-Id": "a"}
    assert (await client.post("/hooks/signed", content=body, headers=headers)).status_code == 500

    resent = await client.post("/hooks/signed", content=body, headers=headers)  # the client's retry
    if keyed:
        assert (resent.status_code, "replay" in resent.json()["detail"]) == (401, True)
        assert await rt.list_runs() == []
        return
    assert resent.status_code == 202, resent.text
    assert (await rt.wait(resent.json()["run_id"], timeout=5)).output == {"n": 7}
    for again_headers in (headers, {**headers, "X-Id": "b"}):
        again = await client.post("/hooks/signed", content=body, headers=again_headers)
        assert (again.status_code, "replay" in again.json()["detail"]) == (401, True)
    assert len(await rt.list_runs()) == 1


async def test_a_credential_or_a_signature_sent_twice_is_refused_whatever_the_order(
    serve: Serve,
) -> None:
    # the first Authorization header won, so the caller depended on header order (a proxy that
    # appends its own credential): the third hostile client's L1
    rt, client = await serve([hire(), signed_flow()], tokens=TOKENS)
    for pair in (("t-ada", "t-bob"), ("t-bob", "t-ada"), ("forged", "t-ada")):
        headers = [("Authorization", f"Bearer {token}") for token in pair]
        for answer in (
            await client.get("/runs", headers=headers),
            await client.post("/workflows", json={"workflow": "hire"}, headers=headers),
        ):
            assert answer.status_code == 400, (pair, answer.text)
            assert answer.json()["type"] == "urn:cronflow:problem:ambiguous-headers"
            assert "more than one Authorization header" in answer.json()["detail"]
    body = b'{"n": 7}'
    good = signed(body)
    twice = [
        ("Content-Type", "application/json"),
        ("X-Signature-256", good["X-Signature-256"]),
        ("X-Signature-256", "t=1,v2=00"),
    ]
    answer = await client.post("/hooks/signed", content=body, headers=twice)
    assert (answer.status_code, answer.json()["type"]) == (
        400,
        "urn:cronflow:problem:ambiguous-headers",
    )
    assert await rt.list_runs() == []
    accepted = await client.post("/hooks/signed", content=body, headers=good)
    assert accepted.status_code == 202, accepted.text  # its signature was not spent


async def test_a_signed_request_whose_run_was_pruned_is_still_a_replay(serve: Serve) -> None:
    # a claim with no run behind it passed for a crash's once retention or `db prune` took the
    # run, within the signature's tolerance: the captured request ran its steps again (the
    # third hostile client's M1)
    rt, client = await serve([signed_flow()])
    body = b'{"n": 7}'
    headers = signed(body)
    first = await client.post("/hooks/signed", content=body, headers=headers)
    assert first.status_code == 202, first.text
    await rt.wait(first.json()["run_id"], timeout=5)
    assert await rt.prune(older_than=0) == 1
    replay = await client.post("/hooks/signed", content=body, headers=headers)
    assert (replay.status_code, "replay" in replay.json()["detail"]) == (401, True)
    assert await rt.list_runs() == []


async def test_a_signed_request_its_condition_refused_is_spent_though_it_started_no_run(
    serve: Serve,
) -> None:
    answers = [False]

    def condition(request: cf.WebhookRequest) -> bool:
        return answers.pop() if answers else True  # says no, then yes (a flag, the hour)

    rt, client = await serve([signed_flow(condition=condition)])
    body = b'{"n": 7}'
    headers = signed(body)
    first = await client.post("/hooks/signed", content=body, headers=headers)
    assert first.json() == {"run_id": None, "condition_met": False}
    replay = await client.post("/hooks/signed", content=body, headers=headers)
    assert (replay.status_code, "replay" in replay.json()["detail"]) == (401, True)
    assert await rt.list_runs() == []


@pytest.mark.parametrize("says", [False, True], ids=["condition-no", "condition-yes"])
async def test_a_replay_while_the_original_is_in_flight_is_a_replay(
    serve: Serve, says: bool
) -> None:
    # the original's claim has no run and no answer behind it yet: a twin's in flight, not a
    # crash's; the replay must neither start a run (its condition may say yes by then) nor
    # take the original's answer
    asked: list[int] = []
    in_condition = asyncio.Event()

    async def condition(request: cf.WebhookRequest) -> bool:
        asked.append(1)
        if len(asked) == 1:  # the original: a slow lookup
            in_condition.set()
            await asyncio.sleep(0.3)
            return says
        return True

    rt, client = await serve([signed_flow(condition=condition)])
    body = b'{"n": 7}'
    headers = signed(body)
    original = asyncio.create_task(client.post("/hooks/signed", content=body, headers=headers))
    await in_condition.wait()  # the original is past its claim, in its condition
    replay = await client.post("/hooks/signed", content=body, headers=headers)
    assert not original.done()  # without a key nothing the original does is its answer
    first = await original
    assert (replay.status_code, "replay" in replay.json()["detail"]) == (401, True)
    assert first.status_code == (202 if says else 200)
    assert len(await rt.list_runs()) == (1 if says else 0)


async def test_a_replay_whose_twin_ends_while_it_checks_the_claim_is_a_replay(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hostile client's race: the replay reads "not answered", then the original (its
    # condition said no) marks its answer and ends before the replay asks for a twin in flight;
    # the replay must not take the claim for a crash's and run the condition again (yes by then)
    answers = [False]
    in_condition, original_done = asyncio.Event(), asyncio.Event()

    async def condition(request: cf.WebhookRequest) -> bool:
        if answers:
            in_condition.set()
            await asyncio.sleep(0.05)
            return answers.pop()
        return True

    read = Signatures.answered

    async def answered_then_the_original_ends(self: Signatures, signature: Any) -> bool:
        found = await read(self, signature)
        await original_done.wait()  # the original ends in the middle of the replay's checks
        return found

    rt, client = await serve([signed_flow(condition=condition)])
    monkeypatch.setattr(Signatures, "answered", answered_then_the_original_ends)
    body = b'{"n": 7}'
    headers = signed(body)

    async def send_original() -> Any:
        try:
            return await client.post("/hooks/signed", content=body, headers=headers)
        finally:
            original_done.set()

    original = asyncio.create_task(send_original())
    await in_condition.wait()
    replay = await client.post("/hooks/signed", content=body, headers=headers)
    assert (await original).json() == {"run_id": None, "condition_met": False}
    assert (replay.status_code, "replay" in replay.json()["detail"]) == (401, True)
    assert await rt.list_runs() == []


@pytest.mark.parametrize("cut", ["in its condition", "after its start"])
async def test_a_signed_request_the_drain_cuts_is_given_back_only_before_its_start(
    tmp_path: Any, cut: str
) -> None:
    # what the drain does to a request it gives up on: its task is cancelled. Before the start
    # was asked for, the same request may be sent again; after, a resend must not start a
    # second run (no key was sent, so no run id would name it)
    hang = asyncio.Event()
    first = [True]

    async def slow(seen: asyncio.Event) -> None:
        if first:
            first.pop()
            seen.set()
            await asyncio.Event().wait()  # a lookup that never ends

    async def condition(request: cf.WebhookRequest) -> bool:
        if cut == "in its condition":
            await slow(hang)
        return True

    async def on_success(request: cf.WebhookRequest, run_id: str) -> None:
        if cut == "after its start":
            await slow(hang)

    flow = signed_flow(
        idempotency_key="Idempotency-Key", condition=condition, on_success=on_success
    )
    async with cf.Runtime(db=tmp_path / "cut.db", workflows=[flow]) as rt:
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://cut") as client:
            body = b'{"n": 1}'
            headers = signed(body)  # no Idempotency-Key: it is optional
            sending = asyncio.create_task(
                client.post("/hooks/signed", content=body, headers=headers)
            )
            await hang.wait()
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            again = await client.post("/hooks/signed", content=body, headers=headers)
            await rt.wait_idle()
            runs = await rt.list_runs()
    if cut == "in its condition":
        assert again.status_code == 202, again.text  # sent again as it was: taken
    else:
        assert (again.status_code, "replay" in again.json()["detail"]) == (401, True)
    assert len(runs) == 1


async def test_a_signature_is_good_for_its_webhook_path_and_query_only(serve: Serve) -> None:
    """A signature of the body alone could be sent to every webhook sharing the secret, with
    other path parameters or another query, and a signed GET authenticated only its time (the
    hostile client's finding 1). The signature covers the method, path and query now."""
    echo = lambda ctx: {"payload": ctx.payload, **ctx.trigger.params, **ctx.trigger.query}  # noqa: E731
    flow = (
        cf.define("signed")
        .step("s", echo)
        .on_webhook("/hooks/a", hmac_secret=SECRET)
        .on_webhook("/hooks/b", hmac_secret=SECRET)
        .on_webhook("/hooks/acct/{acct}", hmac_secret=SECRET)
        .on_webhook("/hooks/pull", method="GET", hmac_secret=SECRET)
    )
    rt, client = await serve([flow])
    body = b'{"n": 1}'
    for_a = signed(body, path="/hooks/a")
    moved = await client.post("/hooks/b", content=body, headers=for_a)
    assert moved.status_code == 401
    assert "does not match the request (POST /hooks/b)" in moved.json()["detail"]
    for_alice = signed(body, path="/hooks/acct/alice")
    for path in ("/hooks/acct/mallory", "/hooks/acct/alice?admin=true"):
        refused = await client.post(path, content=body, headers=for_alice)
        assert refused.status_code == 401, path
    accepted = await client.post("/hooks/acct/alice", content=body, headers=for_alice)
    assert accepted.status_code == 202
    output = (await rt.wait(accepted.json()["run_id"], timeout=5)).output
    assert output == {"payload": {"n": 1}, "acct": "alice"}
    # a GET: its query is what is signed; two queries signed in one second are two requests
    moment = int(time.time())
    small = sign_request(SECRET, "GET", "/hooks/pull?amount=10&to=alice", at=moment)
    forged = await client.get(
        "/hooks/pull?amount=999999&to=mallory", headers={"X-Signature-256": small}
    )
    assert forged.status_code == 401
    started = []
    for query in ("amount=10&to=alice", "amount=20&to=bob"):
        header = sign_request(SECRET, "GET", f"/hooks/pull?{query}", at=moment)
        answer = await client.get(f"/hooks/pull?{query}", headers={"X-Signature-256": header})
        assert answer.status_code == 202, answer.text
        started.append(answer.json()["run_id"])
    outputs = [(await rt.wait(run_id, timeout=5)).output for run_id in started]
    assert [(o["amount"], o["to"]) for o in outputs] == [("10", "alice"), ("20", "bob")]
    assert len(await rt.store.list_snapshots()) == 3  # nothing of the refused ones started


async def test_a_webhook_may_take_the_older_body_only_signature(serve: Serve) -> None:
    """``signature_scheme="v1"`` takes a signature of the body alone (senders built for it), as
    before v2: its replays are refused at its webhook, and its runs are named as they were, so
    a retry across the upgrade is no second run (the review's M1). ``("v1", "v2")`` takes
    either, while senders move; a v2 webhook refuses a v1 signature and says what it takes."""
    flow = (
        cf.define("signed")
        .step("s", lambda ctx: ctx.payload)
        .on_webhook("/hooks/a", hmac_secret=SECRET, signature_scheme="v1")
        .on_webhook("/hooks/both", hmac_secret=SECRET, signature_scheme=("v1", "v2"))
        .on_webhook("/hooks/c", hmac_secret=SECRET)
    )
    rt, client = await serve([flow])
    body = b'{"n": 2}'
    moment = int(time.time())
    v1 = {
        "Content-Type": "application/json",
        "X-Signature-256": f"t={moment},v1={sign(SECRET, moment, body)}",
    }
    assert (await client.post("/hooks/a", content=body, headers=v1)).status_code == 202
    again = await client.post("/hooks/a", content=body, headers=v1)
    assert (again.status_code, "replay" in again.json()["detail"]) == (401, True)
    # the transition's webhook takes either
    assert (await client.post("/hooks/both", content=body, headers=v1)).status_code == 202
    other = b'{"n": 4}'  # (the same body at the same second is the same request, either way)
    v2 = {**v1, "X-Signature-256": sign_request(SECRET, "POST", "/hooks/both", other)}
    assert (await client.post("/hooks/both", content=other, headers=v2)).status_code == 202
    older = await client.post("/hooks/c", content=body, headers=v1)
    assert older.status_code == 401
    assert "takes signatures of scheme v2" in older.json()["detail"]
    assert len(await rt.store.list_snapshots()) == 3


async def test_a_v1_signature_is_counted_under_the_key_it_had_before_v2() -> None:
    """The replay key (and the run a keyless signed request is named by) of a v1 signature is
    what it was before the v2 scheme: ``<webhook>|<sha256 of the signature>``."""
    import hashlib

    class Clock:
        def now(self) -> float:
            return 1_000.0

    body = b'{"n": 1}'
    expected = sign(SECRET, 1000, body)
    signature = await Signatures(store=None, clock=Clock()).verify(  # type: ignore[arg-type]
        hook="flow:/hooks/a",
        secret=SECRET,
        header="x-signature-256",
        tolerance=300,
        value=f"t=1000,v1={expected}",
        body=body,
        request="POST /hooks/a",
        schemes=("v1",),
    )
    assert signature.key == f"flow:/hooks/a|{hashlib.sha256(expected.encode()).hexdigest()}"


def test_a_signature_scheme_that_signs_nothing_is_refused_at_definition() -> None:
    with pytest.raises(InvalidWorkflowError) as refused:
        cf.define("bad").step("s", lambda ctx: 1).on_webhook(
            "/pull", method="get", hmac_secret=SECRET, signature_scheme="v1"
        ).on_webhook("/other", hmac_secret=SECRET, signature_scheme="v3").on_webhook(
            "/both", method="GET", hmac_secret=SECRET, signature_scheme=("v2", "v1")
        ).compile()
    said = str(refused.value)
    assert "a GET request has no body, so a v1 signature" in said
    assert "signature_scheme must be 'v2'" in said
    assert "got 'v3'" in said


async def test_a_resume_records_the_principal_that_asked(serve: Serve) -> None:
    """Any token may resume a pause, and the approval said whatever the body claimed: bob
    resumed with approvedBy "alice" and nothing recorded bob (the hostile client's finding 3).
    The token's principal is recorded as ``resumed_by``, and is the approver when the body
    names none."""
    approval = cf.define("approval").human_in_the_loop("ok", description="approve")
    rt, client = await serve([approval], tokens=TOKENS)
    outputs = []
    bodies = (
        {"approved": True, "approvedBy": "ada"},
        {"approved": False, "approvedBy": ""},
        {"approved": False, "approved_by": " \t "},  # blank names nobody either (h22 L5)
    )
    for body in bodies:
        run_id = await rt.trigger("approval")
        await rt.wait_idle()
        [pause] = await rt.list_paused()
        resumed = await client.post(f"/resume/{pause.token}", json=body, headers=bearer("t-bob"))
        assert resumed.status_code == 200, resumed.text
        outputs.append((await rt.wait(run_id, timeout=5)).output)
    claimed, *own = outputs
    assert (claimed["approved_by"], claimed["resumed_by"]) == ("ada", "bob")
    for output in own:
        assert (output["approved"], output["approved_by"], output["resumed_by"]) == (
            False,
            "bob",
            "bob",
        )
    # a resume in the process (no caller) records no resumed_by, and the approver default
    run_id = await rt.trigger("approval")
    await rt.wait_idle()
    [pause] = await rt.list_paused()
    await rt.resume(pause.token, {"approved": True})
    output = (await rt.wait(run_id, timeout=5)).output
    assert ("resumed_by" in output, output["approved_by"]) == (False, "human")


async def test_a_request_signed_with_both_schemes_starts_one_run(serve: Serve) -> None:
    """On a webhook taking v1 and v2, a header with both values could be sent again with one
    of them only, a second run (the second hostile client's 1): one key per request now."""
    flow = (
        cf.define("signed")
        .step("s", lambda ctx: ctx.payload)
        .on_webhook("/hooks/both", hmac_secret=SECRET, signature_scheme=("v1", "v2"))
    )
    rt, client = await serve([flow])
    body, moment = b'{"n": 3}', int(time.time())
    v1 = f"v1={sign(SECRET, moment, body)}"
    v2 = sign_request(SECRET, "POST", "/hooks/both", body, at=moment).split(",", 1)[1]
    answers = []
    for value in (f"t={moment},{v1},{v2}", f"t={moment},{v1}", f"t={moment},{v2}"):
        headers = {"Content-Type": "application/json", "X-Signature-256": value}
        answers.append(await client.post("/hooks/both", content=body, headers=headers))
    assert [a.status_code for a in answers] == [202, 401, 401]
    assert len(await rt.store.list_snapshots()) == 1


async def test_a_path_and_a_body_cannot_trade_their_dots(serve: Serve) -> None:
    """v2 joined its parts with dots: a path ending '.1' with a body '5' signed what the path
    without it and the body '1.5' did (the second hostile client's 7). Line breaks now."""
    flow = (
        cf.define("signed")
        .step("s", lambda ctx: ctx.payload)
        .on_webhook("/hooks/acct/{acct}", hmac_secret=SECRET)
    )
    _rt, client = await serve([flow])
    moment = int(time.time())
    header = sign_request(SECRET, "POST", "/hooks/acct/a.1", b"5", at=moment)
    moved = {"Content-Type": "application/json", "X-Signature-256": header}
    assert (await client.post("/hooks/acct/a", content=b"1.5", headers=moved)).status_code == 401
    assert (await client.post("/hooks/acct/a.1", content=b"5", headers=moved)).status_code == 202


async def test_a_composite_tasks_children_are_found_over_http(serve: Serve) -> None:
    """A composite task's child workflow, whose work items are the only way on, could be
    found only through the trace (newcomer h24 F1): ``GET .../tasks/{task}/children``."""
    sign = net.work_item("sign").actions(start=net.action(), complete=net.action())
    inner = (
        net.workflow("signoff")
        .start_condition("start")
        .end_condition("end")
        .task("sign", net.task(sign))
        .connect_condition("start", "sign")
        .connect_task("sign", "end")
        .actions(
            initialize=net.action(policy=net.require_scope("review:write")), cancel=net.action()
        )
    )
    outer = (
        net.workflow("claim")
        .start_condition("start")
        .end_condition("end")
        .composite_task("signoff", net.composite_task(inner))
        .connect_condition("start", "signoff")
        .connect_task("signoff", "end")
        .actions(initialize=net.action())
        .build()
    )
    rt, client = await serve([outer], tokens=TOKENS)
    ada = bearer("t-ada")
    root = (await client.post("/workflows", json={"workflow": "claim"}, headers=ada)).json()
    root_id = root["workflow_id"]
    await rt.wait_idle()
    listed = await client.get(f"/workflows/{root_id}/tasks/signoff/children", headers=ada)
    assert listed.status_code == 200
    [child] = listed.json()["workflows"]
    assert (child["name"], child["parent_id"], child["parent_task"]) == (
        "signoff",
        root_id,
        "signoff",
    )
    # its only child canceled before it started, the task waits with none: another is made
    # through the child's initialize action, whose policy decides
    assert (await client.post(f"/workflows/{child['id']}/cancel", headers=ada)).status_code == 200
    url = f"/workflows/{root_id}/tasks/signoff/children"
    denied = await client.post(url, json={"n": 2}, headers=bearer("t-bob"))
    assert (denied.status_code, denied.json()["type"].rsplit(":", 1)[-1]) == (403, "action-denied")
    made = await client.post(url, json={"n": 2}, headers=ada)
    assert made.status_code == 201, made.text
    child = (await client.get(made.headers["location"], headers=ada)).json()
    assert (child["payload"], child["state"]) == ({"n": 2}, "initialized")
    wrong = await client.post(f"/workflows/{root_id}/tasks/signoff/work-items", headers=ada)
    assert wrong.status_code == 404
    assert "its children are workflows" in wrong.json()["detail"]
    items = await client.get(f"/workflows/{child['id']}/tasks/sign/work-items", headers=ada)
    [item] = items.json()["work_items"]
    for action in ("start", "complete"):
        acted = await client.post(f"/work-items/{item['id']}/{action}", headers=ada)
        assert acted.status_code == 200, acted.text
    await rt.wait_idle()
    assert (await client.get(f"/workflows/{root_id}", headers=ada)).json()["state"] == "completed"
    for path, slug in (
        (f"/workflows/{root_id}/tasks/nope/children", "not-found"),
        ("/workflows/nope/tasks/signoff/children", "not-found"),
    ):
        missing = await client.get(path, headers=ada)
        assert (missing.status_code, missing.json()["type"].rsplit(":", 1)[-1]) == (404, slug)
    assert (await client.get(f"/workflows/{root_id}/tasks/signoff/children")).status_code == 401
    document = (await client.get("/openapi.json")).json()
    operations = document["paths"]["/workflows/{workflow_id}/tasks/{task}/children"]
    assert operations["get"]["operationId"] == "listChildWorkflows"
    assert operations["post"]["operationId"] == "initializeChildWorkflow"


async def test_a_run_of_a_flow_no_longer_registered_is_canceled_by_a_token(
    serve: Serve, tmp_path: Path
) -> None:
    """A flow dropped from the app left its waiting runs; their cancel over HTTP, by any token,
    was a 409 "cannot cancel ... as an external caller", the flow taken for a net whose cancel
    action refused everyone, and an ended run got the same words (hostile h28 M2). A run started
    with a flow's trigger is canceled as an operator cancels it; an ended one says it ended."""
    dropped = cf.define("dropped").human_in_the_loop("ok", description="ok?")
    forged = {"payload": 1, "headers": {}, "kind": "manual"}  # a flow's trigger, in looks
    async with cf.Runtime(db=tmp_path / "http0.db", workflows=[dropped, hire()]) as rt:
        waiting = await rt.trigger("dropped")
        canceled = await rt.trigger("dropped")
        await rt.cancel(canceled)
        net_run = await rt.start_workflow("hire", forged)
        # one started before instances were marked (no mark: as 8c37a6f wrote them)
        start = StartWorkflow(payload=forged, trigger="manual")
        old_net = await rt.instances.start(rt.registry.get("hire", "v1"), start, None)
        # a flow's run started through start_workflow is a flow's (the second verifier's h28)
        flow_run = await rt.start_workflow("dropped")
        await rt.wait_idle()
    other = cf.define("other").step("s", lambda ctx: 1)
    rt, client = await serve([other], tokens=TOKENS)
    answer = await client.post(f"/runs/{waiting}/cancel", headers=bearer("t-bob"))
    assert answer.status_code == 200, answer.text
    assert (await rt.inspect(waiting)).status == "canceled"
    again = await client.post(f"/runs/{canceled}/cancel", headers=bearer("t-bob"))
    assert again.status_code == 409
    assert "as an external caller" not in again.json()["detail"]
    # a net's instance, its workflow dropped too, whatever its payload looks like (the
    # reviewer's h28 H1): its cancel policy cannot be asked, so no caller passes it
    for instance in (net_run, old_net):
        refused = await client.post(f"/runs/{instance}/cancel", headers=bearer("t-bob"))
        assert refused.status_code == 409, instance
        assert (await rt.inspect(instance)).status != "canceled"
    answer = await client.post(f"/runs/{flow_run}/cancel", headers=bearer("t-bob"))
    assert answer.status_code == 200


async def test_a_reset_work_item_shows_no_token_of_its_ended_pause(tmp_path: Path) -> None:
    """A net work item reset out of its pause kept showing that pause's token, which answers
    "no run is paused" (hostile h28 L1): a front end handed a person a dead token."""
    async with cf.Runtime(db=tmp_path / "reset.db", workflows=[hire_in_person()]) as rt:
        workflow_id = await rt.start_workflow("hire-in-person")
        [item] = await rt.work_items(workflow_id, "review")
        await rt.start_work_item(item.id)
        token = (await rt.work_item(item.id)).token
        assert token is not None
        await rt.reset_work_item(item.id)
        assert (await rt.work_item(item.id)).token is None
        with pytest.raises(cf.errors.ResumeError, match="ended"):
            await rt.resume(token, {"approved": True})
        await rt.start_work_item(item.id)
        assert (await rt.work_item(item.id)).token not in (None, token)


def signed_off_by(child: str, policy: Any) -> net.NetSpec:
    """A net whose composite task's child (named ``child``) waits for a person's sign-off,
    its ``complete`` guarded by ``policy``."""
    review = net.work_item("review", wait=net.WaitSpec(kind="pause")).actions(
        start=net.action(), complete=net.action(policy=policy)
    )
    inner = (
        net.workflow(child).start_condition("s").end_condition("e").task("review", net.task(review))
    )
    inner.connect_condition("s", "review").connect_task("review", "e")
    outer = net.workflow(f"hire-{child}").start_condition("start").end_condition("end")
    outer.composite_task("signoff", net.composite_task(inner.build()))
    return outer.connect_condition("start", "signoff").connect_task("signoff", "end").build()


async def test_a_dropped_flows_run_held_inside_a_first_fan_out_is_canceled_by_a_token(
    tmp_path: Path,
) -> None:
    """A run whose only work items are a first ``for_each``'s or ``parallel``'s, its flow then
    dropped, was refused to a token's cancel as a net's (the final checker's h28 F2: those
    kinds were not among a flow's)."""
    from tests.runtime.killing import killed_after

    db = tmp_path / "fanning.db"
    [said] = killed_after("tests.http.fanning_worker", str(db), lines=1)
    other = cf.define("other").step("s", lambda ctx: 1)
    async with cf.Runtime(db=db, workflows=[other], wait_for_lease=True) as rt:
        for run_id in said.split():
            await rt.cancel(run_id, principal=BOB)  # as POST /runs/{id}/cancel asks it
            assert (await rt.inspect(run_id)).status == "canceled"


async def test_a_net_pause_is_resumed_past_no_policy_whatever_its_names_and_payload(
    tmp_path: Path,
) -> None:
    """Two ways past a net pause's ``complete`` policy over ``/resume`` (the reviewer's h28 H2,
    M1): a composite child bearing a registered flow's name was taken for a flow's pause, and
    the policy was asked about the resume's record instead of the caller's payload. The root
    decides, and the item completes with the payload as given, its policy asked about it."""

    def small(ctx: Any, payload: Any) -> bool:
        return isinstance(payload, dict) and payload.get("amount", 0) <= 100

    flow = cf.define("approve").human_in_the_loop("ok", description="?")
    nets = [
        signed_off_by("approve", net.require_scope("review:write")),
        signed_off_by("limit", small),
    ]
    async with cf.Runtime(db=tmp_path / "nets.db", workflows=[*nets, flow]) as rt:

        async def paused(root: str) -> tuple[str, str]:
            workflow_id = await rt.start_workflow(root)
            [child] = await rt.child_workflows(workflow_id, "signoff")
            [item] = await rt.work_items(child.id, "review")
            await rt.start_work_item(item.id)
            return item.id, str((await rt.work_item(item.id)).token)

        item, token = await paused("hire-approve")
        with pytest.raises(cf.errors.ActionDeniedError):
            await rt.resume(token, {"approved": True}, principal=BOB)
        item, token = await paused("hire-limit")
        with pytest.raises(cf.errors.ActionDeniedError):
            await rt.resume(token, {"amount": 5000}, principal=BOB)
        assert (await rt.work_item(item)).state == "started"
        await rt.resume(token, {"amount": 50}, principal=BOB)
        done = await rt.work_item(item)
        assert (done.state, done.output) == ("completed", {"amount": 50})


async def test_a_nets_event_wait_sees_who_published_and_its_trace_names_them(
    serve: Serve,
) -> None:
    """Any writing token's publish completed a net's event-wait item, past the net's policies,
    and its filter was not told who published, nor its trace (hostile h31 M1): the filter and
    the check see the publisher as ``ctx.principal`` (None for the process's own publish), and
    a ``WorkItem.event`` span names the event and the publisher."""
    seen: list[tuple[str | None, bool]] = []

    def answered_by_hr(ctx: Any, payload: Any) -> bool:
        seen.append((ctx.principal.id if ctx.principal else None, ctx.is_internal))
        return ctx.principal is None or "offers:answer" in ctx.principal.scopes

    waits = net.WaitSpec(kind="event", event="offer.answered", accept=answered_by_hr)
    answer = net.work_item("answer", wait=waits).activities(
        on_initialized=lambda ctx: ctx.work_item.start()
    )
    offer = (
        net.workflow("offer")
        .start_condition("start")
        .end_condition("end")
        .task("answer", net.task(answer))
        .connect_condition("start", "answer")
        .connect_task("answer", "end")
        .actions(initialize=net.action())
        .build()
    )
    hr = cf.Principal(id="hr", scopes=frozenset({"offers:answer"}))
    rt, client = await serve([offer], tokens={"t-hr": hr, "t-bob": BOB})
    first, second = await rt.start_workflow("offer"), await rt.start_workflow("offer")
    await rt.wait_idle()
    forged = await client.post("/events/offer.answered", json={"ok": 1}, headers=bearer("t-bob"))
    assert (forged.status_code, forged.json()["delivered"]) == (202, [])
    assert str(await rt.workflow_state(first)) == "started"  # bob's publish took no item
    answered = await client.post("/events/offer.answered", json={"ok": 2}, headers=bearer("t-hr"))
    assert sorted(answered.json()["delivered"]) == sorted([first, second])
    assert str(await rt.workflow_state(first)) == "completed"
    assert {("bob", False), ("hr", False)} <= set(seen)
    heard = [s for s in await rt.spans(first) if s.operation == "WorkItem.event"]
    assert [s.attributes for s in heard] == [{"event": "offer.answered", "principal": "hr"}]
    # the span moves nothing: the run rebuilt past it is the completed run (conform h38 F4)
    rebuilt = await rt.state_at(first, time.time() + 1)
    assert rebuilt.workflows[first].state == "completed"
    third = await rt.start_workflow("offer")
    await rt.wait_idle()
    assert (await rt.publish_event("offer.answered", {"ok": 3})).delivered == [third]
    assert seen[-1] == (None, True)  # the process's own publish


async def test_a_token_sent_to_a_server_without_tokens_is_told_to_send_none(
    serve: Serve,
) -> None:
    """A stale CRONFLOW_TOKEN made every command fail with "check --token" against a server
    that takes none, saying nothing of that (newcomer h44 F2)."""
    from tests.http.test_cli_commands import cli

    _rt, client = await serve([cf.define("quick").step("s", lambda ctx: 1)])
    refused = await client.get("/runs", headers={"Authorization": "Bearer stale"})
    assert (refused.status_code, refused.json()["type"]) == (
        401,
        "urn:cronflow:problem:unknown-token",
    )
    said = "this server takes no tokens (none is configured): send the request without one"
    assert refused.json()["detail"] == said
    assert refused.headers["www-authenticate"] == "Bearer"  # (a signature's took its place)
    code, _out, err = await cli("runs", "--url", str(client.base_url), env={"CRONFLOW_TOKEN": "x"})
    assert code == 2
    assert f"{said}: drop --token (or CRONFLOW_TOKEN, or --config's token)" in err

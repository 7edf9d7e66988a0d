"""``GET /flows``, ``GET /flows/{id}`` and ``POST /runs/{id}/replay`` against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import cronflow_actors as cf
from cronflow_actors.net.fingerprint import fingerprint as net_fingerprint
from tests.http.conftest import Serve


def flows() -> list[cf.Flow]:
    return [
        cf.define(
            "orders",
            name="Order processing",
            description="From payment to shipping",
            tags=["billing"],
            rate_limit={"count": 100, "per": "1m"},
            secrets={"api_key": "not for the API"},
        )
        .on_webhook("/webhooks/orders")
        .on_event("order.created")
        .step("take", lambda ctx: {"took": ctx.payload, "kind": ctx.trigger.kind}),
        cf.define("plain").step("a", lambda ctx: None),
    ]


async def test_the_registered_flows_are_listed_with_what_they_say_about_themselves(
    serve: Serve,
) -> None:
    _, client = await serve(flows())
    listed = await client.get("/flows")
    assert listed.status_code == 200
    body = listed.json()
    assert [flow["id"] for flow in body["flows"]] == ["orders", "plain"]
    orders = body["flows"][0]
    fingerprint = net_fingerprint(flows()[0].compile().spec)
    assert orders == {
        "id": "orders",
        "name": "Order processing",
        "description": "From payment to shipping",
        "tags": ["billing"],
        "version": "v1",
        "triggers": [
            {"kind": "webhook", "method": "POST", "path": "/webhooks/orders"},
            {"kind": "event", "event": "order.created"},
        ],
        "concurrency": None,
        "rate_limit": {"count": 100, "per_seconds": 60.0},
        "queue": None,
        "secrets": ["api_key"],
        "versions": [
            {"version": "v1", "deprecated": False, "current": True, "fingerprint": fingerprint}
        ],
        "awaits": [],
    }
    assert "not for the API" not in listed.text
    one = await client.get("/flows/orders")
    assert (one.status_code, one.json()) == (200, orders)
    missing = await client.get("/flows/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "registered flows: ['orders', 'plain']" in missing.json()["detail"]


async def test_a_run_is_replayed_over_http(serve: Serve) -> None:
    rt, client = await serve(flows())
    started = await client.post("/webhooks/orders", json={"order": 7})
    original = started.json()["run_id"]
    await rt.wait(original, timeout=5)

    replayed = await client.post(f"/runs/{original}/replay")
    assert replayed.status_code == 202
    again = replayed.json()["run_id"]
    assert replayed.headers["location"] == f"/runs/{again}"
    assert (await rt.wait(again, timeout=5)).output == {"took": {"order": 7}, "kind": "webhook"}
    run: dict[str, Any] = (await client.get(f"/runs/{again}")).json()
    assert (run["replay_of"], run["workflow_name"]) == (original, "Order processing")

    other = await client.post(f"/runs/{original}/replay", json={"payload": {"order": 8}})
    assert other.status_code == 202
    output = (await rt.wait(other.json()["run_id"], timeout=5)).output
    assert output == {"took": {"order": 8}, "kind": "webhook"}

    # an id of the client's own makes a replay safe to repeat, as for POST /runs
    once = await client.post(f"/runs/{original}/replay", json={"instance_id": "redo-7"})
    assert (once.status_code, once.json()["run_id"]) == (202, "redo-7")
    assert (await rt.wait("redo-7", timeout=5)).output == {"took": {"order": 7}, "kind": "webhook"}
    twice = await client.post(f"/runs/{original}/replay", json={"instance_id": "redo-7"})
    assert (twice.status_code, twice.json()["type"]) == (
        409,
        "urn:cronflow:problem:instance-exists",
    )

    unknown = await client.post("/runs/nope/replay")
    assert unknown.status_code == 404
    bad = await client.post(f"/runs/{original}/replay", json={"payload": 1, "mock_steps": {}})
    assert bad.status_code == 400
    assert bad.json()["type"] == "urn:cronflow:problem:invalid-body"
    for body in ({"instance_id": "tick:00"}, {"instance_id": "x" * 101}):
        refused = await client.post(f"/runs/{original}/replay", json=body)
        assert (refused.status_code, refused.json()["type"]) == (
            400,
            "urn:cronflow:problem:invalid-body",
        ), body
    # a start with no body says so, not that it got null (console h40 F6)
    empty = await client.post("/runs", headers={"content-type": "application/json"})
    assert (empty.status_code, empty.json()["type"]) == (400, "urn:cronflow:problem:invalid-body")
    assert empty.json()["detail"].endswith(": the body is empty (or null)")
    assert len(await rt.list_runs()) == 4  # the refusals started nothing


async def test_a_replays_new_payload_passes_its_webhooks_checks(serve: Serve) -> None:
    """A replay kept the delivery's headers (a tenant a signed request named) and took any
    payload, past the webhook's schema and validate (hostile h23 M2): the payload is checked
    as its webhook checks one now, and converted as it converts one."""
    import msgspec

    class Charge(msgspec.Struct, forbid_unknown_fields=True):
        amount: int

    def small(request: Any) -> Any:
        return True if request.payload["amount"] < 100 else "amount over 100"

    flow = (
        cf.define("charge")
        .on_webhook("/hooks/charge/{tenant}", schema=Charge, validate=small, keep_headers=["x-id"])
        .step(
            "read",
            lambda ctx: (ctx.payload, ctx.trigger.params, ctx.trigger.kind, ctx.trigger.replay_of),
        )
    )
    rt, client = await serve([flow])
    sent = await client.post(
        "/hooks/charge/acme?src=wire", json={"amount": 5}, headers={"x-id": "7", "x-other": "no"}
    )
    run_id = sent.json()["run_id"]
    await rt.wait(run_id)
    # what started it, beside its payload: only its steps saw it (newcomer h33 F9)
    shown = (await client.get(f"/runs/{run_id}")).json()
    assert shown["trigger"] == {
        "kind": "webhook",
        "webhook": "/hooks/charge/{tenant}",
        "params": {"tenant": "acme"},
        "query": {"src": "wire"},
        "headers": {"x-id": "7"},  # the one it keeps
    }
    assert (await client.get("/runs")).json()["runs"][0]["trigger"] is None  # (listings: not)
    for payload, said in [
        ({"amount": 5, "evil": True}, "Object contains unknown field `evil`"),
        ({"amount": "5"}, "Expected `int`, got `str`"),
        ({"amount": 10**9}, "its validate refused it (its kept headers only): amount over 100"),
    ]:
        refused = await client.post(f"/runs/{run_id}/replay", json={"payload": payload})
        assert refused.status_code == 400, refused.text
        assert said in refused.json()["detail"]
        assert "webhook '/hooks/charge/{tenant}' of flow 'charge'" in refused.json()["detail"]
    assert len(await rt.list_runs()) == 1  # nothing started
    again = await client.post(f"/runs/{run_id}/replay", json={"payload": {"amount": 7}})
    assert again.status_code == 202
    done = await rt.wait(again.json()["run_id"])
    # a step can tell a replay from the delivery (hostile h23 M2: it could not)
    assert done.output == [{"amount": 7}, {"tenant": "acme"}, "webhook", run_id]
    assert (await rt.wait(run_id)).output[3] is None  # the delivery itself
    same = await client.post(f"/runs/{run_id}/replay")  # its own payload: checked when sent
    assert (await rt.wait(same.json()["run_id"])).output[:1] == [{"amount": 5}]


async def test_a_failed_run_resumes_over_http_and_from_the_command_line(serve: Serve) -> None:
    from tests.http.test_cli_commands import cli

    charged: list[int] = []
    down = [True, True]

    def ship(ctx: Any) -> str:
        if down:
            down.pop()
            raise ConnectionError("carrier down")
        return "shipped"

    flow = cf.define("order").step("charge", lambda ctx: charged.append(1)).step("ship", ship)
    rt, client = await serve([flow])
    failed = await rt.trigger("order")
    assert (await rt.wait(failed)).status == "failed"
    body = {"resume": True}
    still = (await client.post(f"/runs/{failed}/replay", json=body)).json()["run_id"]
    assert (await rt.wait(still)).status == "failed"  # down again: it failed at ship again
    refused = await client.post(f"/runs/{failed}/replay", json={"resume": "yes"})
    assert refused.status_code == 400
    code, out, err = await cli("replay", still, "--resume", "--url", str(client.base_url))
    assert code == 0, err
    assert 'output: "shipped"' in out
    # a resume is told as one, not as a replay of the trigger (newcomer h32 F9)
    resumed = out.split()[1]
    assert f"started resume {resumed}" in err
    code, out, err = await cli("inspect", resumed, "--url", str(client.base_url))
    assert f"  resume of {still}" in out.splitlines(), out
    assert charged == [1]  # charged once, by the first run
    bad = await client.post(f"/runs/{failed}/replay", json={"resume": True, "payload": 1})
    assert (bad.status_code, bad.json()["type"].rsplit(":", 1)[1]) == (400, "invalid-argument")
    done = await client.post(f"/runs/{still}/replay", json={"resume": True})  # the same again
    # asked again, the resume that started before answers as such (newcomer h27: a job that
    # resumes what failed could not tell it from a new one)
    assert (done.status_code, done.json()["duplicate"]) == (200, True)
    assert done.headers["location"] == f"/runs/{done.json()['run_id']}"
    finished = await client.post(f"/runs/{done.json()['run_id']}/replay", json={"resume": True})
    assert (finished.status_code, finished.json()["type"].rsplit(":", 1)[1]) == (409, "refused")
    # the lists say which failures were resumed (newcomer h35 F5: like those nobody dealt with)
    listed = (await client.get("/runs", params={"status": "failed"})).json()["runs"]
    assert {run["id"]: run["resumed_as"] for run in listed} == {failed: still, still: resumed}
    code, out, err = await cli("runs", "--status", "failed", "--url", str(client.base_url))
    assert code == 0, err
    statuses = {line.split()[0]: line.split()[2:4] for line in out.splitlines()[1:]}
    assert statuses == {failed: ["failed", "(resumed)"], still: ["failed", "(resumed)"]}


async def test_resumes_asked_at_one_moment_answer_one_new_and_the_rest_duplicates(
    serve: Serve,
) -> None:
    """Four resumes of one run asked at once were all answered 202 "new" (the second
    verifier's h27 V3: a read before the start found none before for each): one starts it, the
    others are told it started before, as the store's refusal of a second start says."""

    def broken(ctx: Any) -> None:
        raise ConnectionError("carrier down")

    rt, client = await serve([cf.define("order").step("ship", broken)])
    failed = await rt.trigger("order")
    assert (await rt.wait(failed)).status == "failed"
    answers = await asyncio.gather(
        *(client.post(f"/runs/{failed}/replay", json={"resume": True}) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert [a.json().get("duplicate") for a in answers if a.status_code == 200] == [True] * 3


async def test_a_replay_is_checked_by_the_webhook_its_run_came_through(serve: Serve) -> None:
    """Chosen by its path's parameters, a run of a strict webhook passed with a payload a
    looser one of the same shape took (the review of h23's M2); a validate that raised on the
    rebuilt request escaped as a 500."""
    import msgspec

    class Strict(msgspec.Struct, forbid_unknown_fields=True):
        amount: int

    def needs_a_header(request: Any) -> bool:
        return request.headers["x-signed"] == "yes"  # not kept: a KeyError on a replay

    flow = (
        cf.define("two")
        .on_webhook("/strict/{id}", schema=Strict)
        .on_webhook("/loose/{id}")
        .on_webhook("/headed/{id}", validate=needs_a_header)
        .step("s", lambda ctx: ctx.payload)
    )
    rt, client = await serve([flow])
    strict = (await client.post("/strict/1", json={"amount": 1})).json()["run_id"]
    loose = (await client.post("/loose/1", json={"anything": True})).json()["run_id"]
    headed = await client.post("/headed/1", json={"a": 1}, headers={"x-signed": "yes"})
    await rt.wait_idle()
    refused = await client.post(f"/runs/{strict}/replay", json={"payload": {"other": 1}})
    assert refused.status_code == 400
    assert "webhook '/strict/{id}'" in refused.json()["detail"]
    took = await client.post(f"/runs/{loose}/replay", json={"payload": {"other": 1}})
    assert took.status_code == 202
    raised = await client.post(
        f"/runs/{headed.json()['run_id']}/replay", json={"payload": {"a": 2}}
    )
    assert raised.status_code == 400, raised.text
    assert (
        "its validate refused it (no headers kept): it raised KeyError" in (raised.json()["detail"])
    )


async def test_a_signed_webhooks_run_is_replayed_with_its_signed_payload_only(
    serve: Serve,
) -> None:
    """A signed delivery's run replayed with a new payload ran as that webhook's, with a body
    no signature saw (hostile h24 L3): its signature is the check, which no replay gives."""
    from cronflow_actors.http.auth import sign_request

    secret = "s3cret"
    flow = (
        cf.define("paid").on_webhook("/signed", hmac_secret=secret).step("s", lambda c: c.payload)
    )
    rt, client = await serve([flow])
    body = b'{"amount": 5}'
    headers = {
        "Content-Type": "application/json",
        "X-Signature-256": sign_request(secret, "POST", "/signed", body),
    }
    delivered = await client.post("/signed", content=body, headers=headers)
    assert delivered.status_code == 202, delivered.text
    run_id = delivered.json()["run_id"]
    await rt.wait(run_id, timeout=5)
    forged = await client.post(f"/runs/{run_id}/replay", json={"payload": {"amount": 10**6}})
    assert forged.status_code == 400
    assert "takes signed requests only" in forged.json()["detail"]
    again = await client.post(f"/runs/{run_id}/replay")  # its recorded, signed payload
    assert again.status_code == 202
    assert (await rt.wait(again.json()["run_id"], timeout=5)).output == {"amount": 5}
    assert len(await rt.list_runs()) == 2


async def test_a_webhook_duplicate_names_the_run_its_work_goes_on_in(serve: Serve) -> None:
    """A retry whose key named a run since migrated, or failed and resumed, was answered with
    that run's id alone, a run a client polling it reads canceled or failed while the work goes
    on (newcomer h29 F7): the answer names the run it goes on in too."""
    tries: list[int] = []

    def charge(ctx: Any) -> str:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("card service down")
        return "charged"

    def build(version: str) -> cf.Flow:
        flow = cf.define("billing", version=version)
        flow = flow.on_webhook("/hooks/bill", idempotency_key="Idempotency-Key")
        return flow.step("charge", charge).pause("approve")

    rt, client = await serve([build("v1"), build("v2")])
    key = {"Idempotency-Key": "bill-1"}
    first = (await client.post("/hooks/bill", json={"n": 1}, headers=key)).json()["run_id"]
    assert (await rt.wait(first, timeout=5)).status == "failed"
    again = await client.post("/hooks/bill", json={"n": 1}, headers=key)
    assert again.json() == {"run_id": first, "duplicate": True}  # nothing goes on from it yet
    resumed = await rt.replay(first, resume=True)
    await rt.wait_idle()
    version = (await rt.inspect(resumed)).version
    migrated = await rt.migrate(resumed, "v1" if version == "v2" else "v2")
    again = await client.post("/hooks/bill", json={"n": 1}, headers=key)
    assert again.status_code == 200
    assert again.json() == {"run_id": first, "duplicate": True, "current_run_id": migrated}

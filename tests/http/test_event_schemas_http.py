"""``POST /events/{name}`` with flows listening under a schema, against a real server: a 202
lists the flows that refused the payload; when every one refused it, a 400 problem with the
path of the field at fault, and nothing started."""

from __future__ import annotations

import msgspec

import cronflow_actors as cf
from cronflow_actors import net
from tests.http.conftest import Serve


class Paid(msgspec.Struct):
    order: str
    amount: int


async def test_event_refusals_over_http(serve: Serve) -> None:
    typed = cf.define("typed").step("s", lambda ctx: ctx.payload).on_event("paid", schema=Paid)
    rt, client = await serve([typed])
    refused = await client.post("/events/paid", json={"order": "o-1", "amount": "ten"})
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "urn:cronflow:problem:invalid-event"
    assert problem["path"] == "$.amount"
    assert problem["refused"] == [
        {
            "workflow": "typed",
            "detail": "Expected `int`, got `str` - at `$.amount`",
            "path": "$.amount",
        }
    ]
    assert await rt.store.list_snapshots() == []
    accepted = await client.post("/events/paid", json={"order": "o-1", "amount": 10})
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["refused"] == []
    assert body["held"] == []
    [run_id] = body["started"]
    assert (await rt.wait(run_id, timeout=5)).output["amount"] == 10
    # 10.0 is an integer to JSON Schema, and so to /openapi.json (hostile h45 F1)
    whole = await client.post("/events/paid", json={"order": "o-2", "amount": 10.0})
    assert whole.status_code == 202, whole.text
    [run_id] = whole.json()["started"]
    amount = (await rt.wait(run_id, timeout=5)).output["amount"]
    assert (amount, type(amount)) == (10, int)
    half = await client.post("/events/paid", json={"order": "o-3", "amount": 10.5})
    assert half.json()["path"] == "$.amount"


async def test_a_partly_refused_event_is_published_and_says_who_refused(serve: Serve) -> None:
    typed = cf.define("typed").step("s", lambda ctx: ctx.payload).on_event("paid", schema=Paid)
    loose = cf.define("loose").step("s", lambda ctx: ctx.payload).on_event("paid")
    rt, client = await serve([typed, loose])
    answer = await client.post("/events/paid", json={"order": "o-1"})
    assert answer.status_code == 202
    body = answer.json()
    assert [r["workflow"] for r in body["refused"]] == ["typed"]
    assert body["refused"][0]["path"] == "$"
    [run_id] = body["started"]
    assert (await rt.inspect(run_id)).workflow == "loose"


async def test_a_202_says_which_waiting_runs_took_the_event(serve: Serve) -> None:
    pay = (
        cf.define("pay")
        .wait_for_event("paid", "paid", filter=lambda event, ctx: event["order"] == ctx.payload)
        .step("ship", lambda ctx: ctx.last)
    )
    rt, client = await serve([pay])
    first, second = await rt.trigger("pay", "o-1"), await rt.trigger("pay", "o-2")
    await rt.wait_idle()
    body = (await client.post("/events/paid", json={"order": "o-2"})).json()
    assert (body["started"], body["delivered"], body["held"]) == ([], [second], [])
    assert (await rt.wait(second, timeout=5)).output == {"order": "o-2"}
    body = (await client.post("/events/paid", json={"order": "o-9"})).json()
    assert body["delivered"] == []  # the one still waiting refused it
    assert (await rt.inspect(first)).status == "waiting"


async def test_an_event_or_a_task_whose_name_holds_a_slash_is_reachable(serve: Serve) -> None:
    """``orders/paid`` could be registered and waited for, but ``POST /events/orders/paid``
    was a 404 (the second hostile client's N4); the request is counted under the route's
    template all the same."""
    started = cf.define("started").step("s", lambda ctx: ctx.payload).on_event("orders/paid")
    waits = cf.define("waits").wait_for_event("w", "orders/shipped").step("t", lambda c: c.last)
    hold = net.work_item("a/b")
    held = (
        net.workflow("held")
        .start_condition("start")
        .end_condition("end")
        .task("a/b", net.task(hold))
        .connect_condition("start", "a/b")
        .connect_task("a/b", "end")
        .build()
    )
    rt, client = await serve([started, waits, held])
    answer = await client.post("/events/orders/paid", json={"n": 1})
    assert answer.status_code == 202, answer.text
    [run_id] = answer.json()["started"]
    assert (await rt.wait(run_id, timeout=5)).output["event"]["name"] == "orders/paid"
    waiting = await rt.trigger("waits")
    await rt.wait_idle()
    encoded = await client.post("/events/orders%2Fshipped", json={"n": 2})
    assert encoded.json()["delivered"] == [waiting]
    assert (await rt.wait(waiting, timeout=5)).output == {"n": 2}
    workflow_id = await rt.start_workflow("held")
    items = await client.get(f"/workflows/{workflow_id}/tasks/a/b/work-items")
    assert [i["task"] for i in items.json()["work_items"]] == ["a/b"]
    metrics = (await client.get("/metrics")).text
    assert 'route="/events/{name}"' in metrics
    assert "{name:path}" not in metrics

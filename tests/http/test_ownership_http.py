"""Ownership over HTTP: concurrent deliveries of one webhook with one idempotency key start one
run; runs and pauses are listed a page at a time, by cursor."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import cronflow_actors as cf
from tests.http.conftest import Serve


def keyed(ran: Counter[str]) -> cf.Flow:
    async def charge(ctx: Any) -> str:
        ran[ctx.run.id] += 1
        await asyncio.sleep(0.01)
        return f"charged {ctx.payload['order']}"

    return (
        cf.define("payments")
        .step("charge", charge)
        .on_webhook("/webhooks/pay", idempotency_key="Idempotency-Key")
    )


async def test_fifty_concurrent_deliveries_with_one_key_start_one_run(serve: Serve) -> None:
    ran: Counter[str] = Counter()
    rt, client = await serve([keyed(ran)])
    responses = await asyncio.gather(
        *(
            client.post(
                "/webhooks/pay", json={"order": "o-9"}, headers={"Idempotency-Key": "pay-o-9"}
            )
            for _ in range(50)
        )
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 1, 200: 49}
    [run_id] = {r.json()["run_id"] for r in responses}
    assert sum(bool(r.json().get("duplicate")) for r in responses) == 49
    assert (await rt.wait(run_id, timeout=10)).output == "charged o-9"
    await rt.wait_idle()
    assert ran == {run_id: 1}
    assert len(await rt.list_runs()) == 1


async def test_runs_and_pauses_are_paged_by_cursor(serve: Serve) -> None:
    flow = cf.define("hold").human_in_the_loop("approve", description="ok?").step("s", str)
    rt, client = await serve([flow])
    ids = [
        (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"] for _ in range(5)
    ]
    await rt.wait_idle()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/runs", params=params)).json()
        seen += [run["id"] for run in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    waiting = (await client.get("/runs", params={"status": "waiting", "limit": "10"})).json()
    assert len(waiting["runs"]) == 5
    paused = (await client.get("/paused", params={"limit": "3"})).json()
    assert len(paused["paused"]) == 3
    rest = (await client.get("/paused", params={"cursor": paused["next_cursor"]})).json()
    tokens = [p["token"] for p in paused["paused"] + rest["paused"]]
    assert len(set(tokens)) == 5
    assert {p["run_id"] for p in paused["paused"] + rest["paused"]} == set(ids)
    # a cursor with something after it, padding, or the other base64 alphabet is not one it
    # gave (the hostile client's finding 9: base64 decoding passed over them)
    given = paused["next_cursor"]
    for forged in (given + "\x00", given + "=", given.replace("-", "+") + "+"):
        refused = await client.get("/paused", params={"cursor": forged})
        assert refused.status_code == 400, forged


async def test_bad_paging_input_is_a_clear_400(serve: Serve) -> None:
    _rt, client = await serve([cf.define("x").step("s", str)])
    for params, fragment in [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": ""}, "cursor"),  # (a lost cursor read as none: the first page, hostile h42 F5)
        ({"status": "sleepy"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "99999999999999999999999"}, "limit"),
        ({"offset": "5"}, "cursor"),
    ]:
        response = await client.get("/runs", params=params)
        assert response.status_code == 400, params
        assert fragment in response.json()["detail"], params
    for cursor in ("%%%", ""):
        response = await client.get("/paused", params={"cursor": cursor})
        assert response.status_code == 400, cursor

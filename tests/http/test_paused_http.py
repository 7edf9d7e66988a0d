"""Pauses over real HTTP: a page of ``GET /paused`` is bounded by bytes, as ``GET /runs`` is (a
hostile client's 150 pauses of 0.9 MB were answered as one page of 135 MB), and
``GET /runs/{run_id}/pause`` reads one run's pause without listing the others (the console
listed up to 10 pages of 1,000 pauses every 2.5 s to find one)."""

from __future__ import annotations

from typing import Any

import cronflow_actors as cf
from cronflow_actors.runtime.pages import PAGE_BYTES
from tests.http.conftest import Serve

MB = 1_000_000


def big_pause() -> cf.Flow:
    """A pause whose ``last`` (the step before's output) is ``size`` bytes."""
    return (
        cf.define("big")
        .step("make", lambda ctx: "x" * ctx.payload["size"])
        .human_in_the_loop("approve", description="big")
    )


async def test_a_page_of_big_pauses_ends_at_the_byte_budget(serve: Serve) -> None:
    rt, client = await serve([big_pause()])
    runs = []
    for _ in range(10):  # 10 MB of pauses, past the 8 MiB of a page
        started = await client.post("/runs", json={"workflow": "big", "payload": {"size": MB}})
        runs.append(started.json()["run_id"])
        await rt.wait_idle()
    seen: list[str] = []
    cursor: str | None = None
    sizes: list[int] = []
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/paused", params=params)
        assert answer.status_code == 200
        page = answer.json()
        assert page["paused"] or page["next_cursor"] is None  # never empty with more to come
        sizes.append(len(answer.content))
        seen += [pause["run_id"] for pause in page["paused"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(runs)  # each once
    assert len(sizes) >= 2
    assert max(sizes) < PAGE_BYTES + 1.1 * MB  # the budget, and the one pause that passed it


async def test_a_runs_pause_is_read_by_its_id(serve: Serve) -> None:
    naps = cf.define("naps").sleep("nap", "1h")
    token = {"t-ada": cf.Principal(id="ada")}
    rt, client = await serve([big_pause(), naps], tokens=token)
    ada = {"Authorization": "Bearer t-ada"}
    started = []
    for size in (10, 20, 30):
        body = {"workflow": "big", "payload": {"size": size}}
        started.append((await client.post("/runs", json=body, headers=ada)).json()["run_id"])
    napping = (await client.post("/runs", json={"workflow": "naps"}, headers=ada)).json()
    await rt.wait_idle()
    run_id = started[1]
    assert (await client.get(f"/runs/{run_id}/pause")).status_code == 401  # a read as others
    answer = await client.get(f"/runs/{run_id}/pause", headers=ada)
    assert answer.status_code == 200
    pause = answer.json()
    assert (pause["run_id"], pause["step"], pause["last"]) == (run_id, "approve", "x" * 20)
    assert pause["description"] == "big"
    resumed = await client.post(f"/resume/{pause['token']}", json={"approved": True}, headers=ada)
    assert resumed.status_code == 200
    await rt.wait_idle()
    for ident in (run_id, napping["run_id"]):  # resumed; asleep: both wait for no person
        over = await client.get(f"/runs/{ident}/pause", headers=ada)
        assert over.status_code == 404
        assert over.json()["type"] == "urn:cronflow:problem:not-paused"
        assert f"no pause of run '{ident}'; the run exists" in over.json()["detail"]
    unknown = await client.get("/runs/nobody/pause", headers=ada)
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:cronflow:problem:not-found"

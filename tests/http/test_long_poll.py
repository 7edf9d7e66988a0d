"""``GET /runs/{id}?wait=N``: a client waits for a run's end over HTTP in one request (it had to
poll, newcomer h31 F9), answered as the run ends, when N seconds pass, or at once when the server
begins to drain (a held request would have held the drain up, and then been cut); a wait given up
leaves no waiter behind in the runtime."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cronflow_actors as cf
from tests.http.conftest import Serve
from tests.serving import ROOT, serving


def approval() -> cf.Flow:
    return (
        cf.define("hold")
        .human_in_the_loop("approve", description="ok?")
        .step("done", lambda ctx: {"approved": ctx.last["approved"]})
    )


async def test_a_long_poll_is_answered_as_the_run_ends(serve: Serve) -> None:
    rt, client = await serve([approval()])
    run_id = (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"]
    await rt.wait_idle()
    poll = asyncio.create_task(client.get(f"/runs/{run_id}", params={"wait": 60}))
    await asyncio.sleep(0.3)
    assert not poll.done()  # the run waits for a person: so does the request
    [paused] = (await client.get("/paused")).json()["paused"]
    resumed = await client.post(f"/resume/{paused['token']}", json={"approved": True})
    assert resumed.status_code == 200
    answer = await asyncio.wait_for(poll, 30)
    assert answer.status_code == 200
    run = answer.json()
    assert (run["id"], run["status"], run["output"]) == (run_id, "completed", {"approved": True})
    assert rt._waiters == {}


async def test_a_long_poll_answers_how_the_run_stands_when_its_time_is_up(serve: Serve) -> None:
    rt, client = await serve([approval()])
    run_id = (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"]
    await rt.wait_idle()
    answer = await client.get(f"/runs/{run_id}", params={"wait": 1})
    assert answer.status_code == 200
    assert answer.json()["status"] == "waiting"
    assert [s["status"] for s in answer.json()["steps"]] == ["waiting"]
    # the wait given up is forgotten: a run that waits a week for a person was waited for by
    # every poll of it until it ended
    assert rt._waiters == {}
    again = await client.get(f"/runs/{run_id}", params={"wait": 0})  # at once, as without it
    assert again.json()["status"] == "waiting"


async def test_a_long_poll_of_an_ended_or_unknown_run_answers_at_once(serve: Serve) -> None:
    quick = cf.define("quick").step("one", lambda ctx: 1)
    rt, client = await serve([quick])
    run_id = (await client.post("/runs", json={"workflow": "quick"})).json()["run_id"]
    await rt.wait(run_id)
    ended = await client.get(f"/runs/{run_id}", params={"wait": 60}, timeout=5)
    assert (ended.status_code, ended.json()["status"]) == (200, "completed")
    unknown = await client.get("/runs/nobody", params={"wait": 60}, timeout=5)
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:cronflow:problem:not-found"


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("wait=61", "wait must be a whole number from 0 to 60"),
        ("wait=-1", "wait must be a whole number from 0 to 60"),
        ("wait=1.5", "wait must be a whole number from 0 to 60"),
        ("wait=soon", "wait must be a whole number from 0 to 60"),
        ("wait=1&wait=2", "wait is given 2 times; give it once"),
    ],
)
async def test_a_wait_out_of_bounds_is_refused(serve: Serve, query: str, said: str) -> None:
    _rt, client = await serve([approval()])
    run_id = (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"]
    answer = await client.get(f"/runs/{run_id}?{query}", timeout=5)
    assert answer.status_code == 400
    assert said in answer.json()["detail"]


def test_a_drain_answers_the_long_polls_at_once(tmp_path: Path) -> None:
    app = str(ROOT / "tests" / "serve_pause_app.py")
    answers: list[Any] = []
    with serving(app, tmp_path / "poll.db", "--drain-timeout", "5") as served:
        started = httpx.post(f"{served.url}/runs", json={"workflow": "hold"}, timeout=10)
        run_id = started.json()["run_id"]

        def poll() -> None:
            try:
                answers.append(httpx.get(f"{served.url}/runs/{run_id}?wait=60", timeout=90))
            except httpx.HTTPError as error:
                answers.append(error)

        waiting = threading.Thread(target=poll)
        waiting.start()
        time.sleep(1)  # (the request reaches the server and waits there)
        assert waiting.is_alive()
        code = served.stop()
        waiting.join(30)
    output = served.output()
    assert code == 0, output
    [answer] = answers
    assert isinstance(answer, httpx.Response), answer  # not cut by the drain's end
    assert (answer.status_code, answer.json()["status"]) == (200, "waiting")
    assert "the drain ended" not in output


async def test_long_polls_beyond_the_servers_share_are_answered_at_once(serve: Serve) -> None:
    # three long polls took every connection of a server of three, /readyz answering 503
    # (review h33 F8): past its share, a wait is answered as the run stands
    rt, client = await serve([approval()], long_polls=1)
    run_id = (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"]
    await rt.wait_idle()
    first = asyncio.create_task(client.get(f"/runs/{run_id}", params={"wait": 60}))
    await asyncio.sleep(0.3)
    second = await asyncio.wait_for(client.get(f"/runs/{run_id}", params={"wait": 60}), 5)
    assert (second.status_code, second.json()["status"]) == (200, "waiting")
    assert not first.done()  # the one within the share waits on
    [paused] = (await client.get("/paused")).json()["paused"]
    await client.post(f"/resume/{paused['token']}", json={"approved": True})
    assert (await asyncio.wait_for(first, 30)).json()["status"] == "completed"
    other = (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"]
    await rt.wait_idle()
    third = asyncio.create_task(client.get(f"/runs/{other}", params={"wait": 1}))
    await asyncio.sleep(0.3)
    assert not third.done()  # its place free again: it waits
    assert (await asyncio.wait_for(third, 5)).json()["status"] == "waiting"


async def test_a_long_poll_whose_client_left_frees_its_place_at_once(serve: Serve) -> None:
    # two dropped polls with wait=20 kept every other one from waiting for 20 s (retest2 h33
    # F1): a client that leaves gives its place back as it goes
    rt, client = await serve([approval()], long_polls=1)
    run_id = (await client.post("/runs", json={"workflow": "hold"})).json()["run_id"]
    await rt.wait_idle()
    port = client.base_url.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /runs/{run_id}?wait=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(0.3)  # it waits, in the one place
    at_once = await asyncio.wait_for(client.get(f"/runs/{run_id}", params={"wait": 60}), 5)
    assert at_once.json()["status"] == "waiting"  # (no place: answered at once)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.3)  # it left
    poll = asyncio.create_task(client.get(f"/runs/{run_id}", params={"wait": 1}))
    await asyncio.sleep(0.5)
    assert not poll.done()  # its place is free again: it waits
    assert (await asyncio.wait_for(poll, 5)).json()["status"] == "waiting"
    del reader

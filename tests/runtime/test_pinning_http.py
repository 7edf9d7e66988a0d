"""Blocked runs at the edges: ``GET /runs?status=blocked``, ``GET /runs/{id}``, a refused
resume (409, naming the block), ``cronflow-actors runs --blocked``, ``/metrics``, an operator's
cancel over HTTP, and the versions ``GET /flows`` shows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

import cronflow_actors as cf
from cronflow_actors.http.app import create_app
from tests.http.test_cli_commands import cli
from tests.runtime.test_pinning import approval


@pytest.fixture
async def blocked(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """A server on a changed definition of ``approval`` v1, and a run of it left paused on
    the definition before (its id and resume token)."""
    db = tmp_path / "edge.db"
    async with cf.Runtime(db=db, workflows=[approval()]) as rt:
        run_id = await rt.trigger("approval", {"n": 1})
        await rt.wait_idle()
        [paused] = await rt.list_paused()
    changed = approval(changed=True)
    v2 = cf.define("approval", version="v2").step("only", lambda ctx: "v2")
    runtime = cf.Runtime(db=db, workflows=[changed, v2])
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
        yield client, run_id, paused.token
    server.should_exit = True
    await task


async def test_a_blocked_run_over_http_and_the_cli(
    blocked: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, run_id, token = blocked
    listed = (await client.get("/runs", params={"status": "blocked"})).json()["runs"]
    assert [(run["id"], run["status"], run["version"]) for run in listed] == [
        (run_id, "blocked", "v1")
    ]
    shown = (await client.get(f"/runs/{run_id}")).json()
    assert shown["status"] == "blocked"
    assert "'approval' version 'v1'" in shown["blocked"]

    refused = await client.post(f"/resume/{token}", json={"approved": True})
    assert refused.status_code == 409
    assert "is blocked" in refused.json()["detail"]

    code, out, _ = await cli("runs", "--blocked", "--url", str(client.base_url))
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [[run_id, "approval", "blocked"]]
    code, out, _ = await cli("runs", "--blocked", "--json", "--url", str(client.base_url))
    assert code == 0
    assert [run["id"] for run in json.loads(out)["runs"]] == [run_id]

    metrics = (await client.get("/metrics")).text
    assert 'cronflow_runs_blocked{workflow="approval"} 1.0' in metrics

    [flow] = (await client.get("/flows")).json()["flows"]
    assert flow["version"] == "v2"
    assert [(v["version"], v["current"]) for v in flow["versions"]] == [
        ("v1", False),
        ("v2", True),
    ]

    assert (await client.post(f"/runs/{run_id}/cancel")).status_code == 200
    assert (await client.get(f"/runs/{run_id}")).json()["status"] == "canceled"
    assert (await client.get("/runs", params={"status": "blocked"})).json()["runs"] == []
    metrics = (await client.get("/metrics")).text
    assert 'cronflow_runs_blocked{workflow="approval"} 0.0' in metrics

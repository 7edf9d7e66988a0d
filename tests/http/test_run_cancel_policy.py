"""``POST /runs/{id}/cancel`` on an instance of a net workflow: its ``cancel`` action's policy
decides, as on ``POST /workflows/{id}/cancel`` (the runs' route is a second door to it)."""

from __future__ import annotations

import logging

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from tests.http.conftest import Serve

READER = cf.Principal(id="reader", scopes=frozenset())
ADMIN = cf.Principal(id="admin", scopes=frozenset({"hire:admin"}))
TOKENS = {"t-reader": READER, "t-admin": ADMIN}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def guarded() -> net.NetSpec:
    return (
        net.workflow("guarded")
        .start_condition("start")
        .end_condition("end")
        .task("review", net.task(net.work_item("review")))
        .connect_condition("start", "review")
        .connect_task("review", "end")
        .actions(initialize=net.action(), cancel=net.action(policy=net.require_scope("hire:admin")))
        .build()
    )


async def test_the_runs_cancel_route_applies_a_net_workflows_cancel_policy(serve: Serve) -> None:
    flow = cf.define("plain").sleep("nap", "1h").step("s", lambda ctx: 1)
    rt, client = await serve([guarded(), flow], tokens=TOKENS)
    created = await client.post(
        "/workflows", json={"workflow": "guarded"}, headers=bearer("t-reader")
    )
    workflow_id = created.json()["workflow_id"]
    refused = await client.post(f"/runs/{workflow_id}/cancel", headers=bearer("t-reader"))
    assert (refused.status_code, refused.json()["type"]) == (
        403,
        "urn:cronflow:problem:action-denied",
    )
    assert await rt.workflow_state(workflow_id) == "initialized"  # nothing changed
    done = await client.post(f"/runs/{workflow_id}/cancel", headers=bearer("t-admin"))
    assert done.status_code == 200
    assert await rt.workflow_state(workflow_id) == "canceled"
    cancels = [
        n.span for n in (await rt.trace(workflow_id)).roots if n.span.operation == "Action.cancel"
    ]
    assert [s.attributes["principal"] for s in cancels] == ["admin"]  # who did it is kept
    # a flow's run has no cancel action: any caller of the API may cancel it, as before
    run_id = await rt.trigger("plain")
    answer = await client.post(f"/runs/{run_id}/cancel", headers=bearer("t-reader"))
    assert answer.status_code == 200
    assert (await rt.wait(run_id)).status == "canceled"


async def test_a_net_and_a_flow_sent_to_each_others_doors_are_told_which_door(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A net workflow sent to the flows' routes, and a flow's run to the net routes, are
    refused with the route that takes them (the second hostile client's N6), changing nothing."""
    flow = cf.define("plain").sleep("nap", "1h").step("s", lambda ctx: 1)
    with caplog.at_level(logging.INFO, logger="cronflow_actors.serve"):
        rt, client = await serve([guarded(), flow], tokens=TOKENS)
    admin = bearer("t-admin")
    # what is served says where the nets are (the newcomer's finding 3: they went unnamed)
    assert any(
        "serving 1 flow(s): plain; 1 net workflow(s) (POST /workflows): guarded;" in m
        for m in caplog.messages
    )

    started = await client.post("/runs", json={"workflow": "guarded"}, headers=admin)
    assert started.status_code == 404
    assert (
        "'guarded' is a net workflow: start it with Runtime.start_workflow (POST /workflows, "
        in (started.json()["detail"])
    )
    workflow_id = (
        await client.post("/workflows", json={"workflow": "guarded"}, headers=admin)
    ).json()["workflow_id"]
    replayed = await client.post(f"/runs/{workflow_id}/replay", headers=admin)
    # the run is there and its workflow registered: no 404 (the hostile client's finding 7)
    assert (replayed.status_code, replayed.json()["type"]) == (
        409,
        "urn:cronflow:problem:not-replayable",
    )
    assert "an instance of net workflow 'guarded'" in replayed.json()["detail"]
    assert "POST /workflows" in replayed.json()["detail"]

    wrong = await client.post("/workflows", json={"workflow": "plain"}, headers=admin)
    # no net of that name, as a net sent to /runs is no flow: a 404 each (a 403 read as a
    # missing right: console h40 F7)
    assert (wrong.status_code, wrong.json()["type"]) == (404, "urn:cronflow:problem:not-found")
    assert "'plain' is a Cronflow-style flow" in wrong.json()["detail"]
    assert "Runtime.trigger (POST /runs)" in wrong.json()["detail"]
    run_id = await rt.trigger("plain")
    await rt.wait_idle()
    canceled = await client.post(f"/workflows/{run_id}/cancel", headers=admin)
    assert canceled.status_code == 403
    assert f"Runtime.cancel (POST /runs/{run_id}/cancel)" in canceled.json()["detail"]
    assert (await rt.inspect(run_id)).status == "waiting"  # nothing changed
    assert sorted(r.workflow for r in await rt.list_runs()) == ["guarded", "plain"]  # no more


async def test_the_serving_line_names_the_schedules(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A flow's cron schedules and intervals were in no line at start: an operator learned of
    them from GET /flows/{id}/next-fires only (the newcomer's L12)."""
    nightly = (
        cf.define("nightly")
        .step("s", lambda ctx: 1)
        .on_schedule("0 2 * * *", timezone="Europe/Paris")
    )
    beat = cf.define("beat").step("s", lambda ctx: 1).on_interval("10s")
    with caplog.at_level(logging.INFO, logger="cronflow_actors.serve"):
        await serve([nightly, beat])
    assert any(
        "schedules: beat (every 10 s), nightly (0 2 * * * Europe/Paris);" in m
        for m in caplog.messages
    )

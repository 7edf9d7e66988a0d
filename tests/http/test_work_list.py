"""A net instance's work list over real HTTP: ``GET /workflows/{id}/work-items`` lists the work
items a caller may act on now, its composite tasks' child nets' included, each with the actions
its state allows; ``GET /paused?run_id=`` lists every pause of one run. The console's run page
showed one pause of a net that waited in three, and no item of a child net (retest h34 F4)."""

from __future__ import annotations

from typing import Any

import httpx

import cronflow_actors as cf
from cronflow_actors import net
from tests.http.conftest import Serve

ADA = {"Authorization": "Bearer t-ada"}
TOKENS = {"t-ada": cf.Principal(id="ada")}


def desk() -> net.NetSpec:
    """An AND split to a person's task, two pauses and a composite task whose child net has a
    person's task of its own; ``auto`` starts itself and has no action of a caller's."""
    person = net.work_item("review").actions(
        start=net.action(), complete=net.action(), fail=net.action(), cancel=net.action()
    )
    pause = net.work_item("sign", wait=net.WaitSpec(kind="pause")).actions(
        start=net.action(), complete=net.action()
    )
    told = net.WaitSpec(kind="pause", details=lambda ctx: {"description": "countersign it"})
    countersign = net.work_item("countersign", wait=told).actions(
        start=net.action(), complete=net.action()
    )
    stamp = net.work_item("stamp").actions(start=net.action(), complete=net.action())
    inner = (
        net.workflow("stamping")
        .start_condition("start")
        .end_condition("end")
        .task("stamp", net.task(stamp))
        .connect_condition("start", "stamp")
        .connect_task("stamp", "end")
    )
    auto = net.work_item("auto", handler=lambda ctx: None)
    return (
        net.workflow("desk")
        .start_condition("start")
        .end_condition("end")
        .dummy_task("fork")
        .task("review", net.task(person))
        .task("sign", net.task(pause))
        .task("countersign", net.task(countersign))
        .composite_task("stamping", net.composite_task(inner))
        .task("auto", net.task(auto))
        .dummy_task("join")
        .connect_condition("start", "fork")
        .connect_task("fork", "review")
        .connect_task("fork", "sign")
        .connect_task("fork", "countersign")
        .connect_task("fork", "stamping")
        .connect_task("fork", "auto")
        .connect_task("review", "join")
        .connect_task("sign", "join")
        .connect_task("countersign", "join")
        .connect_task("stamping", "join")
        .connect_task("auto", "join")
        .connect_task("join", "end")
        .actions(initialize=net.action())
        .build()
    )


async def work_list(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    answer = await client.get(f"/workflows/{workflow_id}/work-items", headers=ADA)
    assert answer.status_code == 200, answer.text
    return {item["task"]: item for item in answer.json()["work_items"]}


async def act(client: httpx.AsyncClient, item: dict[str, Any], verb: str) -> dict[str, Any]:
    acted = await client.post(f"/work-items/{item['id']}/{verb}", headers=ADA)
    assert acted.status_code == 200, acted.text
    return acted.json()  # type: ignore[no-any-return]


async def test_a_nets_work_list_holds_its_child_nets_items_with_what_each_state_allows(
    serve: Serve,
) -> None:
    rt, client = await serve([desk()], tokens=TOKENS)
    started = await client.post("/workflows", json={"workflow": "desk"}, headers=ADA)
    workflow_id = started.json()["workflow_id"]
    await rt.wait_idle()
    listed = await work_list(client, workflow_id)
    assert sorted(listed) == ["countersign", "review", "sign", "stamp"]  # not auto's
    assert listed["review"]["actions"] == ["start", "cancel"]
    assert listed["sign"]["actions"] == ["start"]
    stamp = listed["stamp"]
    assert (stamp["net"], stamp["actions"]) == ("stamping", ["start"])
    assert stamp["state"] == "initialized"
    assert stamp["workflow_id"] != workflow_id  # the child's, found below the composite task
    assert listed["review"]["net"] == "desk"

    await act(client, listed["review"], "start")
    signed = await act(client, listed["sign"], "start")
    countersigned = await act(client, listed["countersign"], "start")
    await act(client, stamp, "start")
    listed = await work_list(client, workflow_id)
    assert listed["review"]["actions"] == ["complete", "fail", "cancel"]
    assert (listed["sign"]["actions"], listed["sign"]["token"]) == (["complete"], signed["token"])
    assert listed["stamp"]["actions"] == ["complete"]

    # both pauses of the run, where GET /runs/{id}/pause gives the oldest only
    paused = await client.get("/paused", params={"run_id": workflow_id}, headers=ADA)
    assert paused.status_code == 200
    pauses = {p["step"]: p for p in paused.json()["paused"]}
    assert sorted(pauses) == ["countersign", "sign"]
    inside = await client.get("/paused", params={"run_id": stamp["workflow_id"]}, headers=ADA)
    assert inside.status_code == 400, inside.text  # was "no run", a 404 (hostile h36 F5)
    assert f"is inside run {workflow_id}): pauses are found by their run's id" in inside.text
    # a work item's id, the same; one inside no run, and the run's own pause route (R5)
    item = await client.get("/paused", params={"run_id": stamp["id"]}, headers=ADA)
    assert item.status_code == 400, item.text
    assert f"({stamp['id']} is inside run {workflow_id})" in item.text
    nowhere = await client.get("/paused", params={"run_id": "nope.f3"}, headers=ADA)
    assert nowhere.status_code == 404, nowhere.text
    assert "no run 'nope.f3'; nor is there a run 'nope'" in nowhere.text
    child = await client.get(f"/runs/{stamp['workflow_id']}/pause", headers=ADA)
    assert child.status_code == 404, child.text
    assert f"is inside run {workflow_id}): pauses are found by their run's id" in child.text
    assert pauses["countersign"]["token"] == countersigned["token"]
    assert pauses["countersign"]["description"] == "countersign it"
    for pause in pauses.values():
        resumed = await client.post(f"/resume/{pause['token']}", json={}, headers=ADA)
        assert resumed.status_code == 200, resumed.text
    await act(client, listed["review"], "complete")
    await act(client, listed["stamp"], "complete")
    await rt.wait_idle()
    assert await work_list(client, workflow_id) == {}
    assert (await rt.workflow(workflow_id)).state == "completed"
    empty = await client.get("/paused", params={"run_id": workflow_id}, headers=ADA)
    assert empty.json() == {"paused": [], "next_cursor": None}


async def test_a_work_list_or_pauses_of_no_such_instance_is_a_404(serve: Serve) -> None:
    _, client = await serve([desk()], tokens=TOKENS)
    for path, params in (("/workflows/nobody/work-items", {}), ("/paused", {"run_id": "nobody"})):
        missing = await client.get(path, params=params, headers=ADA)
        assert missing.status_code == 404, missing.text
        assert missing.json()["type"] == "urn:cronflow:problem:not-found"
        assert "'nobody'" in missing.json()["detail"]
    assert (await client.get("/workflows/nobody/work-items")).status_code == 401
    empty = await client.get("/paused", params={"run_id": ""}, headers=ADA)
    assert empty.status_code == 400, empty.text  # no filter given is no run of that id
    assert "the query parameter 'run_id'" in empty.json()["detail"]
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/workflows/{workflow_id}/work-items"]["get"]
    assert operation["operationId"] == "listOpenWorkItems"
    names = [p["name"] for p in document["paths"]["/paused"]["get"]["parameters"]]
    assert "run_id" in names

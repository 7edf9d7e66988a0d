"""Starting work once over HTTP: the endpoints that start a run name it by an ``instance_id``
in the body; one sent an ``Idempotency-Key`` header instead is refused, not ignored (hostile h31
L4: a retried fire with the header started a second run while the client believed it safe)."""

from __future__ import annotations

from typing import Any

import cronflow_actors as cf
from cronflow_actors import net
from tests.http.conftest import Serve

TOKENS = {"t-ops": cf.Principal(id="ops")}
AUTH = {"Authorization": "Bearer t-ops"}
KEY = {"Idempotency-Key": "order-7", **AUTH}
REFUSED = "urn:cronflow:problem:unsupported-header"


def flows() -> list[Any]:
    nightly = cf.define("nightly").on_schedule("0 2 * * *").step("s", lambda ctx: ctx.payload)
    plain = cf.define("plain").step("s", lambda ctx: ctx.payload)
    flaky = cf.define("flaky").step("s", _fails)
    hire = (
        net.workflow("hire")
        .start_condition("start")
        .end_condition("end")
        .task("review", net.task(net.work_item("review")))
        .connect_condition("start", "review")
        .connect_task("review", "end")
        .actions(initialize=net.action())
        .build()
    )
    return [nightly, plain, flaky, hire]


def _fails(ctx: cf.Context) -> None:
    raise RuntimeError("down")


async def test_a_start_with_an_idempotency_key_header_and_no_instance_id_is_refused(
    serve: Serve,
) -> None:
    rt, client = await serve(flows(), tokens=TOKENS)
    failed = await rt.trigger("flaky")
    await rt.wait(failed, timeout=5)
    asked = {
        "/runs": {"workflow": "plain", "payload": 1},
        "/flows/nightly/fire": None,
        f"/runs/{failed}/replay": None,
        "/workflows": {"workflow": "hire"},
    }
    for url, body in asked.items():
        refused = await client.post(url, json=body, headers=KEY)
        problem = refused.json()
        assert (refused.status_code, problem["type"]) == (400, REFUSED), url
        assert "does not read an Idempotency-Key header" in problem["detail"]
        assert '{"instance_id": "..."}' in problem["detail"]
    assert [run.id for run in await rt.list_runs()] == [failed]  # nothing started
    assert await rt.store.list_snapshots(workflow="hire") == []

    # beside an instance_id the header is let be: the id makes the start safe to repeat
    for url, body, status in (
        ("/runs", {"workflow": "plain", "instance_id": "p-1"}, 202),
        ("/flows/nightly/fire", {"instance_id": "n-1"}, 202),
        (f"/runs/{failed}/replay", {"instance_id": "r-1"}, 202),
        ("/workflows", {"workflow": "hire", "instance_id": "h-1"}, 201),
    ):
        once = await client.post(url, json=body, headers=KEY)
        assert once.status_code == status, (url, once.text)
        again = await client.post(url, json=body, headers=KEY)
        assert (again.status_code, again.json()["type"]) == (
            409,
            "urn:cronflow:problem:instance-exists",
        ), url
    # a resume is one run already: asked again with the header, the same run answers
    resumed = await client.post(f"/runs/{failed}/replay", json={"resume": True}, headers=KEY)
    assert resumed.status_code == 202, resumed.text
    again = await client.post(f"/runs/{failed}/replay", json={"resume": True}, headers=KEY)
    assert (again.status_code, again.json()["run_id"]) == (200, resumed.json()["run_id"])


async def test_a_net_workflow_is_started_once_by_its_instance_id(serve: Serve) -> None:
    """``POST /workflows`` takes an ``instance_id`` (``Runtime.start_workflow`` did; over HTTP a
    retried start made a second instance)."""
    _, client = await serve(flows(), tokens=TOKENS)
    start = {"workflow": "hire", "instance_id": "hire-7"}
    started = await client.post("/workflows", json=start, headers=AUTH)
    assert (started.status_code, started.json()) == (201, {"workflow_id": "hire-7"})
    assert started.headers["Location"] == "/workflows/hire-7"
    assert (await client.get("/workflows/hire-7", headers=AUTH)).json()["state"] == "initialized"
    again = await client.post("/workflows", json=start, headers=AUTH)
    assert (again.status_code, again.json()["type"]) == (
        409,
        "urn:cronflow:problem:instance-exists",
    )
    bad = await client.post("/workflows", json={**start, "instance_id": "a/b"}, headers=AUTH)
    assert (bad.status_code, bad.json()["type"]) == (400, "urn:cronflow:problem:invalid-body")
    document = (await client.get("/openapi.json", headers=AUTH)).json()
    start = document["components"]["schemas"]["StartWorkflow"]["properties"]
    assert "instance_id" in start


async def test_a_webhook_that_reads_no_key_refuses_an_idempotency_key_header(
    serve: Serve,
) -> None:
    """A webhook without ``idempotency_key=`` ignored the header, so each retry started another
    run while the client believed it safe (hostile h38 F2); one that declares the header, or
    derives a key, or is signed (a retry is its signature's replay), takes it as before."""
    hooks = [
        cf.define("loose").on_webhook("/hooks/loose").step("s", lambda ctx: ctx.payload),
        cf.define("keyed")
        .on_webhook("/hooks/keyed", idempotency_key="Idempotency-Key")
        .step("s", lambda ctx: ctx.payload),
        cf.define("derived")
        .on_webhook("/hooks/derived", idempotency_key=lambda request: request.payload["id"])
        .step("s", lambda ctx: ctx.payload),
        # ones that read the header another way (review h38 F2: every delivery was refused)
        cf.define("required")
        .on_webhook("/hooks/required", required_headers=["Idempotency-Key"])
        .step("s", lambda ctx: ctx.payload),
        cf.define("kept")
        .on_webhook("/hooks/kept", keep_headers=["Idempotency-Key"])
        .step("s", lambda ctx: ctx.trigger.headers["idempotency-key"]),
        cf.define("checked")
        .on_webhook("/hooks/checked", header_validator=lambda request: True)
        .step("s", lambda ctx: ctx.payload),
    ]
    rt, client = await serve(hooks, tokens=TOKENS)
    header = {"Idempotency-Key": "k-1"}
    refused = await client.post("/hooks/loose", json={"id": 1}, headers=header)
    problem = refused.json()
    assert (refused.status_code, problem["type"]) == (400, REFUSED), refused.text
    assert "this webhook reads no Idempotency-Key header" in problem["detail"]
    assert 'idempotency_key="Idempotency-Key"' in problem["detail"]
    assert await rt.list_runs() == []  # nothing started
    assert (await client.post("/hooks/loose", json={"id": 1})).status_code == 202  # without it
    for path in ("/hooks/keyed", "/hooks/derived"):
        first = await client.post(path, json={"id": 2}, headers=header)
        again = await client.post(path, json={"id": 2}, headers=header)
        assert (first.status_code, again.status_code) == (202, 200), path
        assert again.json()["duplicate"] is True
    assert len(await rt.list_runs()) == 3
    taken = {}
    for path in ("/hooks/required", "/hooks/kept", "/hooks/checked"):
        answer = await client.post(path, json={"id": 3}, headers=header)
        assert answer.status_code == 202, (path, answer.text)
        taken[path] = answer.json()["run_id"]
    kept = await rt.wait(taken["/hooks/kept"], timeout=5)
    assert kept.output == "k-1"  # the step that reads it has it

"""A run's audit trail over HTTP (``GET /runs/{id}/trace``, ``GET /runs/{id}/state?at=``) and
the ``trace`` command, against a served runtime."""

from __future__ import annotations

import time

import cronflow_actors as cf
from tests.http.conftest import Serve
from tests.http.test_cli_commands import cli


def flows() -> list[cf.Flow]:
    return [cf.define("double").step("double", lambda ctx: ctx.payload * 2)]


async def test_trace_and_state_at_over_http_and_the_trace_command(serve: Serve) -> None:
    rt, client = await serve(flows())
    before = time.time() - 1
    started = await client.post("/runs", json={"workflow": "double", "payload": 2})
    run_id = started.json()["run_id"]
    await rt.wait(run_id)

    answer = await client.get(f"/runs/{run_id}/trace")
    assert answer.status_code == 200
    trace = answer.json()
    assert trace["run_id"] == run_id
    assert trace["spans"] > 5
    [first, *_] = trace["roots"]
    assert first["span"]["operation"] == "Action.initialize"
    assert first["span"]["attributes"]["principal"] is None
    assert first["children"][0]["span"]["operation"] == "Workflow.initialize"

    now = await client.get(f"/runs/{run_id}/state", params={"at": str(time.time())})
    assert now.status_code == 200
    assert now.json()["workflows"][run_id]["state"] == "completed"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before))
    earlier = await client.get(f"/runs/{run_id}/state", params={"at": iso})
    assert earlier.json() == {
        "run_id": run_id,
        "at": float(int(before)),
        "revision": 0,
        "workflows": {},
        "work_items": {},
    }

    # the form curl sends unescaped, whose '+' reads as a space (newcomer h38 F6: "no zone")
    offset = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(before))
    unescaped = await client.get(f"/runs/{run_id}/state?at={offset}")
    assert unescaped.status_code == 200, unescaped.text
    assert unescaped.json()["at"] == float(int(before))

    for query in ({"at": "noon"}, {"at": "2024-01-01T12:00:00"}, {"at": "nan"}, {}):
        bad = await client.get(f"/runs/{run_id}/state", params=query)
        assert bad.status_code == 400, query
        assert bad.headers["content-type"] == "application/problem+json"
        assert "ISO 8601" in bad.json()["detail"]
    missing = await client.get("/runs/nope/trace")
    assert (missing.status_code, missing.json()["type"].rsplit(":", 1)[-1]) == (404, "not-found")
    assert (await client.get("/runs/nope/state", params={"at": "0"})).status_code == 404

    document = (await client.get("/openapi.json")).json()
    assert document["paths"]["/runs/{run_id}/trace"]["get"]["operationId"] == "getRunTrace"
    state_op = document["paths"]["/runs/{run_id}/state"]["get"]
    assert state_op["operationId"] == "getRunStateAt"
    assert [p["name"] for p in state_op["parameters"]] == ["run_id", "at"]

    code, out, err = await cli("trace", run_id, "--url", str(client.base_url))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"trace {run_id} ({trace['spans']} spans)"
    assert lines[1].startswith(f"  Action.initialize {run_id} (trigger=manual, internal)")
    assert any(line.startswith("      Task.enable double disabled -> enabled") for line in lines)
    assert lines[-1].lstrip().startswith("Workflow.complete")
    code, _, err = await cli("trace", "nope", "--url", str(client.base_url))
    assert code != 0
    assert "nope" in err

    # a run recorded with the audit off is there, without a trail: said so, not "no run"
    rt.audit = False
    quiet = (await client.post("/runs", json={"workflow": "double", "payload": 3})).json()
    await rt.wait(quiet["run_id"])
    rt.audit = True
    untraced = await client.get(f"/runs/{quiet['run_id']}/trace")
    assert untraced.status_code == 404
    assert untraced.json()["type"].endswith(":no-audit-trail")
    code, _, err = await cli("trace", quiet["run_id"], "--url", str(client.base_url))
    assert code != 0
    assert "it ran with the audit off" in err
    assert "on this server" not in err


def test_serve_no_audit_turns_the_audit_off() -> None:
    from cronflow_actors.cli.main import _settings, build_parser

    assert _settings(build_parser().parse_args(["serve", "--no-audit"])).audit is False
    assert _settings(build_parser().parse_args(["serve"])).audit is True
    from cronflow_actors.runtime.config import load_config

    assert load_config(environ={"CRONFLOW_AUDIT": "false"}).audit is False


async def test_who_started_and_canceled_a_run_over_http_is_in_its_trail(serve: Serve) -> None:
    """A flow's run has no initialize or cancel action to admit the caller, so the trail said
    "internal" of an operator's start and cancel: it names the token's principal now (the run
    too, as ``started_by``), and the reason a cancel gave."""
    ops = cf.Principal(id="ops-ada")
    rt, client = await serve([cf.define("held").pause("approve")], tokens={"t-ops": ops})
    bearer = {"Authorization": "Bearer t-ops"}
    run_id = (await client.post("/runs", json={"workflow": "held"}, headers=bearer)).json()
    run_id = run_id["run_id"]
    await rt.wait_idle()
    canceled = await client.post(
        f"/runs/{run_id}/cancel", json={"reason": "customer left"}, headers=bearer
    )
    assert canceled.status_code == 200
    roots = (await client.get(f"/runs/{run_id}/trace", headers=bearer)).json()["roots"]
    [start, cancel] = [r["span"] for r in roots if r["span"]["operation"].startswith("Action.")]
    assert (start["operation"], start["attributes"]["principal"]) == (
        "Action.initialize",
        "ops-ada",  # who started it too
    )
    assert cancel["operation"] == "Action.cancel"
    assert cancel["attributes"]["principal"] == "ops-ada"
    assert cancel["attributes"]["reason"] == "customer left"
    shown = (await client.get(f"/runs/{run_id}", headers=bearer)).json()
    assert (shown["started_by"], shown["error"]) == ("ops-ada", "customer left")
    again = await client.post(f"/runs/{run_id}/replay", headers=bearer)
    replayed = await rt.inspect(again.json()["run_id"])
    assert (replayed.replay_of, replayed.started_by) == (run_id, "ops-ada")
    # a cancel from this process's own code is internal, as before
    other = await rt.trigger("held")
    await rt.wait_idle()
    await rt.cancel(other)
    spans = (await rt.trace(other)).roots
    assert [r.span.attributes["principal"] for r in spans] == [None, None]
    assert "reason" not in spans[-1].span.attributes
    assert (await rt.inspect(other)).started_by is None
    # a replay this process asks for is its own, whoever started the run it replays
    own = await rt.replay(run_id)
    assert (await rt.inspect(own)).started_by is None


async def test_who_started_a_run_by_an_event_or_a_net_over_http_is_its_started_by(
    serve: Serve,
) -> None:
    # a run an HTTP publish started read as the process's own publish; a net's instance
    # named its caller in its trace only (hostile h33 M2)
    from tests.http.test_auth import TOKENS, bearer, hire

    heard = cf.define("heard").on_event("order.paid").step("log", lambda ctx: ctx.payload)
    rt, client = await serve([heard, hire()], tokens=TOKENS)
    published = await client.post("/events/order.paid", json={"n": 1}, headers=bearer("t-bob"))
    [run_id] = published.json()["started"]
    await rt.wait(run_id)
    shown = (await client.get(f"/runs/{run_id}", headers=bearer("t-bob"))).json()
    assert shown["started_by"] == "bob"
    roots = (await client.get(f"/runs/{run_id}/trace", headers=bearer("t-bob"))).json()["roots"]
    [start] = [r["span"] for r in roots if r["span"]["operation"] == "Action.initialize"]
    assert start["attributes"]["principal"] == "bob"
    created = await client.post("/workflows", json={"workflow": "hire"}, headers=bearer("t-ada"))
    net_id = created.json()["workflow_id"]
    assert (await client.get(f"/runs/{net_id}", headers=bearer("t-ada"))).json()[
        "started_by"
    ] == "ada"
    listed = (await client.get("/runs", headers=bearer("t-ada"))).json()["runs"]
    assert {run["id"]: run["started_by"] for run in listed} == {run_id: "bob", net_id: "ada"}
    # this process's own publish and start are nobody's, as before
    [own] = await rt.publish_event("order.paid", {"n": 2})
    await rt.wait(own)
    assert (await rt.inspect(own)).started_by is None
    assert (await rt.inspect(await rt.start_workflow("hire"))).started_by is None

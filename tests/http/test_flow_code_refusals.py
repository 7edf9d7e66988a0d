"""A call whose own work runs a flow's code, which raises: a start whose first node is an ``if_``
or a ``for_each`` (its condition, its items), a resume whose next node is one, a pause whose
``description`` raises as it opens. The runtime refuses the call and nothing of it changes; over
HTTP the answer is a problem that names the code that raised (``flow-code-failed``), where it
was the generic 500 of an unhandled exception that named nothing (and closed the connection)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import refused_in
from cronflow_actors.http.auth import sign_request
from tests.http.conftest import Serve

SECRET = "s3cret"
FLAKY: list[int] = []


def _amount(ctx: Any) -> bool:
    return bool(ctx.payload["amount"] > 10)


def _flaky(ctx: Any) -> bool:
    FLAKY.append(1)
    if len(FLAKY) == 1:
        raise ConnectionError("the rates service did not answer")
    return True


def _no_description(ctx: Any) -> str:
    raise LookupError("no reviewer for this region")


def flows() -> list[cf.Flow]:
    return [
        cf.define("first-if").if_("big", _amount).step("a", lambda ctx: 1).end_if(),
        cf.define("first-each").for_each("lines", lambda ctx: ctx.payload["lines"], str),
        cf.define("then-if")
        .human_in_the_loop("approve", description="ok?")
        .if_("big", _amount)
        .step("a", lambda ctx: 1)
        .end_if(),
        cf.define("then-pause")
        .human_in_the_loop("approve", description="ok?")
        .human_in_the_loop("review", description=_no_description),
        cf.define("hooked")
        .if_("ok", _flaky)
        .step("a", lambda ctx: ctx.payload)
        .end_if()
        .on_webhook("/hooks/signed", hmac_secret=SECRET)
        .on_webhook("/hooks/open"),
    ]


def _refusal(answer: Any, raised_in: str, said: str) -> None:
    assert answer.status_code == 500, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:cronflow:problem:flow-code-failed"
    assert problem["raised_in"] == raised_in
    assert f"raised {said};" in problem["detail"]
    assert "nothing of this call changed" in problem["detail"]


async def _paused(client: Any, run_id: str) -> str:
    for _ in range(200):
        for pause in (await client.get("/paused")).json()["paused"]:
            if pause["run_id"] == run_id:
                return str(pause["token"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"{run_id} never paused")


async def test_a_start_its_first_node_refuses_names_that_code_and_records_no_run(
    serve: Serve,
) -> None:
    rt, client = await serve(flows())
    answer = await client.post("/runs", json={"workflow": "first-if", "payload": {}})
    _refusal(answer, "router of task 'if:big' in 'first-if'", "KeyError: 'amount'")
    answer = await client.post("/runs", json={"workflow": "first-each", "payload": {"x": 1}})
    _refusal(answer, "on_enabled of task 'lines' in 'first-each'", "KeyError: 'lines'")
    assert await rt.list_runs() == []
    # mended, the same call starts the run: nothing of the refused one stood in its way
    answer = await client.post(
        "/runs", json={"workflow": "first-if", "payload": {"amount": 20}, "instance_id": "r1"}
    )
    assert answer.status_code == 202
    assert (await rt.wait("r1", timeout=5)).output == 1


async def test_a_runtime_error_the_flows_code_raised_keeps_its_answer_and_names_the_code(
    serve: Serve,
) -> None:
    async def counted(ctx: Any) -> bool:
        return bool(await ctx.state.incr("seen") > 1)  # a string there: StateValueError

    rt, client = await serve([cf.define("counted").if_("again", counted).step("a", str).end_if()])
    await rt.set_workflow_state("counted", "seen", "ada")
    answer = await client.post("/runs", json={"workflow": "counted", "payload": {}})
    assert answer.status_code == 409, answer.text  # the answer of its class, as before
    problem = answer.json()
    assert problem["raised_in"] == "router of task 'if:again' in 'counted'"
    assert problem["detail"].startswith(
        "the workflow's router of task 'if:again' in 'counted' raised"  # (a net's too: h42)
    )
    assert "holds str 'ada', not a number" in problem["detail"]
    assert await rt.list_runs() == []


async def test_a_resume_its_next_node_refuses_leaves_the_pause_open(serve: Serve) -> None:
    rt, client = await serve(flows())
    for flow, raised_in, said in [
        ("then-if", "router of task 'if:big' in 'then-if'", "KeyError: 'amount'"),
        (
            "then-pause",
            "details of the wait of task 'review'",
            "LookupError: no reviewer for this region",
        ),
    ]:
        run_id = (await client.post("/runs", json={"workflow": flow, "payload": {}})).json()[
            "run_id"
        ]
        token = await _paused(client, run_id)
        _refusal(await client.post(f"/resume/{token}", json={"approved": True}), raised_in, said)
        run = await rt.inspect(run_id)
        assert str(run.status) == "waiting"
        assert [(s.id, str(s.status)) for s in run.steps] == [("approve", "waiting")]
        assert await _paused(client, run_id) == token  # the same pause, still open


async def test_a_webhook_start_refused_by_the_flow_keeps_its_message_to_the_log(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    FLAKY.clear()
    rt, client = await serve(flows())
    body = b'{"n": 1}'
    moment = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Signature-256": sign_request(SECRET, "POST", "/hooks/signed", body, at=moment),
    }
    refused = await client.post("/hooks/signed", content=body, headers=headers)
    # a webhook's caller is no operator of the flow: the class, not the message
    _refusal(refused, "router of task 'if:ok' in 'hooked'", "ConnectionError")
    assert "rates service" not in refused.text
    assert "the rates service did not answer" in caplog.text  # the operator's log has it
    assert await rt.list_runs() == []
    # its signature was given back: the same request, sent again, starts the run
    again = await client.post("/hooks/signed", content=body, headers=headers)
    assert again.status_code == 202, again.text
    assert (await rt.wait(again.json()["run_id"], timeout=5)).output == {"n": 1}


async def test_in_python_the_call_raises_the_flows_own_error_with_a_note(serve: Serve) -> None:
    rt, _client = await serve(flows())
    with pytest.raises(KeyError) as raised:
        await rt.trigger("first-if", {})
    assert refused_in(raised.value) == "router of task 'if:big' in 'first-if'"
    assert raised.value.__notes__ == [
        "raised by the router of task 'if:big' in 'first-if': the call was refused and nothing "
        "of it changed"
    ]
    assert await rt.list_runs() == []


def _exploding_activity(ctx: Any) -> None:
    raise RuntimeError("the ledger is locked")


def _exploding_policy(ctx: Any, payload: Any) -> bool:
    raise KeyError("no such reviewer")


def _exploding_callback(ctx: Any, payload: Any) -> None:
    raise ValueError("the mail relay refused it")


def _guarded(name: str, *, activity: bool) -> net.NetSpec:
    item = net.work_item("w").actions(
        start=net.action(),
        complete=net.action(policy=_exploding_policy),
        fail=net.action(callback=_exploding_callback),
    )
    if activity:
        item = item.activities(on_started=_exploding_activity)
    return (
        net.workflow(name)
        .start_condition("start")
        .end_condition("end")
        .task("t", net.task(item))
        .connect_condition("start", "t")
        .connect_task("t", "end")
        .actions(initialize=net.action())
        .build()
    )


async def test_a_net_action_whose_activity_policy_or_callback_raises_names_it(
    serve: Serve,
) -> None:
    # each was the generic 500 of an unhandled exception, after which the server closed the
    # connection (the second hostile client's N1)
    nets = [_guarded("acting", activity=True), _guarded("guarded", activity=False)]
    rt, client = await serve(nets, tokens={"t-ada": cf.Principal(id="ada")})
    ada = {"Authorization": "Bearer t-ada"}

    async def item_of(workflow: str) -> str:
        created = await client.post("/workflows", json={"workflow": workflow}, headers=ada)
        workflow_id = created.json()["workflow_id"]
        listed = await client.get(f"/workflows/{workflow_id}/tasks/t/work-items", headers=ada)
        [item] = listed.json()["work_items"]
        return str(item["id"])

    acting = await item_of("acting")
    started = await client.post(f"/work-items/{acting}/start", headers=ada)
    _refusal(
        started, "on_started of work item 'w' in 'acting'", "RuntimeError: the ledger is locked"
    )
    assert (await rt.work_item(acting)).state == "initialized"  # nothing changed
    assert (await client.get("/healthz")).status_code == 200  # the same connection goes on
    guarded = await item_of("guarded")
    assert (await client.post(f"/work-items/{guarded}/start", headers=ada)).status_code == 200
    completed = await client.post(f"/work-items/{guarded}/complete", headers=ada)
    where = f"work item 'w' ({guarded})"
    _refusal(completed, f"complete policy of {where}", "KeyError: 'no such reviewer'")
    failed = await client.post(f"/work-items/{guarded}/fail", headers=ada)
    _refusal(failed, f"fail callback of {where}", "ValueError: the mail relay refused it")
    assert (await rt.work_item(guarded)).state == "started"

"""``cronflow-actors net ...`` against a real server: a net workflow started, shown, its work
items and a composite task's child driven from the command line (the CLI could start or drive
no net: newcomer h24 F2)."""

from __future__ import annotations

import json

import cronflow_actors as cf
from cronflow_actors import net
from tests.http.conftest import Serve
from tests.http.test_cli_commands import cli

ADA = cf.Principal(id="ada", scopes=frozenset({"claims"}))


def claims() -> net.NetSpec:
    open_to_all = {"start": net.action(), "complete": net.action()}
    sign = net.work_item("sign").actions(**open_to_all)
    signoff = (
        net.workflow("signoff")
        .start_condition("start")
        .end_condition("end")
        .task("sign", net.task(sign))
        .connect_condition("start", "sign")
        .connect_task("sign", "end")
        .actions(initialize=net.action(), cancel=net.action())
    )
    review = net.work_item("review").actions(**open_to_all)
    return (
        net.workflow("claims")
        .start_condition("start")
        .end_condition("end")
        .task("review", net.task(review))
        .composite_task("signoff", net.composite_task(signoff))
        .connect_condition("start", "review")
        .connect_task("review", "signoff")
        .connect_task("signoff", "end")
        .actions(initialize=net.action(policy=net.require_scope("claims")))
        .build()
    )


async def test_a_net_is_started_shown_and_driven_from_the_command_line(serve: Serve) -> None:
    plain = cf.define("plain").step("s", str)
    tokens = {"t-ada": ADA, "t-bob": cf.Principal(id="bob")}
    rt, client = await serve([claims(), plain], tokens=tokens)
    ada = ["--url", str(client.base_url), "--token", "t-ada"]
    # a flow started as a net: the words say there is no such net, and where the flow's door
    # is (they read "this token may not do that": hostile h33 L3)
    code, _, err = await cli("net", "start", "plain", *ada)
    assert code == 3, err  # none to start: as a net sent to the flows' door (console h40 F7)
    assert err.startswith("cronflow-actors: error: no net workflow 'plain' in this runtime ")
    assert "(POST /runs)" in err
    code, _, err = await cli("net", "start", "claims", "--url", str(client.base_url))
    assert code == 2, err  # no token: the server's 401, said as a usage error
    code, _, err = await cli("net", "start", "claims", "--token", "t-bob", *ada[:2])
    assert code == 2, err  # its initialize action's policy refuses bob: a token's refusal
    assert "require_scope('claims') denied it" in err
    code, out, err = await cli("net", "start", "claims", "--payload", '{"amount": 5}', *ada)
    assert code == 0, err
    workflow_id = out.strip()
    code, shown, err = await cli("flows", *ada)  # what a caller may do to its items (h33 F11)
    assert "  work items of review: " in shown, shown
    once = ("net", "start", "claims", "--instance-id", "claim-7", *ada)
    code, out, err = await cli(*once)
    assert (code, out.strip()) == (0, "claim-7"), err
    code, out, err = await cli(*once)  # a retry starts nothing
    assert (code, out) == (3, ""), err
    assert "claim-7" in err
    code, out, err = await cli("net", "show", workflow_id, *ada)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{workflow_id}  claims v1  initialized"  # (until a task starts)
    assert "  review  enabled" in lines
    [item_line] = [line for line in lines if line.startswith("    work item ")]
    item_id = item_line.split()[2]
    for action, state in (("start", "started"), ("complete", "completed")):
        code, out, err = await cli("net", "item", action, item_id, *ada)
        assert (code, out.strip()) == (0, f"work item {item_id}: {state}"), err
    code, out, err = await cli("net", "show", workflow_id, "--json", *ada)
    assert code == 0, err
    [child] = json.loads(out)["children"]["signoff"]
    # its only child canceled before it started: another one, from the command line too
    await rt.cancel_workflow(child["id"])
    code, out, err = await cli("net", "add-child", workflow_id, "signoff", *ada)
    assert code == 0, err
    second = out.strip()
    code, out, err = await cli("net", "show", second, *ada)
    assert code == 0, err
    sign_id = next(line.split()[2] for line in out.splitlines() if "work item" in line)
    for action in ("start", "complete"):
        code, _, err = await cli("net", "item", action, sign_id, *ada)
        assert code == 0, err
    await rt.wait_idle()
    code, out, err = await cli("net", "show", workflow_id, *ada)
    assert out.splitlines()[0] == f"{workflow_id}  claims v1  completed", out
    code, _, err = await cli("net", "item", "complete", sign_id, *ada)
    assert code == 3, err  # ended: the server's 409
    code, _, err = await cli("net", "add-item", workflow_id, "signoff", *ada)
    assert code != 0
    assert "composite task" in err

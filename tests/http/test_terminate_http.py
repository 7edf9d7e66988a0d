"""``POST /runs/{id}/cancel`` with ``{"terminate": true}`` and ``cronflow-actors cancel
--terminate``: a run whose teardown code raises, which refuses a plain cancel, ends without
running its code (h42 net F7)."""

from __future__ import annotations

import cronflow_actors as cf
from cronflow_actors import net
from tests.engine.test_terminate import CALLED, teardown_raises
from tests.http.conftest import Serve
from tests.http.test_cli_commands import cli

OPS = {"Authorization": "Bearer t-ops-5d1e"}


async def test_a_run_whose_teardown_raises_is_terminated_over_http_and_the_cli(
    serve: Serve,
) -> None:
    tokens = {"t-ops-5d1e": cf.Principal(id="ops")}
    rt, client = await serve([teardown_raises(net.action())], tokens=tokens)
    first, second = [await rt.start_workflow("rt") for _ in range(2)]
    for wid in (first, second):
        [item] = await rt.work_items(wid, "A")
        await rt.start_work_item(item.id)
    refused = await client.post(f"/runs/{first}/cancel", json={"reason": "stuck"}, headers=OPS)
    assert refused.status_code == 500, refused.text  # its code raised: said, nothing changed
    # and the way out is said (its 500 said only "mend the workflow": console h43 F4)
    assert 'send the cancel again with {"terminate": true}' in refused.json()["detail"]
    assert await rt.workflow_state(first) == "started"
    env = {"CRONFLOW_TOKEN": "t-ops-5d1e"}
    code, _, err = await cli("cancel", first, "--url", str(client.base_url), env=env)
    assert code == 6
    assert f"cronflow-actors cancel {first} --terminate" in err
    CALLED.clear()
    ended = await client.post(
        f"/runs/{first}/cancel", json={"reason": "stuck", "terminate": True}, headers=OPS
    )
    assert ended.status_code == 200, ended.text
    assert (await rt.workflow_state(first), CALLED) == ("canceled", [])
    bad = await client.post(f"/runs/{second}/cancel", json={"terminate": "yes"}, headers=OPS)
    assert bad.status_code == 400, bad.text  # (a bool, as the document says)
    code, out, err = await cli(
        "cancel", second, "--terminate", "--url", str(client.base_url), env=env
    )
    assert (code, out.strip()) == (0, f"canceled run {second}"), err
    assert (await rt.workflow_state(second), CALLED) == ("canceled", [])

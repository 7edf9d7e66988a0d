"""What ``run`` and ``inspect`` say of a run that waits: ``run`` said nothing while its run
waited for an event or for a place in its flow's queue (newcomer h36 F5), and ``inspect``
named one of a run's several pauses (F6)."""

from __future__ import annotations

import cronflow_actors as cf
from tests.http.conftest import Serve
from tests.http.test_cli_commands import cli, flows


async def test_inspect_of_a_run_paused_at_several_says_where_all_are_listed(
    serve: Serve,
) -> None:
    """A flow per item, each paused: inspect named one of three pauses (newcomer h36 F6)."""
    fanned = cf.define("fanned").for_each(
        "each", lambda ctx: [1, 2, 3], lambda item, flow: flow.human_in_the_loop("ok")
    )
    rt, client = await serve([*flows(), fanned])
    url = str(client.base_url)
    run_id = await rt.trigger("fanned")
    one = await rt.trigger("pause")
    await rt.wait_idle()
    code, out, err = await cli("inspect", run_id, "--url", url)
    assert code == 0, err
    assert f"it waits at more pauses: cronflow-actors paused --run {run_id} --url {url}" in out
    code, out, err = await cli("inspect", one, "--url", url)
    assert code == 0, err
    assert "more pause" not in out


async def test_run_says_what_its_run_waits_for(serve: Serve) -> None:
    """It said nothing while its run waited for an event, or for a place in its flow's queue
    (newcomer h36 F5)."""
    held = cf.define("held", concurrency=1).human_in_the_loop("ok")
    awaits = cf.define("awaits").wait_for_event("w", "lab.qc_passed")
    rt, client = await serve([*flows(), held, awaits])
    url = str(client.base_url)
    code, _, err = await cli("run", "awaits", "--url", url, "--timeout", "2")
    assert code == 5, err
    said = "waits for the event 'lab.qc_passed' (cronflow-actors events publish lab.qc_passed "
    assert said + f"--url {url}); this command waits on for its end" in err
    assert err.count("waits for the event") == 1  # once
    await rt.trigger("held")  # (it takes the flow's one place)
    await rt.wait_idle()
    code, _, err = await cli("run", "held", "--url", url, "--timeout", "2")
    assert code == 5, err
    assert "waits for a place in its flow's queue (its concurrency limit)" in err

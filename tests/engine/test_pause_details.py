"""What a net pause's ``details(ctx)`` returns is what every listing of pauses reads: a string
returned was stored as it was, and each ``list_paused``, ``GET /paused`` and ``inspect`` then
failed while that pause stayed open, for every caller (newcomer h36 F1)."""

from __future__ import annotations

from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.net.spec import pause_details
from tests.engine.helpers import build


def signing(details: Any) -> net.NetSpec:
    wait = net.WaitSpec(kind="pause", details=lambda ctx: details)
    sign = net.work_item("sign", wait=wait).actions(start=net.action())
    return build("signing", {"sign": net.task(sign)}, [("start", "sign"), ("sign", "end")])


async def test_a_string_is_the_pauses_description(rt: cf.Runtime) -> None:
    rt.register(signing("sign the report"))
    rt.register(cf.define("other").human_in_the_loop("ok", description="unrelated"))
    await rt.trigger("other")
    workflow_id = await rt.start_workflow("signing")
    [item] = await rt.work_items(workflow_id, "sign")
    await rt.start_work_item(item.id)
    listed = {pause.step: pause.description for pause in await rt.list_paused()}
    assert listed == {"ok": "unrelated", "sign": "sign the report"}
    assert (await rt.get_run_pause(workflow_id)).description == "sign the report"
    assert (await rt.inspect(workflow_id)).status == "waiting"


@pytest.mark.parametrize(
    ("details", "said"),
    [(42, "returned int"), ({"description": 7}, "gave 'description' as int")],
)
async def test_details_of_another_shape_refuse_the_start_in_words(
    rt: cf.Runtime, details: Any, said: str
) -> None:
    rt.register(signing(details))
    workflow_id = await rt.start_workflow("signing")
    [item] = await rt.work_items(workflow_id, "sign")
    with pytest.raises(Exception, match=f"wait of task 'sign' in 'signing''s details {said}"):
        await rt.start_work_item(item.id)
    assert (await rt.work_item(item.id)).state == "initialized"  # nothing of it kept
    assert await rt.list_paused() == []


def test_details_stored_before_they_were_checked_are_read_as_far_as_they_fit() -> None:
    assert pause_details("sign it", lenient=True) == {"description": "sign it"}
    assert pause_details(["a", "list"], lenient=True) == {}
    kept = pause_details({"description": 7, "metadata": {"k": 1}}, lenient=True)
    assert kept == {"metadata": {"k": 1}}


async def test_a_pauses_timeout_takes_a_duration_as_every_other_does(rt: cf.Runtime) -> None:
    """``timeout="1d"`` was taken, then every start of the item was a TypeError (a 500 blaming
    the pause's details over HTTP): the item could never start (newcomer h38 F2). A duration
    is read as the flows' are; what is no duration is refused where the wait is made."""
    wait = net.WaitSpec(kind="pause", details=lambda ctx: "sign", timeout="1d")
    assert wait.timeout == 86_400.0
    sign = net.work_item("sign", wait=wait).actions(start=net.action())
    rt.register(build("daily", {"sign": net.task(sign)}, [("start", "sign"), ("sign", "end")]))
    workflow_id = await rt.start_workflow("daily")
    [item] = await rt.work_items(workflow_id, "sign")
    await rt.start_work_item(item.id)
    [pause] = await rt.list_paused()
    assert pause.expires_at is not None
    assert pause.paused_at is not None
    assert pause.expires_at - pause.paused_at == pytest.approx(86_400.0)
    for wrong, said in (("1 day", "a string like '100ms'"), (-5, "must not be negative")):
        with pytest.raises(ValueError, match=f"the pause wait's timeout .*{said}"):
            net.WaitSpec(kind="pause", timeout=wrong)

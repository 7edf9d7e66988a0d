"""Whether a run is a flow's or a net instance, one answer for the run views, the cancel and
the resume (``runtime/flow_runs.py``): a net's caller shapes its payload as it likes."""

from __future__ import annotations

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import InternalOnlyActionError, InvalidWorkflowError


def charge(ctx: object) -> None:
    raise ValueError("card declined")


def charges() -> net.NetSpec:
    """One task whose work item starts on its own and raises."""
    item = net.work_item("charge", handler=charge).activities(
        on_initialized=lambda ctx: ctx.work_item.start()
    )
    task = net.task(item).activities(on_enabled=lambda ctx: ctx.work_item.initialize())
    builder = net.workflow("charges").start_condition("start").end_condition("end")
    builder.task("charge", task).connect_condition("start", "charge")
    return builder.connect_task("charge", "end").build()


async def test_a_net_run_whose_payload_looks_like_a_trigger_keeps_the_engine_s_error(
    rt: cf.Runtime,
) -> None:
    rt.register(charges())
    trigger_shaped = {"payload": {"order": 7}, "headers": {}, "kind": "manual"}
    run = await rt.start_workflow("charges", payload=trigger_shaped)
    await rt.wait_idle()
    info = await rt.inspect(run)
    assert info.status == "failed"
    assert info.payload == trigger_shaped  # as its caller gave it, not a flow's trigger opened
    # as the net engine wrote it, not in a flow's steps' words ("step 'charge': ...")
    assert info.error is not None
    assert info.error.startswith("task 'charge': work item ")
    assert info.error.endswith("ValueError: card declined")


async def test_a_flow_and_a_net_cannot_share_a_name(rt: cf.Runtime) -> None:
    """A net registered under a flow's name (its v2, say) was taken for the flow: its pauses
    resumed and its instances canceled past its policies, and ``/nets`` did not list it
    (hostile h29 H2). Either order is refused, nothing registered; a flow's next version is
    not."""
    rt.register(cf.define("same").step("s", lambda ctx: 1))
    renamed = charges()
    as_the_flow = msgspec.structs.replace(renamed, name="same", version="v2")
    with pytest.raises(InvalidWorkflowError, match="a flow is registered under this name"):
        rt.register(as_the_flow)
    assert rt.registry.versions("same") == ["v1"]
    rt.register(renamed)
    with pytest.raises(InvalidWorkflowError, match="a net workflow is registered under this id"):
        rt.register(cf.define("charges", version="v2").step("s", lambda ctx: 1))
    assert rt.registry.versions("charges") == ["v1"]
    assert [f.id for f in rt.get_workflows()] == ["same"]
    assert [n.name for n in rt.get_nets()] == ["charges"]
    rt.register(cf.define("same", version="v2").step("s", lambda ctx: 2))
    assert rt.registry.versions("same") == ["v1", "v2"]


async def test_a_flow_s_step_called_as_a_net_s_work_item_names_the_flow_s_doors(
    rt: cf.Runtime,
) -> None:
    """An outside caller's action on a flow step's work item was told to declare it with
    ``net.action``, which no flow's step can (hostile h29 L2): it is told the flow's doors."""
    rt.register(cf.define("approvals").human_in_the_loop("approve", timeout="1h"))
    run = await rt.trigger("approvals", {})
    await rt.wait_idle()
    [item] = await rt.work_items(run, "approve")
    with pytest.raises(InternalOnlyActionError, match="is a Cronflow-style flow") as told:
        await rt.complete_work_item(item.id, {}, principal=cf.Principal(id="x"))
    assert f"POST /runs/{run}/cancel" in str(told.value)
    assert "net.action" not in str(told.value)
    assert (await rt.inspect(run)).status == "waiting"  # nothing changed


async def test_a_nets_instances_keep_its_policies_when_a_flow_takes_its_name(
    tmp_path: object,
) -> None:
    """A release that replaced a net by a flow of the same name took the net's instances left
    in the database for the flow's runs, which any writer may cancel, past the net's cancel
    policy (hostile h30 H1); the reverse, a flow's runs under a net of its name, were taken for
    the net's instances, which no caller could cancel. The instance's own mark says which."""
    import os

    refuse = net.action(policy=net.require_scope("never"))
    item = net.work_item("review")
    builder = net.workflow("same", version="v1").start_condition("s").end_condition("e")
    builder.task("t", net.task(item)).connect_condition("s", "t").connect_task("t", "e")
    old_net = builder.actions(initialize=net.action(), cancel=refuse).build()
    flow = cf.define("same", version="v2").human_in_the_loop("p").step("a", lambda ctx: 1)
    db = os.path.join(str(tmp_path), "same.db")
    bob = cf.Principal(id="bob", scopes=frozenset())
    async with cf.Runtime(db=db, workflows=[old_net]) as rt:
        instance = await rt.start_workflow("same")
    async with cf.Runtime(db=db, workflows=[flow]) as rt:
        with pytest.raises(cf.errors.CronflowError):
            await rt.cancel(instance, principal=bob)
        assert await rt.workflow_state(instance) == "initialized"  # nothing changed
        assert (await rt.inspect(instance)).error is None

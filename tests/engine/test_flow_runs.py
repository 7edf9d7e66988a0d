"""Whether a run is a flow's or a net instance, one answer for the run views, the cancel and
the resume (``runtime/flow_runs.py``): a net's caller shapes its payload as it likes."""

from __future__ import annotations

import cronflow_actors as cf
from cronflow_actors import net


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

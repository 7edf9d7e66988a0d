"""Several versions of a Cronflow-style flow side by side: runs of an old version go on on it,
new runs (by hand, by event, by schedule) take the last version registered that is not
deprecated, whose triggers are the ones served; the flow describes every version."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors.cli.render import render_run
from cronflow_actors.errors import (
    InstanceBlockedError,
    InvalidWorkflowError,
    WorkflowDeprecatedError,
)
from cronflow_actors.kernel import ManualClock
from cronflow_actors.net.fingerprint import fingerprint


def order(version: str, **triggers: Any) -> cf.Flow:
    """Version ``v1`` approves, then ships; ``v2`` checks stock in between."""
    flow = cf.define("order", version=version, description=f"orders, {version}")
    if "event" in triggers:
        flow = flow.on_event(triggers["event"])
    if "cron" in triggers:
        flow = flow.on_schedule(triggers["cron"])
    if "webhook" in triggers:
        flow = flow.on_webhook(triggers["webhook"])
    flow = flow.human_in_the_loop("approve", description="ok?")
    if version != "v1":
        flow = flow.step("stock", lambda ctx: "in stock")
    return flow.step("ship", lambda ctx: f"shipped by {version}")


async def test_a_run_of_an_old_version_goes_on_on_it_and_new_runs_take_the_newest(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "versions.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v1")]) as rt:
        old = await rt.trigger("order")
        await rt.wait_idle()
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v1"), order("v2")]) as rt:
        new = await rt.trigger("order")
        await rt.wait_idle()
        assert (await rt.inspect(old)).version == "v1"
        assert (await rt.inspect(new)).version == "v2"
        for paused in await rt.list_paused():
            await rt.resume(paused.token, {"approved": True})
        assert (await rt.wait(old, timeout=5)).output == "shipped by v1"
        assert (await rt.wait(new, timeout=5)).output == "shipped by v2"
        assert [s.id for s in (await rt.inspect(old)).steps] == ["approve", "ship"]
        assert [s.id for s in (await rt.inspect(new)).steps] == ["approve", "stock", "ship"]


async def test_a_run_whose_version_is_no_longer_registered_says_so_and_what_to_do(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    # v1 bumped to v2, then v2 to v3: the run left on v2 waited with no word at the start, and
    # `paused`/`inspect` offered a resume that failed with a 404 and Python's advice (newcomer
    # h22 M1)
    db = tmp_path / "versions.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v2")]) as rt:
        left = await rt.trigger("order")
        await rt.wait_idle()
    caplog.set_level(logging.WARNING, logger="cronflow_actors")
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v3")]) as rt:
        warned = [r.getMessage() for r in caplog.records if "not registered here" in r.message]
        assert warned == [  # each run named (newcomer h25 F8: none was, and no list finds them)
            f"1 unfinished run(s) of order are on version 'v2', which is not registered here "
            f"({left}): nothing runs them until that version is registered again beside the "
            "others (a net's migration needs it registered too), or each is migrated to one "
            "that is (a flow's run: cronflow-actors migrate RUN --to VERSION) or canceled"
        ]
        why = (
            f"run {left!r} is on version 'v2' of 'order', which is not registered here "
            "(registered: v3): nothing runs it until that version is registered again beside "
            "the others, or it is migrated to one that is (a flow's run: cronflow-actors "
            f"migrate {left} --to v3; a net's, once its version is registered again beside the "
            "new one with their migration), or canceled"
        )
        run = await rt.inspect(left)
        assert (run.status, run.version, run.blocked) == ("waiting", "v2", why)
        [paused] = await rt.list_paused()
        assert paused.blocked == why
        with pytest.raises(InstanceBlockedError) as refused:
            await rt.resume(paused.token, {"approved": True})
        assert f"cannot resume run {left}'s pause at step 'approve': run {left!r}" in str(
            refused.value
        )
        assert "rt.register" not in str(refused.value)
        assert (await rt.get_paused(paused.token)).token == paused.token  # still open
        shown = render_run(msgspec.to_builtins(run), msgspec.to_builtins(paused))
        assert shown.splitlines()[0] == f"run {left}  order v2  waiting"
        assert "cronflow-actors resume" not in shown  # it would be refused
        new = await rt.trigger("order")
        await rt.wait_idle()
        assert (await rt.inspect(new)).blocked is None
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v2"), order("v3")]) as rt:
        assert (await rt.inspect(left)).blocked is None  # registered again: it runs on
        await rt.resume(paused.token, {"approved": True})
        assert (await rt.wait(left, timeout=5)).output == "shipped by v2"


async def test_runs_of_a_flow_no_longer_registered_at_all_are_said_at_the_start(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """They waited with no word (retest h43 N2)."""
    db = tmp_path / "gone.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v1")]) as rt:
        for _ in range(2):
            await rt.trigger("order")
        await rt.wait_idle()
    caplog.set_level(logging.WARNING, logger="cronflow_actors")
    other = cf.define("other").step("a", lambda ctx: 1)
    async with cf.Runtime(db=db, clock=clock, workflows=[other]):
        said = [r.getMessage() for r in caplog.records if "not registered here" in r.message]
    assert said == [
        "2 unfinished run(s) of workflow 'order', which is not registered here: nothing runs "
        "them until it is registered again (a process that registers it runs them), or each "
        "is canceled ('cronflow-actors runs --workflow order' lists them)"
    ]


def unregistered(rt: cf.Runtime) -> float | None:
    # (the version is in the start's warning, and in inspect's answer)
    return rt.metrics.registry.get_sample_value("cronflow_runs_unregistered", {"workflow": "order"})


async def test_runs_on_a_version_not_registered_are_counted_until_they_can_run_or_end(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Runs nothing runs read on the dashboards as healthy running and waiting runs, and only
    the start's warning said otherwise (metrics h43 F2): a gauge counts them."""
    db = tmp_path / "versions.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v2")]) as rt:
        left = [await rt.trigger("order") for _ in range(3)]
        await rt.wait_idle()
        assert unregistered(rt) == 0
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v3")]) as rt:
        assert unregistered(rt) == 3
        await rt.cancel(left[0])  # an operator's cancel ends it offline
        assert unregistered(rt) == 2
        rt.register(order("v2"))  # registered again beside v3: they run on
        await rt.wait_idle()
        assert unregistered(rt) == 0
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v2"), order("v3")]) as rt:
        assert unregistered(rt) == 0


async def test_a_deprecated_version_takes_no_new_runs(rt: cf.Runtime) -> None:
    rt.register(order("v1"))
    rt.register(order("v2"), deprecated=True)
    first = await rt.trigger("order")
    await rt.wait_idle()
    assert (await rt.inspect(first)).version == "v1"  # v2 is deprecated on register
    rt.register(order("v3"))
    rt.deprecate("order", "v3")
    assert (await rt.inspect(await rt.trigger("order"))).version == "v1"
    rt.deprecate("order", "v1")
    with pytest.raises(WorkflowDeprecatedError):
        await rt.trigger("order")


async def test_the_flow_describes_every_version(rt: cf.Runtime) -> None:
    rt.register(order("v1"))
    rt.register(order("v2"))
    rt.register(order("v3"), deprecated=True)
    [described] = rt.get_workflows()
    assert rt.get_workflow("order") == described
    assert (described.version, described.description) == ("v2", "orders, v2")
    shown = [(v.version, v.deprecated, v.current) for v in described.versions]
    assert shown == [("v1", False, False), ("v2", False, True), ("v3", True, False)]
    assert described.versions[0].fingerprint == fingerprint(order("v1").compile().spec)
    assert described.versions[0].fingerprint != described.versions[1].fingerprint


async def test_events_and_schedules_start_the_current_version(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    clock.set(1_800_000_005.0)
    rt.register(order("v1", event="ordered", cron="*/10 * * * * *"))
    rt.register(order("v2", event="ordered", cron="*/10 * * * * *"))
    await rt.wait_idle()
    [started] = await rt.publish_event("ordered", {"n": 1})
    assert (await rt.inspect(started)).version == "v2"
    clock.advance(10)
    await rt.wait_idle()
    assert rt.schedules.fired == 1
    runs = await rt.list_runs(workflow="order")
    assert {run.version for run in runs} == {"v2"}
    assert len(runs) == 2


async def test_two_versions_declaring_one_webhook_do_not_clash(rt: cf.Runtime) -> None:
    rt.register(order("v1", webhook="/webhooks/orders"))
    rt.register(order("v2", webhook="/webhooks/orders"))  # the same flow: not a clash
    [(flow_id, hook)] = rt.catalog.webhooks()
    assert (flow_id, hook.path) == ("order", "/webhooks/orders")
    other = cf.define("other").on_webhook("/webhooks/orders").step("s", lambda ctx: None)
    with pytest.raises(InvalidWorkflowError, match="already takes"):
        rt.register(other)


async def test_only_the_current_versions_triggers_are_served(rt: cf.Runtime) -> None:
    rt.register(order("v1", webhook="/webhooks/old", event="old"))
    rt.register(order("v2"))
    assert rt.catalog.webhooks() == []
    assert rt.catalog.listening("old") == []
    rt.deprecate("order", "v2")  # v1 is current again: its triggers with it
    assert [hook.path for _, hook in rt.catalog.webhooks()] == ["/webhooks/old"]

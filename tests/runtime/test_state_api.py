"""The state API of the runtime: global and per-flow state on the store ``ctx.state`` uses, with
TTLs, statistics and cleanup; and ``emit`` and ``get_paused``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import (
    ConfigurationError,
    NotFoundError,
    ResumeError,
    RuntimeNotRunningError,
    StateValueError,
)
from cronflow_actors.kernel import ManualClock


async def counting(ctx: Any) -> dict[str, Any]:
    seen = await ctx.state.get("limit")
    runs = await ctx.state.incr("runs")
    return {"limit": seen, "runs": runs}


async def test_workflow_state_set_by_the_api_is_what_runs_see_and_the_other_way_round(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "state.db"
    flow = cf.define("metered").step("count", counting)
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as rt:
        await rt.set_workflow_state("metered", "limit", {"per_day": 100})
        output = (await rt.wait(await rt.trigger("metered"))).output
        assert output == {"limit": {"per_day": 100}, "runs": 1}
        assert await rt.get_workflow_state("metered", "runs") == 1  # written by the run
        assert await rt.incr_workflow_state("metered", "runs", 10) == 11
        assert (await rt.wait(await rt.trigger("metered"))).output["runs"] == 12
        await rt.set_global_state("maintenance", True)
        assert await rt.get_workflow_state("metered", "maintenance", "absent") == "absent"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as again:  # durable
        assert await again.get_global_state("maintenance") is True
        assert await again.get_workflow_state("metered", "runs") == 12
        assert await again.delete_workflow_state("metered", "runs") is True
        assert await again.delete_workflow_state("metered", "runs") is False
        assert await again.get_workflow_state("metered", "runs") is None


async def test_keys_expire_after_their_ttl_and_are_counted_until_cleaned_up(
    tmp_path: Path, clock: ManualClock
) -> None:
    flow = cf.define("metered").step("count", counting)
    # no retention: its pruning (every hour of this clock) also deletes expired keys, and the
    # hour the clock jumps below would wake it to race the counts this test reads
    db = tmp_path / "ttl.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow], retention=None) as rt:
        await rt.set_global_state("session", "abc", ttl="1h")
        assert await rt.incr_global_state("hits", ttl=30) == 1
        assert await rt.incr_global_state("hits", 2) == 3  # keeps its expiry
        await rt.set_global_state("forever", [1, 2])
        await rt.set_workflow_state("metered", "limit", 5, ttl="1w")
        stats = await rt.state_stats()
        assert (stats.total_keys, stats.expired_keys, stats.global_keys) == (4, 0, 3)
        assert stats.workflow_keys == {"metered": 1}
        clock.advance(30)
        assert await rt.get_global_state("hits", 0) == 0  # expired: absent at once
        assert await rt.incr_global_state("hits") == 1  # an expired counter starts again
        clock.advance(3600)
        assert await rt.get_global_state("session") is None
        stats = await rt.state_stats()
        assert (stats.total_keys, stats.expired_keys) == (4, 1)  # the session
        assert await rt.cleanup_expired_state() == 1
        stats = await rt.state_stats()
        assert (stats.total_keys, stats.expired_keys, stats.global_keys) == (3, 0, 2)
        assert await rt.get_global_state("forever") == [1, 2]
        assert await rt.get_workflow_state("metered", "limit") == 5


async def test_bad_state_calls_are_refused_and_change_nothing(rt: cf.Runtime) -> None:
    rt.register(cf.define("metered").step("count", counting))
    with pytest.raises(NotFoundError, match="registered flows: \\['metered'\\]"):
        await rt.set_workflow_state("metred", "limit", 1)
    with pytest.raises(ConfigurationError, match="'key'"):
        await rt.set_global_state("", 1)
    with pytest.raises(ConfigurationError, match="a value the store can keep"):
        await rt.set_global_state("handler", object())
    with pytest.raises(ConfigurationError, match="'ttl'"):
        await rt.set_global_state("soon", 1, ttl="soon")
    with pytest.raises(ConfigurationError, match="'ttl'"):
        await rt.set_global_state("now", 1, ttl=0)
    await rt.set_global_state("name", "ada")
    with pytest.raises(StateValueError, match="not a number"):
        await rt.incr_global_state("name")
    assert await rt.get_global_state("name") == "ada"
    stats = await rt.state_stats()
    assert (stats.total_keys, stats.workflow_keys) == (1, {})


async def test_the_state_api_needs_a_running_runtime(tmp_path: Path) -> None:
    rt = cf.Runtime(db=tmp_path / "idle.db")
    with pytest.raises(RuntimeNotRunningError):
        await rt.get_global_state("x")


async def test_a_runtime_not_running_says_what_to_do_for_the_state_it_is_in(
    tmp_path: Path,
) -> None:
    flow = cf.define("noop").step("s", lambda ctx: ctx.payload)
    rt = cf.Runtime(db=tmp_path / "life.db", workflows=[flow], max_active_runs=4)
    with pytest.raises(RuntimeNotRunningError, match="is new; start it first: 'async with"):
        await rt.trigger("noop", 1)
    async with rt:
        with pytest.raises(RuntimeNotRunningError, match="is running; it is started already"):
            await rt.start()
        assert (await rt.wait(await rt.trigger("noop", 1))).output == 1
        rt.stop_admitting()  # what serve's drain does first: new starts are refused
        with pytest.raises(RuntimeNotRunningError, match="is stopping; it is shutting down") as e:
            await rt.trigger("noop", 2)
        assert "instance_id is safe to repeat" in str(e.value)
        assert "async with" not in str(e.value)
    with pytest.raises(RuntimeNotRunningError, match="is stopped; a runtime runs once") as e:
        await rt.trigger("noop", 3)
    with pytest.raises(RuntimeNotRunningError, match="is stopped; a runtime runs once"):
        await rt.start()
    assert (e.value.operation, e.value.state) == ("start a run", "stopped")
    # a state told in words carries its own advice: nothing generic is added to it
    worded = RuntimeNotRunningError("reach instance r1", "process p1 stopped; try again")
    assert str(worded) == "cannot reach instance r1: the runtime is process p1 stopped; try again"


async def test_emit_is_publish_event(rt: cf.Runtime) -> None:
    rt.register(cf.define("signup").on_event("user.signup").step("s", lambda ctx: ctx.payload))
    [run_id] = await rt.emit("user.signup", {"user": "ada"})
    assert (await rt.wait(run_id)).output["user"] == "ada"


async def test_get_paused_finds_one_pause_by_its_token(rt: cf.Runtime) -> None:
    rt.register(
        cf.define("approval")
        .step("quote", lambda ctx: {"amount": 900})
        .human_in_the_loop("approve", description="approve a big order", metadata={"team": "x"})
        .step("ship", lambda ctx: ctx.last["approved"])
    )
    run_id = await rt.trigger("approval")
    await rt.wait_idle()
    [listed] = await rt.list_paused()
    paused = await rt.get_paused(listed.token)
    assert paused == listed
    assert (paused.run_id, paused.step) == (run_id, "approve")
    assert paused.description == "approve a big order"
    assert (paused.metadata, paused.last) == ({"team": "x"}, {"amount": 900})
    await rt.resume(listed.token, {"approved": True})
    assert (await rt.wait(run_id)).output is True
    with pytest.raises(ResumeError) as ended:
        await rt.get_paused(listed.token)
    assert ended.value.ended
    with pytest.raises(ResumeError, match="no run is paused with this token") as unknown:
        await rt.get_paused("no-such-token")
    assert not unknown.value.ended
    # where the current tokens are: a reset's new one read as a typo (conform h33 F4)
    assert "is no longer its: list_paused, GET /paused or `cronflow-actors paused`" in str(
        unknown.value
    )

"""The runtime's metrics agree with what happened: runs, steps, waits, retries, actions, commits,
schedules, and the gauges sampled from the store and the loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.kernel import ActorSystem, ManualClock
from cronflow_actors.messages.engine import WorkItemRerun, WorkItemStateChanged
from cronflow_actors.messages.states import WorkItemState
from cronflow_actors.runtime.telemetry import LoopLagProbe, Telemetry
from tests.engine.helpers import build


def value(rt: cf.Runtime, name: str, **labels: str) -> float | None:
    return rt.metrics.registry.get_sample_value(name, labels)


async def settle(rt: cf.Runtime, clock: ManualClock, seconds: float = 0) -> None:
    if seconds:
        clock.advance(seconds)
    await rt.wait_idle()


async def test_waits_have_their_own_histogram_and_stay_out_of_step_durations(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    flow = (
        cf.define("approve")
        .step("a", lambda ctx: 1)
        .human_in_the_loop("ok", description="approve it")
        .sleep("nap", "5s")
        .step("b", lambda ctx: 2)
    )
    rt.register(flow)
    run_id = await rt.trigger("approve")
    await settle(rt, clock)
    [pause] = await rt.list_paused()
    await settle(rt, clock, 58)  # a person takes 58 s
    await rt.resume(pause.token, {"approved": True})
    await settle(rt, clock)
    await settle(rt, clock, 5)
    assert (await rt.wait(run_id)).status == "completed"
    wait = "cronflow_wait_duration_seconds"
    assert value(rt, f"{wait}_count", workflow="approve", kind="human") == 1
    assert value(rt, f"{wait}_sum", workflow="approve", kind="human") == 58
    assert value(rt, f"{wait}_sum", workflow="approve", kind="sleep") == 5
    finished = "cronflow_waits_finished_total"
    assert value(rt, finished, workflow="approve", kind="human", outcome="completed") == 1
    assert value(rt, finished, workflow="approve", kind="sleep", outcome="completed") == 1
    step = "cronflow_step_duration_seconds_count"
    assert value(rt, step, workflow="approve", kind="step") == 2
    for kind in ("human", "sleep"):
        assert value(rt, step, workflow="approve", kind=kind) is None
    steps = "cronflow_steps_finished_total"
    assert value(rt, steps, workflow="approve", kind="step", outcome="completed") == 2
    assert value(rt, steps, workflow="approve", kind="human", outcome="completed") is None


async def test_a_wait_its_deadline_ended_counts_timed_out_not_completed_or_failed(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """(newcomer h32 F6) A dashboard tells approvals people gave from those nobody gave: a
    human step that timed out (its output an answer, ``approved: false``) and an event wait
    that timed out (the step failed) count ``timed_out``; one a person answered, completed."""
    flow = (
        cf.define("claims")
        .human_in_the_loop("ok", description="approve it", timeout="60s")
        .wait_for_event("docs", "claim.docs", timeout="30s")
    )
    rt.register(flow)
    finished = "cronflow_waits_finished_total"
    for kind in ("human", "event"):  # there before the first: a rate sees the first one
        assert value(rt, finished, workflow="claims", kind=kind, outcome="timed_out") == 0
    timed, answered = await rt.trigger("claims"), await rt.trigger("claims")
    await settle(rt, clock)
    by_run = {pause.run_id: pause.token for pause in await rt.list_paused()}
    await rt.resume(by_run[answered], {"approved": True})
    await settle(rt, clock, 61)  # the other's approval times out; the answered one's event waits
    await settle(rt, clock, 31)  # both event waits time out
    assert (await rt.wait(timed)).status == "failed"
    assert (await rt.wait(answered)).status == "failed"
    assert value(rt, finished, workflow="claims", kind="human", outcome="timed_out") == 1
    assert value(rt, finished, workflow="claims", kind="human", outcome="completed") == 1
    assert value(rt, finished, workflow="claims", kind="event", outcome="timed_out") == 2
    assert value(rt, finished, workflow="claims", kind="event", outcome="failed") == 0
    assert value(rt, finished, workflow="claims", kind="sleep", outcome="timed_out") is None


async def test_runs_steps_and_retries_are_counted_as_they_happened(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    tries = {"n": 0}

    def flaky(ctx: Any) -> str:
        tries["n"] += 1
        if tries["n"] < 3:
            raise ConnectionError("try again")
        return "ok"

    def broken(ctx: Any) -> None:
        raise ValueError("bad")

    rt.register(cf.define("flaky").step("f", flaky, retry=cf.Retry(attempts=3, delay="1s")))
    rt.register(cf.define("broken").step("a", lambda ctx: 1).step("b", broken))
    rt.register(cf.define("answered").step("b", broken).on_error(lambda ctx: "fallback"))

    def raises(ctx: Any) -> None:
        raise RuntimeError("the fallback fails too")

    grouped = cf.define("grouped").parallel("p", [lambda ctx: 1, broken])
    rt.register(grouped.on_error(lambda ctx: "group fallback"))
    rt.register(cf.define("unanswered").parallel("p", [broken]).on_error(raises))
    flaky_run = await rt.trigger("flaky")
    broken_runs = [await rt.trigger("broken") for _ in range(2)]
    answered = await rt.trigger("answered")
    await settle(rt, clock)
    await settle(rt, clock, 1)
    await settle(rt, clock, 2)
    assert (await rt.wait(flaky_run)).status == "completed"
    for run_id in broken_runs:
        assert (await rt.wait(run_id)).status == "failed"
    assert value(rt, "cronflow_runs_started_total", workflow="flaky", trigger="manual") == 1
    assert value(rt, "cronflow_runs_started_total", workflow="broken", trigger="manual") == 2
    assert value(rt, "cronflow_runs_finished_total", workflow="flaky", outcome="completed") == 1
    assert value(rt, "cronflow_runs_finished_total", workflow="broken", outcome="failed") == 2
    assert value(rt, "cronflow_run_duration_seconds_count", workflow="broken") == 2
    assert value(rt, "cronflow_step_retries_total", workflow="flaky") == 2
    steps = "cronflow_steps_finished_total"
    assert value(rt, steps, workflow="flaky", kind="step", outcome="completed") == 1
    assert value(rt, steps, workflow="flaky", kind="step", outcome="failed") == 0  # from the start
    assert value(rt, steps, workflow="broken", kind="step", outcome="completed") == 2
    assert value(rt, steps, workflow="broken", kind="step", outcome="failed") == 2
    # a failure its fallback answered is a failed step, as grafana/README says (it read as a
    # completed one: newcomer h33 F2), in a run that completed
    assert (await rt.wait(answered)).output == "fallback"
    assert value(rt, steps, workflow="answered", kind="step", outcome="failed") == 1
    assert value(rt, steps, workflow="answered", kind="step", outcome="completed") == 0
    # a group's on_error is its own item: one that answered completed, one that raised failed
    # (each read "fallback failed": retest h33 F3); the group's function that raised, failed
    assert (await rt.wait(await rt.trigger("grouped"))).output == "group fallback"
    assert value(rt, steps, workflow="grouped", kind="fallback", outcome="completed") == 1
    assert value(rt, steps, workflow="grouped", kind="fallback", outcome="failed") in (None, 0)
    assert value(rt, steps, workflow="grouped", kind="parallel", outcome="failed") == 1
    assert (await rt.wait(await rt.trigger("unanswered"))).status == "failed"
    assert value(rt, steps, workflow="unanswered", kind="fallback", outcome="failed") == 1
    # every attempt that ran a handler: 3 of flaky's, 4 of broken's
    schedule = "cronflow_step_schedule_to_start_seconds_count"
    assert value(rt, schedule, workflow="flaky") == 3
    assert value(rt, schedule, workflow="broken") == 4
    # and each is one step duration, the failed attempts that were retried too
    step = "cronflow_step_duration_seconds_count"
    assert value(rt, step, workflow="flaky", kind="step") == 3
    assert value(rt, step, workflow="broken", kind="step") == 4


async def test_a_step_s_duration_is_its_handler_s_and_a_restart_s_downtime_is_neither(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """An item started before a restart runs its handler after it: the downtime is neither the
    step's duration nor its schedule-to-start delay, which counts from the restart's re-run
    (it read the downtime, as a saturated loop would: metrics h41 F2)."""
    started = clock.now() - 600  # started, then the process was down for 10 minutes
    rt.telemetry.observe(
        [
            WorkItemRerun(
                workflow_id="r", task="a", work_item_id="r.w1", workflow="down", kind="step"
            )
        ]
    )
    clock.advance(1)  # its handler begins a second after the restart ran it again
    began = clock.now()
    clock.advance(2)
    ended = WorkItemStateChanged(
        workflow_id="r",
        task="a",
        work_item_id="r.w1",
        prev=WorkItemState.STARTED,
        next=WorkItemState.COMPLETED,
        workflow="down",
        kind="step",
        started_at=started,
        began_at=began,
    )
    rt.telemetry.observe([ended])
    assert value(rt, "cronflow_step_duration_seconds_sum", workflow="down", kind="step") == 2
    assert value(rt, "cronflow_step_schedule_to_start_seconds_sum", workflow="down") == 1
    # an item no restart ran again: from its start, as ever
    rt.telemetry.observe([msgspec.structs.replace(ended, work_item_id="r.w2", workflow="up")])
    assert value(rt, "cronflow_step_schedule_to_start_seconds_sum", workflow="up") == 601


async def test_actions_are_counted_with_their_outcome_and_real_duration(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    began, gate = asyncio.Event(), asyncio.Event()

    async def slow_failure(ctx: Any) -> None:
        began.set()
        await gate.wait()
        raise ConnectionError("down")

    flow = cf.define("acts").action("mail", slow_failure).action("log", lambda ctx: None)
    rt.register(flow.step("done", lambda ctx: 1))
    await rt.wait(await rt.trigger("acts"))
    await began.wait()
    clock.advance(2.5)
    gate.set()
    await settle(rt, clock)
    finished = "cronflow_actions_finished_total"
    assert value(rt, finished, workflow="acts", action="mail", outcome="failed") == 1
    assert value(rt, finished, workflow="acts", action="mail", outcome="completed") == 0
    assert value(rt, finished, workflow="acts", action="log", outcome="completed") == 1
    duration = "cronflow_action_duration_seconds"
    assert value(rt, f"{duration}_sum", workflow="acts", action="mail") == 2.5
    assert value(rt, f"{duration}_count", workflow="acts", action="log") == 1
    assert value(rt, "cronflow_actions_dispatched_total", workflow="acts", action="mail") == 1
    # an action's work item is not a step
    steps = "cronflow_steps_finished_total"
    assert value(rt, steps, workflow="acts", kind="action", outcome="completed") is None
    assert value(rt, steps, workflow="acts", kind="step", outcome="completed") == 1


async def test_every_commit_of_the_store_is_counted(rt: cf.Runtime) -> None:
    rt.register(cf.define("one").step("a", lambda ctx: 1).step("b", lambda ctx: 2))
    for _ in range(5):
        await rt.wait(await rt.trigger("one"))
    await rt.wait_idle()
    commits = rt.store.statistics().batches
    assert commits > 0
    assert value(rt, "cronflow_store_commits_total") == commits
    assert value(rt, "cronflow_store_commit_duration_seconds_count") == commits
    assert value(rt, "cronflow_store_commit_batch_size_sum") == rt.store.statistics().mutations


async def test_runs_started_by_events_and_schedules_carry_their_trigger_and_lag(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    rt.register(cf.define("on-event").step("a", lambda ctx: 1).on_event("order.created"))
    rt.register(cf.define("ticking").step("a", lambda ctx: 1).on_interval("10s"))
    await rt.publish_event("order.created", {})
    await settle(rt, clock)
    tick = (int(clock.now()) // 10 + 1) * 10
    clock.set(tick + 3)  # the loop gets to the tick 3 s late
    await settle(rt, clock)
    started = "cronflow_runs_started_total"
    assert value(rt, started, workflow="on-event", trigger="event") == 1
    assert value(rt, started, workflow="ticking", trigger="schedule") == 1
    assert value(rt, "cronflow_schedule_fires_total", workflow="ticking") == 1
    assert value(rt, "cronflow_schedule_lag_seconds_sum", workflow="ticking") == 3


async def test_the_sample_counts_runs_in_flight_by_status_from_the_store(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    started, gate = asyncio.Event(), asyncio.Event()

    async def busy(ctx: Any) -> None:
        started.set()
        await gate.wait()

    rt.register(cf.define("busy", concurrency=1).step("a", busy))
    rt.register(cf.define("sleepy").sleep("nap", "1h"))
    rt.register(cf.define("human").human_in_the_loop("ok"))
    rt.register(cf.define("idle").step("a", lambda ctx: 1))
    for name in ("sleepy", "human", "human"):
        await rt.trigger(name)
    await settle(rt, clock)
    for _ in range(3):
        await rt.trigger("busy")  # one runs, two wait for a place
    await started.wait()
    await rt.telemetry.sample()
    expected = {
        ("busy", "running"): 1,
        ("sleepy", "waiting"): 1,
        ("human", "paused"): 2,
    }
    for workflow in ("busy", "sleepy", "human", "idle"):
        for status in ("running", "waiting", "paused"):
            assert value(
                rt, "cronflow_runs_in_flight", workflow=workflow, status=status
            ) == expected.get((workflow, status), 0), (workflow, status)
    assert value(rt, "cronflow_runs_queued", workflow="busy") == 2
    assert value(rt, "cronflow_runs_queued", workflow="idle") == 0
    assert value(rt, "cronflow_actors_alive", kind="WorkItemActor") == 1
    assert value(rt, "cronflow_timers_armed") == 1
    assert value(rt, "cronflow_blocking_pool_threads") == 8
    gate.set()
    await settle(rt, clock)
    rt.telemetry.sample_max_age = 0
    await rt.telemetry.sample()
    assert value(rt, "cronflow_runs_in_flight", workflow="busy", status="running") == 0
    assert value(rt, "cronflow_runs_queued", workflow="busy") == 0
    assert value(rt, "cronflow_actors_alive", kind="WorkItemActor") == 0


async def test_runs_waiting_in_a_named_queue_are_counted_under_their_own_workflow(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Runs of flows that share a named queue were counted under the queue's key
    (``workflow="queue:emails"``): a dashboard filtered to the flow read 0 while its runs
    waited (metrics h43 F1)."""
    started, gate = asyncio.Event(), asyncio.Event()

    async def hold(ctx: Any) -> None:
        started.set()
        await gate.wait()

    flows = [
        cf.define("welcome", queue="emails").step("a", hold),
        cf.define("digest", queue="emails").step("a", hold),
    ]
    async with cf.Runtime(
        db=tmp_path / "q.db", clock=clock, workflows=flows, queues={"emails": 1}
    ) as rt:
        for flow in ("welcome", "welcome", "digest", "welcome", "digest"):
            await rt.trigger(flow)  # the first runs, four wait in line
        await started.wait()
        await rt.telemetry.sample()
        assert value(rt, "cronflow_runs_queued", workflow="welcome") == 2
        assert value(rt, "cronflow_runs_queued", workflow="digest") == 2
        assert value(rt, "cronflow_runs_queued", workflow="queue:emails") is None
        gate.set()
        await rt.wait_idle()
        rt.telemetry.sample_max_age = 0
        await rt.telemetry.sample()
        assert value(rt, "cronflow_runs_queued", workflow="welcome") == 0
        assert value(rt, "cronflow_runs_queued", workflow="digest") == 0


async def test_a_sample_is_reused_for_its_max_age_and_shared_by_concurrent_scrapes(
    system: ActorSystem, clock: ManualClock
) -> None:
    asked: list[int] = []

    async def count_in_flight() -> dict[tuple[str, str], int]:
        asked.append(1)
        await asyncio.sleep(0.01)  # a read on the store's thread
        return {("w", "running"): len(asked)}

    async def no_queues() -> dict[str, int]:
        return {}

    telemetry = Telemetry(
        "1",
        clock=clock,
        system=system,
        timers=lambda: 0,
        starts_waiting=lambda: 0,
        count_in_flight=count_in_flight,
        queued_by_workflow=no_queues,
        workflows=lambda: ["w"],
        sample_max_age=60,
    )
    registry = telemetry.metrics.registry

    def running() -> float | None:
        return registry.get_sample_value(
            "cronflow_runs_in_flight", {"workflow": "w", "status": "running"}
        )

    assert running() is None  # nothing sampled yet: the family has no series
    await asyncio.gather(*(telemetry.sample() for _ in range(5)))
    await telemetry.sample()
    assert (len(asked), running()) == (1, 1)
    telemetry.sample_max_age = 0
    await telemetry.sample()
    assert (len(asked), running()) == (2, 2)
    await telemetry.sample(store_open=False)  # a stopped runtime keeps the last counts
    assert (len(asked), running()) == (2, 2)


async def test_the_loop_lag_probe_sees_the_loop_blocked() -> None:
    lags: list[float] = []
    probe = LoopLagProbe(lags.append, interval=0.01)
    probe.start()
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # noqa: ASYNC251 - a handler that blocks the loop
    await asyncio.sleep(0.05)
    await probe.stop()
    assert max(lags) >= 0.19
    assert sorted(lags)[len(lags) // 2] < 0.1  # most wake-ups were on time
    count = len(lags)
    await asyncio.sleep(0.03)
    assert len(lags) == count  # stopped


async def test_a_stall_of_the_loop_is_a_warning_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One stall of many seconds is one observation among hundreds, which no percentile shows,
    while every request waited it out (newcomer h39 F2): the log says so, and how long."""
    probe = LoopLagProbe(lambda _lag: None, interval=0.01)
    probe.STALL = 0.15  # (a second, in a runtime)
    probe.start()
    await asyncio.sleep(0.05)
    assert not caplog.records  # on time: nothing said
    time.sleep(0.2)  # noqa: ASYNC251 - a handler that blocks the loop
    await asyncio.sleep(0.05)
    await probe.stop()
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "the event loop was blocked for 0.2 s" in warning.getMessage()
    assert "make it a plain def" in warning.getMessage()


async def test_the_loop_lag_probe_runs_with_the_runtime_and_not_as_work_in_flight() -> None:
    async with cf.Runtime() as rt:
        await asyncio.wait_for(rt.wait_idle(), 1)  # the probe is not work in flight
        await asyncio.sleep(0.6)  # real time: the probe wakes every 0.5 s
        count = value(rt, "cronflow_event_loop_lag_seconds_count")
        assert count is not None
        assert count >= 1
    await asyncio.sleep(0.6)
    assert value(rt, "cronflow_event_loop_lag_seconds_count") == count  # stopped with it


async def test_steps_canceled_before_or_after_they_started_are_counted_as_canceled(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    rt.register(build("manual", {"a": net.task()}, [("start", "a"), ("a", "end")]))
    idle = await rt.start_workflow("manual")  # its item waits, initialized, for someone
    started = await rt.start_workflow("manual")
    [item] = await rt.work_items(started, "a")
    await rt.start_work_item(item.id)
    clock.advance(4)
    await rt.cancel_workflow(idle)
    await rt.cancel_workflow(started)
    steps = "cronflow_steps_finished_total"
    # the one nobody started was a wait for a caller, canceled: counted as that, not as a step
    # too (newcomer h33 F5: an item counted twice)
    assert value(rt, steps, workflow="manual", kind="task", outcome="canceled") == 1
    waits = "cronflow_waits_finished_total"
    assert value(rt, waits, workflow="manual", kind="manual", outcome="canceled") == 1
    assert value(rt, waits, workflow="manual", kind="manual", outcome="completed") == 1
    # only the one that had started has a duration: the 4 s it ran
    assert value(rt, "cronflow_step_duration_seconds_count", workflow="manual", kind="task") == 1
    assert value(rt, "cronflow_step_duration_seconds_sum", workflow="manual", kind="task") == 4
    assert value(rt, "cronflow_runs_started_total", workflow="manual", trigger="manual") == 2
    assert value(rt, "cronflow_runs_finished_total", workflow="manual", outcome="canceled") == 2


async def test_a_net_work_item_that_waits_for_a_caller_is_a_manual_wait(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """How long reviews wait to be taken: a work item a caller starts waits, ``initialized``,
    from its creation to its start, as a wait of kind ``manual`` (its time with the caller is a
    step's duration, as before); automated steps are no such wait (newcomer h25 F7)."""
    rt.register(
        build(
            "review",
            {"a": net.task(), "auto": net.task(net.work_item("auto", handler=lambda ctx: 1))},
            [("start", "auto"), ("auto", "a"), ("a", "end")],
        )
    )
    wait, finished = "cronflow_wait_duration_seconds", "cronflow_waits_finished_total"
    assert value(rt, f"{wait}_count", workflow="review", kind="manual") == 0  # at zero, at once
    assert value(rt, finished, workflow="review", kind="manual", outcome="canceled") == 0
    taken, dropped = await rt.start_workflow("review"), await rt.start_workflow("review")
    await settle(rt, clock)
    [item] = await rt.work_items(taken, "a")
    await settle(rt, clock, 90)  # nobody takes it for 90 s
    await rt.start_work_item(item.id)
    await settle(rt, clock, 30)  # the reviewer's 30 s
    await rt.complete_work_item(item.id)
    await settle(rt, clock, 60)
    await rt.cancel_workflow(dropped)  # its item waited 180 s, and nobody took it
    assert value(rt, finished, workflow="review", kind="manual", outcome="completed") == 1
    assert value(rt, finished, workflow="review", kind="manual", outcome="canceled") == 1
    assert value(rt, f"{wait}_count", workflow="review", kind="manual") == 2
    assert value(rt, f"{wait}_sum", workflow="review", kind="manual") == 90 + 180
    step = "cronflow_step_duration_seconds"
    assert value(rt, f"{step}_sum", workflow="review", kind="task") == 30  # a, and auto twice at 0
    assert value(rt, f"{step}_count", workflow="review", kind="task") == 3
    assert value(rt, finished, workflow="review", kind="task", outcome="completed") is None


async def test_a_net_work_item_that_waits_for_an_event_is_a_wait_not_a_step(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """A net's work item typed ``wait=WaitSpec(kind="event")`` counted its whole wait as a
    step's duration (p95 of minutes where handlers took milliseconds), and was no wait
    (newcomer h32 F2): it is a wait of kind ``event``."""
    waits = net.WaitSpec(kind="event", event="invoice.issued")
    invoice = net.work_item("invoice", wait=waits).activities(
        on_initialized=lambda ctx: ctx.work_item.start()
    )
    rt.register(
        build("billing", {"invoice": net.task(invoice)}, [("start", "invoice"), ("invoice", "end")])
    )
    workflow_id = await rt.start_workflow("billing")
    await settle(rt, clock, 63)  # the invoice comes after 63 s
    # inspect says what it waits for, as for a flow's wait_for_event (newcomer h32 F8)
    [step] = (await rt.inspect(workflow_id)).steps
    assert (step.kind, step.status, step.event) == ("event", "waiting", "invoice.issued")
    # its record keeps the declared kind: a flow's items are told by theirs (flow_runs.py)
    state = decode_state((await rt.instances.read(workflow_id)).body, workflow_id)
    assert [item.kind for item in state.work_items.values()] == ["task"]
    await rt.publish_event("invoice.issued", {"n": 1})
    await settle(rt, clock)
    assert (await rt.workflow(workflow_id)).state == "completed"
    wait, finished = "cronflow_wait_duration_seconds", "cronflow_waits_finished_total"
    assert value(rt, finished, workflow="billing", kind="event", outcome="completed") == 1
    assert value(rt, finished, workflow="billing", kind="event", outcome="failed") == 0
    # started by its activity as it was made: it waited for nobody to take it
    assert value(rt, finished, workflow="billing", kind="manual", outcome="completed") is None
    assert value(rt, f"{wait}_sum", workflow="billing", kind="event") == 63
    step = "cronflow_step_duration_seconds"
    assert value(rt, f"{step}_count", workflow="billing", kind="task") is None  # (no such step)
    assert (
        value(
            rt,
            "cronflow_steps_finished_total",
            workflow="billing",
            kind="task",
            outcome="completed",
        )
        is None
    )


async def test_a_net_pause_a_person_takes_waits_to_be_taken_then_waits_as_a_pause(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """A net's ``pause`` item that a person starts (no activity starts it) was no manual wait:
    its time to be taken went unmeasured, and one canceled before anyone took it counted as a
    canceled pause that never began (newcomer h34 F2)."""
    told: list[str] = []  # an activity that tells the adjuster, and starts nothing (review h34 F3)
    review = net.work_item("review", wait=net.WaitSpec(kind="pause")).activities(
        on_initialized=lambda ctx: told.append(ctx.work_item.id)
    )
    rt.register(
        build("claim", {"review": net.task(review)}, [("start", "review"), ("review", "end")])
    )
    wait, finished = "cronflow_wait_duration_seconds", "cronflow_waits_finished_total"
    # (an activity that may start it: its series are not made before it is seen waiting)
    assert value(rt, finished, workflow="claim", kind="manual", outcome="canceled") is None
    taken, dropped = await rt.start_workflow("claim"), await rt.start_workflow("claim")
    await settle(rt, clock, 40)  # nobody takes either for 40 s
    [item] = await rt.work_items(taken, "review")
    await rt.start_work_item(item.id)  # the adjuster takes it: its pause begins
    await settle(rt, clock, 15)
    [pause] = await rt.list_paused()
    await rt.resume(pause.token, {"approved": True})
    await settle(rt, clock)
    await rt.cancel_workflow(dropped)
    assert value(rt, finished, workflow="claim", kind="manual", outcome="completed") == 1
    assert value(rt, finished, workflow="claim", kind="manual", outcome="canceled") == 1
    assert value(rt, f"{wait}_sum", workflow="claim", kind="manual") == 40 + 55
    assert value(rt, finished, workflow="claim", kind="pause", outcome="completed") == 1
    assert value(rt, finished, workflow="claim", kind="pause", outcome="canceled") == 0
    assert value(rt, f"{wait}_sum", workflow="claim", kind="pause") == 15
    assert len(told) == 2


async def test_runs_a_migration_or_a_cancel_ends_offline_are_counted(tmp_path: Path) -> None:
    """A held run canceled without its code (its migration, an operator's cancel) was not
    counted as finished, and a migration's new run was counted as started by ``other``: the
    counters drifted one a migration from what ``runs`` lists (newcomer h24 F5)."""
    from tests.runtime.test_pinning import paying, waiting_to_pay

    db = tmp_path / "offline.db"
    moved, dropped = await waiting_to_pay(db), await waiting_to_pay(db)
    async with cf.Runtime(db=db, workflows=[paying(changed=True)]) as rt:
        assert value(rt, "cronflow_runs_started_total", workflow="paying", trigger="migration") == 0
        assert (await rt.inspect(moved)).status == "blocked"
        new = await rt.migrate(moved, "v1")  # onto its own version, as it is now
        await rt.cancel(dropped)
        await rt.wait_idle()
        assert {(await rt.inspect(r)).status for r in (moved, dropped)} == {"canceled"}
        finished = "cronflow_runs_finished_total"
        # the migrated one goes on in another: no cancel to the dashboards (newcomer h29 F5)
        assert value(rt, finished, workflow="paying", outcome="canceled") == 1
        assert value(rt, finished, workflow="paying", outcome="migrated") == 1
        assert value(rt, "cronflow_runs_started_total", workflow="paying", trigger="migration") == 1
        assert value(rt, "cronflow_runs_started_total", workflow="paying", trigger="other") is None
        assert (await rt.inspect(new)).status == "waiting"
        # the canceled run's waiting step was canceled with it, counted as the engine's cancel
        # counts it; the migrated one's goes on in the new run (metrics h43 F3)
        waits = "cronflow_waits_finished_total"
        assert value(rt, waits, workflow="paying", kind="event", outcome="canceled") == 1
        assert value(rt, "cronflow_run_duration_seconds_count", workflow="paying") == 1


async def test_a_run_a_migration_replaces_is_counted_as_migrated_not_canceled(
    rt: cf.Runtime,
) -> None:
    """A migration counted as a canceled run and a new one: the success rate fell, and
    "canceled" rose, when nothing failed and nobody canceled (newcomer h29 F5)."""
    for version in ("v1", "v2"):
        rt.register(cf.define("moving", version=version).step("a", str).pause("approve"))
    old = await rt.trigger("moving")
    await rt.wait_idle()
    started = (await rt.inspect(old)).version
    new = await rt.migrate(old, "v1" if started == "v2" else "v2")
    await rt.wait_idle()
    finished = "cronflow_runs_finished_total"
    assert value(rt, finished, workflow="moving", outcome="migrated") == 1
    assert value(rt, finished, workflow="moving", outcome="canceled") == 0
    # nor a canceled pause and a run's whole duration: the pause goes on in the new run, and
    # the run's time runs on (metrics h43 F3)
    waits, durations = "cronflow_waits_finished_total", "cronflow_run_duration_seconds_count"
    assert value(rt, waits, workflow="moving", kind="pause", outcome="canceled") == 0
    assert value(rt, durations, workflow="moving") == 0
    await rt.cancel(new)  # a cancel is one
    assert value(rt, finished, workflow="moving", outcome="canceled") == 1
    assert value(rt, waits, workflow="moving", kind="pause", outcome="canceled") == 1
    assert value(rt, durations, workflow="moving") == 1


def test_each_registered_flow_has_an_info_series() -> None:
    rt = cf.Runtime(
        workflows=[cf.define("orders", name="Orders", tags=["sales", "eu"]).step("s", str)]
    )
    lines = [line for line in rt.metrics.render().decode().splitlines() if "flow_info{" in line]
    assert lines == [
        'cronflow_flow_info{name="Orders",tags="sales,eu",version="v1",workflow="orders"} 1.0'
    ]


def test_a_net_has_an_info_series_of_the_version_its_new_instances_start_on() -> None:
    """Nets had none, so a query joining names dropped them (metrics h41 F3)."""
    rt = cf.Runtime()
    arcs = [("start", "a"), ("a", "end")]
    for version in ("v1", "v2"):
        rt.register(build("hire", {"a": net.task()}, arcs, version=version))

    def info() -> list[str]:
        rendered = rt.metrics.render().decode().splitlines()
        return [line for line in rendered if line.startswith("cronflow_flow_info{")]

    assert info() == ['cronflow_flow_info{name="hire",tags="",version="v2",workflow="hire"} 1.0']
    rt.deprecate("hire", "v2")
    assert info() == ['cronflow_flow_info{name="hire",tags="",version="v1",workflow="hire"} 1.0']
    rt.deprecate("hire", "v1")  # none left to start: the last one's stays
    assert info() == ['cronflow_flow_info{name="hire",tags="",version="v1",workflow="hire"} 1.0']


def test_a_flow_s_series_exist_at_zero_from_its_registration_child_workflows_too(
    rt: cf.Runtime,
) -> None:
    """Prometheus computes a rate from two samples: a series that appeared with its first
    event would hide it. So a registered flow's series are there before anything runs."""
    kid = cf.define("kid").step("k", lambda ctx: 1).sleep("nap", "1s")
    parent = (
        cf.define("parent")
        .for_each("each", lambda ctx: [1], lambda item, ctx: item)
        .subflow("sub", kid)
        .action("ping", lambda ctx: None)
        .on_webhook("/webhooks/parent")
    )
    rt.register(parent)
    zero = {
        ("cronflow_runs_started_total", ("parent", "manual")),
        ("cronflow_runs_started_total", ("parent", "webhook")),
        ("cronflow_runs_finished_total", ("parent", "failed")),
        ("cronflow_steps_finished_total", ("parent", "for_each", "failed")),
        ("cronflow_actions_finished_total", ("parent", "ping", "failed")),
        ("cronflow_webhook_duplicates_total", ("parent",)),
        ("cronflow_steps_finished_total", ("kid", "step", "failed")),  # the subflow's own
        ("cronflow_steps_finished_total", ("kid", "step", "canceled")),  # (metrics h41 F9)
        ("cronflow_waits_finished_total", ("kid", "sleep", "completed")),
    }
    names = {
        "cronflow_runs_started_total": ("workflow", "trigger"),
        "cronflow_runs_finished_total": ("workflow", "outcome"),
        "cronflow_steps_finished_total": ("workflow", "kind", "outcome"),
        "cronflow_actions_finished_total": ("workflow", "action", "outcome"),
        "cronflow_waits_finished_total": ("workflow", "kind", "outcome"),
        "cronflow_webhook_duplicates_total": ("workflow",),
    }
    for name, labels in zero:
        assert value(rt, name, **dict(zip(names[name], labels, strict=True))) == 0, name
    # a run's duration in steps of 1-2.5-5 from 2.5 ms (a 14 ms and a 29 ms run fell in one
    # bucket, read as 30 and 48 ms: metrics h41 F8)
    bounds = [
        float(line.split('le="')[1].split('"')[0])
        for line in rt.metrics.render().decode().splitlines()
        if line.startswith("cronflow_run_duration_seconds_bucket{") and 'workflow="parent"' in line
    ]
    assert bounds[:9] == [0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
    # a child runs only inside its parent's runs: no run series of its own
    assert value(rt, "cronflow_runs_started_total", workflow="kid", trigger="manual") is None


async def test_a_step_manual_in_one_version_and_automated_in_another_is_no_manual_wait(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """Manual work items were known by workflow and task over every version: a task given a
    handler in v2 counted each of its starts as a manual wait (the reviewer's h26 L2). A task
    is a manual wait only if it is manual in every version registered."""
    arcs = [("start", "a"), ("a", "end")]
    rt.register(build("mixed", {"a": net.task()}, arcs))
    rt.register(build("mixed", {"a": net.task(lambda ctx: 1)}, arcs, version="v2"))
    workflow_id = await rt.start_workflow("mixed", version="v2")
    await settle(rt, clock, 5)
    assert (await rt.workflow(workflow_id)).state == "completed"
    finished = "cronflow_waits_finished_total"
    assert value(rt, finished, workflow="mixed", kind="manual", outcome="completed") in (None, 0)

"""The runtime's audit queries: a flow run's trace, activities and child workflows in it, the
moments ``state_at`` reads, unknown runs, and retention."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import ConfigurationError, NotFoundError
from cronflow_actors.kernel import ManualClock
from cronflow_actors.runtime.audit import Trace, parse_instant
from tests.engine.test_audit import snapshot_view, state_view


def flows() -> list[cf.Flow]:
    return [cf.define("double").step("double", lambda ctx: ctx.payload * 2).step("plus", _plus)]


def _plus(ctx: cf.FlowContext) -> int:
    return int(ctx.last) + 1


async def test_a_flow_run_has_a_trace_of_its_steps(tmp_path: Path) -> None:
    async with cf.Runtime(db=tmp_path / "a.db", workflows=flows()) as rt:
        run_id = await rt.trigger("double", 20)
        assert (await rt.wait(run_id)).output == 41
        trace = await rt.trace(run_id)
    spans = [span for root in trace.roots for span in _spans(root)]
    assert trace.run_id == run_id
    assert trace.spans == len(spans)
    completed = [(s.operation, s.attributes.get("task")) for s in spans]
    assert ("Workflow.initialize", None) in completed
    assert [s.element for s in spans if s.operation == "Task.complete"] == ["double", "plus"]
    assert spans[-1].operation == "Workflow.complete"
    # each handler's result is the root of its own turn
    assert [root.span.operation for root in trace.roots] == [
        "Action.initialize",
        "WorkItem.complete",
        "WorkItem.complete",
    ]
    # JSON-able, and back
    assert msgspec.json.decode(msgspec.json.encode(trace), type=Trace) == trace
    assert "Workflow.complete" in trace.render()


def _spans(node: Any) -> list[Any]:
    return [node.span, *(span for child in node.children for span in _spans(child))]


async def test_activities_and_child_workflows_are_in_the_trace(
    tmp_path: Path, clock: ManualClock
) -> None:
    child = (
        net.workflow("child")
        .start_condition("start")
        .end_condition("end")
        .task("x", net.task().activities(on_enabled=lambda ctx: ctx.work_item.initialize({})))
        .connect_condition("start", "x")
        .connect_task("x", "end")
        .activities(on_started=lambda ctx: None)
    )
    parent = (
        net.workflow("parent")
        .start_condition("start")
        .end_condition("end")
        .composite_task("comp", net.composite_task(child.build()))
        .connect_condition("start", "comp")
        .connect_task("comp", "end")
        .build()
    )
    async with cf.Runtime(db=tmp_path / "a.db", workflows=[parent], clock=clock) as rt:
        run_id = await rt.start_workflow("parent")
        [child_info] = await rt.child_workflows(run_id, "comp")
        [item] = await rt.work_items(child_info.id, "x")
        await rt.start_work_item(item.id)
        spans = await rt.spans(run_id)
        state = await rt.state_at(run_id, clock.now())
    activities = [(s.operation, s.instance_id, s.element, s.attributes) for s in spans]
    assert ("Activity.on_enabled", child_info.id, "x", {"kind": "task"}) in activities
    started = ("Activity.on_started", child_info.id, child_info.id, {"kind": "workflow"})
    assert started in activities
    init = next(s for s in spans if s.operation == "Workflow.initialize" and s.element != run_id)
    assert init.attributes["parent_id"] == run_id
    assert init.attributes["parent_task"] == "comp"
    assert state.workflows[child_info.id].state == "started"
    assert state.workflows[child_info.id].parent_task == "comp"
    assert state.workflows[run_id].tasks["comp"].state == "started"
    assert state.work_items[item.id].state == "started"


async def test_unknown_runs_and_unreadable_moments_are_refused(tmp_path: Path) -> None:
    async with cf.Runtime(db=tmp_path / "a.db", workflows=flows()) as rt:
        with pytest.raises(NotFoundError, match="no run 'nope'"):
            await rt.trace("nope")
        with pytest.raises(NotFoundError):
            await rt.state_at("nope", 0)
        run_id = await rt.trigger("double", 1)
        for bad in ("yesterday", "2024-05-01T12:00:00", float("nan"), True, None):
            with pytest.raises(ConfigurationError, match="ISO 8601"):
                await rt.state_at(run_id, bad)  # type: ignore[arg-type]


def test_moments_read_as_epoch_seconds() -> None:
    assert parse_instant(12) == 12.0
    assert parse_instant("12.5") == 12.5
    assert parse_instant("1970-01-01T00:01:00Z") == 60.0
    assert parse_instant("1970-01-01T01:01:00+01:00") == 60.0
    assert parse_instant("1970-01-01T01:01:00 01:00") == 60.0  # a query's unescaped '+'
    assert parse_instant("1970-01-01 01:01:00.5 0100") == 60.5
    with pytest.raises(ConfigurationError, match=r"'2024-01-01 12:00'.*it has none"):
        parse_instant("2024-01-01 12:00")  # a date and a time, no offset: said as sent
    aware = datetime(1970, 1, 1, 0, 2, tzinfo=timezone(timedelta(hours=0)))
    assert parse_instant(aware) == 120.0
    with pytest.raises(ConfigurationError, match="naive"):
        parse_instant(datetime(2024, 1, 1))
    assert parse_instant(datetime(1970, 1, 1, tzinfo=UTC)) == 0.0


async def test_retention_prunes_a_run_with_its_audit_trail(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "a.db"
    async with cf.Runtime(db=db, workflows=flows(), clock=clock) as rt:
        old = await rt.trigger("double", 1)
        await rt.wait(old)
        clock.advance(3600)
        kept = await rt.trigger("double", 2)
        await rt.wait(kept)
        assert await rt.prune(older_than=1800) == 1
        with pytest.raises(NotFoundError):
            await rt.trace(old)
        assert (await rt.trace(kept)).spans > 0
    with sqlite3.connect(db) as raw:
        traces = {row[0] for row in raw.execute("SELECT trace_id FROM audit")}
    assert traces == {kept}


async def test_a_step_a_restart_runs_again_is_counted_and_traced(tmp_path: Path) -> None:
    """A step whose handler had started when its process stopped runs again on the next
    start, as the contract says; it was invisible: one attempt, no redispatch, one start in the
    trace, and the handler could not tell (the newcomer's M1, the hostile client's 2)."""
    db = tmp_path / "again.db"
    gate, running = asyncio.Event(), asyncio.Event()
    seen: list[tuple[int, int, str]] = []

    async def slow(ctx: cf.FlowContext) -> str:
        seen.append((ctx.attempt, ctx.redispatches, ctx.idempotency_key))
        running.set()
        await gate.wait()
        return "done"

    def flow() -> cf.Flow:
        return cf.define("slowly").step("first", lambda ctx: 1).step("slow", slow)

    async with cf.Runtime(db=db, workflows=[flow()]) as first:
        run_id = await first.trigger("slowly")
        await running.wait()  # stopped while the step runs: its end is not recorded
    gate.set()
    async with cf.Runtime(db=db, workflows=[flow()]) as second:
        assert (await second.wait(run_id, timeout=10)).output == "done"
        info = await second.inspect(run_id)
        spans = await second.spans(run_id)
        metrics = second.metrics.render().decode()
        # the rerun moves nothing: the run rebuilt from its spans is its snapshot (it was a
        # KeyError, a 500 over HTTP, for every moment after the rerun: conform h38 F4)
        snapshot = await second.store.load_snapshot(run_id)
        assert snapshot is not None
        rebuilt = await second.state_at(run_id, time.time() + 1)
        assert state_view(rebuilt) == snapshot_view(snapshot.body)
    # counted in the metrics too, where it was invisible (newcomer h22 L3): one rerun of the
    # flow's steps (kind "step"; the first, recorded before the stop, ran once)
    reruns = {
        line.split("{", 1)[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("cronflow_steps_rerun_total{")
    }
    assert reruns == {'kind="step",workflow="slowly"': 1.0}, reruns
    [key] = {key for _attempt, _again, key in seen}  # one key for both: it may de-duplicate
    assert [(attempt, again) for attempt, again, _key in seen] == [(1, 0), (1, 1)]
    steps = {step.id: step for step in info.steps}
    assert (steps["slow"].attempts, steps["slow"].redispatches) == (1, 1)
    assert steps["first"].redispatches == 0  # recorded before the stop: not run again
    [rerun] = [s for s in spans if s.operation == "WorkItem.rerun"]
    assert (rerun.element, rerun.attributes) == (
        key,
        {"task": "slow", "attempt": 1, "redispatches": 1},
    )


async def test_a_group_a_restart_runs_again_counts_the_restart_once(tmp_path: Path) -> None:
    """A ``parallel`` whose two functions one stop cut said "run again after 2 restarts": its
    functions' counts were added, where each says one (chaos h31 F1)."""
    db = tmp_path / "group.db"
    gate, started = asyncio.Event(), asyncio.Semaphore(0)
    again: list[int] = []

    async def slow(ctx: cf.FlowContext) -> str:
        again.append(ctx.redispatches)
        started.release()
        await gate.wait()
        return "done"

    def flow() -> cf.Flow:
        return cf.define("grouped").parallel("both", [slow, slow])

    async with cf.Runtime(db=db, workflows=[flow()]) as first:
        run_id = await first.trigger("grouped")
        for _ in range(2):  # stopped while both run: neither end is recorded
            await asyncio.wait_for(started.acquire(), 5)
    gate.set()
    async with cf.Runtime(db=db, workflows=[flow()]) as second:
        assert (await second.wait(run_id, timeout=10)).status == "completed"
        [both] = (await second.inspect(run_id)).steps
    assert sorted(again) == [0, 0, 1, 1]
    assert both.redispatches == 1


async def test_a_traces_text_keeps_each_span_on_a_line_of_its_own(tmp_path: Path) -> None:
    # an error a sender filled wrote its ESC, CR and line breaks to the terminal of
    # `cronflow-actors trace` (retest2 h33 F2)
    def refuse(ctx: Any) -> None:
        raise ValueError(f"order {ctx.payload}")

    forged = "o-1\n2026-12-03 00:00:00,000 CRITICAL forged\r\x1b[31m\x07"
    flow = cf.define("refused").step("check", refuse)
    async with cf.Runtime(db=tmp_path / "t.db", workflows=[flow]) as rt:
        run_id = await rt.trigger("refused", forged)
        assert (await rt.wait(run_id)).status == "failed"
        text = (await rt.trace(run_id)).render()
    assert "order o-1\\n2026-12-03" in text
    for odd in ("\r", "\x1b", "\x07"):
        assert odd not in text
    assert all(line.startswith(("trace ", "  ")) for line in text.splitlines()), text


async def test_a_person_s_resume_of_a_human_step_names_them_in_the_trace(tmp_path: Path) -> None:
    """The trail said a person's approval was the runtime's own call, "(internal)", as a sleep's
    end is (h42 versions F2)."""
    flow = (
        cf.define("approved")
        .human_in_the_loop("approve", description="ok?")
        .sleep("nap", 0.01)
        .step("after", lambda ctx: ctx.steps["approve"]["resumed_by"])
    )
    async with cf.Runtime(db=tmp_path / "p.db", workflows=[flow]) as rt:
        by_bob, anonymous = await rt.trigger("approved"), await rt.trigger("approved")
        await rt.wait_idle()
        tokens = {p.run_id: p.token for p in await rt.list_paused()}
        await rt.resume(tokens[by_bob], {"approved": True}, principal=cf.Principal(id="bob"))
        await rt.resume(tokens[anonymous], {"approved": True})  # (no principal: its own)
        assert (await rt.wait(by_bob, timeout=5)).output == "bob"
        await rt.wait(anonymous, timeout=5)
        lines = (await rt.trace(by_bob)).render().splitlines()
        other = (await rt.trace(anonymous)).render().splitlines()
    [resumed] = [line for line in lines if "Action.complete" in line and "principal=" in line]
    assert "(principal=bob, via=resume)" in resumed
    [asked] = [line for line in other if "via=resume" in line]
    assert "(via=resume, internal)" in asked  # this process's own call (retest2 h42 N4)
    # the sleep's end is the runtime's own call, and says so
    assert any("Action.complete" in line and "(internal)" in line for line in lines)

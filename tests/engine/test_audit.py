"""The audit trail as the engine records it: one span per operation, under its cause, committed
with the snapshot (spec section 10), on a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.engine.audit import AuditRecorder, AuditTrail
from cronflow_actors.errors import ActionDeniedError, NoAuditTrailError, NotFoundError
from cronflow_actors.kernel import ManualClock
from cronflow_actors.messages.audit import AuditSpan
from cronflow_actors.messages.elements import EnableTask
from cronflow_actors.messages.engine import (
    CancelWorkflow,
    InstanceState,
    TaskStateChanged,
    WorkflowStateChanged,
    WorkItemStateChanged,
)
from cronflow_actors.messages.states import TaskState
from cronflow_actors.runtime.audit import StateAt, Trace, TraceNode
from tests.engine.helpers import build, open_item

ADA = cf.Principal(id="ada", scopes=frozenset({"orders:review"}))
BOB = cf.Principal(id="bob")


def order_net(packed: list[str]) -> net.NetSpec:
    """start -> review (xor: ship or reject) -> ship -> end, reject -> end."""

    def route(ctx: Any) -> Any:
        return ctx.route.to_task("ship" if ctx.output["ok"] else "reject")

    review = net.work_item("review").actions(
        complete=net.action(policy=net.require_scope("orders:review"))
    )
    ship = net.work_item("ship").activities(on_completed=lambda ctx: packed.append("packed"))
    tasks = {
        "review": net.task(review).split("xor").route(route),
        "ship": net.task(ship),
        "reject": net.task(),
    }
    flows = [("start", "review"), ("review", "ship"), ("review", "reject")]
    return build("order", tasks, [*flows, ("ship", "end"), ("reject", "end")])


def runtime(path: Path, clock: ManualClock, **options: Any) -> cf.Runtime:
    ids = iter(f"run{n}" for n in range(1, 100))
    return cf.Runtime(db=path, clock=clock, id_factory=lambda: next(ids), **options)


def tree(trace: Trace) -> list[str]:
    """The trace as indented ``operation element`` lines (ids relative to the run)."""
    lines: list[str] = []

    def walk(node: TraceNode, depth: int) -> None:
        span = node.span
        element = span.element.replace(f"{trace.run_id}.", "").replace(trace.run_id, "run")
        lines.append(f"{'  ' * depth}{span.operation} {element}")
        for child in node.children:
            walk(child, depth + 1)

    for root in trace.roots:
        walk(root, 0)
    return lines


async def drive_order(rt: cf.Runtime, clock: ManualClock) -> tuple[str, list[float]]:
    """Start an order, review it (as ada) and ship it, one second apart; the instants after
    each step."""
    run_id = await rt.start_workflow("order")
    instants = [clock.now()]
    review = await open_item(rt, run_id, "review")
    for step in (
        lambda: rt.start_work_item(review.id),
        lambda: rt.complete_work_item(review.id, {"ok": True}, principal=ADA),
    ):
        clock.advance(1)
        await step()
        instants.append(clock.now())
    ship = await open_item(rt, run_id, "ship")
    clock.advance(1)
    await rt.start_work_item(ship.id)
    instants.append(clock.now())
    clock.advance(1)
    await rt.complete_work_item(ship.id)
    instants.append(clock.now())
    return run_id, instants


@pytest.mark.parametrize("checked", [False, True], ids=["as-shipped", "send_last-checked"])
async def test_the_spans_of_a_scripted_run_are_its_operations_in_order(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, checked: bool
) -> None:
    """The same spans whether each ``Transaction.send_last`` is watched (as in every other
    test) or delivered as it is shipped, without a frame and unwatched."""
    monkeypatch.setattr(AuditRecorder, "check_last_sends", checked)
    packed: list[str] = []
    async with runtime(tmp_path / "a.db", clock, workflows=[order_net(packed)]) as rt:
        run_id, _ = await drive_order(rt, clock)
        trace = await rt.trace(run_id)
    assert packed == ["packed"]
    assert tree(trace) == [
        "Action.initialize run",
        "  Workflow.initialize run",
        "    Condition.mark start",
        "    Task.enable review",
        "      WorkItem.initialize w1",
        "Action.start w1",
        "  Workflow.start run",
        "  Task.start review",
        "    Condition.mark start",
        "  WorkItem.start w1",
        "Action.complete w1",
        "  WorkItem.complete w1",
        "    Task.complete review",
        "      Task.route review",
        "      Condition.mark review__to__ship",
        "      Task.enable ship",
        "        WorkItem.initialize w2",
        "Action.start w2",
        "  Task.start ship",
        "    Condition.mark review__to__ship",
        "  WorkItem.start w2",
        "Action.complete w2",
        "  WorkItem.complete w2",
        "    Activity.on_completed w2",
        "    Task.complete ship",
        "      Condition.mark end",
        "      Workflow.complete run",
    ]
    spans = [node.span for node in _flatten(trace.roots)]
    assert trace.spans == len(spans) == 27
    by_operation = {(s.operation, s.element): s for s in spans}
    complete = by_operation[("Action.complete", f"{run_id}.w1")]
    assert complete.attributes == {"principal": "ada"}
    assert by_operation[("Action.start", f"{run_id}.w1")].attributes == {"principal": None}
    route = by_operation[("Task.route", "review")]
    assert route.attributes == {"split": "xor", "outputs": ["review__to__ship"]}
    review_done = by_operation[("Task.complete", "review")]
    assert review_done.attributes == {
        "before": "started",
        "after": "completed",
        "generation": 1,
        "split": "xor",
        "outputs": ["review__to__ship"],
    }
    marks = [
        (s.element, s.attributes["before"], s.attributes["after"])
        for s in spans
        if s.operation == "Condition.mark"
    ]
    assert marks == [
        ("start", 0, 1),
        ("start", 1, 0),
        ("review__to__ship", 0, 1),
        ("review__to__ship", 1, 0),
        ("end", 0, 1),
    ]
    item = by_operation[("WorkItem.initialize", f"{run_id}.w2")]
    assert item.attributes == {
        "before": None,
        "after": "initialized",
        "task": "ship",
        "generation": 1,
    }
    # one trace, the run's; span ids in the order the spans began, per committed revision
    assert {s.trace_id for s in spans} == {run_id}
    assert [s.revision for s in spans] == sorted(s.revision for s in spans)
    assert [s.span_id.split(".")[0] for s in spans] == [str(s.revision) for s in spans]
    for span in spans:
        if span.parent_id is not None:
            assert span.parent_id.split(".")[0] == span.span_id.split(".")[0]


def _flatten(nodes: list[TraceNode]) -> list[TraceNode]:
    found: list[TraceNode] = []
    for node in nodes:
        found.append(node)
        found.extend(_flatten(node.children))
    return found


async def test_a_refused_call_records_nothing_and_failures_carry_their_error(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with runtime(tmp_path / "a.db", clock, workflows=[order_net([])]) as rt:
        run_id = await rt.start_workflow("order")
        review = await open_item(rt, run_id, "review")
        await rt.start_work_item(review.id)
        before = await rt.spans(run_id)
        with pytest.raises(ActionDeniedError):
            await rt.complete_work_item(review.id, {"ok": True}, principal=BOB)
        assert await rt.spans(run_id) == before
        await rt.fail_work_item(review.id, "out of stock")
        spans = await rt.spans(run_id)
    failed = {s.operation: s for s in spans if s.revision == spans[-1].revision}
    assert failed["WorkItem.fail"].attributes["error"] == "out of stock"
    assert failed["Task.fail"].attributes["after"] == "failed"
    assert failed["Workflow.fail"].attributes["after"] == "failed"
    assert "out of stock" in failed["Workflow.fail"].attributes["error"]


def loop_net() -> net.NetSpec:
    """start -> a -> c1 -> b (xor: back to a while the counter is below 2, else to comp);
    comp runs a child workflow (x) -> end."""
    child = build("child", {"x": net.task()}, [("start", "x"), ("x", "end")])

    def again(ctx: Any) -> Any:
        return ctx.route.to_task("a" if ctx.output["n"] < 2 else "comp")

    tasks = {
        "a": net.task().join("xor"),
        "b": net.task().split("xor").route(again),
        "comp": net.composite_task(child),
    }
    flows = [("start", "a"), ("a", "c1"), ("c1", "b"), ("b", "a"), ("b", "comp"), ("comp", "end")]
    return build("loop", tasks, flows, conditions=["c1"])


def snapshot_view(body: bytes) -> dict[str, Any]:
    """What a snapshot says of the workflows, their markings and tasks, and the work items."""
    state = decode_state(body, "snapshot under test")
    return {
        "workflows": {
            ident: (
                str(w.state),
                dict(w.marking),
                {name: (str(t.state), t.generation) for name, t in w.tasks.items()},
            )
            for ident, w in state.workflows.items()
        },
        "work_items": {ident: str(i.state) for ident, i in state.work_items.items()},
    }


def state_view(state: StateAt) -> dict[str, Any]:
    return {
        "workflows": {
            ident: (
                w.state,
                w.marking,
                {name: (t.state, t.generation) for name, t in w.tasks.items()},
            )
            for ident, w in state.workflows.items()
        },
        "work_items": {ident: i.state for ident, i in state.work_items.items()},
    }


async def test_state_at_an_instant_is_the_snapshot_taken_then(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with runtime(tmp_path / "a.db", clock, workflows=[loop_net()]) as rt:
        run_id = await rt.start_workflow("loop")
        taken = {clock.now(): snapshot_view((await rt.store.load_snapshot(run_id)).body)}  # type: ignore[union-attr]

        async def step(action: Any) -> None:
            clock.advance(10)
            await action
            snapshot = await rt.store.load_snapshot(run_id)
            assert snapshot is not None
            assert snapshot.updated_at == clock.now()
            taken[clock.now()] = snapshot_view(snapshot.body)

        for n in range(3):  # a, then b, three times: the loop runs a's generations 1 to 3
            for task in ("a", "b"):
                item = await open_item(rt, run_id, task)
                await step(rt.start_work_item(item.id))
                await step(rt.complete_work_item(item.id, {"n": n}))
        [child] = await rt.child_workflows(run_id, "comp")
        item = await open_item(rt, child.id, "x")
        await step(rt.start_work_item(item.id))
        await step(rt.complete_work_item(item.id))
        assert await rt.workflow_state(run_id) == "completed"
        assert len(taken) == 15
        for instant, expected in taken.items():
            assert state_view(await rt.state_at(run_id, instant)) == expected, instant
            # between two turns, the run is as the earlier one left it
            assert state_view(await rt.state_at(run_id, instant + 5)) == expected, instant
        generations = (await rt.state_at(run_id, clock.now())).workflows[run_id].tasks["a"]
        assert generations.generation == 3
        before = await rt.state_at(run_id, min(taken) - 1)
        assert (before.revision, before.workflows, before.work_items) == (0, {}, {})
        # the same from the stored spans after a restart, and as an ISO 8601 time
    async with runtime(tmp_path / "a.db", clock, workflows=[loop_net()]) as again:
        instant = sorted(taken)[7]
        iso = _iso(instant)
        assert state_view(await again.state_at(run_id, iso)) == taken[instant]


def _iso(instant: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(instant, UTC).isoformat()


async def test_the_audit_adds_no_transaction(tmp_path: Path, clock: ManualClock) -> None:
    """The same run, audit on and off: as many commits and mutations, one per turn; the spans
    of each turn carry the revision its snapshot was committed with."""
    counts: dict[bool, tuple[int, int]] = {}
    for audit in (False, True):
        commits: list[int] = []
        rt = runtime(tmp_path / f"{audit}.db", clock, workflows=[order_net([])], audit=audit)
        async with rt:
            rt.store.watch_commits(lambda _seconds, writes, seen=commits: seen.append(writes))
            run_id, _ = await drive_order(rt, clock)
            stats = rt.store.statistics()
            snapshot = await rt.store.load_snapshot(run_id)
            spans = await rt.spans(run_id)
        assert snapshot is not None
        assert len(commits) == stats.batches == stats.mutations == snapshot.revision == 5
        counts[audit] = (stats.batches, stats.mutations)
        if audit:
            assert sorted({s.revision for s in spans}) == [1, 2, 3, 4, 5]
        else:
            assert spans == []
    assert counts[True] == counts[False]


async def test_on_spans_hears_each_commit_once_it_is_durable(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[tuple[AuditSpan, ...]] = []
    async with runtime(tmp_path / "a.db", clock, workflows=[order_net([])]) as rt:
        rt.on_spans(heard.append)
        unsubscribe = rt.on_spans(_broken)
        run_id = await rt.start_workflow("order")
        review = await open_item(rt, run_id, "review")
        await rt.start_work_item(review.id)
        unsubscribe()
        unsubscribe()  # twice is harmless
        await rt.cancel_workflow(run_id)
        stored = await rt.spans(run_id)
    assert [span for commit in heard for span in commit] == stored
    assert [commit[0].revision for commit in heard] == [1, 2, 3]
    assert stored[-1].operation == "Workflow.cancel"
    assert caplog.text.count("the span callback") == 2


def _broken(spans: tuple[AuditSpan, ...]) -> None:
    raise RuntimeError("an exporter bug")


async def test_with_the_audit_off_nothing_is_recorded_until_it_is_on(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with runtime(tmp_path / "a.db", clock, workflows=[order_net([])], audit=False) as rt:
        assert rt.audit is False
        run_id = await rt.start_workflow("order")
        assert await rt.spans(run_id) == []
        # no trail to rebuild from: said, not answered as "nothing had happened yet"
        with pytest.raises(
            NoAuditTrailError, match=r"no audit trail of run .*; it ran with the audit off"
        ):
            await rt.trace(run_id)
        with pytest.raises(NoAuditTrailError, match=r"Runtime\(audit=False\)"):
            await rt.state_at(run_id, clock.now())
        with pytest.raises(NotFoundError, match="no run 'ghost'"):
            await rt.state_at("ghost", clock.now())
        rt.audit = True
        review = await open_item(rt, run_id, "review")
        await rt.start_work_item(review.id)
        spans = await rt.spans(run_id)
    assert {s.revision for s in spans} == {2}
    assert spans[0].operation == "Action.start"


async def test_every_move_an_observer_sees_has_its_span(tmp_path: Path, clock: ManualClock) -> None:
    """The elements report each workflow, task and work-item move to the audit themselves: the
    moves the runtime's observers hear of (a loop, a child workflow, a teardown by cancel) and
    the spans of the moves are the same, element by element and in order."""
    observed: list[tuple[str, str, str]] = []

    def observe(changes: list[Any]) -> None:
        for change in changes:
            if isinstance(change, WorkflowStateChanged):
                observed.append(("Workflow", change.workflow_id, change.workflow_id))
            elif isinstance(change, TaskStateChanged):
                observed.append(("Task", change.workflow_id, change.task))
            elif isinstance(change, WorkItemStateChanged):
                observed.append(("WorkItem", change.workflow_id, change.work_item_id))

    async with runtime(tmp_path / "m.db", clock, workflows=[loop_net()]) as rt:
        rt.observe(observe)
        done = await rt.start_workflow("loop")
        for n in range(3):
            for task in ("a", "b"):
                item = await open_item(rt, done, task)
                await rt.start_work_item(item.id)
                await rt.complete_work_item(item.id, {"n": n})
        [child] = await rt.child_workflows(done, "comp")
        item = await open_item(rt, child.id, "x")
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id)
        canceled = await rt.start_workflow("loop")
        await rt.start_work_item((await open_item(rt, canceled, "a")).id)
        await rt.cancel_workflow(canceled)
        spans = [*await rt.spans(done), *await rt.spans(canceled)]
    moves = [
        (s.operation.partition(".")[0], s.instance_id, s.element)
        for s in spans
        if s.operation.partition(".")[0] in {"Workflow", "Task", "WorkItem"}
        and s.operation != "Task.route"
    ]
    assert len(observed) > 40
    assert moves == observed


def _recorder(clock: ManualClock) -> tuple[AuditRecorder, list[str]]:
    """A recorder of one transaction whose dispatcher's delivery of ``EnableTask`` enables
    the task, and the tasks it enabled."""
    state = InstanceState(id="run1", workflow="order")
    recorder = AuditTrail(clock).recorder(state, now=clock.now())
    enabled: list[str] = []

    async def deliver(message: Any) -> None:
        enabled.append(message.task)
        recorder.task_moved(
            TaskStateChanged(
                workflow_id="run1",
                task=message.task,
                generation=1,
                prev=TaskState.DISABLED,
                next=TaskState.ENABLED,
            )
        )

    recorder.route = deliver
    return recorder, enabled


async def test_a_last_send_is_delivered_without_a_frame_and_with_the_same_spans(
    clock: ManualClock,
) -> None:
    assert AuditRecorder.check_last_sends  # every test runs with the check (tests/conftest.py)
    framed, _ = _recorder(clock)
    unframed, enabled = _recorder(clock)
    for recorder, send in ((framed, framed.send), (unframed, unframed.send_last)):
        recorder.begin_turn(CancelWorkflow(workflow_id="run1"))
        await send(EnableTask(workflow_id="run1", task="ship"))
        recorder.end_turn()
    assert enabled == ["ship"]
    with_frame, without = framed.spans(1), unframed.spans(1)
    assert len(without.row) == len(with_frame.row) - 2  # no ENTER, no EXIT
    assert without.spans() == with_frame.spans()
    assert [(s.operation, s.parent_id) for s in without.spans()] == [
        ("Action.cancel", None),
        ("Task.enable", "1.1"),
    ]


async def test_a_last_send_its_sender_records_more_after_is_refused_at_the_commit(
    clock: ManualClock,
) -> None:
    """A ``send_last`` whose sender goes on recording would nest what follows under what the
    message set off: the check (on in the tests) names the message at the commit."""
    recorder, _ = _recorder(clock)
    recorder.begin_turn(CancelWorkflow(workflow_id="run1"))
    await recorder.send_last(EnableTask(workflow_id="run1", task="ship"))
    recorder.marked("run1", {"start": 1}, {"start": 0}, ["start"])  # the sender goes on
    recorder.end_turn()
    with pytest.raises(AssertionError, match=r"EnableTask\(.*send_last.*recorded more after it"):
        recorder.spans(1)

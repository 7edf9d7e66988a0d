"""OR-joins in the running engine: the failing Tasquencer scenario, and a property on random nets.

After every completion, the engine re-checks every task after any of the completing task's
output conditions (marked or not), and the task itself (spec section 1.3 steps 5 and 6). The
property test drives random acyclic nets with AND/XOR/OR joins and splits through the real
engine and checks, after each completion, that every task it re-checked is enabled exactly when
an exhaustive forward search of the net says its join is satisfied.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.kernel import ManualClock
from cronflow_actors.net.orjoin import ResetNet
from cronflow_actors.net.spec import JoinType, NetSpec
from tests.engine.helpers import build, open_item, run, states
from tests.net.test_orjoin import forward_coverable

_ENABLEABLE = frozenset({"disabled", "completed", "canceled", "failed"})


def init(ctx: Any) -> None:
    ctx.work_item.initialize()


def auto() -> net.TaskBuilder:
    return net.task(net.work_item("w")).activities(on_enabled=init)


async def test_an_or_join_fires_when_the_task_feeding_it_routes_elsewhere(
    rt: cf.Runtime,
) -> None:
    """Tasquencer's multiple-or-split-join-2, "B to C disabled": A splits to B and C; B is an
    XOR split that routes to D; C is an OR-join on A and B; D an OR-join on B and C."""
    spec = (
        net.workflow("m")
        .start_condition("start")
        .end_condition("end")
        .task("A", auto())
        .task("B", auto().split("xor").route(lambda ctx: ctx.route.to_task("D")))
        .task("C", auto().join("or"))
        .task("D", auto().join("or"))
        .connect_condition("start", "A")
        .connect_task("A", "B", "C")
        .connect_task("B", "C", "D")
        .connect_task("C", "D")
        .connect_task("D", "end")
        .build()
    )
    rt.register(spec)
    wid = await rt.start_workflow("m")
    await run(rt, wid, "A")
    await run(rt, wid, "B")
    assert await rt.marking(wid) | {} == {
        **dict.fromkeys(await rt.marking(wid), 0),
        "A__to__C": 1,
        "B__to__D": 1,
    }
    found = await states(rt, wid)
    assert (found["C"], found["D"]) == ("enabled", "disabled")  # D waits: C can still feed it
    await run(rt, wid, "C")
    assert (await states(rt, wid))["D"] == "enabled"
    await run(rt, wid, "D")
    assert await rt.workflow_state(wid) == "completed"


async def test_an_or_join_fires_once_no_token_can_come_though_no_task_feeding_it_completed(
    rt: cf.Runtime,
) -> None:
    """S splits to a, b and Y; X, an XOR-join on a and b, takes a token from both as it starts
    (spec 7.2), so B2 (an AND-join on b and X's g) can never fire; E is an OR-join on Y's cY and
    B2's cE. When Y completes, X may still fire first (the analysis cannot tell X takes b too):
    E waits. X's completion feeds no input of E, yet after it no token can reach cE: E fires
    (asked only after a task feeding it, it waited for good)."""
    spec = (
        net.workflow("oxc")
        .start_condition("start")
        .end_condition("end")
        .condition("a")
        .condition("b")
        .condition("g")
        .condition("cY")
        .condition("cE")
        .dummy_task("S")
        .task("X", auto().join("xor"))
        .task("B2", auto())
        .task("Y", auto())
        .task("E", auto().join("or"))
        .connect_condition("start", "S")
        .connect_task("S", "a", "b", "Y")
        .connect_condition("a", "X")
        .connect_condition("b", "X", "B2")
        .connect_task("X", "g")
        .connect_condition("g", "B2")
        .connect_task("B2", "cE")
        .connect_task("Y", "cY")
        .connect_condition("cY", "E")
        .connect_condition("cE", "E")
        .connect_task("E", "end")
        .build()
    )
    rt.register(spec)
    wid = await rt.start_workflow("oxc")
    await run(rt, wid, "Y")
    assert (await states(rt, wid))["E"] == "disabled"
    await run(rt, wid, "X")
    assert (await states(rt, wid))["E"] == "enabled"
    await run(rt, wid, "E")
    assert await rt.workflow_state(wid) == "completed"


async def test_an_or_join_fires_as_a_deferred_choice_withdraws_the_last_task_that_could_feed_it(
    rt: cf.Runtime,
) -> None:
    """S splits to A and c0; c0 is a deferred choice between X (into the OR-join J) and Y
    (past it). Once A completed, J waits: X may still fire. Y's start withdraws X: no token
    can reach J any more, yet it waited for Y's person to complete Y, for good if none did
    (conform h35 F3)."""
    spec = (
        net.workflow("choice")
        .start_condition("start")
        .end_condition("end")
        .condition("c0")
        .dummy_task("S")
        .task("A", auto())
        .task("X", auto())
        .task("Y", auto())
        .task("J", auto().join("or"))
        .task("Z", auto().join("xor"))
        .connect_condition("start", "S")
        .connect_task("S", "A", "c0")
        .connect_condition("c0", "X", "Y")
        .connect_task("A", "J")
        .connect_task("X", "J")
        .connect_task("Y", "Z")
        .connect_task("J", "Z")
        .connect_task("Z", "end")
        .build()
    )
    rt.register(spec)
    wid = await rt.start_workflow("choice")
    await run(rt, wid, "A")
    assert (await states(rt, wid))["J"] == "disabled"  # X may still fire
    y = await open_item(rt, wid, "Y")
    await rt.start_work_item(y.id)
    after = await states(rt, wid)
    assert (after["X"], after["Y"], after["J"]) == ("disabled", "started", "enabled")


def rechecked(spec: NetSpec, task: str) -> list[str]:
    """What spec section 1.3 steps 5-6 re-check after ``task`` completes: the tasks after each of
    its output conditions, marked or not, and the task itself; and, here, every OR-join of the
    net (any completion may end what it waits for)."""
    after = [t for c in spec.tasks[task].outputs for t in spec.conditions[c].outputs]
    or_joins = [t for t, d in spec.tasks.items() if d.join is JoinType.OR]
    return [*dict.fromkeys([*after, *or_joins]), task]


def satisfied(
    spec: NetSpec, task: str, marking: dict[str, int], started: set[str], idle: set[str]
) -> bool | None:
    """The join rule decided by exhaustive search (None: the search was too large); ``idle``:
    the tasks that cannot start on the tokens they hold until a task before them completes."""
    definition = spec.tasks[task]
    marked = [c for c in definition.inputs if marking.get(c, 0) > 0]
    if definition.join is JoinType.AND:
        return len(marked) == len(definition.inputs) > 0
    if definition.join is JoinType.XOR or not marked:
        return bool(marked)
    empty = [c for c in definition.inputs if marking.get(c, 0) <= 0]
    reset = ResetNet.of(spec, task)
    current = {c: n for c, n in marking.items() if n > 0}
    current |= {f"task:{t}" if t in started else f"free:{t}": 1 for t in spec.tasks}
    current |= {f"armed:{t}": 1 for t in reset.armed if t not in started and t not in idle}
    for condition in empty:
        reachable = forward_coverable(reset, dict.fromkeys(marked, 1) | {condition: 1}, current)
        if reachable is None:
            return None
        if reachable:
            return False
    return True


@st.composite
def acyclic_nets(draw: st.DrawFn) -> tuple[NetSpec, dict[str, Any]]:
    names = [f"t{i}" for i in range(draw(st.integers(3, 6)))]
    sources = {"t0": ["start"]}
    for index, name in enumerate(names[1:], start=1):
        pool = ["start", *names[:index]]
        sources[name] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
    targets: dict[str, list[str]] = {name: [] for name in names}
    for name, inputs in sources.items():
        for source in inputs:
            if source != "start":
                targets[source].append(name)
    for name in names:
        if not targets[name] or draw(st.booleans()):
            targets[name].append("end")
    builder = net.workflow("random").start_condition("start").end_condition("end")
    choices: dict[str, Any] = {}
    for name in names:
        task = auto()
        if len(sources[name]) > 1:
            task = task.join(draw(st.sampled_from(["and", "xor", "or"])))
        outs = targets[name]
        if len(outs) > 1:
            split = draw(st.sampled_from(["and", "xor", "or"]))
            task = task.split(split)
            if split == "xor":
                choices[name] = [draw(st.sampled_from(outs))]
            elif split == "or":
                choices[name] = draw(st.lists(st.sampled_from(outs), min_size=1, unique=True))
            if split != "and":
                task = task.route(_router(choices[name], split))
        builder.task(name, task)
    for name in names:
        if "start" in sources[name]:
            builder.connect_condition("start", name)
        builder.connect_task(name, *targets[name])
    return builder.build(), choices


def _router(chosen: list[str], split: str) -> Any:
    def route(ctx: Any) -> Any:
        routes = [ctx.route.to_condition(t) if t == "end" else ctx.route.to_task(t) for t in chosen]
        return routes[0] if split == "xor" else routes

    return route


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acyclic_nets(), st.data())
def test_or_joins_are_enabled_exactly_when_their_join_is_satisfied(
    case: tuple[NetSpec, dict[str, Any]], data: st.DataObject
) -> None:
    spec, _choices = case
    checks: list[str] = []

    async def drive() -> None:
        async with cf.Runtime(clock=ManualClock(), workflows=[spec]) as rt:
            wid = await rt.start_workflow("random")
            for _ in range(3 * len(spec.tasks)):
                before = await states(rt, wid)
                if str(await rt.workflow_state(wid)) != "started" and any(
                    s == "started" for s in before.values()
                ):
                    break
                open_tasks = sorted(t for t, s in before.items() if s in ("enabled", "started"))
                if not open_tasks or str(await rt.workflow_state(wid)) in ("completed", "failed"):
                    break
                task = data.draw(st.sampled_from(open_tasks))
                await run(rt, wid, task)
                if str(await rt.workflow_state(wid)) != "started":
                    break  # the end condition was marked: everything else was shut down
                after = await states(rt, wid)
                marking = await rt.marking(wid)
                started = {t for t, s in after.items() if s == "started"}
                idle = {t for t, s in after.items() if s in ("canceled", "failed")}
                for candidate in rechecked(spec, task):
                    expected = satisfied(spec, candidate, marking, started, idle)
                    if expected is None:
                        continue
                    checks.append(candidate)
                    if after[candidate] in _ENABLEABLE:
                        assert not expected, (candidate, marking, after)
                    elif before[candidate] in _ENABLEABLE and after[candidate] == "enabled":
                        assert expected, (candidate, marking, after)

    asyncio.run(drive())
    event(f"tasks re-checked: {min(len(checks), 10)}")


async def test_an_or_join_a_region_empties_waits_for_the_tokens_of_the_same_completion(
    rt: cf.Runtime,
) -> None:
    """T1, an OR-join on c0 and T0's output, is enabled; T3's completion empties c0 by its
    region and routes to T2, which puts a token back on c0. T1 was asked between the region
    and T3's production, took T3 for done, stayed enabled and fired; then ran a second time on
    T2's token (conform h37 F2). It waits, and fires once, with both inputs marked."""
    spec = build(
        "early",
        {
            "T0": auto(),
            "T1": auto().join("or").split("xor").route(lambda ctx: ctx.route.to_condition("end")),
            "T2": auto().join("xor"),
            "T3": auto().split("xor").route(lambda ctx: ctx.route.to_task("T2")),
        },
        [
            ("start", "T0"),
            ("T0", "c0"),
            ("T0", "T1"),
            ("T0", "T2"),
            ("c0", "T1"),
            ("c0", "T3"),
            ("T1", "c0"),
            ("T1", "end"),
            ("T2", "c0"),
            ("T3", "c0"),
            ("T3", "end"),
            ("T3", "T2"),
        ],
        conditions=["c0"],
        regions={"T3": ["T0", "T2", "c0"]},
    )
    rt.register(spec)
    wid = await rt.start_workflow("early")
    for task in ("T0", "T2", "T3"):
        await run(rt, wid, task)
    assert (await states(rt, wid))["T1"] == "disabled"  # T2 (enabled) may still mark c0
    await run(rt, wid, "T2")
    assert (await states(rt, wid))["T1"] == "enabled"
    await run(rt, wid, "T1")
    assert len(await rt.work_items(wid, "T1")) == 1  # one generation, one run


async def test_a_start_that_takes_a_disabled_tasks_token_asks_the_or_joins_again(
    rt: cf.Runtime,
) -> None:
    """Y's start takes c0, which X, an AND-join still missing c1, would need: X can never feed
    J any more, so J, waiting on A's token, may fire. X was not enabled, nothing was lost, and
    J was not asked until some task completed (conform h37 F4)."""
    route_c1 = auto().split("xor").route(lambda ctx: ctx.route.to_condition("c1"))
    spec = build(
        "withdrawn",
        {"S": auto(), "A": auto(), "E": route_c1, "X": auto(), "Y": auto()}
        | {"J": auto().join("or"), "Z": auto().join("xor")},
        [
            ("start", "S"),
            ("S", "c0"),
            ("S", "A"),
            ("S", "E"),
            ("c0", "X"),
            ("c0", "Y"),
            ("E", "c1"),
            ("E", "Z"),
            ("c1", "X"),
            ("A", "J"),
            ("X", "J"),
            ("J", "Z"),
            ("Y", "Z"),
            ("Z", "end"),
        ],
        conditions=["c0", "c1"],
    )
    rt.register(spec)
    wid = await rt.start_workflow("withdrawn")
    await run(rt, wid, "S")
    await run(rt, wid, "A")
    assert (await states(rt, wid))["J"] == "disabled"  # E, then X, may still feed it
    y = await open_item(rt, wid, "Y")
    await rt.start_work_item(y.id)
    assert (await states(rt, wid))["J"] == "enabled"


async def test_an_or_join_a_region_cancels_stays_canceled(rt: cf.Runtime) -> None:
    """K, an OR-join of two marked inputs, is enabled; X's region cancels K (not its inputs).
    Every completion asked the OR-joins with a marked input, X's own among them, so K came back
    at once as a new generation and the region did nothing (conform h37 F3). As any canceled
    task, it keeps its tokens and waits for a completion before it."""
    spec = build(
        "k2",
        {"S": auto(), "K": auto().join("or"), "X": auto(), "Z": auto().join("xor")},
        [
            ("start", "S"),
            ("S", "c1"),
            ("S", "c2"),
            ("c1", "K"),
            ("c2", "K"),
            ("S", "X"),
            ("X", "Z"),
            ("K", "Z"),
            ("Z", "end"),
        ],
        conditions=["c1", "c2"],
        regions={"X": ["K"]},
    )
    rt.register(spec)
    wid = await rt.start_workflow("k2")
    await run(rt, wid, "S")
    assert (await states(rt, wid))["K"] == "enabled"
    await run(rt, wid, "X")
    assert (await states(rt, wid))["K"] == "canceled"
    assert [i.state for i in await rt.work_items(wid, "K")] == ["canceled"]  # no new one
    assert (await rt.marking(wid))["c1"] == 1  # (its tokens kept)

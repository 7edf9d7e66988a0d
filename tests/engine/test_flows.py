"""Token flow through the engine: splits, joins, deferred choice, OR-joins, loops, dummies."""

from __future__ import annotations

import asyncio

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import InvalidRouteError
from tests.engine.helpers import (
    build,
    enabled,
    manual,
    open_item,
    refused_completion,
    run,
    states,
)


async def test_sequence_moves_one_task_at_a_time(rt: cf.Runtime) -> None:
    rt.register(
        build("seq", manual("a", "b", "c"), [("start", "a"), ("a", "b"), ("b", "c"), ("c", "end")])
    )
    wid = await rt.start_workflow("seq", {"order": 7})
    assert await states(rt, wid) == {"a": "enabled", "b": "disabled", "c": "disabled"}
    assert await rt.workflow_state(wid) == "initialized"
    item = await open_item(rt, wid, "a")
    await rt.start_work_item(item.id)
    assert await rt.workflow_state(wid) == "started"
    assert (await states(rt, wid))["a"] == "started"
    await rt.complete_work_item(item.id, {"a": 1})
    assert await states(rt, wid) == {"a": "completed", "b": "enabled", "c": "disabled"}
    await run(rt, wid, "b")
    await run(rt, wid, "c", {"done": True})
    info = await rt.workflow(wid)
    assert info.state == "completed"
    assert info.output == {"done": True}
    assert info.payload == {"order": 7}
    assert await rt.marking(wid) == {"start": 0, "end": 1, "a__to__b": 0, "b__to__c": 0}


async def test_and_split_and_join(rt: cf.Runtime) -> None:
    tasks = manual("a", "b", "c", "d")
    flows = [("start", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "end")]
    rt.register(build("and", tasks, flows))
    wid = await rt.start_workflow("and")
    await run(rt, wid, "a")
    assert await enabled(rt, wid) == {"b", "c"}
    await run(rt, wid, "b")
    assert await enabled(rt, wid) == {"c"}
    assert (await states(rt, wid))["d"] == "disabled"
    await run(rt, wid, "c")
    assert await enabled(rt, wid) == {"d"}
    await run(rt, wid, "d")
    assert await rt.workflow_state(wid) == "completed"


def xor_net(router: object) -> net.NetSpec:
    tasks = {
        "a": net.task().split("xor").route(router),  # type: ignore[arg-type]
        "b": net.task(),
        "c": net.task(),
        "d": net.task().join("xor"),
    }
    flows = [("start", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "end")]
    return build("xor", tasks, flows)


async def test_xor_routing_follows_the_router_and_its_data(rt: cf.Runtime) -> None:
    seen = []

    def router(ctx: net.Context) -> net.Route:  # type: ignore[name-defined]
        seen.append((ctx.task.name, ctx.output, ctx.payload))
        return ctx.route.to_task("c" if ctx.output["amount"] > 100 else "b")

    rt.register(xor_net(router))
    wid = await rt.start_workflow("xor", {"customer": "x"})
    await run(rt, wid, "a", {"amount": 500})
    assert seen == [("a", {"amount": 500}, {"customer": "x"})]
    assert await enabled(rt, wid) == {"c"}
    assert (await states(rt, wid))["b"] == "disabled"
    await run(rt, wid, "c")
    assert await enabled(rt, wid) == {"d"}
    await run(rt, wid, "d")
    assert await rt.workflow_state(wid) == "completed"
    assert (await states(rt, wid))["b"] == "disabled"


async def test_a_bad_route_is_refused_and_changes_nothing(rt: cf.Runtime) -> None:
    rt.register(xor_net(lambda ctx: ctx.route.to_task("nowhere")))
    wid = await rt.start_workflow("xor")
    item = await open_item(rt, wid, "a")
    await rt.start_work_item(item.id)
    with pytest.raises(InvalidRouteError, match="nowhere"):
        await rt.complete_work_item(item.id, {"amount": 1})
    assert (await rt.work_item(item.id)).state == "started"
    assert (await states(rt, wid))["a"] == "started"


async def test_an_or_router_that_names_no_route_is_refused_and_changes_nothing(
    rt: cf.Runtime,
) -> None:
    """An or split's router answering ``[]`` completed its task with no token anywhere: the
    workflow waited for good, nothing enabled, no error (conform h26 H2). Refused as a route to
    no successor is."""
    tasks = {"a": net.task().split("or").route(lambda ctx: []), "b": net.task(), "c": net.task()}
    arcs = [("start", "a"), ("a", "b"), ("a", "c"), ("b", "end"), ("c", "end")]
    rt.register(build("orr", tasks, arcs))
    wid = await rt.start_workflow("orr")
    await refused_completion(rt, wid, "a", InvalidRouteError, "at least one route")
    assert await rt.workflow_state(wid) == "started"


async def test_a_router_that_raises_on_a_handlers_result_fails_the_workflow(
    rt: cf.Runtime,
) -> None:
    # nobody asked for a handler's result, so nobody can be refused it: the item's completion
    # stands (its output kept) and the workflow fails with the router's error
    def router(ctx: net.Context) -> net.Route:  # type: ignore[name-defined]
        raise KeyError(ctx.output["missing"])

    tasks = {
        "a": net.task(net.work_item("a", handler=lambda ctx: {"amount": 3}))
        .split("xor")
        .route(router),
        "b": net.task(),
        "c": net.task(),
        "d": net.task().join("xor"),
    }
    flows = [("start", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "end")]
    rt.register(build("raising", tasks, flows))
    wid = await rt.start_workflow("raising")
    async with asyncio.timeout(5):
        info = await rt.wait_workflow(wid)
    assert info.state == "failed"
    assert info.error == "router of task 'a': KeyError: 'missing'"
    [item] = await rt.work_items(wid, "a")
    assert (item.state, item.output) == ("completed", {"amount": 3})
    assert (await states(rt, wid))["b"] == "disabled"


async def test_deferred_choice_disables_the_competitor_when_one_starts(rt: cf.Runtime) -> None:
    tasks = manual("a", "b", "c")
    flows = [("start", "a"), ("a", "c1"), ("c1", "b"), ("c1", "c"), ("b", "end"), ("c", "end")]
    rt.register(build("choice", tasks, flows, conditions=["c1"]))
    wid = await rt.start_workflow("choice")
    await run(rt, wid, "a")
    assert await enabled(rt, wid) == {"b", "c"}
    loser = await open_item(rt, wid, "c")
    winner = await open_item(rt, wid, "b")
    await rt.start_work_item(winner.id)
    assert await states(rt, wid) == {"a": "completed", "b": "started", "c": "disabled"}
    assert (await rt.work_item(loser.id)).state == "canceled"
    assert (await rt.marking(wid))["c1"] == 0
    await rt.complete_work_item(winner.id)
    assert await rt.workflow_state(wid) == "completed"


def travel_net(choice: list[str]) -> net.NetSpec:
    tasks = {
        "register": net.task()
        .split("or")
        .route(lambda ctx: [ctx.route.to_task(t) for t in choice]),
        "flight": net.task(),
        "car": net.task(),
        "hotel": net.task(),
        "pay": net.task().join("or"),
    }
    flows = [("start", "register")]
    flows += [("register", t) for t in ("flight", "car", "hotel")]
    flows += [(t, "pay") for t in ("flight", "car", "hotel")]
    flows += [("pay", "end")]
    return build("travel", tasks, flows)


async def test_or_join_waits_for_every_chosen_branch_only(rt: cf.Runtime) -> None:
    rt.register(travel_net(["car", "hotel"]))
    wid = await rt.start_workflow("travel")
    await run(rt, wid, "register")
    assert await enabled(rt, wid) == {"car", "hotel"}
    await run(rt, wid, "car")
    assert "pay" not in await enabled(rt, wid)  # hotel was chosen and has not arrived
    await run(rt, wid, "hotel")
    assert await enabled(rt, wid) == {"pay"}
    await run(rt, wid, "pay")
    assert await rt.workflow_state(wid) == "completed"
    assert (await states(rt, wid))["flight"] == "disabled"


async def test_or_join_fires_at_once_for_a_single_branch(rt: cf.Runtime) -> None:
    rt.register(travel_net(["flight"]))
    wid = await rt.start_workflow("travel")
    await run(rt, wid, "register")
    await run(rt, wid, "flight")
    assert await enabled(rt, wid) == {"pay"}


async def test_chained_or_joins(rt: cf.Runtime) -> None:
    both = lambda ctx: [ctx.route.to_task("b"), ctx.route.to_task("c")]  # noqa: E731
    tasks = {
        "a": net.task().split("or").route(both),
        "b": net.task(),
        "c": net.task(),
        "d": net.task().join("or").split("or").route(lambda ctx: [ctx.route.to_task("e")]),
        "e": net.task(),
        "f": net.task(),
        "g": net.task().join("or"),
    }
    flows = [("start", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    flows += [("d", "e"), ("d", "f"), ("e", "g"), ("f", "g"), ("g", "end")]
    rt.register(build("chain", tasks, flows))
    wid = await rt.start_workflow("chain")
    await run(rt, wid, "a")
    await run(rt, wid, "c")
    assert await enabled(rt, wid) == {"b"}
    await run(rt, wid, "b")
    assert await enabled(rt, wid) == {"d"}
    await run(rt, wid, "d")
    assert await enabled(rt, wid) == {"e"}
    await run(rt, wid, "e")
    assert await enabled(rt, wid) == {"g"}
    await run(rt, wid, "g")
    assert await rt.workflow_state(wid) == "completed"


async def test_or_join_with_a_cancellation_region(rt: cf.Runtime) -> None:
    """Tasquencer's or-join-cancellation-region net: B (xor join, and split) feeds itself and
    D/E; D's completion empties B's loop condition; the OR-join G waits while F can still come."""
    tasks = {n: net.task() for n in "ACDEF"} | {
        "B": net.task().join("xor"),
        "G": net.task().join("or"),
    }
    flows = [("start", "A"), ("A", "B"), ("A", "C"), ("B", "bToB"), ("B", "bToDAndE")]
    flows += [("bToB", "B"), ("bToDAndE", "D"), ("bToDAndE", "E"), ("C", "G"), ("D", "F")]
    flows += [("E", "F"), ("F", "G"), ("G", "end")]
    spec = build("orcr", tasks, flows, conditions=["bToB", "bToDAndE"], regions={"D": ["bToB"]})
    rt.register(spec)
    wid = await rt.start_workflow("orcr")
    await run(rt, wid, "A")
    await run(rt, wid, "C")
    assert await enabled(rt, wid) == {"B"}  # G waits: B may still feed F
    await run(rt, wid, "B")
    await run(rt, wid, "B")
    assert await rt.task_generation(wid, "B") == 3
    assert (await rt.marking(wid))["bToDAndE"] == 2
    assert await enabled(rt, wid) == {"B", "D", "E"}
    await run(rt, wid, "D")  # empties bToB: B loses its token
    assert await enabled(rt, wid) == {"D", "E"}  # D re-fires on the second token
    await run(rt, wid, "E")
    assert await enabled(rt, wid) == {"F"}
    assert (await states(rt, wid))["D"] == "disabled"
    await run(rt, wid, "F")
    assert await enabled(rt, wid) == {"G"}
    await run(rt, wid, "G")
    assert await rt.workflow_state(wid) == "completed"


async def test_an_or_join_does_not_wait_for_a_task_canceled_on_its_token(rt: cf.Runtime) -> None:
    """a's region cancels b while b is enabled: b's token stays in cb (spec 1.3), but nothing
    asks b again, so it cannot start on it. The OR-join e waited for b for good (h24's
    conformance audit H1): the workflow never ended."""
    tasks = {"s": net.dummy_task(), "a": net.task(), "b": net.task(), "e": net.task().join("or")}
    flows = [("start", "s"), ("s", "cb"), ("cb", "b"), ("s", "a"), ("a", "e"), ("b", "e")]
    flows += [("e", "end")]
    rt.register(build("stale", tasks, flows, conditions=["cb"], regions={"a": ["b"]}))
    wid = await rt.start_workflow("stale")
    await run(rt, wid, "a")
    assert (await states(rt, wid))["b"] == "canceled"
    assert (await rt.marking(wid))["cb"] == 1
    assert await enabled(rt, wid) == {"e"}
    await run(rt, wid, "e")
    assert await rt.workflow_state(wid) == "completed"


async def test_an_or_join_waits_for_a_canceled_task_its_completion_asks_again(
    rt: cf.Runtime,
) -> None:
    """a cancels b and puts a token in b's input in one completion; e, declared before b, is
    asked first, while b is still canceled: b is about to be asked, so e waits for it."""
    tasks = {"s": net.dummy_task(), "a": net.task(), "e": net.task().join("or"), "b": net.task()}
    flows = [("start", "s"), ("s", "cb"), ("cb", "b"), ("s", "a"), ("a", "cb"), ("a", "e")]
    flows += [("b", "e"), ("e", "end")]
    rt.register(build("asked", tasks, flows, conditions=["cb"], regions={"a": ["b"]}))
    wid = await rt.start_workflow("asked")
    await run(rt, wid, "a")
    assert await enabled(rt, wid) == {"b"}  # e waits: b runs on cb's tokens
    await run(rt, wid, "b")
    assert await enabled(rt, wid) == {"b", "e"}  # (b again, on cb's second token)


async def test_loop_net_or_join_fires_next_to_d(rt: cf.Runtime) -> None:
    """Tasquencer's loop net with C's cancellation region: at {c3} the OR-join E is enabled
    next to D (our decision, written next to the OR-join code); E wins the deferred choice."""
    tasks = {n: net.task() for n in "ABCD"} | {"E": net.task().join("or")}
    flows = [("start", "A"), ("A", "c1"), ("c1", "B"), ("B", "c2"), ("c2", "C"), ("c2", "E")]
    flows += [("C", "c3"), ("c3", "D"), ("c3", "E"), ("D", "c1"), ("D", "c2"), ("E", "end")]
    rt.register(
        build(
            "loopnet", tasks, flows, conditions=["c1", "c2", "c3"], regions={"C": ["B", "c1", "c2"]}
        )
    )
    wid = await rt.start_workflow("loopnet")
    await run(rt, wid, "A")
    await run(rt, wid, "B")
    assert await enabled(rt, wid) == {"C", "E"}  # {c2}: E enabled
    await run(rt, wid, "C")
    assert await enabled(rt, wid) == {"D", "E"}  # {c3}: E next to D
    e = await open_item(rt, wid, "E")
    await rt.start_work_item(e.id)
    assert (await states(rt, wid))["D"] == "disabled"
    await rt.complete_work_item(e.id)
    assert await rt.workflow_state(wid) == "completed"


async def test_loop_increments_generations_and_queries_see_the_latest(rt: cf.Runtime) -> None:
    rounds = iter([True, True, False])
    tasks = {
        "a": net.task().join("xor"),
        "b": net.task()
        .split("xor")
        .route(
            lambda ctx: ctx.route.to_task("a") if next(rounds) else ctx.route.to_condition("end")
        ),
    }
    rt.register(build("loop", tasks, [("start", "a"), ("a", "b"), ("b", "a"), ("b", "end")]))
    wid = await rt.start_workflow("loop")
    first = []
    for expected in (1, 2, 3):
        assert await rt.task_generation(wid, "a") == expected
        items = await rt.work_items(wid, "a")
        assert len(items) == 1
        assert items[0].generation == expected
        first.append(items[0].id)
        await run(rt, wid, "a", expected)
        await run(rt, wid, "b")
    assert len(set(first)) == 3
    assert await rt.workflow_state(wid) == "completed"
    assert (await rt.workflow(wid)).output is None  # b's output reached the end


async def test_tokens_accumulate_and_refire_the_task(rt: cf.Runtime) -> None:
    tasks = manual("a", "b", "d", "e") | {"s": net.dummy_task()}
    flows = [("start", "s"), ("s", "a"), ("s", "b"), ("a", "c1"), ("b", "c1"), ("c1", "d")]
    flows += [("d", "c2"), ("c2", "e"), ("e", "end")]
    rt.register(build("acc", tasks, flows, conditions=["c1", "c2"]))
    wid = await rt.start_workflow("acc")
    await run(rt, wid, "a")
    await run(rt, wid, "b")
    assert (await rt.marking(wid))["c1"] == 2
    assert await enabled(rt, wid) == {"d"}
    await run(rt, wid, "d")
    # one token left in c1: d fires again in a new generation; e got d's token
    assert await rt.task_generation(wid, "d") == 2
    assert await enabled(rt, wid) == {"d", "e"}
    assert (await rt.marking(wid))["c1"] == 1
    await run(rt, wid, "d")
    assert (await rt.marking(wid))["c2"] == 2
    await run(rt, wid, "e")
    assert await rt.workflow_state(wid) == "completed"


async def test_dummy_tasks_pass_straight_through(rt: cf.Runtime) -> None:
    log: list[str] = []
    tasks = manual("a", "b") | {
        "split": net.dummy_task().activities(
            on_enabled=lambda ctx: log.append("enabled"),
            on_started=lambda ctx: log.append("started"),
            on_completed=lambda ctx: log.append("completed"),
        ),
        "merge": net.dummy_task(),
    }
    flows = [
        ("start", "split"),
        ("split", "a"),
        ("split", "b"),
        ("a", "merge"),
        ("b", "merge"),
        ("merge", "end"),
    ]
    rt.register(build("dummy", tasks, flows))
    wid = await rt.start_workflow("dummy")
    assert log == ["enabled", "started", "completed"]
    assert await states(rt, wid) == {
        "a": "enabled",
        "b": "enabled",
        "split": "completed",
        "merge": "disabled",
    }
    assert await rt.workflow_state(wid) == "started"
    await run(rt, wid, "a")
    await run(rt, wid, "b")
    assert await rt.workflow_state(wid) == "completed"
    assert (await states(rt, wid))["merge"] == "completed"


async def test_reaching_the_end_shuts_down_active_siblings(rt: cf.Runtime) -> None:
    tasks = manual("a", "b", "c") | {"s": net.dummy_task()}
    flows = [
        ("start", "s"),
        ("s", "a"),
        ("s", "b"),
        ("s", "c"),
        ("a", "end"),
        ("b", "end"),
        ("c", "end"),
    ]
    rt.register(build("race", tasks, flows))
    wid = await rt.start_workflow("race")
    b = await open_item(rt, wid, "b")
    await rt.start_work_item(b.id)
    c = await open_item(rt, wid, "c")
    await run(rt, wid, "a")
    assert await rt.workflow_state(wid) == "completed"
    assert await states(rt, wid) == {
        "a": "completed",
        "b": "canceled",
        "c": "disabled",
        "s": "completed",
    }
    assert (await rt.work_item(b.id)).state == "canceled"
    assert (await rt.work_item(c.id)).state == "canceled"

from __future__ import annotations

import pytest

from cronflow_actors.errors import InvalidRouteError
from cronflow_actors.net import Route
from cronflow_actors.net.marking import (
    after_cancellation,
    after_production,
    after_start,
    enable_candidates,
    is_join_satisfied,
    resolve_routes,
    tasks_to_disable,
)
from cronflow_actors.net.spec import implicit_condition_name
from tests.net.nets import make_net


def diamond(split: str = "and", join: str = "and"):  # type: ignore[no-untyped-def]
    return make_net(
        {"a": f"and/{split}", "b": "and/and", "c": "and/and", "d": f"{join}/and"},
        [("start", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "end")],
    )


def test_and_join_needs_every_input_and_xor_join_any() -> None:
    and_net, xor_net = diamond(join="and"), diamond(join="xor")
    one = {"b__to__d": 1}
    both = {"b__to__d": 1, "c__to__d": 1}
    assert not is_join_satisfied(and_net, "d", one)
    assert is_join_satisfied(and_net, "d", both)
    assert is_join_satisfied(xor_net, "d", one)
    assert not is_join_satisfied(xor_net, "d", {})


def test_starting_takes_one_token_from_every_input_whatever_the_join() -> None:
    xor_net = diamond(join="xor")
    marking, emptied = after_start(xor_net, "d", {"b__to__d": 2, "c__to__d": 1})
    assert marking == {"b__to__d": 1, "c__to__d": 0}
    assert emptied == ["c__to__d"]
    marking, emptied = after_start(xor_net, "d", {"b__to__d": 1})
    assert marking == {"b__to__d": 0}  # clamped, never negative
    assert emptied == ["b__to__d"]


def test_and_split_marks_every_output_and_xor_or_splits_the_routed_ones() -> None:
    marking, marked = after_production(diamond(), "a", {"start": 0})
    assert marked == ["a__to__b", "a__to__c"]
    assert marking["a__to__b"] == marking["a__to__c"] == 1
    xor_net = diamond(split="xor")
    routed = resolve_routes(xor_net, "a", Route("task", "c"))
    assert routed == ["a__to__c"]
    assert after_production(xor_net, "a", {}, routed) == ({"a__to__c": 1}, ["a__to__c"])
    or_net = diamond(split="or")
    assert resolve_routes(or_net, "a", [Route("task", "b"), Route("task", "c")]) == [
        "a__to__b",
        "a__to__c",
    ]
    with pytest.raises(InvalidRouteError, match="at least one route"):  # a dead end
        resolve_routes(or_net, "a", [])


def test_bad_routes_are_reported_with_the_task_and_its_successors() -> None:
    xor_net, or_net = diamond(split="xor"), diamond(split="or")
    with pytest.raises(InvalidRouteError, match="exactly one route"):
        resolve_routes(xor_net, "a", [Route("task", "b")])
    with pytest.raises(InvalidRouteError, match=r"successors: \['b', 'c'\]"):
        resolve_routes(xor_net, "a", Route("task", "d"))
    with pytest.raises(InvalidRouteError, match="list of routes"):
        resolve_routes(or_net, "a", Route("task", "b"))
    with pytest.raises(InvalidRouteError, match=r"ctx\.route\.to_task"):
        resolve_routes(or_net, "a", ["b"])


def test_deferred_choice_disables_competitors_whose_join_fails() -> None:
    net = make_net(
        {"pick": "and/and", "x": "and/and", "y": "xor/and", "z": "and/and"},
        [
            ("start", "pick"),
            ("pick", "shared"),
            ("pick", "other"),
            ("shared", "x"),
            ("shared", "y"),
            ("other", "y"),
            ("shared", "z"),
            ("x", "end"),
            ("y", "end"),
            ("z", "end"),
        ],
        conditions=("shared", "other"),
    )
    # z takes the shared token: x loses its only input; y (xor) still has "other".
    marking, emptied = after_start(net, "z", {"shared": 1, "other": 1})
    assert tasks_to_disable(net, marking, emptied, enabled=["x", "y"]) == ["x"]


def test_cancellation_region_empties_its_conditions() -> None:
    net = make_net(
        {"a": "and/and", "b": "and/and"},
        [("start", "a"), ("start", "b"), ("a", "end"), ("b", "end"), ("c1", "b")],
        conditions=("c1",),
        cancel={"a": ("b", "c1")},
    )
    assert after_cancellation(net, "a", {"c1": 3, "start": 1}) == {"c1": 0, "start": 1}
    assert net.tasks["a"].cancel_tasks == frozenset({"b"})


def test_enable_candidates_in_declaration_order_then_the_task_itself() -> None:
    net = diamond()
    assert enable_candidates(net, "a") == ("b", "c", "a")


def test_enable_candidates_ask_the_other_or_joins_that_a_token_reached() -> None:
    # j2 and j1 are OR-joins of two inputs each (j2 declared first), o of one input
    tasks = {"j2": "or/and", "a": "and/and", "b": "and/and", "c": "and/and", "j1": "or/and"}
    flows = [("start", "a"), ("start", "b"), ("start", "c"), ("a", "j1"), ("b", "j1")]
    flows += [("b", "j2"), ("c", "j2"), ("j1", "o"), ("j2", "end"), ("o", "end")]
    net = make_net(tasks | {"o": "or/and"}, flows)
    into = implicit_condition_name
    # with no marking: every OR-join of more than one input, in declaration order, then c
    assert enable_candidates(net, "c") == ("j2", "j1", "c")
    # j1's input from a is marked, j2's none: only j1; o (one input, marked) not: only j1's
    # completion can enable it
    marking = {into("a", "j1"): 1, into("b", "j2"): 0, into("j1", "o"): 1}
    assert enable_candidates(net, "c", marking) == ("j2", "j1", "c")
    assert enable_candidates(net, "a", marking) == ("j1", "a")
    assert enable_candidates(net, "o", marking) == ("j1", "o")
    marking[into("a", "j1")] = 0  # no token before j1 any more: c's completion need not ask it
    assert enable_candidates(net, "c", marking) == ("j2", "c")
    assert enable_candidates(net, "o", marking) == ("o",)

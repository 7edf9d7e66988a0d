"""The OR-join decision, on Tasquencer's nets and against an exhaustive forward search."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cronflow_actors.net import coverability
from cronflow_actors.net.orjoin import ResetNet, ResetTransition, is_or_join_enabled
from cronflow_actors.net.spec import NetSpec, SplitType
from tests.net.nets import loop_net, make_net


def travel_net() -> NetSpec:
    """Tasquencer's or-split-join net: register -OR-> flight/car/hotel -> pay (OR-join)."""
    return make_net(
        {
            "register": "and/or",
            "book_flight": "and/and",
            "book_car": "and/and",
            "book_hotel": "and/and",
            "pay": "or/and",
        },
        [
            ("start", "register"),
            ("register", "book_flight"),
            ("register", "book_car"),
            ("register", "book_hotel"),
            ("book_flight", "pay"),
            ("book_car", "pay"),
            ("book_hotel", "pay"),
            ("pay", "end"),
        ],
    )


def into_pay(source: str) -> str:
    return f"{source}__to__pay"


def test_or_join_waits_for_branches_that_were_chosen_and_are_still_running() -> None:
    net = travel_net()
    flight, car, hotel = into_pay("book_flight"), into_pay("book_car"), into_pay("book_hotel")
    # Flight finished, car and hotel are still running: wait.
    assert not is_or_join_enabled(net, "pay", {flight: 1}, started=["book_car", "book_hotel"])
    # Car and hotel were chosen and hotel is only enabled (its token sits in its input): wait.
    hotel_input = "register__to__book_hotel"
    assert not is_or_join_enabled(net, "pay", {car: 1, hotel_input: 1}, started=[])
    # Every chosen branch has arrived: fire, although flight was never chosen.
    assert is_or_join_enabled(net, "pay", {car: 1, hotel: 1}, started=[])
    assert is_or_join_enabled(net, "pay", {flight: 1, car: 1, hotel: 1}, started=[])
    # Nothing marked: never.
    assert not is_or_join_enabled(net, "pay", {}, started=[])


def test_or_join_with_a_cancellation_region_upstream() -> None:
    """Tasquencer's or-join-cancellation-region net."""
    net = make_net(
        {
            "A": "and/and",
            "B": "xor/and",
            "C": "and/and",
            "D": "and/and",
            "E": "and/and",
            "F": "and/and",
            "G": "or/and",
        },
        [
            ("start", "A"),
            ("A", "B"),
            ("A", "C"),
            ("B", "bToB"),
            ("B", "bToDAndE"),
            ("bToB", "B"),
            ("bToDAndE", "D"),
            ("bToDAndE", "E"),
            ("C", "G"),
            ("D", "F"),
            ("E", "F"),
            ("F", "G"),
            ("G", "end"),
        ],
        conditions=("bToB", "bToDAndE"),
        cancel={"D": ("bToB",)},
    )
    c_to_g, f_to_g = "C__to__G", "F__to__G"
    # C done, B can still loop and eventually feed F: G waits.
    assert not is_or_join_enabled(net, "G", {c_to_g: 1, "bToB": 1}, started=[])
    # D and E done with B's loop token cancelled by D: F is enabled but not started, G waits.
    assert not is_or_join_enabled(net, "G", {c_to_g: 1, "D__to__F": 1, "E__to__F": 1}, started=[])
    assert is_or_join_enabled(net, "G", {c_to_g: 1, f_to_g: 1}, started=[])


def test_a_task_canceled_with_its_input_marked_cannot_feed_the_or_join() -> None:
    """s splits to a and (through cb) b, both feed the OR-join e; a's region cancels b while
    it is enabled. b's token stays in cb, but nothing asks b again (no task before it can
    complete): the analysis let b fire on it, and e waited for good (h24 conformance H1)."""
    net = make_net(
        {"s": "and/and", "a": "and/and", "b": "and/and", "e": "or/and"},
        [
            ("start", "s"),
            ("s", "a"),
            ("s", "cb"),
            ("cb", "b"),
            ("a", "e"),
            ("b", "e"),
            ("e", "end"),
        ],
        conditions=("cb",),
        cancel={"a": ("b",)},
    )
    after_a = {"cb": 1, "a__to__e": 1}
    assert is_or_join_enabled(net, "e", after_a, started=[], idle=["b"])
    # while b may still be asked (enabled, or not known to be canceled), e waits for it
    assert not is_or_join_enabled(net, "e", after_a, started=[])
    assert not is_or_join_enabled(net, "e", {"a__to__e": 1}, started=["b"], idle=["b"])


def test_or_join_decisions_on_the_loop_net_with_a_cancellation_region() -> None:
    """Tasquencer's loop net, with one run per task at a time (the engine's rule): C's completion
    empties c2 and cancels B, so c2 and c3 never hold tokens together and E never has to wait."""
    net = loop_net()
    assert is_or_join_enabled(net, "E", {"c2": 1}, started=[])
    assert is_or_join_enabled(net, "E", {"c3": 1}, started=[])
    assert is_or_join_enabled(net, "E", {"c1": 1, "c2": 1}, started=[])
    # D running while c3 is marked: D's end puts a token in c2 next to c3's: wait.
    assert not is_or_join_enabled(net, "E", {"c3": 1}, started=["D"])


def test_yawls_translation_makes_the_loop_nets_or_join_wait_forever() -> None:
    """Without the one-run cap (YAWL's translation) C may 'run' twice at once in the analysis,
    and E waits at every marking of Tasquencer's test: {c2}, {c3} and {c1, c2}."""
    yawl = ResetNet.of(loop_net(), "E", one_run_per_task=False)
    ours = ResetNet.of(loop_net(), "E")
    free = {f"free:{t}": 1 for t in "ABCDE"}
    for marked, empty in (({"c2": 1}, "c3"), ({"c3": 1}, "c2"), ({"c1": 1, "c2": 1}, "c3")):
        target = {c: 1 for c in marked if c != "c1"} | {empty: 1}
        assert yawl.coverable(target, marked)
        assert not ours.coverable(target, marked | free)


def test_without_the_cancellation_region_the_loop_net_makes_e_wait() -> None:
    net = loop_net(with_region=False)
    # Two tokens in c2: C takes one to c3 while the other stays.
    assert not is_or_join_enabled(net, "E", {"c2": 2}, started=[])
    # c1 and c3: B can put a token in c2 while c3 keeps its own.
    assert not is_or_join_enabled(net, "E", {"c1": 1, "c3": 1}, started=[])
    # Even a lone token in c3: D turns it into c1 and c2, C moves c2 on to c3 while c1 stays,
    # and B refills c2. Without C's cancellation region the loop can always feed both inputs.
    assert not is_or_join_enabled(net, "E", {"c3": 1}, started=[])


# -- the oracle: exhaustive forward search on bounded nets --------------------------------------


def forward_coverable(
    net: ResetNet, target: Mapping[str, int], marking: Mapping[str, int], limit: int = 4000
) -> bool | None:
    """Search every reachable marking; None if the net is too large or unbounded to finish."""
    start = tuple(sorted((p, n) for p, n in marking.items() if n))
    seen = {start}
    todo = [dict(start)]
    while todo:
        current = todo.pop()
        if all(current.get(p, 0) >= n for p, n in target.items()):
            return True
        for t in net.transitions:
            if not all(current.get(p, 0) >= n for p, n in t.pre.items()):
                continue
            after = dict(current)
            for p, n in t.pre.items():
                after[p] -= n
            for p in t.reset:
                after[p] = 0
            for p, n in t.post.items():
                after[p] = after.get(p, 0) + n
            if max(after.values(), default=0) > 5:
                return None
            key = tuple(sorted((p, n) for p, n in after.items() if n))
            if key not in seen:
                if len(seen) > limit:
                    return None
                seen.add(key)
                todo.append(dict(key))
    return False


@st.composite
def random_nets(draw: st.DrawFn) -> tuple[NetSpec, dict[str, int], list[str]]:
    names = [f"t{i}" for i in range(draw(st.integers(2, 5)))]
    places = ["start", "end", "p1", "p2", "p3"]
    gates = {
        n: f"{draw(st.sampled_from(['and', 'xor', 'or']))}/"
        f"{draw(st.sampled_from(['and', 'xor', 'or']))}"
        for n in names
    }
    flows = []
    for n in names:
        for p in draw(st.lists(st.sampled_from(places[:-1]), min_size=1, max_size=2, unique=True)):
            flows.append((p, n))
        for p in draw(st.lists(st.sampled_from(places[1:]), min_size=1, max_size=2, unique=True)):
            flows.append((n, p))
    cancel = {
        n: tuple(draw(st.lists(st.sampled_from([*places[1:4], *names]), max_size=2, unique=True)))
        for n in names
    }
    cancel = {n: tuple(r for r in region if r != n) for n, region in cancel.items()}
    net = make_net(gates, flows, conditions=("p1", "p2", "p3"), cancel=cancel)
    marking = {p: draw(st.integers(0, 2)) for p in places[:-1]}
    started = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    return net, marking, started


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets(), st.data())
def test_backward_coverability_agrees_with_forward_search(
    case: tuple[NetSpec, dict[str, int], list[str]], data: st.DataObject
) -> None:
    net_spec, marking, started = case
    join = data.draw(st.sampled_from(sorted(net_spec.tasks)))
    capped = data.draw(st.booleans())
    net = ResetNet.of(net_spec, join, one_run_per_task=capped, cone=False)
    current = {p: n for p, n in marking.items() if n} | {f"task:{t}": 1 for t in started}
    if capped:
        current |= {f"free:{t}": 1 for t in net_spec.tasks if t not in started}
        idle = data.draw(st.lists(st.sampled_from(sorted(net_spec.tasks)), max_size=2))
        current |= {f"armed:{t}": 1 for t in net.armed if t not in started and t not in idle}
    places = sorted({p for t in net.transitions for p in (*t.pre, *t.post)} | set(current))
    target = {
        p: data.draw(st.integers(0, 2))
        for p in data.draw(st.lists(st.sampled_from(places), min_size=1, max_size=3, unique=True))
    }
    expected = forward_coverable(net, target, current)
    assume(expected is not None)
    assert net.coverable(target, current, forward=False) == expected  # the backward search
    assert net.coverable(target, current) == expected  # the walk first, as the engine asks
    # the OR-join's cone alone answers the same for a marking of its inputs, as the engine asks
    inputs = net_spec.tasks[join].inputs
    asked = {p: data.draw(st.integers(1, 2), label=p) for p in inputs if data.draw(st.booleans())}
    expected = forward_coverable(net, asked, current)
    if expected is not None:
        cone = ResetNet.of(net_spec, join, one_run_per_task=capped)
        assert len(cone.transitions) <= len(net.transitions)
        assert cone.coverable(asked, current, forward=False) == expected
        assert cone.coverable(asked, current) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nets(), st.data())
def test_an_or_splits_end_with_every_output_answers_as_one_per_subset_would(
    case: tuple[NetSpec, dict[str, int], list[str]], data: st.DataObject
) -> None:
    """An OR-split's end is one transition, marking every output, where YAWL has one per
    non-empty subset (2^k: 20 outputs held the loop for 20 s, net h44 F1): a reset net is
    monotone, so the full end covers whatever a subset's does. Checked against the subsets'
    translation by the exhaustive search."""
    net_spec, marking, started = case
    join = data.draw(st.sampled_from(sorted(net_spec.tasks)))
    net = ResetNet.of(net_spec, join, cone=False)
    subsets = []
    for transition in net.transitions:
        task = net_spec.tasks[transition.name.split(":")[0]]
        if ":end:" not in transition.name or task.split is not SplitType.OR:
            subsets.append(transition)
            continue
        kept = {p: n for p, n in transition.post.items() if p not in task.outputs}
        subsets += [
            ResetTransition(
                transition.name, transition.pre, kept | dict.fromkeys(chosen, 1), transition.reset
            )
            for size in range(1, len(task.outputs) + 1)
            for chosen in itertools.combinations(task.outputs, size)
        ]
    yawl = SimpleNamespace(transitions=subsets)
    current = {p: n for p, n in marking.items() if n} | {f"task:{t}": 1 for t in started}
    current |= {f"free:{t}": 1 for t in net_spec.tasks if t not in started}
    current |= {f"armed:{t}": 1 for t in net.armed if t not in started}
    inputs = net_spec.tasks[join].inputs
    asked = {p: data.draw(st.integers(1, 2), label=p) for p in inputs if data.draw(st.booleans())}
    expected = forward_coverable(yawl, asked, current)  # type: ignore[arg-type]
    assume(expected is not None)
    assert forward_coverable(net, asked, current) == expected
    assert net.coverable(asked, current) == expected


def test_a_wide_or_split_gives_its_or_join_one_end_transition() -> None:
    """One end transition, not one per subset (net h44 F1: 20 outputs took 2.5 GB, 200 took
    24 GB and were killed)."""
    width = [f"t{i}" for i in range(12)]
    tasks = {"S": "and/or", "J": "or/and"} | dict.fromkeys(width, "and/and")
    flows = [("start", "S"), *[("S", t) for t in width], *[(t, "J") for t in width]]
    spec = make_net(tasks, [*flows, ("J", "end")])
    net = ResetNet.of(spec, "J")
    assert [t.name for t in net.transitions if t.name.startswith("S:end")] == [
        "S:end:" + "+".join(spec.tasks["S"].outputs)
    ]
    marking = {spec.tasks["t0"].outputs[0]: 1, spec.tasks["S"].outputs[1]: 1}
    assert not is_or_join_enabled(spec, "J", marking, started=[])  # t1 may still feed it
    marking = {spec.tasks["t0"].outputs[0]: 1, spec.tasks["t1"].outputs[0]: 1}
    assert is_or_join_enabled(spec, "J", marking, started=[])


def exclusive_chains(length: int) -> NetSpec:
    """X (running, XOR) starts one of two chains of ``length`` tasks, p.. and q..; C, an
    AND-join of both chains' ends, and P0 and P1 (running) feed Z, an AND-join before the
    OR-join J, which s feeds too: J's input from Z can never be marked, which the backward
    search sees only by pairing every step of one chain with every step of the other."""
    ps, qs = [f"p{i}" for i in range(length)], [f"q{i}" for i in range(length)]
    tasks = {"X": "and/xor", "C": "and/and", "Z": "and/and", "J": "or/and", "s": "and/and"}
    tasks |= dict.fromkeys([*ps, *qs, "P0", "P1"], "and/and")
    flows = [("start", "X"), ("start", "s"), ("X", ps[0]), ("X", qs[0]), ("s", "J")]
    flows += [("start", "P0"), ("start", "P1"), ("P0", "Z"), ("P1", "Z"), ("C", "Z")]
    flows += [(a, b) for a, b in zip(ps, [*ps[1:], "C"], strict=True)]
    flows += [(a, b) for a, b in zip(qs, [*qs[1:], "C"], strict=True)]
    return make_net(tasks, [*flows, ("Z", "J"), ("J", "end")])


def test_a_bounded_question_takes_no_more_steps_than_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each search for a place out of reach had steps of its own: one question took 300,000
    steps against a bound of 20,000 (review h37 F2). Counted as the searches spend them."""
    spec = exclusive_chains(4)
    net = ResetNet.of(spec, "J", armed=False)
    running = {"X", "P0", "P1"}
    current = {f"task:{t}": 1 for t in running}
    current |= {f"free:{t}": 1 for t in spec.tasks if t not in running}
    current["s__to__J"] = 1
    into_j = {c: 1 for c in spec.tasks["J"].inputs}
    spent: list[int] = []
    spend = coverability._Question.spend

    def counted(question: Any, steps: int) -> bool:
        spent.append(steps)
        return spend(question, steps)

    monkeypatch.setattr(coverability._Question, "spend", counted)
    assert net.decide([into_j], current, forward=False, work=300) is None  # undecided
    # (each search, nested or not, may go past by the step it then does not take)
    assert 0 < sum(spent) <= 300 + (coverability.MOST_NESTED + 1) * max(spent)
    assert net.decide([into_j], current, forward=False) is False  # unbounded: no witness


def test_a_witness_through_a_task_a_region_cancels_on_the_way_is_no_witness() -> None:
    """No task is idle yet, so the armed places were left out: T2's region cancels T3 and
    empties c0 on the way, and the witness started T3 again on its stale tokens, so T5
    waited where the engine would never feed it (conform h37's random nets, seed 11/1525)."""
    tasks = {"T0": "or/or", "T1": "and/and", "T2": "or/or", "T3": "or/or", "T4": "and/and"}
    flows = [("start", "T0"), ("c0", "T5"), ("T0", "c0"), ("T0", "T1"), ("T0", "T2")]
    flows += [("T0", "T4"), ("T0", "T5"), ("T1", "end"), ("T1", "T3"), ("T2", "end")]
    flows += [("T2", "T5"), ("T3", "c0"), ("T3", "T2"), ("T4", "c0"), ("T4", "end")]
    flows += [("T5", "c0"), ("T5", "end"), ("T5", "T3")]
    regions = {"T0": ("T1", "T2"), "T2": ("T4", "T3", "c0"), "T3": ("T2",), "T5": ("c0",)}
    spec = make_net(tasks | {"T5": "or/or"}, flows, conditions=("c0",), cancel=regions)
    marking = {"c0": 1, "T0__to__T1": 1, "T0__to__T4": 1, "T0__to__T5": 1}
    assert is_or_join_enabled(spec, "T5", marking, started=[])

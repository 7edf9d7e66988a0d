"""OR-join questions whose nets have many markings: each is answered in bounded steps.

The analysis sees only the OR-join's cone, drops markings that need a token no token can
reach, and past its bounds leaves the question undecided: the OR-join waits (with a warning)
and is asked again after the next completion (``net/orjoin.py``'s docstring, 4. to 7.).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.net import coverability
from tests.engine.helpers import open_item


def person(name: str) -> net.TaskBuilder:
    return net.task(net.work_item(name).actions(start=net.action(), complete=net.action()))


def join_that_cannot_fire(people: int, *, beside: int = 0) -> net.NetSpec:
    """S splits to X, ``short``, ``people`` tasks P0.. and ``beside`` tasks B0..; Z, an AND-join
    of the P tasks and of C0, leads to the OR-join J, as ``short`` does. C0 is an AND-join of p
    and q, and X (a person's task) routes to p alone, so Z can never fire: J need not wait for
    it. The B tasks lead to the end without reaching J."""
    builder = net.workflow(f"z{people}_{beside}").start_condition("start").end_condition("end")
    builder.dummy_task("S", net.dummy_task().split("and"))
    builder.task("X", person("x").split("xor").route(lambda ctx: ctx.route.to_condition("p")))
    builder.condition("p").condition("q")
    builder.dummy_task("C0", net.dummy_task().join("and"))
    builder.dummy_task("Z", net.dummy_task().join("and"))
    builder.dummy_task("short").dummy_task("J", net.dummy_task().join("or"))
    ps, bs = [f"P{i}" for i in range(people)], [f"B{i}" for i in range(beside)]
    for name in ps + bs:
        builder.task(name, person(name.lower()))
    builder.connect_condition("start", "S").connect_task("S", "X", "short", *ps, *bs)
    builder.connect_task("X", "p", "q").connect_condition("p", "C0").connect_condition("q", "C0")
    for name in ["C0", *ps]:
        builder.connect_task(name, "Z")
    builder.connect_task("Z", "J").connect_task("short", "J").connect_task("J", "end")
    for name in bs:
        builder.connect_task(name, "end")
    return builder.actions(initialize=net.action()).build()


async def test_an_or_join_behind_a_join_that_cannot_fire_fires_beside_many_people(
    tmp_path: Path,
) -> None:
    """Ten people's tasks feed Z, 150 more run beside: J's question used to walk every order
    the tasks can finish in, then search backwards through every combination of them (the
    150 beside: 7.5 s on the loop; eight of Z's: minutes, and a lost lease: retest h36 R1)."""
    spec = join_that_cannot_fire(10, beside=150)
    async with cf.Runtime(db=tmp_path / "z.db", workflows=[spec]) as rt:
        workflow_id = await rt.start_workflow(spec.name)
        states = await rt.task_states(workflow_id)
        assert (states["J"], states["Z"]) == ("completed", "disabled")
        assert (await rt.workflow(workflow_id)).state == "completed"  # (J marked the end)


async def test_an_or_join_undecided_in_its_bounds_waits_and_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With bounds too small for the question, J waits, the log says why, and once X is done
    the question is small enough: J fires."""
    for bound in ("FIRST_STATES", "FORWARD_STATES", "BACKWARD_WORK", "DEAD_WORK"):
        monkeypatch.setattr(coverability, bound, 2)
    spec = join_that_cannot_fire(2)
    caplog.set_level(logging.WARNING, logger="cronflow_actors.net.orjoin")
    async with cf.Runtime(db=tmp_path / "u.db", workflows=[spec]) as rt:
        workflow_id = await rt.start_workflow(spec.name)
        assert (await rt.task_states(workflow_id))["J"] == "disabled"
        assert f"the OR-join 'J' of '{spec.name}' waits undecided" in caplog.text
        item = await open_item(rt, workflow_id, "X")
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id)  # (to p: C0 and Z can never fire)
        states = await rt.task_states(workflow_id)
        assert (states["J"], states["Z"]) == ("completed", "disabled")
        assert (await rt.workflow(workflow_id)).state == "completed"


@pytest.mark.parametrize("join", ["or", "xor"])
async def test_a_canceled_one_input_or_join_is_not_waited_for(tmp_path: Path, join: str) -> None:
    """K, a person's task of one input, is canceled by R's region and keeps its token; nothing
    asks it again (only a completion before it would), so J, the OR-join of K, R and short,
    fires after R. As an OR-join K was taken for able to start, and the run stayed started
    with nothing to do (retest h37 F1); as an XOR-join it never was."""
    builder = net.workflow(f"k1_{join}").start_condition("start").end_condition("end")
    builder.dummy_task("S", net.dummy_task().split("and")).dummy_task("A").dummy_task("short")
    builder.task("K", person("k").join(join)).task("R", person("r"))
    builder.dummy_task("J", net.dummy_task().join("or")).cancellation_region("R", tasks=["K"])
    builder.connect_condition("start", "S").connect_task("S", "A", "R", "short")
    builder.connect_task("A", "K").connect_task("K", "J").connect_task("R", "J")
    spec = builder.connect_task("short", "J").connect_task("J", "end").build()
    async with cf.Runtime(db=tmp_path / "k.db", workflows=[spec]) as rt:
        workflow_id = await rt.start_workflow(spec.name)
        item = await open_item(rt, workflow_id, "R")
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id)
        states = await rt.task_states(workflow_id)
        assert (states["K"], states["J"]) == ("canceled", "completed")
        assert (await rt.workflow(workflow_id)).state == "completed"

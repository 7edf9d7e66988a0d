"""OR-joins in big nets: how long the engine's questions hold the event loop.

Every completion in a net asks its OR-joins that hold a token whether a token can still reach
their empty inputs (``net/orjoin.py``); the answer is searched for on the loop, in bounded
steps. Each shape is run on a fresh runtime on SQLite (synchronous=FULL), and each figure is
the seconds one call took (a start, or a person's completion and what it runs):

- ``chain``: a person's task M, then N dummies, into the OR-join J, which ``short`` reaches at
  once: the start asks J with M open (a witness N tasks away), M's completion runs the chain,
  and each task of it asks J again;
- ``reversed``: the same, the chain's tasks declared last first;
- ``branches``: ten people's tasks, each followed by N dummies, into J: the first person's
  completion runs its chain, asking J after each task (a witness down one branch of ten);
- ``dead join``: ten people's tasks and an AND-join that can never fire before J, 150 more
  people's tasks beside: the start (J need not wait);
- ``loop``: five OR-joins beside a loop whose tokens pile up: the start, and a person's
  completion that goes round it once;
- ``undecided``: J behind an AND-join of six people's tasks and of two chains of 50 of which a
  person's XOR choice starts one; 40 dummies beside run as the net starts: the start (the
  question is past the bounds: J waits, logs it once, and is answered from then on).

    python benchmarks/orjoin.py [--quick]

The last line is JSON: {"chain_start_s_<N>": ..., "chain_complete_s_<N>": ..., ...}. What to
look for: before the bounds, the cone and the kept answers (retest h36 R1, h37 F2-F4), a chain
of 3,000 held the loop for minutes, ten branches of 200 for 20 s, the undecided shape 16.8 s,
3,000 tasks declared last first 3 s a question; each should now be well under a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable

import cronflow_actors as cf
from benchmarks._report import figures, table
from cronflow_actors import net


def person(name: str) -> net.TaskBuilder:
    return net.task(net.work_item(name).actions(start=net.action(), complete=net.action()))


def dummies(builder: net.WorkflowBuilder, names: list[str], then: str) -> None:
    for name in names:
        builder.dummy_task(name)
    for source, target in zip(names, [*names[1:], then], strict=True):
        builder.connect_task(source, target)


def chain(size: int, *, reverse: bool = False) -> net.NetSpec:
    names = [f"c{i}" for i in range(size)]
    builder = net.workflow(f"chain{size}{'r' if reverse else ''}")
    builder.start_condition("start").end_condition("end")
    builder.dummy_task("S", net.dummy_task().split("and")).task("M", person("m"))
    for name in reversed(names) if reverse else names:
        builder.dummy_task(name)
    for source, target in zip(names, [*names[1:], "J"], strict=True):
        builder.connect_task(source, target)
    builder.dummy_task("short").dummy_task("J", net.dummy_task().join("or"))
    builder.connect_condition("start", "S").connect_task("S", "M", "short")
    builder.connect_task("M", names[0]).connect_task("short", "J").connect_task("J", "end")
    return builder.actions(initialize=net.action()).build()


def branches(size: int, people: int = 10) -> net.NetSpec:
    builder = net.workflow(f"branches{size}").start_condition("start").end_condition("end")
    builder.dummy_task("S", net.dummy_task().split("and")).dummy_task("short")
    builder.dummy_task("J", net.dummy_task().join("or"))
    ps = [f"P{i}" for i in range(people)]
    for index, name in enumerate(ps):
        builder.task(name, person(name.lower()))
        line = [f"b{index}_{i}" for i in range(size)]
        dummies(builder, line, "J")
        builder.connect_task(name, line[0])
    builder.connect_condition("start", "S").connect_task("S", "short", *ps)
    builder.connect_task("short", "J").connect_task("J", "end")
    return builder.actions(initialize=net.action()).build()


def dead_join(people: int = 10, beside: int = 150) -> net.NetSpec:
    builder = net.workflow("dead").start_condition("start").end_condition("end")
    builder.dummy_task("S", net.dummy_task().split("and")).dummy_task("short")
    builder.task("X", person("x").split("xor").route(lambda ctx: ctx.route.to_condition("p")))
    builder.condition("p").condition("q").dummy_task("C0", net.dummy_task().join("and"))
    builder.dummy_task("Z", net.dummy_task().join("and"))
    builder.dummy_task("J", net.dummy_task().join("or"))
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


def undecided(people: int = 6, length: int = 50, beside: int = 40) -> net.NetSpec:
    builder = net.workflow("undecided").start_condition("start").end_condition("end")
    builder.dummy_task("S", net.dummy_task().split("and")).dummy_task("short")
    builder.task("X", person("x").split("xor").route(lambda ctx: ctx.route.to_task("p0")))
    builder.dummy_task("C0", net.dummy_task().join("and"))
    builder.dummy_task("Z", net.dummy_task().join("and"))
    builder.dummy_task("J", net.dummy_task().join("or"))
    builder.dummy_task("E", net.dummy_task().join("and"))
    ps = [f"P{i}" for i in range(people)]
    for name in ps:
        builder.task(name, person(name.lower()))
    for side in "pq":
        line = [f"{side}{i}" for i in range(length)]
        dummies(builder, line, "C0")
        builder.connect_task("X", line[0])
    line = [f"d{i}" for i in range(beside)]
    dummies(builder, line, "E")
    builder.connect_condition("start", "S").connect_task("S", "X", "short", *ps, line[0])
    for name in ["C0", *ps]:
        builder.connect_task(name, "Z")
    builder.connect_task("Z", "J").connect_task("short", "J").connect_task("J", "E")
    builder.connect_task("E", "end")
    return builder.actions(initialize=net.action()).build()


def loop_beside(joins: int = 5) -> net.NetSpec:
    """T0 (an OR-join) puts tokens on c0 and the OR-joins J..; T3, a person's task on c0, feeds
    c0 and T0 again: a loop whose tokens pile up, beside ``joins`` OR-joins (retest2 h37 R1: a
    walk that went round the loop held it 5.5-7.4 s a completion)."""
    js = [f"J{i}" for i in range(joins)]
    builder = net.workflow("loop").start_condition("start").end_condition("end").condition("c0")
    every = lambda ctx: [ctx.route.to_condition("c0"), *(ctx.route.to_task(j) for j in js)]  # noqa: E731
    builder.dummy_task("T0", net.dummy_task().join("or").split("or").route(every))
    builder.task("T3", person("t3").join("or")).task("T2", person("t2"))
    for name in js:
        builder.task(name, person(name.lower()).join("or"))
    builder.connect_condition("start", "T0").connect_condition("c0", "T3")
    builder.connect_task("T0", "c0", "T2", *js).connect_task("T3", "c0", "T0")
    builder.connect_task("T2", *js)
    for name in js:
        builder.connect_task(name, "end")
    return builder.actions(initialize=net.action()).build()


Call = Callable[[cf.Runtime, str], Awaitable[object]]


async def timed(spec: net.NetSpec, then: Call | None = None) -> tuple[float, float]:
    """Seconds of the start of ``spec``, and of ``then`` (0 without one)."""
    with tempfile.TemporaryDirectory(prefix="cronflow-orjoin-") as folder:
        async with cf.Runtime(db=Path(folder) / "o.db", workflows=[spec]) as rt:
            began = time.perf_counter()
            workflow_id = await rt.start_workflow(spec.name)
            started = time.perf_counter() - began
            if then is None:
                return started, 0.0
            began = time.perf_counter()
            await then(rt, workflow_id)
            return started, time.perf_counter() - began


def completes(task: str) -> Call:
    async def complete(rt: cf.Runtime, workflow_id: str) -> None:
        [item] = await rt.work_items(workflow_id, task)
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id)

    return complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smaller sizes only")
    args = parser.parse_args()
    logging.getLogger("cronflow_actors.net.orjoin").setLevel(logging.ERROR)  # (undecided)
    chains = [1_000, 5_000] if args.quick else [1_000, 5_000, 10_000]
    rows, values = [], {}
    for size in chains:
        start, complete = asyncio.run(timed(chain(size), completes("M")))
        rows.append(
            (f"chain of {size:,}: start, M's completion", f"{start:.3f} s, {complete:.3f} s")
        )
        values[f"chain_start_s_{size}"] = round(start, 4)
        values[f"chain_complete_s_{size}"] = round(complete, 4)
    start, _ = asyncio.run(timed(chain(3_000, reverse=True)))
    rows.append(("chain of 3,000 declared last first: start", f"{start:.3f} s"))
    values["reversed_start_s_3000"] = round(start, 4)
    for size in [100, 200]:
        _, complete = asyncio.run(timed(branches(size), completes("P0")))
        rows.append((f"10 branches of {size}: P0's completion", f"{complete:.3f} s"))
        values[f"branches_complete_s_{size}"] = round(complete, 4)
    start, _ = asyncio.run(timed(dead_join()))
    rows.append(("a join that can never fire, 160 people: start", f"{start:.3f} s"))
    values["dead_join_start_s"] = round(start, 4)
    start, _ = asyncio.run(timed(undecided()))
    rows.append(("undecided, 40 dummies beside: start", f"{start:.3f} s"))
    values["undecided_start_s"] = round(start, 4)
    start, complete = asyncio.run(timed(loop_beside(), completes("T3")))
    rows.append(
        ("5 OR-joins beside a loop: start, T3's completion", f"{start:.3f} s, {complete:.3f} s")
    )
    values["loop_start_s"], values["loop_complete_s"] = round(start, 4), round(complete, 4)
    table("OR-join questions (the loop held meanwhile)", rows)
    figures(values)


if __name__ == "__main__":
    main()

"""cronflow-actors' workloads (a)-(g) of issue 16, one per subprocess:

    python -m benchmarks.suite.ours WORKLOAD [--runs N] [--in-flight K] [--db-runs K]

prints one ``BENCH-RESULT`` line per measurement (``benchmarks.suite.record``). Every workload
runs on a fresh SQLite file in WAL mode with synchronous=FULL (``--synchronous`` to change it),
through the public API a user writes (``cf.define``), after a warm-up of 50 runs; every run's
output is checked, and a run that is missing or wrong makes the record ``failed``. Each runs on
the event loop ``serve`` runs on (uvloop when installed; ``CRONFLOW_LOOP=asyncio`` for asyncio's
own), with its garbage collector's threshold (``benchmarks/_runs.py``).

- ``a``: three trivial async steps (each returns its input + 1);
- ``b``: ten such steps;
- ``c``: a fan-out of 10 parallel steps (``parallel``) and a join step that sums them;
- ``d``: a step plus a background action (``action``); every action must have run;
- ``e``: ``a`` one run at a time (latency);
- ``f``: runs paused at a human step: memory per waiting run, restart, resumes/s
  (``benchmarks/waiting.py``'s measurement);
- ``g``: restart with many non-terminal runs (half sleeping on a one-hour durable timer, half
  paused for a human): time for ``start()`` to return, then every paused run resumed and
  finished, and every sleeping run still waiting;
- ``a`` with ``--db-runs K``: ``a`` on a file that already holds K finished runs;
- ``a`` with ``--max-active-runs L``: ``a`` on a runtime that starts a new run only while fewer
  than L are in memory (``Runtime(max_active_runs=L)``, ``runtime/admission.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cronflow_actors as cf
from benchmarks._runs import loop_in_use, measure, run_like_serve
from benchmarks.suite.plan import COMPILED
from benchmarks.suite.record import drive, emit, record
from benchmarks.suite.report import OURS


def _engine() -> str:
    """What runs: the pure package, or the engine compiled by mypyc (``setup.py``)."""
    from cronflow_actors.engine import tasks

    return COMPILED if tasks.__file__.endswith((".so", ".pyd")) else OURS


ENGINE = _engine()
WARM_UP = 50  # runs measure() makes before the clock starts


async def inc(ctx: Any) -> int:
    return int(ctx.last) + 1


async def first(ctx: Any) -> int:
    return int(ctx.payload) + 1


def chain(name: str, steps: int) -> cf.Flow:
    flow = cf.define(name).step("s1", first)
    for number in range(2, steps + 1):
        flow = flow.step(f"s{number}", inc)
    return flow


def branch(offset: int) -> Callable[[Any], Any]:
    async def step(ctx: Any) -> int:
        return int(ctx.payload) + offset

    step.__name__ = f"branch_{offset}"
    return step


async def join(ctx: Any) -> int:
    return sum(ctx.last)


FAN_OUT = cf.define("fan").parallel("fan", [branch(i) for i in range(10)]).step("join", join)

ACTIONS_RUN: list[int] = []


async def notify(ctx: Any) -> None:
    ACTIONS_RUN.append(1)


BACKGROUND = cf.define("background").step("s1", first).action("notify", notify)

# workload -> (flow, payload -> expected output, steps per run)
FLOWS: dict[str, tuple[cf.Flow, Callable[[int], int], int]] = {
    "a": (chain("three", 3), lambda n: n + 3, 3),
    "b": (chain("ten", 10), lambda n: n + 10, 10),
    "c": (FAN_OUT, lambda n: 10 * n + 45, 11),
    "d": (BACKGROUND, lambda n: n + 1, 2),
    "e": (chain("three", 3), lambda n: n + 3, 3),
}


async def _throughput(
    workload: str,
    db: Path,
    runs: int,
    in_flight: int,
    synchronous: str,
    *,
    max_active_runs: int | None = None,
) -> dict[str, Any]:
    flow, expected, steps = FLOWS[workload]
    wrong: list[str] = []
    finished = 0
    ACTIONS_RUN.clear()

    async def start(rt: cf.Runtime) -> str:
        return await rt.trigger(flow.id, 7)

    async def wait(rt: cf.Runtime, run_id: str) -> None:
        nonlocal finished
        result = await rt.wait(run_id)
        finished += 1
        if result.status != "completed" or result.output != expected(7):
            wrong.append(f"{run_id}: {result.status} {result.output!r} {result.error or ''}")

    runtime = cf.Runtime(
        db=db, workflows=[flow], synchronous=synchronous, max_active_runs=max_active_runs
    )
    figures = await measure(runtime, start, wait, runs=runs, in_flight=in_flight)
    problems = list(wrong[:3])
    if finished != runs + WARM_UP:
        problems.append(f"{finished} of {runs + WARM_UP} runs finished")
    if workload == "d" and len(ACTIONS_RUN) != runs + WARM_UP:
        problems.append(f"{len(ACTIONS_RUN)} of {runs + WARM_UP} background actions ran")
    extra = {
        "steps_per_run": steps,
        "transactions": figures["transactions"],
        "group_commits": figures["batches"],
        "actors_alive_after": figures["alive"],
    }
    if problems:
        return record(
            ENGINE,
            workload,
            runs=runs,
            in_flight=in_flight,
            status="failed",
            note="; ".join(problems),
            **extra,
        )
    rec = record(ENGINE, workload, runs=runs, in_flight=in_flight, elapsed_s=1.0, **extra)
    # measure() keeps its own clock and percentiles; use them.
    rec["runs_per_s"] = round(figures["runs_per_s"], 1)
    rec["p50_ms"] = round(figures["p50_ms"], 3)
    rec["p99_ms"] = round(figures["p99_ms"], 3)
    return rec


async def _fill(db: Path, count: int) -> float:
    """Put ``count`` finished runs of ``a``'s flow in the file (synchronous=OFF: what is in the
    file is the same, only sooner); returns the seconds it took."""
    flow = FLOWS["a"][0]
    began = time.perf_counter()
    async with cf.Runtime(db=db, workflows=[flow], synchronous="OFF") as rt:

        async def one(_number: int) -> None:
            await rt.wait(await rt.trigger(flow.id, 7))

        await drive(one, count, 1000)
    return time.perf_counter() - began


async def _waiting(db: Path, runs: int, in_flight: int, synchronous: str) -> dict[str, Any]:
    from benchmarks import waiting

    figures = await waiting.measure(db, runs, in_flight, synchronous)
    return record(
        ENGINE,
        "f",
        runs=runs,
        in_flight=in_flight,
        elapsed_s=runs / figures["resumes_per_s"],
        variant="resume",
        note="runs/s is resumes/s (answered once durable)",
        bytes_per_waiting_run=round(figures["bytes_per_waiting_run"]),
        rss_second_half_kib=round(figures["rss_second_half"] / 1024),
        heap_bytes_per_waiting_run=round(figures["heap_bytes_per_waiting_run"]),
        started_and_paused_per_s=round(figures["started_per_s"], 1),
        recover_s=round(figures["recover_s"], 3),
        list_paused_first_page_ms=round(figures["list_paused_first_page_ms"], 2),
        resumed_finished_per_s=round(figures["finished_per_s"], 1),
        instances_in_memory_while_waiting=figures["in_memory"],
    )


async def _prepare(ctx: Any) -> int:
    return int(ctx.payload)


async def _after(ctx: Any) -> str:
    return "done"


SLEEPER = cf.define("sleeper").step("prepare", _prepare).sleep("nap", "1h").step("after", _after)
PAUSER = (
    cf.define("pauser")
    .step("prepare", _prepare)
    .human_in_the_loop("approve", description="approve", timeout="1d")
    .step("after", _after)
)


async def _restart(db: Path, runs: int, in_flight: int, synchronous: str) -> dict[str, Any]:
    flows = [SLEEPER, PAUSER]
    sleeping: list[str] = []
    async with cf.Runtime(db=db, workflows=flows, synchronous=synchronous) as rt:

        async def one(number: int) -> None:
            run_id = await rt.trigger("sleeper" if number % 2 else "pauser", number)
            if number % 2:
                sleeping.append(run_id)

        await drive(one, runs, in_flight)
        await rt.wait_idle()
    began = time.perf_counter()
    rt = cf.Runtime(db=db, workflows=flows, synchronous=synchronous)
    await rt.start()
    recover_s = time.perf_counter() - began
    try:
        loaded = len(rt.instances)
        tokens: list[tuple[str, str]] = []
        page = await rt.list_paused(limit=1000)
        while True:
            tokens += [(paused.token, paused.run_id) for paused in page]
            if page.next_cursor is None:
                break
            page = await rt.list_paused(limit=1000, cursor=page.next_cursor)
        resumed_began = time.perf_counter()

        async def resume(number: int) -> None:
            token, run_id = tokens[number]
            await rt.resume(token, {"approved": True})
            result = await rt.wait(run_id)
            if result.status != "completed":
                problems.append(f"{run_id} {result.status}")

        problems: list[str] = []
        elapsed, latencies = await drive(resume, len(tokens), in_flight)
        first_done_s = time.perf_counter() - resumed_began
        for run_id in sleeping[:: max(1, len(sleeping) // 50)]:
            status = (await rt.inspect(run_id)).status
            if status != "waiting":
                problems.append(f"sleeping run {run_id} is {status}")
    finally:
        await rt.stop()
    if len(tokens) != runs - len(sleeping):
        problems.append(f"{len(tokens)} of {runs - len(sleeping)} paused runs found after restart")
    if problems:
        return record(
            ENGINE,
            "g",
            runs=runs,
            in_flight=in_flight,
            status="failed",
            note="; ".join(problems[:3]),
        )
    return record(
        ENGINE,
        "g",
        runs=len(tokens),
        in_flight=in_flight,
        elapsed_s=elapsed,
        latencies_s=latencies,
        variant="restart",
        note=f"{runs} non-terminal runs in the file; runs/s is resumes after the restart",
        recover_s=round(recover_s, 3),
        non_terminal_runs=runs,
        loaded_at_start=loaded,
        resumed_and_finished_s=round(first_done_s, 3),
    )


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    db = folder / "bench.db"
    if args.workload in ("f", "g"):
        measure_it = _waiting if args.workload == "f" else _restart
        return await measure_it(db, args.runs, args.in_flight, args.synchronous)
    in_flight = 1 if args.workload == "e" else args.in_flight
    fill_s = await _fill(db, args.db_runs) if args.db_runs else 0.0
    limit = args.max_active_runs or None
    rec = await _throughput(
        args.workload, db, args.runs, in_flight, args.synchronous, max_active_runs=limit
    )
    if args.db_runs:
        rec["variant"] = f"db {args.db_runs:,} runs"
        rec["extra"].update(db_runs=args.db_runs, fill_s=round(fill_s, 1))
    elif args.workload == "a":
        rec["variant"] = f"{in_flight} in flight"
    if limit:
        rec["variant"] = ", ".join(filter(None, [rec["variant"], f"max_active_runs {limit}"]))
        rec["extra"]["max_active_runs"] = limit
    return rec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["a", "b", "c", "d", "e", "f", "g"])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--db-runs", type=int, default=0, help="finished runs already in the file")
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument(
        "--max-active-runs", type=int, default=0, help="Runtime(max_active_runs=...); 0: none"
    )
    args = parser.parse_args(argv)
    loop = None
    with tempfile.TemporaryDirectory(prefix="cronflow-bench-") as folder:
        try:
            loop = loop_in_use()  # a bad CRONFLOW_LOOP fails the record, as below
            rec = run_like_serve(run(args, Path(folder)))
        except Exception as error:  # reported as a failed record, never as a number
            rec = record(
                ENGINE,
                args.workload,
                runs=args.runs,
                in_flight=args.in_flight,
                status="failed",
                note=f"{type(error).__name__}: {error}",
            )
    rec["extra"]["synchronous"] = args.synchronous
    rec["extra"]["loop"] = loop
    emit(rec)


if __name__ == "__main__":
    sys.exit(main())

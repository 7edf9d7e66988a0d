"""Durable runs per second of a three-step cf.define() workflow (trivial async steps).

Each run goes through the whole front end: the flow is compiled to a net, every step is an
automated work item whose handler builds the Cronflow ctx, and every run is four durable
transactions committed through the SQLite store's group commit. ``--in-flight`` runs are kept
going at once; latency runs from ``trigger`` to ``wait`` returning. SQLite runs with
synchronous=FULL unless --synchronous says otherwise.

    python benchmarks/flow.py [--quick] [--runs N] [--in-flight K] [--synchronous FULL|NORMAL]

The last line is JSON: {"flow_runs_per_s": ..., "p50_ms": ..., "p99_ms": ...}.
Target on a 2-core machine: >= 1,000 durable runs/s. The strongest Python peer measured on this
machine, DBOS on SQLite, does about 100 three-step workflows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import figures, table

import cronflow_actors as cf

DBOS_RUNS_PER_S = 100.0


async def one(ctx: Any) -> int:
    return 1


async def two(ctx: Any) -> int:
    return ctx.last + 1


async def three(ctx: Any) -> int:
    return ctx.last + ctx.steps["one"]


FLOW = cf.define("bench").step("one", one).step("two", two).step("three", three)


async def measure(db: Path, runs: int, in_flight: int, synchronous: str) -> dict[str, float]:
    latencies: list[float] = []
    async with cf.Runtime(db=db, workflows=[FLOW], synchronous=synchronous) as rt:
        # warm up: imports, decoders, the first SQLite pages
        async def one() -> None:
            await rt.wait(await rt.trigger("bench"))

        await asyncio.gather(*(one() for _ in range(50)))
        gc.collect()
        gc.freeze()
        queue = iter(range(runs))

        async def client() -> None:
            for _ in queue:
                began = time.perf_counter()
                run_id = await rt.trigger("bench", {"n": 1})
                result = await rt.wait(run_id)
                latencies.append(time.perf_counter() - began)
                assert result.output == 3

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        elapsed = time.perf_counter() - began
        statistics_ = rt.store.statistics()
        await rt.wait_idle()
        alive = len(rt.system)
    gc.unfreeze()
    latencies.sort()
    return {
        "runs": runs,
        "elapsed": elapsed,
        "flow_runs_per_s": runs / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "transactions": statistics_.mutations,
        "batches": statistics_.batches,
        "alive": alive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    runs = args.runs or (3_000 if args.quick else 20_000)
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(
            measure(Path(folder) / "flow.db", runs, args.in_flight, args.synchronous)
        )
    table(
        f"cf.define flow: {runs} three-step runs, {args.in_flight} in flight, "
        f"SQLite synchronous={args.synchronous}",
        [
            ("durable runs/s", f"{result['flow_runs_per_s']:,.0f}  (target >= 1,000)"),
            ("vs DBOS on SQLite (~100/s)", f"{result['flow_runs_per_s'] / DBOS_RUNS_PER_S:.1f}x"),
            ("latency p50 / p99", f"{result['p50_ms']:.1f} ms / {result['p99_ms']:.1f} ms"),
            ("transactions / group commits", f"{result['transactions']:,} / {result['batches']:,}"),
            ("actors alive afterwards", f"{result['alive']}"),
        ],
    )
    figures(
        {
            "flow_runs_per_s": round(result["flow_runs_per_s"], 1),
            "p50_ms": round(result["p50_ms"], 2),
            "p99_ms": round(result["p99_ms"], 2),
        }
    )


if __name__ == "__main__":
    main()

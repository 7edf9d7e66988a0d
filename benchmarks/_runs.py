"""Shared by net.py and flow.py: keep ``in_flight`` runs going on a runtime, then report runs/s,
latency percentiles, store batching and what is left alive; and the table both print."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import cronflow_actors as cf
from benchmarks._report import figures, table
from cronflow_actors.runtime.collector import tune_collector
from cronflow_actors.runtime.config import load_config
from cronflow_actors.runtime.event_loop import loop_factory

T = TypeVar("T")

Start = Callable[[cf.Runtime], Awaitable[str]]
Wait = Callable[[cf.Runtime, str], Awaitable[None]]


def serve_settings() -> Any:
    """The settings ``serve`` would run with here, as it reads them (``CRONFLOW_*`` variables:
    ``CRONFLOW_LOOP``, ``CRONFLOW_GC_THRESHOLD``), for the benchmarks to run as it does."""
    return load_config(None)


def run_like_serve(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, on the event loop ``serve`` would run on (uvloop when installed)."""
    _, make_loop = loop_factory(serve_settings().loop)
    with asyncio.Runner(loop_factory=make_loop) as runner:
        return runner.run(coro)


def loop_in_use() -> str:
    """``uvloop`` or ``asyncio``: what ``run_like_serve`` runs on, for the results."""
    loop, _ = loop_factory(serve_settings().loop)
    return loop


async def measure(
    runtime: cf.Runtime,
    start: Start,
    wait: Wait,
    runs: int,
    in_flight: int,
    *,
    prepare: Callable[[cf.Runtime], Awaitable[None]] | None = None,
    during: Callable[[cf.Runtime], Awaitable[None]] | None = None,
) -> dict[str, float]:
    """``prepare(rt)`` runs after the warm-up, before the clock starts; ``during(rt)`` runs
    alongside the measured runs and is cancelled when they are done."""
    latencies: list[float] = []
    async with runtime as rt:

        async def one() -> None:  # warm up: imports, decoders, the first SQLite pages
            await wait(rt, await start(rt))

        await asyncio.gather(*(one() for _ in range(50)))
        if prepare is not None:
            await prepare(rt)
        # start-up's objects frozen out of the collector's walks, and the youngest generation's
        # threshold serve's (runtime/collector.py; CRONFLOW_GC_THRESHOLD as for serve, 700:
        # Python's own); both undone when the measure ends, whatever happens
        gc.collect()
        gc.freeze()
        thresholds = tune_collector(serve_settings().gc_threshold)
        try:
            queue = iter(range(runs))
            beside = asyncio.ensure_future(during(rt)) if during is not None else None

            async def client() -> None:
                for _ in queue:
                    began = time.perf_counter()
                    await wait(rt, await start(rt))
                    latencies.append(time.perf_counter() - began)

            began = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(in_flight)))
            elapsed = time.perf_counter() - began
            if beside is not None:
                beside.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beside
            store = rt.store.statistics()
            await rt.wait_idle()
            alive = len(rt.system)
        finally:
            gc.unfreeze()
            tune_collector(0)  # the threshold no longer scales with the instances in memory
            gc.set_threshold(*thresholds)
    latencies.sort()
    return {
        "runs_per_s": runs / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "transactions": store.mutations,
        "batches": store.batches,
        "alive": alive,
    }


def run_benchmark(
    title: str, key: str, workflow: Any, *, start: Start, wait: Wait, description: str
) -> None:
    """Parse the shared flags, measure, print the table and the JSON line ``{key: ...}``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a few seconds")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    runs = args.runs or (3_000 if args.quick else 20_000)
    with tempfile.TemporaryDirectory() as folder:
        runtime = cf.Runtime(
            db=Path(folder) / "bench.db", workflows=[workflow], synchronous=args.synchronous
        )
        result = run_like_serve(measure(runtime, start, wait, runs=runs, in_flight=args.in_flight))
    table(
        f"{title}: {runs} three-step runs, {args.in_flight} in flight, "
        f"SQLite synchronous={args.synchronous}",
        [
            ("durable runs/s", f"{result['runs_per_s']:,.0f}  (target >= 1,000)"),
            ("against the peers", "measured in one run by `cronflow-actors bench`"),
            ("latency p50 / p99", f"{result['p50_ms']:.1f} ms / {result['p99_ms']:.1f} ms"),
            ("transactions / group commits", f"{result['transactions']:,} / {result['batches']:,}"),
            ("actors alive afterwards", f"{result['alive']:.0f}"),
        ],
    )
    figures(
        {
            key: round(result["runs_per_s"], 1),
            "p50_ms": round(result["p50_ms"], 2),
            "p99_ms": round(result["p99_ms"], 2),
        }
    )

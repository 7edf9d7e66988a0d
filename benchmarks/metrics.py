"""What metrics cost: rendering ``/metrics`` with 50 workflow types of 10 steps each, and the
throughput a durable net run loses when Prometheus scrapes every second.

Rendering: a runtime (SQLite, synchronous=FULL) registers 50 flows of 10 steps each (steps, one
retried on every run, a parallel pair, a detached action, a sleep; one step fails on request) and
runs each twice, once to completion and once to a failure, so every labelled family has its
series. Then the scrape's two parts are timed, as ``GET /metrics`` does them: the sample taken on
the event loop (runs in flight by status from the store's index, actors, pool), and the render
(in Prometheus' text format and in OpenMetrics, which Prometheus asks for), median of many.

Throughput: the three-step net of ``benchmarks/net.py`` (same runtime, 500 in flight, the 50
flows above registered and run first, so the registry is as large), measured alternately
without a scraper and with one that does what a Prometheus scrape every second makes the
runtime do (sample on the loop, OpenMetrics render on a thread). Each round with the scraper
follows one without; the drop is the median, over these pairs, of the runs/s lost.

    python benchmarks/metrics.py [--quick] [--runs N] [--rounds R] [--synchronous FULL|NORMAL]

The last line is JSON: {"render_ms": ..., "throughput_drop_pct": ...} (``render_ms``: the
slower of the two formats' median render). Targets: render < 20 ms, drop < 5%.
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
import statistics
import tempfile
import time
from typing import Any

import cronflow_actors as cf
from benchmarks._report import figures, table
from benchmarks._runs import measure, run_like_serve
from benchmarks.net import SPEC, start, wait

WORKFLOWS = 50


async def work(ctx: Any) -> int:
    return 1


async def flaky(ctx: Any) -> int:
    if ctx.attempt == 1:
        raise ConnectionError("try again")
    return 2


async def maybe_fail(ctx: Any) -> int:
    if ctx.payload.get("fail"):
        raise ValueError("failed on request")
    return 3


async def notify(ctx: Any) -> None:
    if ctx.payload.get("fail"):
        raise ConnectionError("mail server down")


def flow(n: int) -> cf.Flow:
    """Ten steps: s1, s2 (retried), notify (action), checks (parallel), s3, nap (sleep), s4,
    s5, s6, s7 (fails on request)."""
    return (
        cf.define(f"workflow-{n:02d}")
        .step("s1", work)
        .step("s2", flaky, retry=cf.Retry(attempts=2, delay=0))
        .action("notify", notify)
        .parallel("checks", [work, work])
        .step("s3", work)
        .sleep("nap", 0)
        .step("s4", work)
        .step("s5", work)
        .step("s6", work)
        .step("s7", maybe_fail)
    )


FLOWS = [flow(n) for n in range(WORKFLOWS)]


async def run_every_flow(rt: cf.Runtime) -> None:
    runs = []
    for spec in FLOWS:
        for fail in (False, True):
            runs.append(await rt.trigger(spec.id, {"fail": fail}))
    results = await asyncio.gather(*(rt.wait(run_id) for run_id in runs))
    assert {r.status for r in results} == {"completed", "failed"}
    await rt.wait_idle()  # the actions have reported too


async def scrape(rt: cf.Runtime) -> bytes:
    """What ``GET /metrics`` makes the runtime do for Prometheus."""
    await rt.telemetry.sample()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, rt.metrics.render, True)


def timed(fn: Any, times: int) -> list[float]:
    took = []
    for _ in range(times):
        began = time.perf_counter()
        fn()
        took.append((time.perf_counter() - began) * 1000)
    return sorted(took)


async def rendering(folder: Path, synchronous: str, times: int) -> dict[str, float]:
    rt = cf.Runtime(db=folder / "render.db", workflows=FLOWS, synchronous=synchronous)
    async with rt:
        await run_every_flow(rt)
        metrics = rt.metrics
        rt.telemetry.sample_max_age = 0
        samples = []
        for _ in range(times):
            began = time.perf_counter()
            await rt.telemetry.sample()
            samples.append((time.perf_counter() - began) * 1000)
        samples.sort()
        text = timed(lambda: metrics.render(openmetrics=False), times)
        openmetrics = timed(lambda: metrics.render(openmetrics=True), times)
        lines = metrics.render().decode().splitlines()
    return {
        "series": sum(1 for line in lines if line and not line.startswith("#")),
        "text_ms": statistics.median(text),
        "text_p95_ms": text[int(len(text) * 0.95)],
        "openmetrics_ms": statistics.median(openmetrics),
        "sample_ms": statistics.median(samples),
    }


async def scraped_every_second(rt: cf.Runtime, counts: list[float]) -> None:
    while True:
        began = time.perf_counter()
        await scrape(rt)
        counts.append(time.perf_counter() - began)
        await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - began)))


def throughput(
    folder: Path, synchronous: str, runs: int, rounds: int
) -> tuple[list[float], list[float], list[float]]:
    plain: list[float] = []
    with_scrapes: list[float] = []
    scrape_seconds: list[float] = []
    for index in range(rounds * 2):
        scraping = index % 2 == 1
        runtime = cf.Runtime(
            db=folder / f"net-{index}.db", workflows=[SPEC, *FLOWS], synchronous=synchronous
        )

        async def during(rt: cf.Runtime) -> None:
            await scraped_every_second(rt, scrape_seconds)

        result = run_like_serve(
            measure(
                runtime,
                start,
                wait,
                runs=runs,
                in_flight=500,
                prepare=run_every_flow,
                during=during if scraping else None,
            )
        )
        (with_scrapes if scraping else plain).append(result["runs_per_s"])
    return plain, with_scrapes, scrape_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per round")
    parser.add_argument("--runs", type=int, default=None, help="net runs per round")
    parser.add_argument("--rounds", type=int, default=None, help="pairs of rounds")
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the failing actions' warnings
    runs = args.runs or (4_000 if args.quick else 20_000)
    rounds = args.rounds or 5
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        render = run_like_serve(rendering(folder, args.synchronous, 30 if args.quick else 100))
        plain, scraped, scrapes = throughput(folder, args.synchronous, runs, rounds)
    # each scraped round runs right after a plain one: comparing within pairs cancels the drift
    # of a machine whose load changes while the benchmark runs
    drops = [(p - s) / p * 100 for p, s in zip(plain, scraped, strict=True)]
    drop = max(0.0, statistics.median(drops))
    render_ms = max(render["text_ms"], render["openmetrics_ms"])
    table(
        f"metrics: {WORKFLOWS} workflow types of 10 steps; net runs with a scrape every second "
        f"({rounds} rounds of {runs} runs each way, 500 in flight, "
        f"SQLite synchronous={args.synchronous})",
        [
            ("series in /metrics", f"{render['series']:,.0f}"),
            (
                "render, text format (median / p95)",
                f"{render['text_ms']:.1f} ms / {render['text_p95_ms']:.1f} ms  (target < 20 ms)",
            ),
            ("render, OpenMetrics (median)", f"{render['openmetrics_ms']:.1f} ms"),
            ("sample on the loop (store count)", f"{render['sample_ms']:.2f} ms"),
            ("net runs/s, no scraper", "  ".join(f"{r:,.0f}" for r in plain)),
            ("net runs/s, scraped every second", "  ".join(f"{r:,.0f}" for r in scraped)),
            (
                "scrapes during the runs (mean)",
                f"{len(scrapes)} ({statistics.fmean(scrapes) * 1000:.1f} ms each)"
                if scrapes
                else "0",
            ),
            (
                "a scrape's own cost, each second",
                f"{(render['openmetrics_ms'] + render['sample_ms']) / 10:.2f}% of one core "
                "(render + sample, once a second)",
            ),
            ("drop in each pair of rounds", "  ".join(f"{d:.1f}%" for d in drops)),
            ("throughput drop (median of the pairs)", f"{drop:.1f}%  (target < 5%)"),
        ],
    )
    figures({"render_ms": round(render_ms, 2), "throughput_drop_pct": round(drop, 2)})


if __name__ == "__main__":
    main()

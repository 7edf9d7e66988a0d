"""Runs that wait for a human: memory per waiting run, restart time, the first page of
``list_paused``, and resumes per second.

N runs of a flow ``prepare -> human_in_the_loop("approve", timeout="1d") -> finish`` are started
(500 in flight) until every one is paused; each pause is durable, with a one-day timeout timer.
Then, in one process:

- memory per waiting run: the process's resident memory once all N are paused, less what it was
  with half of them paused (both after a garbage collection, with freed memory handed back to the
  system), over N/2: what one more waiting run costs, without what is paid once (caches filling
  up, the allocator's arenas: about 8 MB); waiting runs are passivated, so this is what their
  index rows and timer window cost (none when the second half left the memory lower: it
  moves by pages, and the allocator hands memory back as it likes; the change is printed);
  beside it, the Python heap a waiting run keeps, exactly: what ``tracemalloc``, started once
  the first half is paused, still finds allocated when the second half is (after a collection),
  over the second half; SQLite's and the allocator's own memory are not in it, nor its noise;
- restart: the runtime is stopped and a new one started on the same database (N waiting);
- the first page (50) of ``list_paused``;
- resumes per second: every run is resumed (500 in flight), each call answered once the resume
  is durable, while the resumed runs finish.

SQLite runs with synchronous=FULL unless --synchronous says otherwise.

    python benchmarks/waiting.py [--quick] [--runs N] [--in-flight K] [--synchronous FULL|NORMAL]

The last line is JSON: {"bytes_per_waiting_run", "recover_s", "list_paused_first_page_ms",
"resumes_per_s"}. Targets on this 2-core machine: <= 2,048 bytes per waiting run (100,000
waiting under 300 MB in all), restart < 2 s, first page < 50 ms, >= 2,000 resumes/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import contextlib
import ctypes
import gc
import resource
import tempfile
import time
import tracemalloc
from typing import Any

import cronflow_actors as cf
from benchmarks._report import figures, table
from benchmarks._runs import run_like_serve


async def prepare(ctx: Any) -> dict[str, Any]:
    return {"order": ctx.payload}


async def finish(ctx: Any) -> bool:
    return bool(ctx.last["approved"])


FLOW = (
    cf.define("approval")
    .step("prepare", prepare)
    .human_in_the_loop("approve", description="approve the order", timeout="1d")
    .step("finish", finish)
)


def rss_bytes() -> int:
    """Resident memory now, after a collection, with freed memory handed back to the system."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: RSS then includes what malloc keeps
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def in_batches(count: int, in_flight: int, one: Any) -> None:
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            await one(number)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def measure(db: Path, runs: int, in_flight: int, synchronous: str) -> dict[str, float]:
    rt = cf.Runtime(db=db, workflows=[FLOW], synchronous=synchronous)
    await rt.start()
    # Warm up: imports, decoders, the first pages of the file, and the memory that runs in
    # flight take and the allocator keeps afterwards (its arenas, SQLite's page caches): about
    # 17 MB with 500 in flight, which the waiting runs would otherwise be charged with (8,600
    # bytes each for 2,000 of them; 180 for 100,000). So the warm-up is a round of the measure
    # itself, ``in_flight`` runs started at once, paused, then resumed and finished.
    warm: list[str] = []

    async def start_warm(_number: int) -> None:
        warm.append(await rt.trigger("approval", -1))

    await in_batches(in_flight, in_flight, start_warm)
    await rt.wait_idle()
    paused = await rt.list_paused(limit=in_flight)

    async def resume_warm(number: int) -> None:
        await rt.resume(paused[number].token, {"approved": True})

    await in_batches(len(paused), in_flight, resume_warm)
    await asyncio.gather(*(rt.wait(run_id) for run_id in warm))
    before = rss_bytes()
    began = time.perf_counter()

    async def start(number: int) -> None:
        await rt.trigger("approval", number)

    # Memory per waiting run is the growth from the first half of the runs to all of them, over
    # the second half: what one more waiting run costs. The first half's growth carries what
    # is paid once, whatever the number (caches filling up to their size).
    first_half = runs // 2
    await in_batches(first_half, in_flight, start)
    await rt.wait_idle()
    paused_s = time.perf_counter() - began  # the first half's time, without reading RSS
    middle = rss_bytes()
    tracemalloc.start()  # (it slows the second half: started/s is the first half's)
    await in_batches(runs - first_half, in_flight, lambda number: start(first_half + number))
    await rt.wait_idle()  # every run has run its first step and paused
    in_memory = len(rt.instances)
    gc.collect()
    heap, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = rss_bytes()
    await rt.stop()

    began = time.perf_counter()
    rt = cf.Runtime(db=db, workflows=[FLOW], synchronous=synchronous)
    await rt.start()
    recover_s = time.perf_counter() - began
    loaded = len(rt.instances)

    began = time.perf_counter()
    first_page = await rt.list_paused(limit=50)
    first_page_ms = (time.perf_counter() - began) * 1000
    assert len(first_page) == min(50, runs)

    tokens: list[tuple[str, str]] = []
    page = first_page
    while True:
        tokens += [(p.token, p.run_id) for p in page]
        if page.next_cursor is None:
            break
        page = await rt.list_paused(limit=1000, cursor=page.next_cursor)
    assert len(tokens) == runs, (len(tokens), runs)

    began = time.perf_counter()

    async def resume(number: int) -> None:
        await rt.resume(tokens[number][0], {"approved": True})

    await in_batches(runs, in_flight, resume)
    resume_s = time.perf_counter() - began
    results = await asyncio.gather(*(rt.wait(run_id) for _token, run_id in tokens[-100:]))
    assert all(result.output is True for result in results)
    await rt.wait_idle()
    finished_s = time.perf_counter() - began
    await rt.stop()
    return {
        "runs": runs,
        "started_per_s": first_half / paused_s,
        "rss_before": before,
        "rss_middle": middle,
        "rss_after": after,
        # RSS moves by 4 KiB pages and the allocator gives memory back as it likes: with
        # the runs passivated the second half may leave it lower than the first; a cost
        # per run is never below nothing (the raw change is kept beside it)
        "bytes_per_waiting_run": max(0, after - middle) / (runs - first_half),
        "rss_second_half": after - middle,
        "heap_bytes_per_waiting_run": heap / (runs - first_half),
        "in_memory": in_memory,
        "loaded_at_start": loaded,
        "recover_s": recover_s,
        "list_paused_first_page_ms": first_page_ms,
        "resumes_per_s": runs / resume_s,
        "finished_per_s": runs / finished_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 runs instead of 100,000")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    runs = args.runs or (20_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as folder:
        result = run_like_serve(
            measure(Path(folder) / "waiting.db", runs, args.in_flight, args.synchronous)
        )
    mb = 1024 * 1024
    table(
        f"{runs:,} runs paused for a human, {args.in_flight} in flight, "
        f"SQLite synchronous={args.synchronous}",
        [
            ("runs started and paused/s", f"{result['started_per_s']:,.0f}"),
            (
                "memory per waiting run",
                f"{result['bytes_per_waiting_run']:,.0f} bytes  (target <= 2,048; RSS "
                f"{result['rss_before'] / mb:,.0f} -> {result['rss_middle'] / mb:,.0f} MB with "
                f"half of them -> {result['rss_after'] / mb:,.0f} MB: the second half "
                f"{result['rss_second_half'] / 1024:+,.0f} KiB, where RSS "
                "moves by pages of 4 KiB and the allocator's own give and take)",
            ),
            (
                "Python heap per waiting run",
                f"{result['heap_bytes_per_waiting_run']:,.0f} bytes  (traced: what the second "
                "half still holds, without SQLite's memory)",
            ),
            ("instances in memory while waiting", f"{result['in_memory']:.0f}"),
            (
                "restart with all of them waiting",
                f"{result['recover_s']:.2f} s  (target < 2; "
                f"{result['loaded_at_start']:.0f} instances loaded)",
            ),
            (
                "first page of list_paused (50)",
                f"{result['list_paused_first_page_ms']:.1f} ms  (target < 50)",
            ),
            ("resumes/s (answered, durable)", f"{result['resumes_per_s']:,.0f}  (target >= 2,000)"),
            ("resumed runs finished/s", f"{result['finished_per_s']:,.0f}"),
        ],
    )
    figures(
        {
            "bytes_per_waiting_run": round(result["bytes_per_waiting_run"]),
            "heap_bytes_per_waiting_run": round(result["heap_bytes_per_waiting_run"]),
            "recover_s": round(result["recover_s"], 3),
            "list_paused_first_page_ms": round(result["list_paused_first_page_ms"], 2),
            "resumes_per_s": round(result["resumes_per_s"], 1),
        }
    )


if __name__ == "__main__":
    main()

"""What every workload prints, and the clocks that measure it. Standard library only: the peers'
scripts import this module under their own virtualenv, where cronflow-actors is not installed.

A workload's figures are one ``BENCH-RESULT {json}`` line per measurement on stdout; the marker
keeps them apart from whatever a peer library logs there.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

MARKER = "BENCH-RESULT "

# Every record's keys; ``extra`` holds what is particular to a workload (group commits, bytes).
FIELDS = (
    "engine",
    "workload",
    "variant",
    "runs",
    "in_flight",
    "runs_per_s",
    "p50_ms",
    "p99_ms",
    "status",
    "note",
    "extra",
)
STATUSES = ("ok", "failed", "missing", "skipped")


def percentile(ordered: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``ordered`` (sorted) lies (nearest rank)."""
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def record(
    engine: str,
    workload: str,
    *,
    variant: str = "",
    runs: int = 0,
    in_flight: int = 0,
    elapsed_s: float | None = None,
    latencies_s: Iterable[float] = (),
    status: str = "ok",
    note: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One measurement. Runs per second come from ``runs / elapsed_s``; p50 and p99 from the
    runs' latencies. A record that is not ``ok`` carries no figures, only its ``note``."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    ordered = sorted(latencies_s)
    ok = status == "ok"
    return {
        "engine": engine,
        "workload": workload,
        "variant": variant,
        "runs": runs,
        "in_flight": in_flight,
        "runs_per_s": round(runs / elapsed_s, 1) if ok and elapsed_s else None,
        "p50_ms": round(percentile(ordered, 0.5) * 1000, 3) if ok and ordered else None,
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3) if ok and ordered else None,
        "status": status,
        "note": note,
        "extra": extra,
    }


def emit(values: dict[str, Any]) -> None:
    sys.stdout.write(MARKER + json.dumps(values) + "\n")
    sys.stdout.flush()


def parse(output: str) -> list[dict[str, Any]]:
    """The records among a subprocess's output lines."""
    found = []
    for line in output.splitlines():
        if line.startswith(MARKER):
            found.append(json.loads(line[len(MARKER) :]))
    return found


async def drive(
    one: Callable[[int], Awaitable[None]], runs: int, in_flight: int
) -> tuple[float, list[float]]:
    """Call ``one(i)`` for i in range(runs) with at most ``in_flight`` at once (each of
    ``in_flight`` clients takes the next number when its run is done); returns the elapsed
    seconds and each run's latency."""
    numbers = iter(range(runs))
    latencies: list[float] = []

    async def client() -> None:
        for number in numbers:
            began = time.perf_counter()
            await one(number)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(max(1, min(in_flight, runs)))))
    return time.perf_counter() - began, latencies


def drive_blocking(one: Callable[[int], None], runs: int) -> tuple[float, list[float]]:
    """``one(i)`` for i in range(runs), one after another; elapsed seconds and latencies."""
    latencies = []
    began = time.perf_counter()
    for number in range(runs):
        start = time.perf_counter()
        one(number)
        latencies.append(time.perf_counter() - start)
    return time.perf_counter() - began, latencies

"""Durable runs per second of a three-step cf.define() workflow (trivial async steps).

Each run goes through the whole front end: the flow is compiled to a net, every step is an
automated work item whose handler builds the Cronflow ctx, and every run is four durable
transactions committed through the SQLite store's group commit. ``--in-flight`` runs are kept
going at once; latency runs from ``trigger`` to ``wait`` returning. SQLite runs with
synchronous=FULL unless --synchronous says otherwise.

    python benchmarks/flow.py [--quick] [--runs N] [--in-flight K] [--synchronous FULL|NORMAL]

The last line is JSON: {"flow_runs_per_s": ..., "p50_ms": ..., "p99_ms": ...}.
Target on a 2-core machine: >= 1,000 durable runs/s. The peers (DBOS, SpiffWorkflow, Restate,
Prefect) are measured beside this engine, in the same run, by ``cronflow-actors bench``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Benchmarks run as scripts; their folder holds http.py, which would shadow the standard library's
# http package, so the folder leaves sys.path and the repository root (for ``benchmarks.*``) joins.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import cronflow_actors as cf
from benchmarks._runs import run_benchmark


async def one(ctx: Any) -> int:
    return 1


async def two(ctx: Any) -> int:
    return ctx.last + 1


async def three(ctx: Any) -> int:
    return ctx.last + ctx.steps["one"]


FLOW = cf.define("bench").step("one", one).step("two", two).step("three", three)


async def start(rt: cf.Runtime) -> str:
    return await rt.trigger("bench", {"n": 1})


async def wait(rt: cf.Runtime, run_id: str) -> None:
    result = await rt.wait(run_id)
    assert result.output == 3


if __name__ == "__main__":
    run_benchmark(
        "cf.define flow",
        "flow_runs_per_s",
        FLOW,
        start=start,
        wait=wait,
        description=__doc__.splitlines()[0],
    )

"""Durable runs per second of a three-step net: start -> t1 -> t2 -> t3 -> end.

Each work item is automated (a trivial ``async def`` handler), so every run is four durable
transactions (start, and one per completed step, the last one completing the workflow), each
committed through the SQLite store's group commit before anything that depends on it happens.
``--in-flight`` runs are kept going at once; each run's latency is measured from
``start_workflow`` to ``wait_workflow`` returning. SQLite runs with synchronous=FULL unless
--synchronous says otherwise.

    python benchmarks/net.py [--quick] [--runs N] [--in-flight K] [--synchronous FULL|NORMAL]
    python benchmarks/net.py --db postgresql://user@host:port/dbname [--processes N] [--quick]

The last line is JSON: {"net_runs_per_s": ..., "p50_ms": ..., "p99_ms": ...}. With ``--db`` (a
PostgreSQL database several processes share: ``benchmarks/_cluster.py``) it measures one process
and N processes (2 by default) on it, SQLite beside them, and the takeover time after a SIGKILL,
ending with {"pg_runs_per_s_1": ..., "pg_runs_per_s_N": ..., "takeover_s": ...}.
Target on a 2-core machine: >= 1,000 durable runs/s. The strongest Python peer measured on this
machine, DBOS on SQLite, does about 100 three-step workflows/s.
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

import asyncio
import os

import cronflow_actors as cf
from benchmarks._cluster import HANG, run_cluster_benchmark, wants_cluster
from benchmarks._runs import run_benchmark
from cronflow_actors import net


async def step(ctx: Any) -> int:
    if HANG_STEPS:  # the worker the takeover measure kills (benchmarks/_cluster.py)
        await asyncio.sleep(3600)
    return int(ctx.attempt)


HANG_STEPS = bool(os.environ.get(HANG))


SPEC = (
    net.workflow("bench")
    .start_condition("start")
    .end_condition("end")
    .task("t1", net.task(step))
    .task("t2", net.task(step))
    .task("t3", net.task(step))
    .connect_condition("start", "t1")
    .connect_task("t1", "t2")
    .connect_task("t2", "t3")
    .connect_task("t3", "end")
    .build()
)


async def start(rt: cf.Runtime) -> str:
    return await rt.start_workflow("bench")


async def wait(rt: cf.Runtime, workflow_id: str) -> None:
    info = await rt.wait_workflow(workflow_id)
    assert info.state == "completed"


if __name__ == "__main__" and wants_cluster(sys.argv[1:]):
    run_cluster_benchmark(SPEC, start=start, wait=wait, description=__doc__.splitlines()[0])
elif __name__ == "__main__":
    run_benchmark(
        "net engine",
        "net_runs_per_s",
        SPEC,
        start=start,
        wait=wait,
        description=__doc__.splitlines()[0],
    )

"""Durable runs per second of a three-step net: start -> t1 -> t2 -> t3 -> end.

Each work item is automated (a trivial ``async def`` handler), so every run is four durable
transactions (start, and one per completed step, the last one completing the workflow), each
committed through the SQLite store's group commit before anything that depends on it happens.
``--in-flight`` runs are kept going at once; each run's latency is measured from
``start_workflow`` to ``wait_workflow`` returning. SQLite runs with synchronous=FULL unless
--synchronous says otherwise.

    python benchmarks/net.py [--quick] [--runs N] [--in-flight K] [--synchronous FULL|NORMAL]
    python benchmarks/net.py --audit [--rounds R] [the same options]
    python benchmarks/net.py --db postgresql://user@host:port/dbname [--processes N] [--quick]

The last line is JSON: {"net_runs_per_s": ..., "p50_ms": ..., "p99_ms": ...}. With ``--db`` (a
PostgreSQL database several processes share: ``benchmarks/_cluster.py``) it measures one process
and N processes (2 by default) on it, SQLite beside them, and the takeover time after a SIGKILL,
ending with {"pg_runs_per_s_1": ..., "pg_runs_per_s_N": ..., "takeover_s": ...}.

``--audit`` measures what the audit trail costs (every engine operation recorded as a span and
committed with its snapshot; on by default): the same runs with ``Runtime(audit=False)`` and
with ``audit=True``, alternately, ``--rounds`` times each (default 3), each on a fresh file; it
reports the median of each and the cost, ``1 - on / off`` (target < 15%), and beside it the
median of each round's own cost (its two measurements back to back, which the machine's drift
over the rounds does not move). Its last line is {"net_runs_per_s_audit_off": ...,
"net_runs_per_s_audit_on": ..., "audit_cost_pct": ..., "audit_cost_pct_paired": ...}.
Target on a 2-core machine: >= 1,000 durable runs/s. The peers (DBOS, SpiffWorkflow, Restate,
Prefect) are measured beside this engine, in the same run, by ``cronflow-actors bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

# Benchmarks run as scripts; their folder holds http.py, which would shadow the standard library's
# http package, so the folder leaves sys.path and the repository root (for ``benchmarks.*``) joins.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import os

import cronflow_actors as cf
from benchmarks._cluster import HANG, run_cluster_benchmark, wants_cluster
from benchmarks._report import figures, table
from benchmarks._runs import measure, run_benchmark, run_like_serve
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


def compare_audit(argv: list[str]) -> None:
    """The audit's cost: runs/s with the audit off and on, alternately, in one process."""
    parser = argparse.ArgumentParser(description="the audit trail's throughput cost")
    parser.add_argument("--audit", action="store_true", required=True)
    parser.add_argument("--quick", action="store_true", help="a few seconds per measurement")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs = args.runs or (3_000 if args.quick else 20_000)
    measured: dict[bool, list[float]] = {False: [], True: []}
    for _round in range(args.rounds):
        for audit in (False, True):
            with tempfile.TemporaryDirectory() as folder:
                runtime = cf.Runtime(
                    db=Path(folder) / "bench.db",
                    workflows=[SPEC],
                    synchronous=args.synchronous,
                    audit=audit,
                )
                result = run_like_serve(measure(runtime, start, wait, runs, args.in_flight))
            measured[audit].append(result["runs_per_s"])
    off, on = (statistics.median(measured[flag]) for flag in (False, True))
    cost = 100 * (1 - on / off)
    # each round's pair, measured back to back: what the machine's drift over the rounds
    # (often 10% in an hour on a shared machine) does not move
    paired = [100 * (1 - b / a) for a, b in zip(measured[False], measured[True], strict=True)]
    table(
        f"the audit trail's cost: {runs} three-step runs, {args.in_flight} in flight, "
        f"SQLite synchronous={args.synchronous}, {args.rounds} rounds each (median)",
        [
            (
                "audit off, runs/s",
                f"{off:,.0f}  ({', '.join(f'{v:,.0f}' for v in measured[False])})",
            ),
            ("audit on, runs/s", f"{on:,.0f}  ({', '.join(f'{v:,.0f}' for v in measured[True])})"),
            ("cost of the audit", f"{cost:.1f}%  (target < 15%)"),
            (
                "cost in each round",
                f"{statistics.median(paired):.1f}% median  "
                f"({', '.join(f'{c:.1f}%' for c in paired)})",
            ),
        ],
    )
    figures(
        {
            "net_runs_per_s_audit_off": round(off, 1),
            "net_runs_per_s_audit_on": round(on, 1),
            "audit_cost_pct": round(cost, 1),
            "audit_cost_pct_paired": round(statistics.median(paired), 1),
        }
    )


if __name__ == "__main__" and "--audit" in sys.argv[1:]:
    compare_audit(sys.argv[1:])
elif __name__ == "__main__" and wants_cluster(sys.argv[1:]):
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

"""net.py on PostgreSQL: durable three-step runs per second with one process and with N
processes on one database, next to SQLite, and the takeover time after a SIGKILL.

    python benchmarks/net.py --db postgresql://user@host:port/dbname [--processes N] [--quick]

Each process is a runtime of its own (a worker: this script again, with ``--worker``); they warm
up, then start together, each keeping its share of the runs in flight; runs/s is every worker's
runs over the time from the first start to the last end. Takeover: a worker starts runs whose
steps never finish and is killed with SIGKILL; the time is from the kill until this process has
taken them over (after the killed one's lease expired) and completed them all. Leases last
``--lease-seconds`` (1 s). The last line is JSON:
{"pg_runs_per_s_1": ..., "pg_runs_per_s_N": ..., "takeover_s": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cronflow_actors as cf
from benchmarks._report import figures, table
from benchmarks._runs import Start, Wait, measure, run_like_serve

HANG = "CRONFLOW_BENCH_HANG"
"""Set in the worker the takeover measure kills: its steps never finish."""


def wants_cluster(argv: list[str]) -> bool:
    """Whether net.py was asked for the PostgreSQL modes (or is one of their workers)."""
    return any(a.split("=")[0] in ("--db", "--processes", "--worker") for a in argv)


def _arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--db", required=True, help="postgresql://user@host:port/dbname")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--lease-seconds", type=float, default=1.0)
    parser.add_argument("--worker", choices=("runs", "hang"), default=None)
    parser.add_argument(
        "--no-audit", action="store_true", help="Runtime(audit=False) in every process"
    )
    args = parser.parse_args()
    if not args.db.startswith(("postgresql://", "postgres://")):
        parser.error(f"--db {args.db!r}: a postgresql://user@host:port/dbname URL")
    if args.processes < 1:
        parser.error("--processes: 1 or more")
    return args


def run_cluster_benchmark(workflow: Any, *, start: Start, wait: Wait, description: str) -> None:
    args = _arguments(description)
    if args.worker == "runs":
        run_like_serve(_worker_runs(args, workflow, start, wait))
        return
    if args.worker == "hang":
        run_like_serve(_worker_hang(args, workflow, start))
        return
    runs = args.runs or (3_000 if args.quick else 20_000)
    with tempfile.TemporaryDirectory() as folder:
        sqlite = run_like_serve(
            measure(
                cf.Runtime(
                    db=Path(folder) / "bench.db", workflows=[workflow], audit=not args.no_audit
                ),
                start,
                wait,
                runs=runs,
                in_flight=args.in_flight,
            )
        )
    one = run_like_serve(
        measure(
            cf.Runtime(
                db=args.db,
                workflows=[workflow],
                lease_seconds=args.lease_seconds,
                audit=not args.no_audit,
            ),
            start,
            wait,
            runs=runs,
            in_flight=args.in_flight,
        )
    )
    several = _several(args, runs)
    takeover = run_like_serve(_takeover(args, workflow, wait))
    n = args.processes
    table(
        f"net engine on PostgreSQL: {runs} three-step runs, {args.in_flight} in flight, "
        f"leases of {args.lease_seconds:g} s",
        [
            ("SQLite (synchronous=FULL), 1 process", f"{sqlite['runs_per_s']:,.0f} runs/s"),
            ("PostgreSQL, 1 process", f"{one['runs_per_s']:,.0f} runs/s  (target >= 1,500)"),
            (f"PostgreSQL, {n} processes", f"{several:,.0f} runs/s"),
            ("PostgreSQL latency p50 / p99", f"{one['p50_ms']:.1f} ms / {one['p99_ms']:.1f} ms"),
            (
                "takeover after SIGKILL",
                f"{takeover:.2f} s  (target < {2 * args.lease_seconds:g} s: 2 x the lease)",
            ),
        ],
    )
    figures(
        {
            "pg_runs_per_s_1": round(one["runs_per_s"], 1),
            f"pg_runs_per_s_{n}": round(several, 1),
            "takeover_s": round(takeover, 2),
        }
    )


def _worker_command(args: argparse.Namespace, mode: str, runs: int, in_flight: int) -> list[str]:
    return [
        *(sys.executable, str(Path(__file__).resolve().parent / "net.py"), "--worker", mode),
        *("--db", args.db, "--runs", str(runs), "--in-flight", str(in_flight)),
        *("--lease-seconds", str(args.lease_seconds)),
        *(["--no-audit"] if args.no_audit else []),
    ]


def _several(args: argparse.Namespace, runs: int) -> float:
    """Runs/s of ``--processes`` workers started together on the database."""
    n = args.processes
    workers = [
        subprocess.Popen(
            _worker_command(args, "runs", runs // n, max(1, args.in_flight // n)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready", "a worker did not start"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            out, _ = worker.communicate(timeout=600)
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    began = min(r["began"] for r in reports)
    ended = max(r["ended"] for r in reports)
    return sum(r["runs"] for r in reports) / (ended - began)


async def _worker_runs(args: argparse.Namespace, workflow: Any, start: Start, wait: Wait) -> None:
    rt = cf.Runtime(
        db=args.db,
        workflows=[workflow],
        lease_seconds=args.lease_seconds,
        audit=not args.no_audit,
    )
    async with rt:

        async def one() -> None:
            await wait(rt, await start(rt))

        await asyncio.gather(*(one() for _ in range(50)))  # warm up
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        queue = iter(range(args.runs))

        async def client() -> None:
            for _ in queue:
                await wait(rt, await start(rt))

        began = time.time()
        await asyncio.gather(*(client() for _ in range(args.in_flight)))
        ended = time.time()
    print(json.dumps({"began": began, "ended": ended, "runs": args.runs}), flush=True)


async def _worker_hang(args: argparse.Namespace, workflow: Any, start: Start) -> None:
    """Start runs whose first step never ends, say so, and wait to be killed."""
    rt = cf.Runtime(
        db=args.db,
        workflows=[workflow],
        lease_seconds=args.lease_seconds,
        audit=not args.no_audit,
    )
    async with rt:
        ids = [await start(rt) for _ in range(args.runs)]
        await asyncio.sleep(0.2)  # every first step started (and recorded as started)
        print(json.dumps(ids), flush=True)
        await asyncio.sleep(3600)


def _start_and_kill_a_holder(args: argparse.Namespace) -> tuple[list[str], float]:
    """A worker starts runs it never finishes, then dies by SIGKILL: their ids, and when."""
    doomed = subprocess.Popen(
        _worker_command(args, "hang", 100, 1),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, HANG: "1"},
    )
    try:
        assert doomed.stdout is not None
        ids: list[str] = json.loads(doomed.stdout.readline())
        doomed.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        doomed.wait()
    finally:
        if doomed.poll() is None:
            doomed.kill()
    return ids, killed


async def _takeover(args: argparse.Namespace, workflow: Any, wait: Wait) -> float:
    rt = cf.Runtime(
        db=args.db,
        workflows=[workflow],
        lease_seconds=args.lease_seconds,
        audit=not args.no_audit,
    )
    async with rt:
        loop = asyncio.get_running_loop()
        ids, killed = await loop.run_in_executor(None, _start_and_kill_a_holder, args)
        await asyncio.gather(*(wait(rt, run_id) for run_id in ids))
        return time.perf_counter() - killed

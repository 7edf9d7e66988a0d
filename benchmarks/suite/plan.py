"""What the suite runs: one ``Job`` per subprocess, in the order they run. Standard library only.

Ours run under the suite's interpreter (``python -m benchmarks.suite.ours``); each peer's script
under the peers' interpreter. ``quick`` keeps the whole suite under 90 s on a 2-core machine;
``scale`` multiplies every run count (the tests use a tiny one).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"

WORKLOADS = {
    "a": "three trivial async steps",
    "b": "ten steps",
    "c": "fan-out of 10 parallel steps and a join",
    "d": "a step plus a background action",
    "e": "three steps, one run at a time (latency)",
    "f": "runs paused at a human step, then resumed",
    "g": "restart with many non-terminal runs",
}

# peer -> (the modules its script needs, its engines in the report)
PEER_MODULES = {
    "dbos": ("dbos",),
    "spiff": ("SpiffWorkflow",),
    "restate": ("restate", "hypercorn"),
    "prefect": ("prefect",),
}


COMPILED = "cronflow-actors compiled"
"""The engine name of ours on the build compiled by mypyc (what ``suite/ours.py`` records)."""

ADMISSION = 128
"""The ``max_active_runs`` of (a)'s second curve: about where its throughput is best on 2 cores."""

CURVE = (100, 500, 2000)
"""(a)'s levels of runs in flight, without a limit on runs in memory (and with ``ADMISSION``
from the second on)."""

CURVE_ROUNDS = 2
"""How many times the full suite measures each point of (a)'s curves (``_curve_jobs``): the
machine's speed drifts by 10-25% between runs a minute apart, more than the in-flight target's
margin, so one pass per point can put the drift into the curve's shape."""

JOURNALS = {"wal": "file pre-set to WAL", "default": "its default journal"}


@dataclass(frozen=True)
class Job:
    """One subprocess: ``argv`` after the interpreter; the records it should print."""

    engine: str
    title: str
    argv: tuple[str, ...]
    expects: tuple[str, ...]  # workloads it reports
    peer: str | None = None  # None: ours
    timeout_s: float = 600.0
    in_flight: int = 0
    runs: int = 0
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None  # where it runs (and its PYTHONPATH); None: this repository


def _n(base: int, scale: float, least: int = 5) -> int:
    return max(least, int(base * scale))


def our_jobs(quick: bool, scale: float = 1.0, in_flight: int = 500) -> list[Job]:
    runs_a = _n(2_000 if quick else 20_000, scale)
    jobs = _curve_jobs(runs_a, quick, rounds=1 if quick else CURVE_ROUNDS)
    for workload, base in (("b", 1_000), ("c", 1_000), ("d", 3_000)):
        runs = _n(base if quick else base * 5, scale)
        jobs.append(_ours(workload, workload, runs, in_flight, quick))
    jobs.append(_ours("e", "e", _n(500 if quick else 5_000, scale), 1, quick))
    jobs.append(_ours("f", "f", _n(2_000 if quick else 100_000, scale), in_flight, quick))
    jobs.append(_ours("g", "g", _n(2_000 if quick else 100_000, scale), in_flight, quick))
    for size in (5_000,) if quick else (100_000, 1_000_000):
        filled = _n(size, scale)
        job = _ours("a", f"a on a file of {filled:,} runs", runs_a, in_flight, quick)
        jobs.append(
            Job(
                engine=job.engine,
                title=job.title,
                argv=(*job.argv, "--db-runs", str(filled)),
                expects=("a",),
                runs=runs_a,
                in_flight=in_flight,
                timeout_s=job.timeout_s + filled / 500,
            )
        )
    return jobs


def _curve_jobs(runs: int, quick: bool, rounds: int) -> list[Job]:
    """(a) at each level of runs in flight, without a limit on runs in memory and with
    ``ADMISSION``, in ``rounds`` rounds, alternately forwards and backwards: with an even number
    of rounds the whole is a palindrome, so that a steady drift of the machine's speed weighs
    alike on every point of the curves (the report takes each point's mean)."""
    points = [(level, 0) for level in CURVE] + [(level, ADMISSION) for level in CURVE[1:]]
    jobs = []
    for number in range(1, rounds + 1):
        order = points if number % 2 else points[::-1]
        suffix = f", round {number}" if rounds > 1 else ""
        for level, limit in order:
            title = f"a, {level} in flight{suffix}"
            jobs.append(_ours("a", title, runs, level, quick, limit=limit))
    return jobs


def compiled_jobs(tree: Path, quick: bool, scale: float = 1.0) -> list[Job]:
    """(a) on the engine compiled by mypyc (``setup.py``; ``tree``: a copy of this repository
    with the compiled modules, ``.ci/test-compiled --build-only``), at 500 in flight without a
    limit on runs in memory and with one, and at 2,000 with one."""
    runs = _n(2_000 if quick else 20_000, scale)
    jobs = []
    for level, limit in ((500, 0), (500, ADMISSION), (2000, ADMISSION)):
        job = _ours("a", f"a compiled, {level} in flight", runs, level, quick, limit=limit)
        jobs.append(replace(job, cwd=tree, engine=COMPILED))
    return jobs


def _ours(
    workload: str, title: str, runs: int, in_flight: int, quick: bool, *, limit: int = 0
) -> Job:
    """``limit``: the runtime's ``max_active_runs`` (0: none)."""
    argv = ("-m", "benchmarks.suite.ours", workload, "--runs", str(runs))
    argv += ("--in-flight", str(in_flight))
    if limit:
        argv += ("--max-active-runs", str(limit))
        title += f", max_active_runs {limit}"
    return Job(
        engine="cronflow-actors",
        title=f"cronflow-actors {title}",
        argv=argv,
        expects=(workload,),
        runs=runs,
        in_flight=in_flight,
        timeout_s=120.0 if quick else 1800.0,
    )


def peer_jobs(
    quick: bool,
    scale: float = 1.0,
    in_flight: int = 500,
    restate_server: Path | None = None,
) -> list[Job]:
    dbos_runs = _n(60 if quick else 1_000, scale)
    timeout = 90.0 if quick else 1800.0
    jobs = []
    for journal in ("wal", "default"):
        jobs.append(
            Job(
                engine=f"dbos-{journal}",
                title=f"DBOS on SQLite, {JOURNALS[journal]}",
                argv=(
                    str(PEERS / "dbos_peer.py"),
                    "--journal",
                    journal,
                    "--runs",
                    str(dbos_runs),
                    "--in-flight",
                    str(in_flight),
                    "--workloads",
                    "a,b,c,e",
                ),
                expects=("e", "a", "b", "c"),
                peer="dbos",
                timeout_s=timeout,
                runs=dbos_runs,
                in_flight=in_flight,
            )
        )
    seq = _n(200 if quick else 3_000, scale)
    jobs.append(
        Job(
            engine="spiff-sequential",
            title="SpiffWorkflow, SQLite save per step, one at a time",
            argv=(str(PEERS / "spiff_peer.py"), "--mode", "sequential", "--runs", str(seq)),
            expects=("e", "a"),
            peer="spiff",
            timeout_s=timeout,
            runs=seq,
            in_flight=1,
        )
    )
    grouped = _n(2_000 if quick else 20_000, scale)  # as many as ours at 500 in flight
    jobs.append(
        Job(
            engine="spiff-grouped",
            title="SpiffWorkflow, SQLite save per step, grouped commits",
            argv=(
                str(PEERS / "spiff_peer.py"),
                "--mode",
                "grouped",
                "--runs",
                str(grouped),
                "--in-flight",
                str(in_flight),
            ),
            expects=("a",),
            peer="spiff",
            timeout_s=timeout,
            runs=grouped,
            in_flight=in_flight,
        )
    )
    restate_runs = _n(100 if quick else 3_000, scale)
    argv = [str(PEERS / "restate_peer.py"), "--runs", str(restate_runs)]
    argv += ["--in-flight", str(in_flight)]
    if restate_server is not None:
        argv += ["--server", str(restate_server)]
    jobs.append(
        Job(
            engine="restate",
            title="Restate (server + Python SDK)",
            argv=tuple(argv),
            expects=("a", "e"),
            peer="restate",
            timeout_s=timeout,
            runs=restate_runs,
            in_flight=in_flight,
        )
    )
    prefect_runs = _n(5 if quick else 200, scale, least=3)
    # Prefect's (a) at 50 in flight at most: at more its server answers 503 and the client's
    # back-off sets the pace; 200 runs at 25, 50, 100 and all 200 at once ran at 1.4, 1.6, 0.7
    # and 0.4 runs/s (benchmarks/README.md). e runs first; each workload gets half the time.
    # --quick's five runs at two in flight: at five its server's first 503s cost the client
    # 2 + 4 s of back-off, most of the job's time (24 s against 16, and 0.7 runs/s against 2.0)
    prefect_in_flight = min(in_flight, 2 if quick else 50)
    jobs.append(
        Job(
            engine="prefect",
            title="Prefect 3 with its local server",
            argv=(
                str(PEERS / "prefect_peer.py"),
                "--runs",
                str(prefect_runs),
                "--in-flight",
                str(prefect_in_flight),
                "--suite-in-flight",
                str(in_flight),
                "--seconds",
                str(timeout / 2),
            ),
            expects=("e", "a"),
            peer="prefect",
            timeout_s=timeout + 60,
            runs=prefect_runs,
            in_flight=prefect_in_flight,
        )
    )
    return jobs


def suite_python() -> str:
    return sys.executable

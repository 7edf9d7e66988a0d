"""``cronflow-actors bench``: run the suite's jobs one after another (never two at once: the
machine has two cores), then write ``results.jsonl``, ``results.md`` and ``chart.png`` and
print the table and, last, the one summary JSON line of issue 16.

A peer whose library is not installed in the peers' interpreter is reported ``missing``; one
whose script fails, times out or prints no figures is ``failed``, with the reason; neither is
ever counted as a number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.suite import chart, plan, report
from benchmarks.suite.progress import Progress
from benchmarks.suite.record import parse, record

DEFAULT_PEER_VENV = plan.REPO / "benchmarks" / ".peers" / "venv"
DEFAULT_RESTATE = (
    plan.REPO
    / "benchmarks/.peers/restate/node_modules/@restatedev/restate-server-linux-x64"
    / "bin/restate-server"
)


def peer_python(venv: str | None) -> str:
    if venv:
        return str(Path(venv) / "bin" / "python")
    if (DEFAULT_PEER_VENV / "bin" / "python").exists():
        return str(DEFAULT_PEER_VENV / "bin" / "python")
    return sys.executable


def installed(python: str, peers: list[str]) -> dict[str, str | None]:
    """For each peer, None when its modules can be imported by ``python``, else why not."""
    modules = sorted({m for peer in peers for m in plan.PEER_MODULES[peer]})
    probe = (
        "import importlib.util, json, sys; "
        f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {modules!r}}}))"
    )
    try:
        found = json.loads(
            subprocess.run(
                [python, "-c", probe], capture_output=True, text=True, timeout=60, check=True
            ).stdout
        )
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return {peer: f"the peers' interpreter {python} does not run ({error})" for peer in peers}
    missing: dict[str, str | None] = {}
    for peer in peers:
        absent = [m for m in plan.PEER_MODULES[peer] if not found.get(m)]
        missing[peer] = (
            f"{', '.join(absent)} not installed in {python} (make bench-peers)" if absent else None
        )
    return missing


def run_job(job: plan.Job, python: str) -> list[dict[str, Any]]:
    """The job's records; a failure becomes a ``failed`` record for each workload it owes."""
    root = job.cwd or plan.REPO
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1", **job.env}
    began = time.perf_counter()
    try:
        done = subprocess.run(
            [python, *job.argv],
            capture_output=True,
            text=True,
            timeout=job.timeout_s,
            cwd=root,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        out = error.stdout.decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        found = parse(out)
        why = f"timed out after {job.timeout_s:.0f} s"
        return found + _failed(job, why, {r["workload"] for r in found})
    found = parse(done.stdout)
    if done.returncode != 0 or len(found) < len(job.expects):
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:]
        why = f"exit {done.returncode}" + (f": {tail[0][:300]}" if tail else "")
        if done.returncode == 0:
            why = "printed no figures for some workloads" + (f" ({tail[0][:300]})" if tail else "")
        found += _failed(job, why, {r["workload"] for r in found})
    for rec in found:
        rec["extra"].setdefault("job_s", round(time.perf_counter() - began, 1))
    return found


def _failed(job: plan.Job, why: str, reported: set[str]) -> list[dict[str, Any]]:
    return [
        record(
            job.engine, workload, runs=job.runs, in_flight=job.in_flight, status="failed", note=why
        )
        for workload in job.expects
        if workload not in reported
    ]


def _missing(job: plan.Job, why: str) -> list[dict[str, Any]]:
    return [
        record(
            job.engine, workload, runs=job.runs, in_flight=job.in_flight, status="missing", note=why
        )
        for workload in job.expects
    ]


def _compiled_tree() -> tuple[Path | None, str | None]:
    """The repository's copy with the engine compiled (``.ci/test-compiled --build-only``), or
    why there is none."""
    done = subprocess.run(
        [sys.executable, str(plan.REPO / ".ci" / "test-compiled"), "--build-only"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PY": sys.executable},
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines and Path(lines[-1]).is_dir():
        return Path(lines[-1]), None
    tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:]
    return None, "not compiled: " + (tail[0][:300] if tail else f"exit {done.returncode}")


def main(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    out = (
        Path(args.out)
        if args.out
        else plan.REPO / "benchmarks" / "results" / time.strftime("%Y%m%d-%H%M%S")
    )
    out.mkdir(parents=True, exist_ok=True)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(plan.PEER_MODULES))
    if unknown:
        raise ValueError(f"unknown peers {unknown}; known: {sorted(plan.PEER_MODULES)}")
    jobs: list[plan.Job] = []
    absent: dict[str | None, str | None] = {}
    if not args.no_ours:
        jobs += plan.our_jobs(args.quick, args.scale, args.in_flight)
    if not args.no_ours and args.compiled:
        tree, why = _compiled_tree()
        compiled = plan.compiled_jobs(tree or plan.REPO, args.quick, args.scale)
        jobs += compiled
        absent[plan.COMPILED] = why
    server = Path(args.restate_server) if args.restate_server else DEFAULT_RESTATE
    python = peer_python(args.peer_venv)
    jobs += [
        job
        for job in plan.peer_jobs(args.quick, args.scale, args.in_flight, server)
        if job.peer in peers
    ]
    absent.update(installed(python, peers) if peers else {})
    if "restate" in peers and absent.get("restate") is None and not server.exists():
        absent["restate"] = f"no restate-server binary at {server} (make bench-peers)"
    progress = Progress(len(jobs))
    results: list[dict[str, Any]] = []
    with (out / "results.jsonl").open("w") as lines:
        for job in jobs:
            progress.start(job.title)
            why = absent.get(job.peer or job.engine)
            found = (
                _missing(job, why) if why else run_job(job, python if job.peer else sys.executable)
            )
            for rec in found:
                rec["title"] = job.title
                lines.write(json.dumps(rec) + "\n")
            results += found
            states = sorted({rec["status"] for rec in found})
            progress.finish(job.title, ", ".join(states))
    summary = report.summary(results)
    machine = report.machine()
    elapsed = time.perf_counter() - began
    markdown = report.markdown(results, summary, machine, quick=args.quick, elapsed_s=elapsed)
    (out / "results.md").write_text(markdown)
    (out / "summary.json").write_text(json.dumps(summary) + "\n")
    chart_note = "chart skipped (--no-chart)"
    if not args.no_chart:
        chart_note = chart.draw(out / "results.jsonl", out / "chart.png", fallback_python=python)
    print(markdown)
    print(f"results: {out}/results.jsonl, {out}/results.md; {chart_note}")
    sys.stdout.flush()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from cronflow_actors.cli.bench import add_bench_arguments, check_bench_arguments
    from cronflow_actors.errors import ConfigurationError

    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite.runner")
    add_bench_arguments(parser)
    arguments = parser.parse_args()
    try:
        check_bench_arguments(arguments)
    except ConfigurationError as error:
        parser.error(str(error))
    sys.exit(main(arguments))

"""The CPU a run costs, as machine instructions, which do not drift with the machine's load: the
instructions valgrind's cachegrind counts in the whole process (the loop's thread and the
store's writer thread alike) for a suite workload (``benchmarks/suite/ours.py``: ``a``, three
steps; ``e``, the same one at a time), with the start-up taken out: the process runs ``--warm``
runs and then, in a second process, ``--warm`` plus ``--runs``; the difference over ``--runs``
is a run's instructions.

Where ``benchmarks.calls`` counts Python calls (a cut that removes calls shows there), this
counts time that calls do not show: a module constant read in place of an enum member, a C
path in place of a Python one. Two measurements of one tree agree within about one percent,
where runs/s drift by a third between rounds on two shared cores. It needs valgrind
(``apt-get install valgrind``) and takes minutes (valgrind runs the code about 50 times slower):

    python -m benchmarks.instructions a --runs 1000
    PYTHONPATH=$other_tree python -m benchmarks.instructions a --runs 1000

The second, from this tree's root, measures another tree (an older commit's worktree, whose
``benchmarks`` may not have this module): the measured process imports that tree first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cronflow_actors as cf
from benchmarks._runs import run_like_serve
from benchmarks.suite.ours import FLOWS

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
_CHILD = (
    "import importlib.util, sys; "
    "spec = importlib.util.spec_from_file_location('instructions', sys.argv[1]); "
    "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
    "module.child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))"
)
"""What the measured process runs: ``child`` of this file, whatever tree it measures."""


async def _run(workload: str, runs: int, in_flight: int) -> None:
    """``runs`` runs of ``workload``, ``in_flight`` at a time, on a SQLite file (FULL)."""
    flow, expected, _steps = FLOWS[workload]
    with tempfile.TemporaryDirectory() as folder:
        runtime = cf.Runtime(db=Path(folder) / "ir.db", workflows=[flow], synchronous="FULL")
        async with runtime:
            left = iter(range(runs))

            async def client() -> None:
                for n in left:
                    result = await runtime.wait(await runtime.trigger(flow.id, n))
                    assert result.output == expected(n), result

            await asyncio.gather(*(client() for _ in range(in_flight)))


def child(workload: str, runs: int, in_flight: int) -> None:
    """The measured process: ``runs`` runs of ``workload``."""
    run_like_serve(_run(workload, runs, in_flight))


def _instructions(workload: str, runs: int, in_flight: int) -> int:
    """The instructions of a process that makes ``runs`` runs, as cachegrind counts them."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [sys.executable, "-c", _CHILD, __file__, workload, str(runs), str(in_flight)]
    # this file is loaded by its path, so that a tree from before it came measures too: that
    # tree (PYTHONPATH) is imported first, this one's root after it, from an empty folder (the
    # current one would come before both)
    paths = [os.environ.get("PYTHONPATH", ""), str(Path(__file__).resolve().parent.parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    with tempfile.TemporaryDirectory() as empty:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=empty, check=False
        )
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"the measured process failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=["a", "e"])
    parser.add_argument("--runs", type=int, default=1000, help="runs measured (1000)")
    parser.add_argument("--warm", type=int, default=200, help="runs taken out as start-up (200)")
    parser.add_argument("--in-flight", type=int, default=None, help="default: 50 (a), 1 (e)")
    args = parser.parse_args()
    in_flight = args.in_flight or (50 if args.workload == "a" else 1)
    if args.runs < 1 or args.warm < 1:
        parser.error("--runs and --warm must be at least 1")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind (it counts them)")
    small = _instructions(args.workload, args.warm, in_flight)
    big = _instructions(args.workload, args.warm + args.runs, in_flight)
    print(f"workload {args.workload}, {args.runs} runs ({args.warm} warm), {in_flight} in flight:")
    print(f"  instructions_per_run     {(big - small) / args.runs:12,.0f}")


if __name__ == "__main__":
    main()

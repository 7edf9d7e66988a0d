"""The work a run costs, counted rather than timed: Python function calls per run (cProfile),
event-loop callbacks per run (``call_soon``, ``create_task``, ``create_future``) and group
commits per run, for a suite workload (``benchmarks/suite/ours.py``: ``a``, three steps; ``e``,
the same one at a time) with ``--in-flight`` runs going.

The same code gives the same counts on a busy machine or a quiet one, where runs/s drift by a
third from one round to the next on two shared cores: this is the yardstick for a change to the
hot path (before and after, on two trees: ``PYTHONPATH=$tree python -m benchmarks.calls a``).
The counts are of the loop's thread (the store's writer thread is not profiled).

    python -m benchmarks.calls a --runs 5000 --in-flight 500
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
from pathlib import Path
from typing import Any

import cronflow_actors as cf
from benchmarks._runs import run_like_serve
from benchmarks.suite.ours import FLOWS

_COUNTED = ("call_soon", "create_task", "create_future")


def _count_callbacks(loop: asyncio.AbstractEventLoop, counts: dict[str, int]) -> None:
    """Count the loop's callbacks of each kind in ``counts`` (its methods wrapped)."""
    for name in _COUNTED:
        method = getattr(loop, name)

        def counted(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            counts[_name] += 1
            return _method(*args, **kwargs)

        setattr(loop, name, counted)


def _count_tasks(counts: dict[str, int]) -> Any:
    """Count in ``counts["create_task"]`` the tasks made with ``asyncio.Task`` too (the
    kernel makes its own so, named as they are made: ``kernel/_work.py``); returns what
    ``asyncio.Task`` was, to put back."""
    real = asyncio.Task

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts["create_task"] += 1
        return real(*args, **kwargs)

    asyncio.Task = counted  # type: ignore[misc]
    return real


async def _measure(workload: str, runs: int, in_flight: int) -> dict[str, float]:
    flow, expected, _steps = FLOWS[workload]
    with tempfile.TemporaryDirectory() as folder:
        runtime = cf.Runtime(db=Path(folder) / "calls.db", workflows=[flow], synchronous="FULL")
        async with runtime:

            async def one(n: int) -> None:
                result = await runtime.wait(await runtime.trigger(flow.id, n))
                assert result.output == expected(n), result

            await asyncio.gather(*(one(n) for n in range(50)))  # warm: code paths, caches
            counts = dict.fromkeys(_COUNTED, 0)
            _count_callbacks(asyncio.get_running_loop(), counts)
            real_task = _count_tasks(counts)
            left = iter(range(runs))

            async def client() -> None:
                for n in left:
                    await one(n)

            before = runtime.store.statistics()
            profile = cProfile.Profile()
            profile.enable()
            await asyncio.gather(*(client() for _ in range(in_flight)))
            profile.disable()
            asyncio.Task = real_task  # type: ignore[misc]
            after = runtime.store.statistics()
    figures = {"python_calls_per_run": pstats.Stats(profile).total_calls / runs}
    figures |= {f"{name}_per_run": counts[name] / runs for name in _COUNTED}
    figures["group_commits_per_run"] = (after.batches - before.batches) / runs
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=["a", "e"])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=None, help="default: 500 (a), 1 (e)")
    args = parser.parse_args()
    in_flight = args.in_flight or (500 if args.workload == "a" else 1)
    figures = run_like_serve(_measure(args.workload, args.runs, in_flight))
    print(f"workload {args.workload}, {args.runs} runs, {in_flight} in flight:")
    for name, value in figures.items():
        print(f"  {name:24} {value:10.2f}")


if __name__ == "__main__":
    main()

"""Long chains: how long one start of a net of N dummy tasks in a row holds the event loop.

A completion enables the tasks after it in the same turn, so a net of N dummies starts in one
transaction that runs every one of them; nothing else on the loop runs meanwhile (a lease's
renewal among it). Each size is started twice on a fresh runtime (the second start finds the
net's shape made), on SQLite with synchronous=FULL.

    python benchmarks/chains.py [--quick] [--sizes 1000,5000]

The last line is JSON: {"start_s_<N>": first start, "again_s_<N>": second start, ...}. What to
look for: 5,000 took 3-6 s a start, every start, when each task's followers were found by
scanning the net (hostile h36 F1), then about 0.3 s; each task's start and completion copied
its workflow's marking, which keeps an entry for every condition a token has passed (19,000:
6.2 s); changed in place, 5,000 take about 0.2 s and 19,000 0.8 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import tempfile
import time

import cronflow_actors as cf
from benchmarks._report import figures, table
from cronflow_actors import net


def chain(size: int) -> net.NetSpec:
    """``size`` dummy tasks in a row between the start and the end."""
    names = [f"d{i}" for i in range(size)]
    builder = net.workflow(f"chain{size}").start_condition("start").end_condition("end")
    for name in names:
        builder.dummy_task(name)
    builder.connect_condition("start", names[0])
    for source, target in zip(names, [*names[1:], "end"], strict=True):
        builder.connect_task(source, target)
    return builder.actions(initialize=net.action()).build()


async def measure(size: int) -> tuple[float, float]:
    """Seconds of a first and a second start of a chain of ``size``."""
    spec = chain(size)
    took = []
    with tempfile.TemporaryDirectory(prefix="cronflow-chains-") as folder:
        async with cf.Runtime(db=Path(folder) / "c.db", workflows=[spec]) as rt:
            for _ in range(2):
                began = time.perf_counter()
                workflow_id = await rt.start_workflow(spec.name)
                took.append(time.perf_counter() - began)
                assert await rt.workflow_state(workflow_id) == "completed"
    return took[0], took[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 only")
    parser.add_argument("--sizes", default="", help="comma-separated chain lengths")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [1_000, 5_000] if args.quick else [500, 1_000, 2_000, 5_000, 10_000]
    )
    rows, values = [], {}
    for size in sizes:
        first, again = asyncio.run(measure(size))
        rows.append((f"{size:,} dummies in a row", f"{first:.3f} s, again {again:.3f} s"))
        values[f"start_s_{size}"] = round(first, 4)
        values[f"again_s_{size}"] = round(again, 4)
    table("one start of a long chain (the loop held meanwhile)", rows)
    figures(values)


if __name__ == "__main__":
    main()

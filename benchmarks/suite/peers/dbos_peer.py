"""DBOS Transact on SQLite: workloads a (three steps), b (ten), c (fan-out of 10 and a join) and
e (one run at a time), written as DBOS's documentation shows a user:

- workflows and steps are decorated functions, steps called from an ``async`` workflow
  (https://docs.dbos.dev/python/tutorials/workflow-tutorial,
  https://docs.dbos.dev/python/tutorials/step-tutorial);
- parallel steps inside an async workflow with ``asyncio.gather`` (the workflow tutorial);
- runs started with ``DBOS.start_workflow_async`` and awaited through their handle's
  ``get_result()`` (https://docs.dbos.dev/python/reference/contexts#start_workflow_async);
- SQLite as the system database through ``system_database_url``
  (https://docs.dbos.dev/python/reference/configuration);
- e, one run at a time, calls a plain (``def``) workflow directly, the tutorial's first form.

DBOS sets no journal mode or synchronous level on SQLite (only busy_timeout and foreign keys),
so its default is SQLite's: a rollback journal (DELETE) with synchronous=FULL. ``--journal wal``
creates the file in WAL mode first (WAL is a property of the file); synchronous stays FULL,
which the record checks and reports.

e runs first, on the fresh file: after b and c have filled it, one at a time ran at a third of
the speed here, and ours is measured on a fresh file too.

    python dbos_peer.py --journal default|wal --runs N --in-flight K [--workloads e,a,b,c]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from dbos import DBOS

from benchmarks.suite.record import drive, drive_blocking, emit, record


@DBOS.step()
async def inc(x: int) -> int:
    return x + 1


@DBOS.step()
async def branch(x: int, offset: int) -> int:
    return x + offset


@DBOS.step()
async def join(values: list[int]) -> int:
    return sum(values)


@DBOS.workflow()
async def three(n: int) -> int:
    x = await inc(n)
    x = await inc(x)
    return await inc(x)


@DBOS.workflow()
async def ten(n: int) -> int:
    x = n
    for _ in range(10):
        x = await inc(x)
    return x


@DBOS.workflow()
async def fan(n: int) -> int:
    values = await asyncio.gather(*(branch(n, offset) for offset in range(10)))
    return await join(list(values))


@DBOS.step()
def inc_blocking(x: int) -> int:
    return x + 1


@DBOS.workflow()
def three_blocking(n: int) -> int:
    x = inc_blocking(n)
    x = inc_blocking(x)
    return inc_blocking(x)


WORKLOADS = {
    "a": (three, lambda n: n + 3, 3),
    "b": (ten, lambda n: n + 10, 10),
    "c": (fan, lambda n: 10 * n + 45, 11),
    "e": (three_blocking, lambda n: n + 3, 3),
}


async def measure(
    db: Path, engine: str, workload: str, runs: int, in_flight: int
) -> dict[str, object]:
    workflow, expected, steps = WORKLOADS[workload]
    wrong: list[str] = []

    async def one(_number: int) -> None:
        handle = await DBOS.start_workflow_async(workflow, 7)
        result = await handle.get_result()
        if result != expected(7):
            wrong.append(repr(result))

    def one_blocking(_number: int) -> None:
        # One at a time, a plain workflow called like a function: the tutorial's first form,
        # and DBOS's fastest here (an async workflow alone runs at about half its speed).
        result = workflow(7)
        if result != expected(7):
            wrong.append(repr(result))

    if workload == "e":
        await asyncio.to_thread(drive_blocking, one_blocking, 20)  # warm up
        elapsed, latencies = await asyncio.to_thread(drive_blocking, one_blocking, runs)
    else:
        await drive(one, 20, min(in_flight, 20))  # warm up
        elapsed, latencies = await drive(one, runs, in_flight)
    steps_recorded = _steps_recorded(db, workflow.__name__)
    if wrong or len(latencies) != runs:
        return record(
            engine,
            workload,
            runs=runs,
            in_flight=in_flight,
            status="failed",
            note=f"{len(latencies)} of {runs} runs finished; wrong outputs {wrong[:3]}",
        )
    return record(
        engine,
        workload,
        runs=runs,
        in_flight=in_flight,
        elapsed_s=elapsed,
        latencies_s=latencies,
        steps_per_run=steps,
        steps_recorded_per_run=steps_recorded,
    )


def _steps_recorded(db: Path, name: str) -> float:
    """Steps DBOS recorded per run of ``name``, from its own tables (a correctness check)."""
    with sqlite3.connect(db) as raw:
        done = raw.execute(
            "SELECT COUNT(*) FROM workflow_status WHERE name LIKE ? AND status = 'SUCCESS'",
            (f"%{name}",),
        ).fetchone()[0]
        steps = raw.execute(
            "SELECT COUNT(*) FROM operation_outputs o JOIN workflow_status w "
            "ON o.workflow_uuid = w.workflow_uuid WHERE w.name LIKE ?",
            (f"%{name}",),
        ).fetchone()[0]
    return round(steps / done, 2) if done else 0.0


async def main_async(args: argparse.Namespace, folder: Path) -> None:
    db = folder / "dbos.sqlite"
    if args.journal == "wal":
        with sqlite3.connect(db) as raw:
            raw.execute("PRAGMA journal_mode=WAL")
    engine = f"dbos-{args.journal}"
    DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{db}"})
    DBOS.launch()
    with sqlite3.connect(db) as raw:
        journal = raw.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = raw.execute("PRAGMA synchronous").fetchone()[0]
    try:
        for workload in args.workloads.split(","):
            in_flight = 1 if workload == "e" else args.in_flight
            try:
                # b and c take several times longer per run: half as many runs.
                runs = args.runs if workload in ("a", "e") else max(1, args.runs // 2)
                rec = await measure(db, engine, workload, runs, in_flight)
            except Exception as error:
                rec = record(
                    engine,
                    workload,
                    runs=runs,
                    in_flight=in_flight,
                    status="failed",
                    note=f"{type(error).__name__}: {error}",
                )
            rec["extra"].update(journal_mode=journal, synchronous=synchronous)
            emit(rec)
    finally:
        DBOS.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", choices=["default", "wal"], default="default")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--workloads", default="e,a,b,c")
    args = parser.parse_args()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dbos-bench-") as folder:
        asyncio.run(main_async(args, Path(folder)))


if __name__ == "__main__":
    main()

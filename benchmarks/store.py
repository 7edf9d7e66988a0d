"""Durable snapshot writes per second through the SQLite store's group commit.

For 1, 10, 100 and 1,000 concurrent writers, each writer repeatedly commits a new revision of its
own instance's snapshot (about 500 bytes) and waits until it is durable before writing the next.
SQLite runs in WAL mode with synchronous=FULL (durable across power loss) unless --synchronous
says otherwise. Each level gets a fresh database file.

    python benchmarks/store.py [--quick] [--seconds S] [--synchronous FULL|NORMAL]

The last line is JSON: {"durable_writes_per_s_1": ..., ..., "durable_writes_per_s_1000": ...}.
Target on a 2-core machine: >= 50,000 durable writes/s at 1,000 concurrent writers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

# Benchmarks run as scripts; their folder holds http.py, which would shadow the standard library's
# http package, so the folder leaves sys.path and the repository root (for ``benchmarks.*``) joins.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks._report import figures, table
from cronflow_actors.messages import Mutation, SnapshotRecord
from cronflow_actors.store import SQLiteStore

LEVELS = (1, 10, 100, 1000)
BODY = b"x" * 500


async def measure(path: Path, writers: int, seconds: float, synchronous: str) -> dict[str, float]:
    async with SQLiteStore(path, synchronous=synchronous) as store:
        done = 0
        deadline = 0.0
        revisions = dict.fromkeys(range(writers), 0)  # each write replaces the one before

        async def writer(index: int) -> None:
            nonlocal done
            instance_id = f"instance-{index}"
            while time.perf_counter() < deadline:
                revisions[index] += 1
                revision = revisions[index]
                await store.commit(
                    Mutation(
                        snapshot=SnapshotRecord(
                            instance_id=instance_id,
                            workflow="bench",
                            status="running",
                            revision=revision,
                            updated_at=time.time(),
                            body=BODY,
                        )
                    )
                )
                done += 1

        # Warm up (file creation, first pages), then measure.
        deadline = time.perf_counter() + min(0.3, seconds / 4)
        await asyncio.gather(*(writer(i) for i in range(writers)))
        done = 0
        before = store.statistics()
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(writer(i) for i in range(writers)))
        elapsed = time.perf_counter() - started
        after = store.statistics()
        batches = after.batches - before.batches
        return {
            "writes_per_s": done / elapsed,
            "batches": batches,
            "mean_batch": (after.mutations - before.mutations) / max(1, batches),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 10 seconds in all")
    parser.add_argument("--seconds", type=float, help="measuring time per level")
    parser.add_argument("--synchronous", default="FULL", help="SQLite synchronous level")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cronflow-bench-") as tmp:
        for writers in LEVELS:
            results[writers] = await measure(
                Path(tmp) / f"store-{writers}.db", writers, seconds, args.synchronous
            )
    table(
        f"Durable snapshot writes, SQLite WAL, synchronous={args.synchronous.upper()}",
        [
            (
                f"{writers:>5} concurrent writers",
                f"{r['writes_per_s']:>10,.0f} writes/s   "
                f"(mean batch {r['mean_batch']:,.1f} over {r['batches']:,.0f} transactions)",
            )
            for writers, r in results.items()
        ],
    )
    figures(
        {f"durable_writes_per_s_{w}": round(r["writes_per_s"]) for w, r in results.items()}
        | {"synchronous": args.synchronous.upper()}
    )


if __name__ == "__main__":
    asyncio.run(main())

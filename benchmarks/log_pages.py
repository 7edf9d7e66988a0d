"""What a durable run writes to SQLite's log: pages per commit and per run, by table or index.

    python -m benchmarks.log_pages [--runs 500] [--in-flight 1]

Runs three trivial steps (workload (e) one run at a time; (a) with ``--in-flight 500``, whose
group commits share pages where rows are appended) on a fresh file with the log's
auto-checkpoint off, then reads the write-ahead log back: each frame is one page a commit
wrote, and SQLite's ``dbstat`` names the b-tree each page belongs to. A commit's cost on the
disk grows with its pages (about 40 us a page at p50 here, beside the one fdatasync), so this
is what a schema change to the hot tables is measured by. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sqlite3
import struct
import tempfile
from pathlib import Path

import cronflow_actors as cf
from benchmarks.suite.ours import chain
from cronflow_actors.store import sqlite as sqlite_store

_FRAME_HEADER = 24
_WAL_HEADER = 32


def commits_in_log(db: Path) -> list[list[str]]:
    """The commits in ``db``'s write-ahead log, each as the b-trees of the pages it wrote."""
    data = (db.parent / f"{db.name}-wal").read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        owners = dict(connection.execute("SELECT pageno, name FROM dbstat"))
    commits, pages, at = [], [], _WAL_HEADER
    while at + _FRAME_HEADER + page_size <= len(data):
        number, size_after_commit = struct.unpack(">II", data[at : at + 8])
        pages.append(owners.get(number, "(free or map page)"))
        if size_after_commit:  # the last frame of a commit
            commits.append(pages)
            pages = []
        at += _FRAME_HEADER + page_size
    return commits


async def measure(runs: int, in_flight: int = 1) -> dict[str, object]:
    sqlite_store.WAL_AUTOCHECKPOINT = 1 << 30  # every frame of the measure stays in the log
    flow = chain("three", 3)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "pages.db"
        async with cf.Runtime(db=db, workflows=[flow]) as rt:
            for _ in range(50):  # warm-up: the first pages of each table and index
                await rt.wait(await rt.trigger(flow.id, 1))
            before = len(commits_in_log(db))
            left = iter(range(runs))

            async def client() -> None:
                for _ in left:
                    await rt.wait(await rt.trigger(flow.id, 1))

            await asyncio.gather(*(client() for _ in range(in_flight)))
            commits = commits_in_log(db)[before:]
    pages = collections.Counter(name for commit in commits for name in commit)
    return {
        "runs": runs,
        "in_flight": in_flight,
        "commits": len(commits),
        "pages_per_commit": round(sum(pages.values()) / len(commits), 2),
        "pages_per_run": round(sum(pages.values()) / runs, 2),
        "by_btree_per_run": {name: round(n / runs, 2) for name, n in pages.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=1)
    args = parser.parse_args()
    result = asyncio.run(measure(args.runs, args.in_flight))
    print(f"{args.runs} three-step runs, {args.in_flight} in flight, {result['commits']} commits")
    print(f"  log pages a commit  {result['pages_per_commit']}")
    print(f"  log pages a run     {result['pages_per_run']}")
    for name, share in result["by_btree_per_run"].items():  # type: ignore[attr-defined]
        print(f"    {name:<34} {share}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

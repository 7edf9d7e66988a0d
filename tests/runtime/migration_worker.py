"""A process killed in the middle of a migration: ``python -m tests.runtime.migration_worker DB
AT``. It starts an instance of ``SPEC_V1``, completes its first task, prints ``instance <id>``,
and migrates it to v2, hanging (after printing ``hanging``) at ``AT``: ``cancel`` (in the old
root's ``on_canceled``, inside the cancel's transaction) or ``initializer`` (in the new root's
initializer, inside its first transaction, after the old root's cancel is durable). The test
kills it there; the same module gives the test the definitions to finish the migration with.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import cronflow_actors as cf
from cronflow_actors import net
from tests.nets import chain

HANG_AT: list[str] = []
CALLS: list[str] = []
"""What ran in this process: ``on_canceled``, ``initializer``."""


async def hang_at(where: str) -> None:
    CALLS.append(where)
    if where in HANG_AT:
        print("hanging", flush=True)
        await asyncio.sleep(3600)


async def on_canceled(ctx: Any) -> None:
    await hang_at("on_canceled")


async def initializer(ctx: Any) -> None:
    await hang_at("initializer")


def spec(version: str, *tasks: str, **activities: Any) -> net.NetSpec:
    return chain("moving", version, *tasks).activities(**activities).build()


SPEC_V1 = spec("v1", "A", "B", on_canceled=on_canceled)
SPEC_V2 = spec("v2", "A", "B", "C")
MIGRATION = (
    net.migration(SPEC_V1, SPEC_V2)
    .initializer(initializer)
    .task_migrators({"moving/A": lambda ctx: "fast_forward"})
    .build()
)
DEFINITIONS = [SPEC_V1, SPEC_V2, MIGRATION]


async def main(db: str, at: str) -> None:
    HANG_AT.append({"cancel": "on_canceled", "initializer": "initializer"}[at])
    # A short lease, so the runtime that finishes the migration after the kill takes over soon.
    async with cf.Runtime(db=db, workflows=DEFINITIONS, lease_seconds=0.5) as rt:
        old = await rt.start_workflow("moving", version="v1")
        [item] = await rt.work_items(old, "A")
        await rt.start_work_item(item.id)
        await rt.complete_work_item(item.id, {"quoted": 42})
        print(f"instance {old}", flush=True)
        await rt.migrate(old, "v2")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

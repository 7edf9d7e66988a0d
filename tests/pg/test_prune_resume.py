"""A resume in one process and a prune in another on one PostgreSQL database (retest3 h42 N1).

Under READ COMMITTED a delete reads the resume links as its statement began: a resume that wrote
its link and read its run while the delete waited on that run's row found it, started, and the
delete then took the run; its key's duplicate started the work a second time. The two now take
turns: the resume waits for the delete under way, and finds its run gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

import cronflow_actors as cf
from cronflow_actors.errors import NotFoundError
from cronflow_actors.runtime.pruning import SUCCESSORS

broken: list[bool] = []


def check(ctx: Any) -> str:
    if broken:
        raise RuntimeError("the service is down")
    return "checked"


FLOW = cf.define("fragile").step("check", check).step("after", lambda ctx: ctx.last)


async def _until_waiting(connection: asyncpg.Connection, kind: str, *, then: Any = None) -> bool:
    """Until a session of the database waits for a lock of ``kind`` (pg_locks' locktype), at
    most 5 s; False if none came to, or the task ``then`` ended first."""
    for _ in range(500):
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = $1", kind
        )
        if waiting:
            return True
        if then is not None and then.done():
            return False
        await asyncio.sleep(0.01)
    return False


async def test_a_resume_while_another_process_prunes_its_run_is_refused(
    postgres_url: str,
) -> None:
    broken.append(True)
    try:
        async with (
            cf.Runtime(db=postgres_url, workflows=[FLOW]) as pruning,
            cf.Runtime(db=postgres_url, workflows=[FLOW]) as resuming,
        ):
            first = await pruning.trigger("fragile", 1, instance_id="delivery-1")
            assert (await pruning.wait(first)).status == "failed"
            broken.clear()
            holder = await asyncpg.connect(postgres_url)
            try:
                # another writer of the run's row holds it: the prune's delete, its statement
                # begun, waits for it
                held = holder.transaction()
                await held.start()
                await holder.execute(
                    "SELECT 1 FROM instances WHERE instance_id = $1 FOR UPDATE", first
                )
                prune = asyncio.create_task(pruning.prune(older_than=0))
                assert await _until_waiting(holder, "transactionid")
                resume = asyncio.create_task(resuming.replay(first, resume=True))
                waited = await _until_waiting(holder, "advisory", then=resume)
                await held.commit()
            finally:
                await holder.close()
            assert await prune == 1
            with pytest.raises(NotFoundError, match="delivery-1"):
                await resume
            assert await resuming.store.kv_items(SUCCESSORS, now=resuming.clock.now()) == {}
            listed = await resuming.list_runs(workflow="fragile")
            assert list(listed) == []  # the resume started nothing
            assert waited  # its link waited for the delete
    finally:
        broken.clear()


async def test_runs_another_process_may_run_are_not_counted_as_unregistered(
    postgres_url: str,
) -> None:
    """On a shared database the gauge counted the runs of a version another process registers
    and runs, and went on counting them after they ended (review h43 F5)."""
    old = cf.define("moving", version="v1").step("a", lambda ctx: 1).pause("ok")
    new = cf.define("moving", version="v2").step("a", lambda ctx: 1).pause("ok")
    async with cf.Runtime(db=postgres_url, workflows=[old]) as rt:
        await rt.trigger("moving")
        await rt.wait_idle()
    async with cf.Runtime(db=postgres_url, workflows=[new]) as rt:
        labels = {"workflow": "moving"}
        assert rt.metrics.registry.get_sample_value("cronflow_runs_unregistered", labels) == 0

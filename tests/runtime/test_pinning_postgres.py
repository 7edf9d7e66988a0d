"""Pinned definitions on PostgreSQL, with several processes' runtimes on one database: a run
left waiting is held as ``blocked`` by a runtime on a changed definition (also when another
runtime wakes it), and runs on with the old definition registered again."""

from __future__ import annotations

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InstanceBlockedError
from tests.runtime.test_pinning import approval


async def test_a_changed_definition_holds_a_run_on_a_shared_database(postgres_url: str) -> None:
    async with cf.Runtime(db=postgres_url, workflows=[approval()], lease_seconds=2) as rt:
        run_id = await rt.trigger("approval", {"n": 1})
        await rt.wait_idle()
        [paused] = await rt.list_paused()
    async with cf.Runtime(
        db=postgres_url, workflows=[approval(changed=True)], lease_seconds=2
    ) as rt:
        assert (await rt.inspect(run_id)).status == "blocked"
        assert [r.id for r in await rt.list_runs(status="blocked")] == [run_id]
        with pytest.raises(InstanceBlockedError):
            await rt.resume(paused.token, {"approved": True})
    async with cf.Runtime(db=postgres_url, workflows=[approval()], lease_seconds=2) as rt:
        assert (await rt.inspect(run_id)).status == "waiting"
        await rt.resume(paused.token, {"approved": True})
        assert (await rt.wait(run_id, timeout=10)).output == "send"

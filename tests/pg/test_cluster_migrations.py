"""Migrations with two runtimes on one PostgreSQL database (h25 chaos F1-F3): each plan is a key
of its own, set in one step, so that plans made at once in two processes are all kept (one
value read, changed and written back whole lost them, and the runs they had canceled were left
with no successor); the same migration asked of both processes at once is one migration with
one answer; and a plan whose process ended is carried on by a process still running."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import MigrationError
from cronflow_actors.runtime.migration_plans import kept_by_migrations
from tests.nets import chain

failing: list[bool] = []
"""While set, the migration's initializer raises: its plans stay pending, old roots canceled."""


async def initializer(ctx: Any) -> None:
    if failing:
        raise RuntimeError("the initializer is down")


SPEC_V1 = chain("moving", "v1", "A", "B").build()
SPEC_V2 = chain("moving", "v2", "A", "B", "C").build()
MIGRATION = net.migration(SPEC_V1, SPEC_V2).initializer(initializer).build()


def waiting(version: str) -> cf.Flow:
    return cf.define("wait", version=version).step("a", lambda ctx: 1).pause("approve")


def definitions() -> list[Any]:
    return [SPEC_V1, SPEC_V2, MIGRATION, waiting("v1"), waiting("v2")]


async def test_plans_made_at_once_in_two_processes_are_all_kept(postgres_url: str) -> None:
    failing[:] = [True]
    try:
        first = cf.Runtime(db=postgres_url, workflows=definitions(), lease_seconds=2)
        second = cf.Runtime(db=postgres_url, workflows=definitions(), lease_seconds=2)
        async with first, second:
            olds = [await first.start_workflow("moving", version="v1") for _ in range(16)]
            asked = [(first if n % 2 else second).migrate(old, "v2") for n, old in enumerate(olds)]
            answers = await asyncio.gather(*asked, return_exceptions=True)
            assert all(isinstance(a, MigrationError) for a in answers), answers
            kept = await kept_by_migrations(first.store, first.clock.now())
            assert set(olds) <= kept  # every plan kept, none written over
            failing.clear()
            news = await asyncio.gather(
                *((second if n % 2 else first).migrate(old, "v2") for n, old in enumerate(olds))
            )
            for old, new in zip(olds, news, strict=True):
                assert (await first.workflow(old)).state == "canceled"
                assert (await second.workflow(new)).version == "v2"
            assert await kept_by_migrations(first.store, first.clock.now()) == set()
    finally:
        failing.clear()


async def test_one_migration_asked_of_both_processes_at_once_is_one(postgres_url: str) -> None:
    first = cf.Runtime(db=postgres_url, workflows=definitions(), lease_seconds=2)
    second = cf.Runtime(db=postgres_url, workflows=definitions(), lease_seconds=2)
    async with first, second:
        runs = [await first.trigger("wait") for _ in range(12)]
        await first.wait_idle()
        started_on = (await first.inspect(runs[0])).version
        to = "v1" if started_on == "v2" else "v2"
        pairs = await asyncio.gather(
            *(asyncio.gather(first.migrate(r, to), second.migrate(r, to)) for r in runs)
        )
        for run_id, (one, other) in zip(runs, pairs, strict=True):
            assert one == other  # one successor, and both callers told it
            assert (await first.inspect(run_id)).status == "canceled"
            assert (await second.inspect(one)).status == "waiting"
        listed = await first.list_runs(workflow="wait", status="waiting", limit=100)
        assert len(listed) == len(runs)  # no second successor of any run
        assert {r.version for r in listed} == {to}


async def test_a_plan_whose_process_ended_is_carried_on_by_one_still_running(
    postgres_url: str,
) -> None:
    failing[:] = [True]
    try:
        second = cf.Runtime(db=postgres_url, workflows=definitions(), lease_seconds=1)
        async with second:
            first = cf.Runtime(db=postgres_url, workflows=definitions(), lease_seconds=1)
            async with first:
                old = await first.start_workflow("moving", version="v1")
                with pytest.raises(MigrationError, match="the migration is pending"):
                    await first.migrate(old, "v2")
                new = (await first.migration_links(old)).migrated_to
                assert new is not None
            failing.clear()  # the first process is gone; its plan is in the store
            for _ in range(100):
                if await second.store.instance_exists(new):
                    break
                await asyncio.sleep(0.05)
            assert (await second.workflow(new)).version == "v2"
            assert await kept_by_migrations(second.store, second.clock.now()) == set()
    finally:
        failing.clear()

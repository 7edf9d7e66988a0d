"""The plans of migrations as the store keeps them: who may carry one on, or give it up, when
its process ended or when its carrying out stopped with it pending (``PlanBook``), on a real
SQLite file."""

from __future__ import annotations

from pathlib import Path

from msgspec.structs import replace

from cronflow_actors.kernel import ManualClock
from cronflow_actors.runtime.migration_plans import MigrationPlan, PlanBook
from cronflow_actors.store import SQLiteStore


async def test_each_turn_of_a_stopped_plan_is_claimed_by_one_process(tmp_path: Path) -> None:
    """A carrying out that stopped with the migration pending sets its plan down (``stopped``,
    its turn counted; its owner alive was read as "under way": chaos h30 M1): of the processes
    that ask then, one takes it, and only the next set-down opens it to the others again; a
    claim that came to nothing is let go. A set-down by a process that does not own the plan,
    or of a plan done meanwhile, changes nothing."""
    async with SQLiteStore(tmp_path / "plans.db") as store:
        book = PlanBook(store, ManualClock(start=1_800_000_000.0))
        plan = MigrationPlan(instance="run", workflow="flow", hops=[("v2", "next")], owner="a")
        await book.add(plan)
        await book.set_down(replace(plan), "b")  # not b's
        assert await book.get("run") == plan
        await book.set_down(replace(plan, hops=[("v3", "other")]), "a")  # another plan's
        assert await book.get("run") == plan
        await book.set_down(replace(plan), "a")
        down = await book.get("run")
        assert down == replace(plan, stopped=True, turn=1)
        assert down is not None
        assert await book.claim(down, "b")
        assert not await book.claim(down, "a")  # b's turn: a is refused
        assert await book.claim(down, "b")  # (b asking again is b's)
        await book.unclaim(down)  # b found the migration going on
        assert await book.take(down, "a")
        assert await book.get("run") == replace(plan, turn=1)  # a's, under way
        await book.set_down(replace(plan, turn=1), "a")  # stopped again
        again = await book.get("run")
        assert again == replace(plan, stopped=True, turn=2)
        assert again is not None
        assert await book.claim(again, "b")  # a new turn: claimed afresh
        assert not await book.take(again, "a")
        await book.forget("run")
        await book.set_down(replace(plan), "a")  # done meanwhile: not written back
        assert await book.get("run") is None

"""A real process killed in the middle of a migration, then a runtime on the same file: the
migration completes exactly once (one new root, the old one canceled, the initializer's and
the old root's activities committed once each), and the stored plan is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

import cronflow_actors as cf
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.store import SQLiteStore
from tests.runtime import migration_worker
from tests.runtime.killing import killed_after


def killed_in_the_middle(db: Path, at: str) -> str:
    """Run the worker until it hangs at ``at``, kill it; the id of the instance it migrated."""
    first, second = killed_after("tests.runtime.migration_worker", str(db), at, lines=2)
    assert first.split()[0] == "instance", first
    assert second == "hanging"
    return first.split()[1]


@pytest.mark.parametrize(("at", "cancel_committed"), [("cancel", False), ("initializer", True)])
async def test_a_migration_killed_in_the_middle_completes_exactly_once_after_a_restart(
    tmp_path: Path, at: str, cancel_committed: bool
) -> None:
    db = tmp_path / "moving.db"
    old = killed_in_the_middle(db, at)
    store = SQLiteStore(db)
    await store.open()
    before = decode_state((await store.load_snapshot(old)).body, old)  # type: ignore[union-attr]
    await store.close()
    assert (before.migrated_to is not None) is cancel_committed
    migration_worker.CALLS.clear()

    async with cf.Runtime(db=db, workflows=migration_worker.DEFINITIONS, wait_for_lease=True) as rt:
        new = await rt.migrate(old, "v2")  # joins (or finds done) the migration carried on
        await rt.wait_idle()
        assert await rt.workflow_state(old) == "canceled"
        assert (await rt.migration_links(old)).migrated_to == new
        tasks = await rt.task_states(new)
        assert {k: str(v) for k, v in tasks.items()} == {
            "A": "completed",
            "B": "enabled",
            "C": "disabled",
        }
        state = decode_state((await rt.instances.read(new)).body, new)
        assert state.workflows[new].outputs["A"] == {"quoted": 42}
        migrated = [
            s.instance_id
            for s in await rt.store.list_snapshots()
            if decode_state(s.body, s.instance_id).migration is not None
        ]
        assert migrated == [new]  # no duplicate root
        assert await rt.store.kv_get("cronflow:migrations", "pending", now=rt.clock.now()) == {}
    # what had not committed in the killed process ran here, once
    expected = ["initializer"] if cancel_committed else ["on_canceled", "initializer"]
    assert expected == migration_worker.CALLS

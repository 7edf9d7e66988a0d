"""A real process killed in the middle of a migration, then a runtime on the same file: the
migration completes exactly once (one new root, the old one canceled, the initializer's and
the old root's activities committed once each), and the stored plan is gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.runtime.migration_plans import MigrationPlan, kept_by_migrations
from cronflow_actors.store import SQLiteStore
from tests.nets import chain
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
        assert await kept_by_migrations(rt.store, rt.clock.now()) == set()
    # what had not committed in the killed process ran here, once
    expected = ["initializer"] if cancel_committed else ["on_canceled", "initializer"]
    assert expected == migration_worker.CALLS


def guarded(version: str, *tasks: str) -> net.NetSpec:
    cancel = net.action(policy=net.require_scope("ops"))
    return chain("guarded", version, *tasks).actions(cancel=cancel).build()


@pytest.mark.parametrize(("scopes", "moved"), [(frozenset(), False), (frozenset({"ops"}), True)])
async def test_a_plan_left_by_a_crash_asks_its_callers_cancel_policy_when_carried_on(
    tmp_path: Path, scopes: frozenset[str], moved: bool
) -> None:
    """A crash between an outside caller's plan and the old root's cancel: the runtime that
    carries it on asks the cancel policy for that caller, as the call would have; refused, the
    plan is dropped and the instance runs on."""
    v1, v2 = guarded("v1", "A"), guarded("v2", "A", "B")
    definitions = [v1, v2, net.migration(v1, v2).build()]
    db = tmp_path / "guarded.db"
    async with cf.Runtime(db=db, workflows=definitions) as rt:
        old = await rt.start_workflow("guarded", version="v1")
        plan = MigrationPlan(
            instance=old,
            workflow="guarded",
            hops=[("v2", "guarded-new")],
            principal=cf.Principal(id="ada", scopes=scopes),
        )
        await rt.store.kv_set(  # as migrate stores it, before it cancels anything
            "cronflow:migrations", "pending", {old: msgspec.to_builtins(plan)}, now=rt.clock.now()
        )
    async with cf.Runtime(db=db, workflows=definitions) as rt:
        await rt.wait_idle()
        for _ in range(100):  # the resume runs as a task of its own
            if not await kept_by_migrations(rt.store, rt.clock.now()):
                break
            await asyncio.sleep(0.02)
        assert await kept_by_migrations(rt.store, rt.clock.now()) == set()
        assert (await rt.migration_links(old)).migrated_to == ("guarded-new" if moved else None)
        assert await rt.workflow_state(old) == ("canceled" if moved else "initialized")
        cancels = [
            n.span for n in (await rt.trace(old)).roots if n.span.operation == "Action.cancel"
        ]
        assert [s.attributes["principal"] for s in cancels] == (["ada"] if moved else [])


async def test_an_outside_caller_does_not_carry_on_a_plan_another_caller_made(
    tmp_path: Path,
) -> None:
    """A plan left pending before its cancel (an operator's, here) was carried on for any
    caller who asked for the same version, on the operator's word: a token its cancel policy
    refuses could end the instance (the reviewer's H2). Refused now, nothing moved; the
    operator's own call carries it on."""
    v1, v2 = guarded("v1", "A"), guarded("v2", "A", "B")
    async with cf.Runtime(
        db=tmp_path / "g.db", workflows=[v1, v2, net.migration(v1, v2).build()]
    ) as rt:
        old = await rt.start_workflow("guarded", version="v1")
        plan = MigrationPlan(instance=old, workflow="guarded", hops=[("v2", "guarded-next")])
        await rt.store.kv_set(
            "cronflow:migrations", "pending", {old: msgspec.to_builtins(plan)}, now=rt.clock.now()
        )
        for caller in (
            cf.Principal(id="mallory"),
            cf.Principal(id="ops", scopes=frozenset({"ops"})),
        ):
            with pytest.raises(
                cf.errors.MigrationError, match="another caller asked for is pending"
            ):
                await rt.migrate(old, "v2", principal=caller)
        assert await rt.workflow_state(old) == "initialized"
        assert await rt.migrate(old, "v2") == "guarded-next"  # the operator's own
        assert await rt.workflow_state(old) == "canceled"


async def test_an_outside_call_on_an_instance_of_a_version_not_registered_is_a_conflict(
    tmp_path: Path,
) -> None:
    """It said "workflow 'guarded' version 'v1' is not registered; call rt.register() first":
    a 404 over HTTP, advice no HTTP client can take (hostile h23 L1). The instance is there,
    on a version this process lacks: refused, with what to do."""
    db = tmp_path / "gone.db"
    async with cf.Runtime(db=db, workflows=[guarded("v1", "A")]) as rt:
        old = await rt.start_workflow("guarded", version="v1")
    ops = cf.Principal(id="ops", scopes=frozenset({"ops"}))
    async with cf.Runtime(db=db, workflows=[guarded("v2", "A", "B")]) as rt:
        with pytest.raises(cf.errors.InstanceBlockedError) as refused:
            await rt.cancel_workflow(old, principal=ops)
        said = str(refused.value)
        assert f"cannot cancel '{old}' as an external caller" in said
        assert "version 'v1' of 'guarded', which is not registered here (registered: v2)" in said
        assert "rt.register()" not in said
        assert await rt.workflow_state(old) == "initialized"  # nothing changed
        await rt.cancel_workflow(old)  # an operator's own call ends it, as before
        assert await rt.workflow_state(old) == "canceled"

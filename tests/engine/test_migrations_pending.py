"""A migration left pending (its new root's start raised after the old root was canceled) and
migrations asked for at once: what the caller is told, what pruning keeps, what a restart does
with a plan whose instance is gone, a queued run's refusal; and how a migrated run reads."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import (
    ConfigurationError,
    InvalidStateTransitionError,
    MigrationError,
    NotFoundError,
)
from cronflow_actors.kernel import ManualClock
from cronflow_actors.runtime.migration_plans import kept_by_migrations
from tests.engine.helpers import build, states

LEGACY_PLANS = ("cronflow:migrations", "pending")
"""Where runtimes before per-plan keys kept every plan: still carried on."""


def mended_later() -> tuple[list[bool], Any]:
    """A task migrator that raises until its list is emptied (its bug mended), and the list."""
    broken = [True]

    def migrator(ctx: Any) -> str:
        if broken:
            raise RuntimeError("migrator bug")
        return "continue"

    return broken, migrator


def versions(migrator: Any) -> list[Any]:
    v1 = build("ship", {"pack": net.task()}, [("start", "pack"), ("pack", "end")])
    v2 = build(
        "ship",
        {"pack": net.task(), "send": net.task()},
        [("start", "pack"), ("pack", "send"), ("send", "end")],
        version="v2",
    )
    return [v1, v2, net.migration(v1, v2).task_migrators({"ship/pack": migrator}).build()]


async def test_a_raising_migrator_is_named_and_its_pending_migration_survives_pruning(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    broken, migrator = mended_later()
    for spec in versions(migrator):
        rt.register(spec)
    old = await rt.start_workflow("ship", version="v1")
    with pytest.raises(MigrationError) as refused, caplog.at_level(logging.WARNING):
        await rt.migrate(old, "v2")
    # the operator's log says so too, with the migrator's traceback (h42 versions F1: only
    # the caller heard of it)
    [logged] = [r for r in caplog.records if "is pending" in r.getMessage()]
    assert logged.getMessage().startswith(f"the migration of {old} to 'v2' is pending: the start")
    assert logged.exc_info is not None
    assert "migrator bug" in str(logged.exc_info[1])
    message = str(refused.value)
    assert "RuntimeError: migrator bug" in message
    assert f"instance {old!r} is canceled already and the migration is pending" in message
    assert "migrate it to that version again" in message
    assert isinstance(refused.value.__cause__, RuntimeError)
    assert await rt.workflow_state(old) == "canceled"

    clock.advance(3600)
    assert await rt.prune(older_than=0) == 0  # the old root is what the migration carries over
    assert await rt.workflow_state(old) == "canceled"

    broken.clear()
    new = await rt.migrate(old, "v2")
    assert await states(rt, new) == {"pack": "enabled", "send": "disabled"}
    clock.advance(3600)
    assert await rt.prune(older_than="30m") == 0  # done, but its work goes on in the new run
    assert await rt.workflow_state(old) == "canceled"
    await rt.cancel_workflow(new)
    clock.advance(3600)  # (the background's prune may come first: what is left is asserted)
    await rt.prune(older_than="30m")  # the new run ended: both go (ops h41 F3)
    for gone in (old, new):
        with pytest.raises(NotFoundError):
            await rt.workflow_state(gone)


async def test_a_migrator_s_wrong_answer_says_the_old_run_is_canceled_and_it_is_pending(
    rt: cf.Runtime,
) -> None:
    """A migrator that answered "skip" was refused with its answer alone, while the old run was
    canceled already and the migration pending (devx h40 F12)."""
    answer = ["skip"]
    for spec in versions(lambda ctx: answer[0]):
        rt.register(spec)
    old = await rt.start_workflow("ship", version="v1")
    with pytest.raises(MigrationError) as refused:
        await rt.migrate(old, "v2")
    message = str(refused.value)
    assert "was refused: the migrator of task ship/pack: it returned 'skip'" in message
    assert f"instance {old!r} is canceled already and the migration is pending" in message
    assert await rt.workflow_state(old) == "canceled"
    answer[0] = "continue"  # mended: asked again, it finishes
    new = await rt.migrate(old, "v2")
    assert await states(rt, new) == {"pack": "enabled", "send": "disabled"}


async def test_prune_refuses_an_age_it_cannot_read_and_deletes_nothing(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    rt.register(versions(lambda ctx: "continue")[0])
    old = await rt.start_workflow("ship", version="v1")
    await rt.cancel_workflow(old)
    clock.advance(3600)
    for bad in ("soon", "7", -1, float("nan"), None, True):  # "7": seconds or days? refused
        with pytest.raises(ConfigurationError, match=r"older_than.*nothing was deleted"):
            await rt.prune(older_than=bad)  # type: ignore[arg-type]
    assert await rt.workflow_state(old) == "canceled"


async def test_two_callers_asking_at_once_share_one_migration(rt: cf.Runtime) -> None:
    for spec in versions(lambda ctx: "fast_forward"):
        rt.register(spec)
    old = await rt.start_workflow("ship", version="v1")
    first, second = await asyncio.gather(rt.migrate(old, "v2"), rt.migrate(old, "v2"))
    assert first == second
    assert await states(rt, first) == {"pack": "completed", "send": "enabled"}
    assert await kept_by_migrations(rt.store, rt.clock.now()) == set()


async def test_a_queued_run_is_refused_with_why(tmp_path: Path) -> None:
    def flow(version: str) -> cf.Flow:
        return cf.define("q", version=version, concurrency=1).pause("hold")

    async with cf.Runtime(db=tmp_path / "q.db", workflows=[flow("v1")]) as rt:
        await rt.trigger("q")
        queued = await rt.trigger("q")
        await rt.wait_idle()
        assert (await rt.inspect(queued)).status == "waiting"
        rt.register(flow("v2"))
        with pytest.raises(MigrationError, match=r"queued .* has not started; nothing to migrate"):
            await rt.migrate(queued, "v2")


async def test_a_plan_whose_instance_is_gone_is_dropped_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "gone.db"
    specs = versions(lambda ctx: "continue")
    async with cf.Runtime(db=db, workflows=specs) as rt:
        plan = {"instance": "f" * 32, "workflow": "ship", "hops": [["v2", "e" * 32]]}
        await rt.store.kv_set(*LEGACY_PLANS, {"f" * 32: plan}, now=rt.clock.now())
    with caplog.at_level(logging.WARNING, logger="cronflow_actors.runtime.migrations"):
        async with cf.Runtime(db=db, workflows=specs) as rt:
            await rt.wait_idle()
            assert await kept_by_migrations(rt.store, rt.clock.now()) == set()
    assert any("is dropped: neither it nor its successor" in r.message for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_fast_forwarded_task_is_shown_as_the_task_it_is(rt: cf.Runtime) -> None:
    for spec in versions(lambda ctx: "fast_forward"):
        rt.register(spec)
    old = await rt.start_workflow("ship", version="v1")
    new = await rt.migrate(old, "v2")
    steps = {s.id: (s.kind, s.status) for s in (await rt.inspect(new)).steps}
    assert steps["pack"] == ("task", "completed")  # no work item of its own: the definition says


async def test_cancel_gives_up_a_migration_whose_later_hop_cannot_start(rt: cf.Runtime) -> None:
    """A migration through a version in between whose second hop's start raised: the cancel
    that gives a pending migration up found no plan for either run (plans are kept by the run
    they migrate), and the run stayed stuck though the error said cancel would free it (the
    reviewer's h26 M3). The run canceled for the hop that did not start gives it up."""
    v1, v2, first = versions(lambda ctx: "continue")
    v3 = build(
        "ship",
        {"pack": net.task(), "send": net.task(), "file": net.task()},
        [("start", "pack"), ("pack", "send"), ("send", "file"), ("file", "end")],
        version="v3",
    )

    def broken(ctx: Any) -> None:
        raise RuntimeError("v3's initializer is down")

    second = net.migration(v2, v3).initializer(broken).build()
    for spec in (v1, v2, v3, first, second):
        rt.register(spec)
    old = await rt.start_workflow("ship", version="v1")
    with pytest.raises(MigrationError, match="or cancel the run to give the migration up") as said:
        await rt.migrate(old, "v3")
    middle = (await rt.migration_links(old)).migrated_to
    assert middle is not None
    assert (  # the caller's own run named first (h42 versions F3)
        f"instance {old!r} and its run on a version in between, {middle!r}, are canceled "
        "already and the migration is pending"
    ) in str(said.value)
    # the run asked about says its migration is pending: it read as done, its current run
    # the canceled one in between (h42 versions F3)
    first_run = await rt.inspect(old)
    assert (first_run.migration_pending, first_run.current_run_id) == (True, middle)
    assert (await rt.inspect(middle)).migration_pending is True
    await rt.cancel(middle)  # the run canceled for the hop that did not start
    assert await kept_by_migrations(rt.store, rt.clock.now()) == set()
    assert await rt.workflow_state(middle) == "canceled"
    assert (await rt.inspect(old)).migration_pending is False  # given up: none is pending


async def test_another_caller_is_told_who_gives_a_nets_pending_migration_up(
    rt: cf.Runtime,
) -> None:
    """A net's pending migration is given up by the caller who asked it (its cancel policy
    admitted that one); another its policy admits too was told the run "has ended, and
    nothing changes it any more" (hostile h29 M2): it is told who may give it up."""
    _, migrator = mended_later()  # (never mended here)
    cancel = net.action(policy=net.require_scope("ship:cancel"))
    v1 = build(
        "ship",
        {"pack": net.task()},
        [("start", "pack"), ("pack", "end")],
        actions={"cancel": cancel},
    )
    v2 = build(
        "ship",
        {"pack": net.task()},
        [("start", "pack"), ("pack", "end")],
        version="v2",
        actions={"cancel": cancel},
    )
    for spec in (v1, v2, net.migration(v1, v2).task_migrators({"ship/pack": migrator}).build()):
        rt.register(spec)
    dealer, other = (cf.Principal(id=n, scopes=frozenset({"ship:cancel"})) for n in "ab")
    old = await rt.start_workflow("ship", version="v1")
    with pytest.raises(MigrationError, match="the migration is pending"):
        await rt.migrate(old, "v2", principal=dealer)
    with pytest.raises(MigrationError, match="another caller asked for it") as told:
        await rt.cancel(old, principal=other)
    assert "the caller who asked gives it up" in str(told.value)
    assert "'a'" not in str(told.value)  # not its id: a caller its policy refuses asks too
    assert (await rt.migration_links(old)).migrated_to is not None  # still pending
    await rt.cancel(old, principal=dealer)  # its asker gives it up
    assert (await rt.migration_links(old)).migrated_to is None


async def test_cancel_workflow_gives_up_a_pending_migration_as_cancel_does(
    rt: cf.Runtime,
) -> None:
    """``cancel_workflow`` of a root canceled for a migration whose next run never started
    answered "it has ended" from Python, where ``cancel`` gave the migration up (the final
    checker's h29 N2; the route had a fallback of its own): it gives it up too, once."""

    def migrator(ctx: Any) -> str:
        raise RuntimeError("migrator bug")

    for spec in versions(migrator):
        rt.register(spec)
    old = await rt.start_workflow("ship", version="v1")
    with pytest.raises(MigrationError, match="the migration is pending"):
        await rt.migrate(old, "v2")
    await rt.cancel_workflow(old, reason="given up")
    assert (await rt.migration_links(old)).migrated_to is None
    assert await rt.workflow_state(old) == "canceled"
    with pytest.raises(InvalidStateTransitionError, match="it has ended"):
        await rt.cancel_workflow(old)  # nothing is pending any more


async def test_a_run_whose_migration_never_started_is_counted_canceled_once_given_up(
    rt: cf.Runtime,
) -> None:
    """A run canceled for a migration whose next run never started was counted ``migrated``,
    which the dashboards and the failure alert leave out, though no run went on with its work
    (hostile h30 M1): it is counted nowhere while pending, canceled once given up, and a
    migration that goes on counts its old run migrated as the new one starts."""
    from tests.runtime.test_telemetry import value

    broken, migrator = mended_later()
    for spec in versions(migrator):
        rt.register(spec)
    finished = "cronflow_runs_finished_total"
    stuck = await rt.start_workflow("ship", version="v1")
    moved = await rt.start_workflow("ship", version="v1")
    for old in (stuck, moved):
        with pytest.raises(MigrationError, match="the migration is pending"):
            await rt.migrate(old, "v2")
    assert value(rt, finished, workflow="ship", outcome="migrated") == 0
    assert value(rt, finished, workflow="ship", outcome="canceled") == 0
    await rt.cancel(stuck)  # given up: it stays canceled
    assert value(rt, finished, workflow="ship", outcome="canceled") == 1
    broken.clear()
    new = await rt.migrate(moved, "v2")  # asked again: it goes on
    assert (await rt.migration_links(moved)).migrated_to == new
    assert value(rt, finished, workflow="ship", outcome="migrated") == 1
    assert value(rt, finished, workflow="ship", outcome="canceled") == 1

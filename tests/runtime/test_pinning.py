"""Pinned definitions: a run started on one definition is never run on another registered
under the same version. It is held as ``blocked`` (listed, inspected, counted, logged, every call
to it refused but an operator's cancel) until its old definition is registered again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.engine.actors import decode_state
from cronflow_actors.errors import InstanceBlockedError, MigrationError
from cronflow_actors.kernel import ManualClock
from cronflow_actors.messages import Mutation, encode
from cronflow_actors.net.fingerprint import fingerprint
from tests.engine.helpers import build
from tests.engine.test_audit import snapshot_view, state_view, tree
from tests.runtime import kept_worker
from tests.runtime.killing import killed_after

RAN: list[str] = []


def ran(name: str) -> Any:
    def handler(ctx: Any) -> str:
        RAN.append(name)
        return name

    return handler


def approval(*, changed: bool = False) -> cf.Flow:
    """A flow that pauses for a person; ``changed``: edited without a version bump."""
    flow = cf.define("approval", version="v1").step("prepare", ran("prepare"))
    flow = flow.human_in_the_loop("approve", description="ok?")
    if changed:  # the last step renamed, and one more after it
        return flow.step("ship", ran("ship")).step("notify", ran("notify"))
    return flow.step("send", ran("send"))


def napping(*, changed: bool = False) -> cf.Flow:
    flow = cf.define("napping").sleep("nap", "10m")
    return flow.step("wake", ran("wake")) if not changed else flow.step("rise", ran("rise"))


def blocked_gauge(rt: cf.Runtime, workflow: str) -> float | None:
    value = rt.metrics.registry.get_sample_value("cronflow_runs_blocked", {"workflow": workflow})
    return value


async def test_a_paused_run_is_blocked_on_a_changed_definition_until_the_old_one_is_back(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "pinned.db"
    RAN.clear()
    async with cf.Runtime(db=db, clock=clock, workflows=[approval()]) as rt:
        run_id = await rt.trigger("approval", {"n": 1})
        await rt.wait_idle()
        [paused] = await rt.list_paused()
        assert (await rt.inspect(run_id)).status == "waiting"

    with caplog.at_level(logging.WARNING, logger="cronflow_actors.runtime.pinning"):
        async with cf.Runtime(db=db, clock=clock, workflows=[approval(changed=True)]) as rt:
            info = await rt.inspect(run_id)
            assert info.status == "blocked"
            assert info.version == "v1"
            assert info.blocked is not None
            old = fingerprint(approval().compile().spec)
            new = fingerprint(approval(changed=True).compile().spec)
            assert old != new
            assert f"definition {old} of 'approval' version 'v1'" in info.blocked
            assert f"now {new}" in info.blocked
            assert "migrate it" in info.blocked
            assert [r.id for r in await rt.list_runs(status="blocked")] == [run_id]
            assert [r.id for r in await rt.list_runs(status="waiting")] == []
            assert blocked_gauge(rt, "approval") == 1
            assert [b.instance_id for b in rt.pinning.blocked()] == [run_id]

            # Its pause is listed as held: a resume of it is refused (the newcomer's L4: it was
            # offered as any other)
            [listed] = await rt.list_paused()
            assert (listed.token, listed.blocked) == (paused.token, info.blocked)
            assert (await rt.get_paused(paused.token)).blocked == info.blocked

            # A resume addressed to it is refused, naming the block; nothing changes.
            with pytest.raises(InstanceBlockedError, match="is blocked") as refused:
                await rt.resume(paused.token, {"approved": True})
            assert refused.value.instance_id == run_id
            # in the flow's words: its run and step, not a work item of the engine's (the
            # newcomer's L4)
            assert f"cannot resume run {run_id}'s pause at step 'approve'" in str(refused.value)
            assert "work item" not in str(refused.value)
            await rt.wait_idle()
            assert (await rt.inspect(run_id)).status == "blocked"
            assert RAN == ["prepare"]

            # New runs start on the registered definition, and run.
            fresh = await rt.trigger("approval", {"n": 2})
            await rt.wait_idle()
            assert (await rt.inspect(fresh)).status == "waiting"
    assert [r.message for r in caplog.records].count(info.blocked) == 1  # logged when held

    # The old definition registered again: the run goes on, and the new one is held now.
    async with cf.Runtime(db=db, clock=clock, workflows=[approval()]) as rt:
        assert (await rt.inspect(run_id)).status == "waiting"
        assert (await rt.inspect(fresh)).status == "blocked"
        assert blocked_gauge(rt, "approval") == 1
        await rt.resume(paused.token, {"approved": True})
        result = await rt.wait(run_id, timeout=5)
        assert (result.status, result.output) == ("completed", "send")
        assert RAN == ["prepare", "prepare", "send"]


async def test_a_held_run_is_canceled_by_an_operator_without_its_code(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "cancel.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[approval()]) as rt:
        run_id = await rt.trigger("approval", {"n": 1})
        await rt.wait_idle()
    async with cf.Runtime(db=db, clock=clock, workflows=[approval(changed=True)]) as rt:
        assert (await rt.inspect(run_id)).status == "blocked"
        await rt.cancel(run_id)
        result = await rt.wait(run_id, timeout=5)
        assert result.status == "canceled"
        info = await rt.inspect(run_id)
        assert (info.status, info.blocked) == ("canceled", None)
        assert await rt.list_paused() == []  # its pause ended with it
        assert await rt.list_runs(status="blocked") == []
        assert blocked_gauge(rt, "approval") == 0
        assert rt.pinning.held(run_id) is None
    async with cf.Runtime(db=db, clock=clock, workflows=[approval()]) as rt:
        assert (await rt.inspect(run_id)).status == "canceled"  # for good


async def test_a_held_sleep_does_not_wake_on_the_changed_definition_and_does_on_the_old_one(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "sleep.db"
    RAN.clear()
    async with cf.Runtime(db=db, clock=clock, workflows=[napping()]) as rt:
        run_id = await rt.trigger("napping")
        await rt.wait_idle()
    async with cf.Runtime(db=db, clock=clock, workflows=[napping(changed=True)]) as rt:
        assert (await rt.inspect(run_id)).status == "blocked"
        clock.advance(601)  # its timer fires: the activation it asks for is refused
        await rt.wait_idle()
        assert (await rt.inspect(run_id)).status == "blocked"
        assert RAN == []
    async with cf.Runtime(db=db, clock=clock, workflows=[napping()]) as rt:
        result = await rt.wait(run_id, timeout=5)
        assert (result.status, result.output) == ("completed", "wake")
        assert RAN == ["wake"]


def review_net(*, changed: bool = False) -> net.NetSpec:
    builder = net.workflow("review", version="v1").start_condition("start").end_condition("end")
    builder = builder.task("read", net.task()).connect_condition("start", "read")
    if changed:  # a second reader put in between
        builder = builder.task("reread", net.task()).connect_task("read", "reread")
        return builder.connect_task("reread", "end").build()
    return builder.connect_task("read", "end").build()


async def test_work_item_calls_to_a_held_net_instance_are_refused_and_change_nothing(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "net.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[review_net()]) as rt:
        workflow_id = await rt.start_workflow("review")
        [item] = await rt.work_items(workflow_id, "read")
    async with cf.Runtime(db=db, clock=clock, workflows=[review_net(changed=True)]) as rt:
        before = await rt.store.load_snapshot(workflow_id)
        with pytest.raises(InstanceBlockedError, match="cannot start work item"):
            await rt.start_work_item(item.id)
        outsider = cf.Principal("someone", scopes=frozenset({"admin"}))
        with pytest.raises(InstanceBlockedError, match="as an external caller"):
            await rt.cancel_workflow(workflow_id, principal=outsider)
        assert await rt.store.load_snapshot(workflow_id) == before
        await rt.cancel_workflow(workflow_id)  # an operator's cancel goes through
        assert (await rt.workflow(workflow_id)).state == "canceled"


async def test_a_workflow_registered_on_a_running_runtime_holds_its_changed_instances(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "late.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[review_net()]) as rt:
        workflow_id = await rt.start_workflow("review")
    async with cf.Runtime(db=db, clock=clock) as rt:
        rt.register(review_net(changed=True))
        await rt._recovered("review")
        assert rt.pinning.held(workflow_id) is not None
        assert (await rt.store.load_snapshot(workflow_id)).status == "blocked"


async def test_an_instance_recorded_before_fingerprints_is_taken_as_matching(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "old.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[review_net()]) as rt:
        workflow_id = await rt.start_workflow("review")
        # as a database from before fingerprints holds it
        stored = await rt.store.load_snapshot(workflow_id)
        assert stored is not None
        state = decode_state(stored.body, stored.instance_id)
        assert state.fingerprint == fingerprint(review_net())
        state.fingerprint = msgspec.UNSET
        state.revision += 1
        await rt.store.commit(
            Mutation(
                snapshot=msgspec.structs.replace(
                    stored, revision=state.revision, body=encode(state)
                )
            )
        )
    changed = review_net(changed=True)
    async with cf.Runtime(db=db, clock=clock, workflows=[changed]) as rt:
        [item] = await rt.work_items(workflow_id, "read")
        await rt.start_work_item(item.id)  # it runs on, and records the definition it runs on
        stored = await rt.store.load_snapshot(workflow_id)
        assert stored is not None
        assert stored.status != "blocked"
        assert decode_state(stored.body, stored.instance_id).fingerprint == fingerprint(changed)


async def test_every_waiting_run_is_held_at_start_page_after_page(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cronflow_actors.runtime.pinning._PAGE", 2)
    db = tmp_path / "pages.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[approval()]) as rt:
        runs = set()
        for n in range(5):
            clock.advance(1)
            runs.add(await rt.trigger("approval", {"n": n}))
        await rt.wait_idle()
    async with cf.Runtime(db=db, clock=clock, workflows=[approval(changed=True)]) as rt:
        assert {b.instance_id for b in rt.pinning.blocked()} == runs
        assert blocked_gauge(rt, "approval") == 5
    async with cf.Runtime(db=db, clock=clock, workflows=[approval(changed=True)]) as rt:
        assert {b.instance_id for b in rt.pinning.blocked()} == runs  # found held again
    async with cf.Runtime(db=db, clock=clock, workflows=[approval()]) as rt:
        assert rt.pinning.blocked() == []
        assert {r.id for r in await rt.list_runs(status="waiting")} == runs


async def test_a_held_run_is_migrated_to_another_version_keeping_its_recorded_outputs(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "migrate.db"
    RAN.clear()
    async with cf.Runtime(db=db, clock=clock, workflows=[approval()]) as rt:
        old = await rt.trigger("approval", {"n": 1})
        await rt.wait_idle()
    v2 = cf.define("approval", version="v2").step("prepare", ran("prepare"))
    v2 = v2.human_in_the_loop("approve", description="ok?").step("deliver", ran("deliver"))
    async with cf.Runtime(db=db, clock=clock, workflows=[approval(changed=True), v2]) as rt:
        assert rt.pinning.held(old) is not None
        waiter = asyncio.ensure_future(rt.wait(old))
        await asyncio.sleep(0)
        new = await rt.migrate(old, "v2")
        await rt.wait_idle()
        assert (await rt.inspect(old)).status == "canceled"
        # whoever waited for the old run hears it ended (its wait hung: h24)
        assert (await asyncio.wait_for(waiter, 5)).status == "canceled"
        assert rt.pinning.held(old) is None
        assert blocked_gauge(rt, "approval") == 0
        # canceled offline (its definition is not runnable), and so recorded in its trail
        cancel = (await rt.trace(old)).roots[-1]
        assert cancel.span.operation == "Action.cancel"
        assert cancel.children[-1].span.operation == "Workflow.cancel"
        assert (await rt.state_at(old, clock.now())).workflows[old].state == "canceled"
        [paused] = await rt.list_paused()
        assert paused.run_id == new
        await rt.resume(paused.token, {"approved": True})
        result = await rt.wait(new, timeout=5)
        assert (result.status, result.output) == ("completed", "deliver")
        assert RAN == ["prepare", "deliver"]  # its recorded step was not run again


shipped: list[Any] = []


def paying(*, changed: bool = False, version: str = "v1") -> cf.Flow:
    """Waits for a payment of a positive amount (one of 0 makes its filter raise), then ships
    what it was paid (``changed``: the step renamed)."""

    def ship(ctx: Any) -> Any:
        shipped.append((ctx.run.id, ctx.last))
        return ctx.last

    def positive(payload: Any, _ctx: Any) -> bool:
        return bool(1 / payload["amount"] > 0)

    flow = cf.define("paying", version=version).wait_for_event("paid", "payment", filter=positive)
    return flow.step("send" if changed else "ship", ship)


async def waiting_to_pay(db: Path) -> str:
    """A ``paying`` run in ``db`` that waits for its payment (the runtime stopped)."""
    shipped.clear()
    async with cf.Runtime(db=db, workflows=[paying()]) as rt:
        run_id = await rt.trigger("paying")
        await rt.wait_idle()
    return run_id


async def test_an_event_for_a_held_run_is_kept_and_heard_when_it_runs_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The publisher learns which runs waiting for the event are held (``held``; a warning
    names each); the event is kept in their snapshots, across restarts, and their steps hear
    it, the first one kept, when their old definition is registered again."""
    db = tmp_path / "event.db"
    shipped.clear()
    async with cf.Runtime(db=db, workflows=[paying()]) as rt:
        run_id = await rt.trigger("paying")
        other = await rt.trigger("paying")
        await rt.wait_idle()
    async with cf.Runtime(db=db, workflows=[paying(changed=True)]) as rt:
        assert (await rt.inspect(run_id)).status == "blocked"
        with caplog.at_level(logging.WARNING, logger="cronflow_actors.runtime.events"):
            published = await rt.publish_event("payment", {"amount": 5})
            again = await rt.publish_event("payment", {"amount": 6})
        assert (list(published), published.refused) == ([], [])
        assert published.held == again.held == sorted([run_id, other])
        warned = [r.getMessage() for r in caplog.records if "is kept" in r.getMessage()]
        assert len(warned) == 4
        assert shipped == []
        assert (await rt.inspect(run_id)).status == "blocked"
    async with cf.Runtime(db=db, workflows=[paying()]) as rt:  # the old definition is back
        for run in (run_id, other):
            result = await rt.wait(run, timeout=5)
            assert (result.status, result.output) == ("completed", {"amount": 5})
        assert sorted(shipped) == sorted([(run_id, {"amount": 5}), (other, {"amount": 5})])
        snapshot = await rt.store.load_snapshot(run_id)
        assert snapshot is not None
        assert (snapshot.terminal, snapshot.runnable) == (True, False)
        # the second one went with the run's end
        assert not decode_state(snapshot.body, snapshot.instance_id).kept


async def test_a_kept_event_whose_filter_raises_is_dropped_and_the_next_one_is_heard(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "raising.db"
    run_id = await waiting_to_pay(db)
    async with cf.Runtime(db=db, workflows=[paying(changed=True)]) as rt:
        for amount in (0, 3):  # the first makes the filter raise once it is delivered
            assert (await rt.publish_event("payment", {"amount": amount})).held == [run_id]
    with caplog.at_level(logging.WARNING, logger="cronflow_actors.engine.workflow_actor"):
        async with cf.Runtime(db=db, workflows=[paying()]) as rt:
            result = await rt.wait(run_id, timeout=5)
    assert (result.status, result.output) == ("completed", {"amount": 3})
    [dropped] = [r.getMessage() for r in caplog.records if "is dropped" in r.getMessage()]
    assert "'payment'" in dropped
    assert "ZeroDivisionError" in dropped
    assert "publish it again" in dropped


async def test_a_held_run_is_canceled_while_an_event_is_kept_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's cancel of a held run and a publish that keeps an event in its snapshot
    meet: the event is kept between the cancel's read of the snapshot and its commit. The
    cancel is done again from the snapshot with the event, not refused."""
    db = tmp_path / "race.db"
    run_id = await waiting_to_pay(db)
    async with cf.Runtime(db=db, workflows=[paying(changed=True)]) as rt:
        commit, raced, cancels = rt.store.commit, [], []

        async def keep_first(mutation: Mutation) -> Any:
            canceling = mutation.snapshot is not None and mutation.snapshot.status == "canceled"
            if canceling:
                cancels.append(mutation)
            if canceling and not raced:  # the publish gets there first, once
                raced.append(await rt.publish_event("payment", {"amount": 1}))
            return await commit(mutation)

        monkeypatch.setattr(rt.store, "commit", keep_first)
        await rt.cancel(run_id)
        assert raced[0].held == [run_id]  # kept, and then canceled all the same
        assert len(cancels) == 2  # the first commit was refused: done again from the kept one
        assert (await rt.inspect(run_id)).status == "canceled"
    async with cf.Runtime(db=db, workflows=[paying()]) as rt:
        assert (await rt.inspect(run_id)).status == "canceled"
        await rt.wait_idle()
    assert shipped == []


async def test_a_held_runs_kept_events_go_to_the_run_a_migration_replaces_it_with(
    tmp_path: Path,
) -> None:
    """A held run migrated to another version: the event kept for its waiting step goes to the
    new run's step that waits for it, which completes with it."""
    db = tmp_path / "carried.db"
    old = await waiting_to_pay(db)
    v2 = paying(version="v2")
    async with cf.Runtime(db=db, workflows=[paying(changed=True), v2]) as rt:
        published = await rt.publish_event("payment", {"amount": 9})
        assert published.held == [old]
        new = await rt.migrate(old, "v2")
        result = await rt.wait(new, timeout=5)
        assert (result.status, result.output) == ("completed", {"amount": 9})
        assert shipped == [(new, {"amount": 9})]
        assert (await rt.inspect(old)).status == "canceled"


def audited_first(gate: asyncio.Event) -> cf.Flow:
    """``paying`` v2: a step before the wait, which runs until ``gate`` is set."""

    async def audit(ctx: Any) -> str:
        await gate.wait()
        return "audited"

    flow = cf.define("paying", version="v2").step("audit", audit)
    flow = flow.wait_for_event("paid", "payment")
    return flow.step("ship", lambda ctx: shipped.append((ctx.run.id, ctx.last)) or ctx.last)


async def test_a_carried_event_waits_for_the_step_that_waits_for_it(tmp_path: Path) -> None:
    """The new version runs a new step before the wait: the event kept for the held run was
    dropped at the new run's start, no step waiting for it yet (the newcomer's h25 F0: the
    payment lost, the run waiting for it until its deadline). It is kept, across a restart,
    for the first step that starts waiting for it."""
    db = tmp_path / "carried.db"
    old = await waiting_to_pay(db)
    gate = asyncio.Event()

    def v2() -> cf.Flow:
        return audited_first(gate)

    async with cf.Runtime(db=db, workflows=[paying(changed=True), v2()]) as rt:
        assert (await rt.publish_event("payment", {"amount": 9})).held == [old]
        new = await rt.migrate(old, "v2")
        await asyncio.sleep(0.1)
        assert (await rt.inspect(new)).status == "running"  # in its audit step
    gate.set()
    async with cf.Runtime(db=db, workflows=[paying(changed=True), v2()]) as rt:
        result = await rt.wait(new, timeout=5)
        assert (result.status, result.output) == ("completed", {"amount": 9})
        assert shipped == [(new, {"amount": 9})]


def own_payment(*, version: str = "v1", changed: bool = False, audit: bool = False) -> cf.Flow:
    """Waits for the payment of its own order (its filter: the payload's ``k``; ``audit``: a
    step before the wait), then for its receipt (another event of the same name, ``receipt``),
    and returns both."""

    def mine(receipt: bool) -> Any:
        return lambda p, ctx: p["k"] == ctx.payload["k"] and p.get("receipt", False) == receipt

    flow = cf.define("own", version=version)
    if audit:
        flow = flow.step("audit", lambda ctx: "audited")
    flow = flow.wait_for_event("paid", "payment", filter=mine(False))
    flow = flow.wait_for_event("receipt", "payment", filter=mine(True))
    name = "done" if changed else "ship"
    return flow.step(name, lambda ctx: [ctx.steps["paid"]["n"], ctx.steps["receipt"]["n"]])


async def test_each_carried_event_is_offered_until_a_step_takes_it(tmp_path: Path) -> None:
    """Held runs whose waits' filters pick their own order, migrated to a version with a step
    before the wait: each new run was offered only the first event carried over, its filter
    refused another order's, and the run waited for its own until its deadline (chaos h26 F1:
    every publish was answered held). Each step that starts waiting is offered every carried
    event it hears, in order; those it does not take stay carried, for the next step that waits
    (here the receipt, published before the payment)."""
    db = tmp_path / "own.db"
    async with cf.Runtime(db=db, workflows=[own_payment()]) as rt:
        runs = [await rt.trigger("own", {"k": f"k{n}"}) for n in range(3)]
        await rt.wait_idle()
    flows = [own_payment(changed=True), own_payment(version="v2", audit=True)]
    async with cf.Runtime(db=db, workflows=flows) as rt:
        published = [
            {"k": "k1", "receipt": True, "n": 1},  # before its payment: for the second wait
            {"k": "k0", "n": 2},
            {"k": "k1", "n": 3},
            {"k": "k2", "n": 4},
            {"k": "k0", "receipt": True, "n": 5},
            {"k": "k2", "receipt": True, "n": 6},
        ]
        for payload in published:
            assert sorted((await rt.publish_event("payment", payload)).held) == sorted(runs)
        new = [await rt.migrate(run, "v2") for run in runs]
        results = [await rt.wait(run, timeout=5) for run in new]
    assert [(r.status, r.output) for r in results] == [
        ("completed", [2, 5]),
        ("completed", [3, 1]),
        ("completed", [4, 6]),
    ]


async def test_events_carried_to_a_run_go_on_to_the_run_that_replaces_it_again(
    tmp_path: Path,
) -> None:
    """A migrated run whose carried events no step had taken yet (its step before the wait still
    running) migrated again: the events stayed behind in the run it replaced, and the run
    waited for them until its deadline (found reviewing chaos h26 F1's fix). They go on."""
    db = tmp_path / "twice.db"
    gate = asyncio.Event()

    def v2() -> cf.Flow:
        return audited_first(gate)

    def v3() -> cf.Flow:
        flow = cf.define("paying", version="v3").step("check", lambda ctx: "checked")
        return flow.wait_for_event("paid", "payment").step("ship", lambda ctx: ctx.last)

    old = await waiting_to_pay(db)
    async with cf.Runtime(db=db, workflows=[paying(changed=True), v2(), v3()]) as rt:
        assert (await rt.publish_event("payment", {"amount": 9})).held == [old]
        second = await rt.migrate(old, "v2")
        await asyncio.sleep(0.1)
        assert (await rt.inspect(second)).status == "running"  # in its audit step
        third = await rt.migrate(second, "v3")
        gate.set()
        result = await rt.wait(third, timeout=5)
    assert (result.status, result.output) == ("completed", {"amount": 9})


def limited(*, changed: bool = False) -> cf.Flow:
    flow = cf.define("limited", concurrency=1).human_in_the_loop("hold", description="in line")
    return flow.step("b" if not changed else "c", ran("b" if not changed else "c"))


async def test_a_held_run_keeps_its_place_under_its_flows_limit(tmp_path: Path) -> None:
    """A held run is not over: it runs on once its old definition is registered again, so it
    counts against its flow's concurrency as before; a run triggered meanwhile is queued, and
    starts once the held one is canceled."""
    db = tmp_path / "limited.db"
    async with cf.Runtime(db=db, workflows=[limited()]) as rt:
        held = await rt.trigger("limited")
        await rt.wait_idle()
    async with cf.Runtime(db=db, workflows=[limited(changed=True)]) as rt:
        assert (await rt.inspect(held)).status == "blocked"
        queued = await rt.trigger("limited")
        await rt.wait_idle()
        listed = {r.id: r.status for r in await rt.list_runs()}
        assert listed == {held: "blocked", queued: "waiting"}  # the new one in the queue
        assert await rt.store.queued_run(queued) is not None
        await rt.cancel(held)
        await rt.wait_idle()
        runs = {r.id: r.status for r in await rt.list_runs()}
        assert runs == {held: "canceled", queued: "waiting"}  # started, at its human step


async def test_a_migrated_run_takes_its_predecessors_place_under_the_limit(tmp_path: Path) -> None:
    """A migration's new run starts on its own, counted nowhere: the old run's end gave its
    place to the queued run behind it, and a flow of concurrency 1 ran two runs at once until
    a restart recounted them. The new run takes the old one's place, a held run's migration
    (offline) and a running one's (through its actor) alike."""
    db = tmp_path / "place.db"
    async with cf.Runtime(db=db, workflows=[limited()]) as rt:
        held = await rt.trigger("limited")
        await rt.wait_idle()
    v2 = cf.define("limited", version="v2", concurrency=1).human_in_the_loop("hold")
    async with cf.Runtime(db=db, workflows=[limited(changed=True), v2]) as rt:
        queued = await rt.trigger("limited")
        moved = await rt.migrate(held, "v1")  # held: canceled offline
        await rt.wait_idle()
        assert await rt.store.queued_run(queued) is not None  # it still waits its turn
        again = await rt.migrate(moved, "v2")  # running: canceled through its actor
        await rt.wait_idle()
        assert await rt.store.queued_run(queued) is not None
        assert {(await rt.inspect(r)).status for r in (held, moved)} == {"canceled"}
        [pause] = [p for p in await rt.list_paused() if p.run_id == again]
        await rt.resume(pause.token, {"approved": True})
        assert (await rt.wait(again, timeout=5)).status == "completed"
        await rt.wait_idle()
        assert await rt.store.queued_run(queued) is None  # its turn came: it started
        assert (await rt.inspect(queued)).status == "waiting"


def parallel_net(*, changed: bool = False) -> net.NetSpec:
    """start -> fork (and) -> read (a person's work item) and comp (a child workflow whose
    task x waits for a person) -> join (and) -> end; ``changed``: join's work item renamed."""
    child = build("reading", {"x": net.task()}, [("start", "x"), ("x", "end")])
    tasks = {
        "fork": net.dummy_task().split("and"),
        "read": net.task(),
        "comp": net.composite_task(child),
        "join": net.task(net.work_item("joined" if changed else "join")).join("and"),
    }
    flows = [
        ("start", "fork"),
        ("fork", "read"),
        ("fork", "comp"),
        ("read", "join"),
        ("comp", "join"),
        ("join", "end"),
    ]
    return build("parallel", tasks, flows)


async def test_a_held_runs_cancel_is_in_its_audit_trail_as_the_engine_records_one(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A held run is canceled without its code (offline), but not without its trail: the
    cancel's spans are committed with it, so its trace shows each element canceled under the
    task that held it and ``state_at`` after the cancel is the canceled snapshot."""
    db = tmp_path / "trail.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[parallel_net()]) as rt:
        run_id = await rt.start_workflow("parallel")
        [read] = await rt.work_items(run_id, "read")
        clock.advance(1)
        await rt.start_work_item(read.id)
    heard: list[str] = []
    clock.advance(1)
    async with cf.Runtime(db=db, clock=clock, workflows=[parallel_net(changed=True)]) as rt:
        rt.on_spans(lambda spans: heard.extend(s.operation for s in spans))
        assert (await rt.inspect(run_id)).status == "blocked"
        await rt.cancel_workflow(run_id)
        trace = await rt.trace(run_id)
        snapshot = await rt.store.load_snapshot(run_id)
        assert snapshot is not None
        assert state_view(await rt.state_at(run_id, clock.now())) == snapshot_view(snapshot.body)
        before = state_view(await rt.state_at(run_id, clock.now() - 1))
    cancel = tree(trace)[tree(trace).index("Action.cancel run") :]
    assert cancel == [
        "Action.cancel run",
        "  Task.cancel read",
        "    WorkItem.cancel w1",
        "  Task.disable comp",  # enabled: its child's item never started
        "    Task.disable x",
        "      WorkItem.cancel w3",
        "    Workflow.cancel f2",
        "  Workflow.cancel run",
    ]
    assert heard == [line.strip().split()[0] for line in cancel]  # the sink hears of it too
    assert before["workflows"][run_id][0] == "started"  # a second earlier, still running
    assert snapshot_view(snapshot.body)["workflows"][run_id][0] == "canceled"


async def test_an_event_kept_for_a_held_run_survives_a_killed_process(tmp_path: Path) -> None:
    """The publish returns once the event is kept (committed): a process killed right after
    it loses nothing, and the next one, with the run's old definition, delivers it."""
    db = tmp_path / "killed.db"
    async with cf.Runtime(db=db, workflows=[kept_worker.paying()]) as rt:
        run_id = await rt.trigger("paying-killed")
        await rt.wait_idle()
    [said] = killed_after("tests.runtime.kept_worker", str(db), lines=1)
    assert said.split() == ["published", run_id]
    async with cf.Runtime(db=db, workflows=[kept_worker.paying()], wait_for_lease=True) as rt:
        result = await rt.wait(run_id, timeout=10)
    assert (result.status, result.output) == ("completed", kept_worker.PAYMENT)


async def test_a_held_run_keeps_at_most_a_hundred_events_and_a_megabyte(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each kept event rewrote the run's snapshot with all the others, without a bound: 800
    publishes of 20 KB made 16 MB snapshots, 500 ms publishes and 10 minutes of catching up
    (hostile h23 M1). Past the bound an event is not kept (said in a warning), not held."""
    from cronflow_actors.runtime.pinning import KEPT_BYTES, KEPT_EVENTS

    db = tmp_path / "full.db"
    run_id = await waiting_to_pay(db)
    async with cf.Runtime(db=db, workflows=[paying(changed=True)]) as rt:
        big = "x" * (KEPT_BYTES // 2)
        assert (await rt.publish_event("payment", {"amount": 1, "pad": big})).held == [run_id]
        with caplog.at_level(logging.WARNING, logger="cronflow_actors.runtime.events"):
            refused = await rt.publish_event("payment", {"amount": 2, "pad": big})
        assert (refused.held, refused.not_kept) == ([], [run_id])  # said to the publisher
        [said] = [r.getMessage() for r in caplog.records if "is not kept" in r.getMessage()]
        assert f"run {run_id}" in said
        assert "publish it again once the run runs" in said
        for amount in range(3, KEPT_EVENTS + 2):  # small ones, up to the count
            await rt.publish_event("payment", {"amount": amount})
        over = await rt.publish_event("payment", {"amount": 999})
        assert (over.held, over.not_kept) == ([], [run_id])
        snapshot = await rt.store.load_snapshot(run_id)
        assert snapshot is not None
        kept = decode_state(snapshot.body, run_id).kept
        assert len(kept) == KEPT_EVENTS
        assert kept[0].payload["amount"] == 1  # the first kept, the refused ones not
        assert 2 not in [k.payload["amount"] for k in kept]
    async with cf.Runtime(db=db, workflows=[paying()]) as rt:
        result = await rt.wait(run_id, timeout=10)
    assert (result.status, result.output["amount"]) == ("completed", 1)


async def test_a_blocked_run_migrates_onto_its_versions_edited_definition(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Its version edited in place, the run was held, and "migrate RUN --to v1" was refused
    ("the instance runs that version"): the way out was a new version or the old code back
    (newcomer h23 L5). It moves onto the definition as it is now, its outputs carried."""
    db = tmp_path / "edited.db"
    RAN.clear()
    async with cf.Runtime(db=db, clock=clock, workflows=[approval()]) as rt:
        run_id = await rt.trigger("approval", {"n": 1})
        await rt.wait_idle()
    async with cf.Runtime(db=db, clock=clock, workflows=[approval(changed=True)]) as rt:
        assert (await rt.inspect(run_id)).status == "blocked"
        new = await rt.migrate(run_id, "v1")
        await rt.wait_idle()
        [paused] = await rt.list_paused()
        assert paused.run_id == new
        await rt.resume(paused.token, {"approved": True})
        done = await rt.wait(new, timeout=5)
        assert done.status == "completed"
        assert RAN == ["prepare", "ship", "notify"]  # prepare kept, the edited steps ran
        assert (await rt.inspect(run_id)).status == "canceled"
        assert (await rt.inspect(new)).migrated_from == run_id
        running = await rt.trigger("approval", {"n": 2})
        await rt.wait_idle()
        with pytest.raises(MigrationError, match="the instance runs that version"):
            await rt.migrate(running, "v1")  # not held: nothing to move onto


def fanned(
    *,
    version: str = "v1",
    changed: bool = False,
    first: bool = False,
    again: bool = False,
    tagged: bool = False,
    after: bool = False,
) -> cf.Flow:
    """A ``for_each`` of two item flows, each waiting for ``go`` (``first``: after a step of its
    own; ``again``: then for the next ``go``; ``tagged``: the ``go`` whose ``tag`` is its item's),
    then collecting what each heard (``changed``: another last step, same version; ``after``: a
    wait for one more ``go`` at the root before it)."""

    async def prepare(ctx: Any) -> int:
        await asyncio.sleep(0.2 * (ctx.payload - 1))  # the second item flow later
        return int(ctx.payload)

    def mine(payload: Any, ctx: Any) -> bool:
        return not tagged or payload["tag"] == ctx.payload

    def item_flow(item: int, flow: Any) -> Any:
        if first:
            flow = flow.step("prepare", prepare)
        flow = flow.wait_for_event("go", "go", filter=mine)
        flow = flow.step("heard", lambda ctx: [item, ctx.last["n"]])
        if again:
            flow = flow.wait_for_event("next", "go", filter=mine)
            return flow.step("last", lambda ctx: [*ctx.steps["heard"], ctx.last["n"]])
        return flow

    flow = cf.define("fanned", version=version).for_each("parts", lambda ctx: [1, 2], item_flow)
    if after:
        flow = flow.wait_for_event("root", "go")
    return flow.step("changed" if changed else "done", lambda ctx: ctx.steps["parts"])


def heard_by_items(output: Any) -> list[Any]:
    return [r["result"] for r in output["results"]]


async def waiting_fanned(db: Path, **options: Any) -> str:
    """A run of ``fanned(**options)`` waiting at its item flows' waits, its runtime closed."""
    async with cf.Runtime(db=db, workflows=[fanned(**options)]) as rt:
        run_id = await rt.trigger("fanned")
        await rt.wait_idle()
    return run_id


async def test_an_event_kept_for_two_waiting_steps_reaches_both_after_a_migration(
    tmp_path: Path,
) -> None:
    """A held run's two item flows each waited for one event: kept for both, it was carried to
    the migrated run once, and the first item flow that began waiting took it; the other waited
    until its deadline (chaos h27 F2). It is carried for the steps it was kept for, each of
    whose counterparts in the new run hears it."""
    db = tmp_path / "fanned.db"
    old = await waiting_fanned(db)
    async with cf.Runtime(
        db=db, workflows=[fanned(changed=True), fanned(version="v2", first=True)]
    ) as rt:
        published = await rt.publish_event("go", {"n": 7})
        assert published.held == [old]
        new = await rt.migrate(old, "v2")
        result = await rt.wait(new, timeout=5)
    assert result.status == "completed"
    assert heard_by_items(result.output) == [[1, 7], [2, 7]]


def fanned_after(*, version: str = "v1", edited: bool = False) -> cf.Flow:
    """A step, then a ``for_each`` of two item flows, each waiting for ``go`` at its start
    (``edited``: another step before the ``for_each``, same version)."""

    def item_flow(item: int, flow: Any) -> Any:
        flow = flow.wait_for_event("go", "go")
        return flow.step("heard", lambda ctx: [item, ctx.last["n"]])

    flow = cf.define("fanned-after", version=version).step("a", lambda ctx: 1)
    if edited:
        flow = flow.step("x", lambda ctx: 2)
    return flow.for_each("parts", lambda ctx: [1, 2], item_flow).step(
        "done", lambda ctx: ctx.steps["parts"]
    )


@pytest.mark.parametrize("onto", ["v1", "v2"])
async def test_an_event_kept_for_two_item_flows_reaches_both_when_a_step_comes_first(
    tmp_path: Path, onto: str
) -> None:
    """The same, a new step before the ``for_each`` in the new run (onto the run's own version
    as it is now, or a v2 alike): the steps it was kept for were looked up among the
    definitions its start had met, a child workflow's not yet, so the event went to any step,
    the first item flow took it and the other waited for good (chaos h29 H1)."""
    db = tmp_path / "fanned.db"
    async with cf.Runtime(db=db, workflows=[fanned_after()]) as rt:
        old = await rt.trigger("fanned-after")
        await rt.wait_idle()
    flows = [fanned_after(edited=True), fanned_after(version="v2", edited=True)]
    async with cf.Runtime(db=db, workflows=flows) as rt:
        assert (await rt.publish_event("go", {"n": 7})).held == [old]
        new = await rt.migrate(old, onto)
        result = await rt.wait(new, timeout=5)
    assert result.status == "completed"
    assert heard_by_items(result.output) == [[1, 7], [2, 7]]


@pytest.mark.parametrize("then", ["migrate", "migrate-again", "resume"])
async def test_a_kept_event_reaches_only_the_steps_it_was_kept_for(
    tmp_path: Path, then: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two publishes, one for each item flow, each kept for both while the run was held (their
    filters cannot run then). After a migration, a second one, or a resume, each item flow's
    wait heard its own and its next wait for the same event took the copy kept for the other,
    going on with no new event (the verifier's h27 N4, the second verifier's V1). A copy is for
    the step it was kept for: each item flow's next wait waits for a publish of its own."""
    db = tmp_path / "tagged.db"
    old = await waiting_fanned(db, again=True, tagged=True)
    flows = [
        fanned(changed=True, again=True, tagged=True),
        fanned(version="v2", first=True, again=True, tagged=True),
        fanned(version="v3", again=True, tagged=True),
    ]
    async with cf.Runtime(db=db, workflows=flows) as rt:
        for tag in (1, 2):
            assert (await rt.publish_event("go", {"tag": tag, "n": tag * 10})).held == [old]
        new = await rt.migrate(old, "v2")
        await rt.wait_idle()
        if then == "migrate-again":
            new = await rt.migrate(new, "v3")
        elif then == "resume":
            await rt.cancel(new)
            new = await rt.replay(new, resume=True)
        await rt.wait_idle()
        assert (await rt.inspect(new)).status == "waiting"  # each item flow at its next wait
        for tag in (1, 2):
            assert (await rt.publish_event("go", {"tag": tag, "n": tag * 10 + 1})).delivered
        result = await rt.wait(new, timeout=5)
    assert result.status == "completed"
    assert heard_by_items(result.output) == [[1, 10, 11], [2, 20, 21]]
    assert "no step heard" not in caplog.text  # the copies left were for steps that had one


async def test_a_kept_event_one_item_flow_took_is_not_heard_by_a_later_root_wait(
    tmp_path: Path,
) -> None:
    """A publish kept for two item flows, which one took and the other's filter refused: the
    copy left went to the root's wait that began after the items, a step going on with no event
    published for it (the second verifier's h27 V2). It waits for its own."""
    db = tmp_path / "root.db"
    old = await waiting_fanned(db, tagged=True, after=True)
    flows = [
        fanned(changed=True, tagged=True, after=True),
        fanned(version="v2", first=True, tagged=True, after=True),
    ]
    async with cf.Runtime(db=db, workflows=flows) as rt:
        for tag in (1, 2):
            assert (await rt.publish_event("go", {"tag": tag, "n": tag})).held == [old]
        new = await rt.migrate(old, "v2")
        await rt.wait_idle()
        assert (await rt.inspect(new)).status == "waiting"  # at the root's wait
        assert (await rt.publish_event("go", {"tag": 0, "n": 0})).delivered == [new]
        result = await rt.wait(new, timeout=5)
    assert result.status == "completed"
    assert heard_by_items(result.output) == [[1, 1], [2, 2]]


def gated(
    version: str, *, changed: bool = False, gate: bool = False, root: bool = False
) -> cf.Flow:
    """Two item flows, each waiting for its own ``go`` (``gate``: first for its own ``gate``),
    or (``root``) item flows that wait for nothing and a root that waits for any ``go``."""

    def mine(payload: Any, ctx: Any) -> bool:
        return bool(payload["tag"] == ctx.payload)

    def item_flow(item: Any, flow: Any) -> Any:
        if root:
            return flow.step("x", lambda ctx: ctx.payload)
        if gate:
            flow = flow.wait_for_event("gate", "gate", filter=mine)
        return flow.wait_for_event("go", "go", filter=mine).step("heard", lambda ctx: ctx.last)

    flow = cf.define("gated", version=version).for_each("parts", lambda ctx: [1, 2], item_flow)
    if root:
        return flow.wait_for_event("root", "go").step("done", lambda ctx: ctx.last)
    return flow.step("changed" if changed else "done", lambda ctx: ctx.steps["parts"])


async def test_a_kept_event_a_step_took_is_not_heard_when_its_other_steps_are_gone(
    tmp_path: Path,
) -> None:
    """A publish kept for two item flows, one of which took it after a migration, was handed on
    by a second migration to a version without those waits as an event for any step, and the
    root's later wait heard it (the reviewer's h28 M2). Taken, it goes nowhere else; the
    publish neither took goes to the first step that waits for it."""
    db = tmp_path / "gated.db"
    async with cf.Runtime(db=db, workflows=[gated("v1")]) as rt:
        old = await rt.trigger("gated")
        await rt.wait_idle()
    flows = [gated("v1", changed=True), gated("v2", gate=True), gated("v3", root=True)]
    async with cf.Runtime(db=db, workflows=flows) as rt:
        for tag in (1, 2):
            assert (await rt.publish_event("go", {"tag": tag})).held == [old]
        second = await rt.migrate(old, "v2")
        await rt.wait_idle()
        await rt.publish_event("gate", {"tag": 1})  # item 1 goes on, and takes its go
        await rt.wait_idle()
        third = await rt.migrate(second, "v3")
        result = await rt.wait(third, timeout=5)
    assert (result.status, result.output) == ("completed", {"tag": 2})


@pytest.mark.parametrize("how", ["cancel", "give-up"])
async def test_a_resume_of_a_canceled_held_run_hears_the_event_kept_for_it(
    tmp_path: Path, how: str
) -> None:
    """A held run kept an event ("no need to publish it again"), then was canceled (or its
    migration, which could not start, given up) and resumed, as the give-up's message advises:
    the resumed run waited for the event again, the payment lost (newcomer h27 F3). A failed or
    canceled run keeps its kept events, and its resume's steps hear them."""
    db = tmp_path / "kept.db"
    old = await waiting_to_pay(db)

    def refusing() -> cf.Flow:  # v2 cannot take the run: its migration stays pending
        def first(ctx: Any) -> bool:
            raise RuntimeError("v2 cannot take this run")

        flow = cf.define("paying", version="v2").if_("first", first).step("x", str).end_if()
        return flow.wait_for_event("paid", "payment").step("ship", lambda ctx: ctx.last)

    async with cf.Runtime(db=db, workflows=[paying(changed=True), refusing()]) as rt:
        assert (await rt.publish_event("payment", {"amount": 9})).held == [old]
        if how == "give-up":
            with pytest.raises(MigrationError, match="pending"):
                await rt.migrate(old, "v2")
        await rt.cancel(old)
        assert (await rt.inspect(old)).status == "canceled"
        if how == "give-up":  # given up in its snapshot (it cannot be loaded here), traced
            last = (await rt.trace(old)).roots[-1].span
            assert (last.operation, last.attributes["to_version"]) == ("Action.cancel", "v2")
    async with cf.Runtime(db=db, workflows=[paying(), refusing()]) as rt:
        rt.register(paying(version="v3"))
        resumed = await rt.replay(old, resume=True)
        result = await rt.wait(resumed, timeout=5)
    assert (result.status, result.output) == ("completed", {"amount": 9})


async def test_a_held_run_migrated_calls_its_end_hooks_once_at_the_new_runs_end(
    tmp_path: Path,
) -> None:
    """A run held on a changed definition (or on a version no longer registered) migrated
    without its code called its end hooks as canceled, and the run that replaced it called them
    again at its end (chaos h30 H1): the two are one run to its hooks, as online."""
    ended: list[tuple[str, str]] = []

    def hooked(*, changed: bool) -> cf.Flow:
        on_complete = lambda ctx: ended.append((ctx.run.id, str(ctx.run.status)))  # noqa: E731
        flow = cf.define("hooked", hooks=cf.Hooks(on_complete=on_complete))
        flow = flow.step("a", str).human_in_the_loop("ok")
        return flow.step("z" if changed else "y", lambda ctx: "done")

    db = tmp_path / "hooks.db"
    async with cf.Runtime(db=db, workflows=[hooked(changed=False)]) as rt:
        run_id = await rt.trigger("hooked")
        await rt.wait_idle()
    async with cf.Runtime(db=db, workflows=[hooked(changed=True)]) as rt:
        assert (await rt.inspect(run_id)).status == "blocked"
        new = await rt.migrate(run_id, "v1")  # onto its own version, as it is now
        await rt.wait_idle()
        assert ended == []  # it goes on in the new run
        [pause] = await rt.list_paused()
        await rt.resume(pause.token, {"approved": True})
        assert (await rt.wait(new, timeout=5)).status == "completed"
        await rt.wait_idle()
    assert ended == [(new, "completed")]

"""Migrating a Cronflow-style run to another version of its flow: the steps the old run
completed keep their recorded outputs (their functions are not called again), the others run;
also when the old version is no longer registered (the old run is then canceled offline)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import MigrationError, ResumeError
from cronflow_actors.kernel import ManualClock
from cronflow_actors.runtime.database import open_store_to_read
from cronflow_actors.runtime.migration_plans import kept_by_migrations


async def failed_after(
    rt: cf.Runtime, clock: ManualClock, workflow: str, seconds: float = 60
) -> str:
    """A run of ``workflow`` started, ``seconds`` passed (its nap, a deadline), and failed."""
    failed = await rt.trigger(workflow)
    await rt.wait_idle()
    clock.advance(seconds)
    assert (await rt.wait(failed, timeout=5)).status == "failed"
    return failed


def order(version: str, calls: list[str], *, audit: bool = False) -> cf.Flow:
    def step(name: str) -> Any:
        def handler(ctx: cf.FlowContext) -> dict[str, Any]:
            calls.append(name)
            return {"step": name, "seen": sorted(ctx.steps)}

        return handler

    flow = cf.define("order", version=version).step("quote", step("quote"))
    flow = flow.step("charge", step("charge"))
    if audit:
        flow = flow.step("audit", step("audit"))
    flow = flow.pause("approve")
    return flow.step("ship", lambda ctx: {"charged": ctx.steps["charge"], "approved": ctx.last})


async def paused_token(rt: cf.Runtime, run_id: str) -> str:
    [paused] = [p for p in await rt.list_paused() if p.run_id == run_id]
    return paused.token


async def test_a_resume_that_a_migration_beat_says_where_the_pause_went(
    rt: cf.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume that read the pause open, then lost the race to the run's migration, said
    "the pause has already ended (canceled)": an approver's tool took it as decided, and the
    approval asked again in the new run went unanswered (chaos h26 L1). It says, as a resume
    after the migration does, where the pause went."""
    rt.register(order("v1", []))
    old = await rt.trigger("order", {"n": 1})
    await rt.wait_idle()
    token = await paused_token(rt, old)
    open_wait = await rt.store.find_wait("pause", token)
    rt.register(order("v2", [], audit=True))
    new = await rt.migrate(old, "v2")
    await rt.wait_idle()

    async def read_before_the_migration(kind: str, key: str) -> Any:
        return open_wait

    monkeypatch.setattr(rt.store, "find_wait", read_before_the_migration)
    with pytest.raises(ResumeError, match=f"its run {old} was migrated to {new}, whose pause"):
        await rt.resume(token, {"ok": True})


async def test_a_run_moves_to_the_new_version_keeping_its_recorded_outputs(
    rt: cf.Runtime,
) -> None:
    calls: list[str] = []
    rt.register(order("v1", calls))
    old = await rt.trigger("order", {"n": 1})
    await rt.wait_idle()
    old_token = await paused_token(rt, old)
    assert calls == ["quote", "charge"]
    rt.register(order("v2", calls, audit=True))

    new = await rt.migrate(old, "v2")
    await rt.wait_idle()

    assert calls == ["quote", "charge", "audit"]  # recorded outputs are kept, not recomputed
    info = await rt.inspect(new)
    steps = {s.id: (s.status, s.output) for s in info.steps}
    assert {s.id: (s.kind, s.attempts) for s in info.steps}["charge"] == ("step", 0)  # not run
    assert steps["quote"] == ("completed", {"step": "quote", "seen": []})
    assert steps["charge"] == ("completed", {"step": "charge", "seen": ["quote"]})
    assert steps["audit"] == ("completed", {"step": "audit", "seen": ["charge", "quote"]})
    assert info.status == "waiting"
    assert (await rt.inspect(old)).status == "canceled"
    # why the old token is refused, and where the pause went (it said "already over
    # (resumed before, or timed out)": newcomer h23 M4)
    with pytest.raises(ResumeError, match=f"its run {old} was migrated to {new}, whose pause"):
        await rt.resume(old_token, {"ok": True})
    new_token = await paused_token(rt, new)
    await rt.resume(new_token, {"ok": True})
    with pytest.raises(ResumeError, match=r"it was resumed at \d{4}-\d\d-\d\d .* UTC"):
        await rt.get_paused(new_token)
    result = await rt.wait(new)
    assert result.status == "completed"
    assert result.output["charged"] == {"step": "charge", "seen": ["quote"]}
    assert ((await rt.inspect(new)).migrated_from, (await rt.inspect(old)).migrated_to) == (
        old,
        new,
    )
    links = await rt.migration_links(new)
    assert (links.migrated_from, links.from_version, links.version) == (old, "v1", "v2")
    assert (await rt.migration_links(old)).migrated_to == new


async def test_a_flow_run_cannot_move_to_a_version_that_is_not_registered(rt: cf.Runtime) -> None:
    rt.register(order("v1", []))
    run_id = await rt.trigger("order", {"n": 1})
    await rt.wait_idle()
    with pytest.raises(MigrationError, match="'v3' is not registered"):
        await rt.migrate(run_id, "v3")
    assert (await rt.inspect(run_id)).status == "waiting"


async def test_a_run_whose_version_is_gone_is_canceled_offline_and_migrated(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "gone.db"
    calls: list[str] = []
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v1", calls)]) as first:
        old = await first.trigger("order", {"n": 1})
        await first.wait_idle()
    async with cf.Runtime(db=db, clock=clock, workflows=[order("v2", calls, audit=True)]) as rt:
        new = await rt.migrate(old, "v2")
        await rt.wait_idle()
        assert calls == ["quote", "charge", "audit"]
        assert (await rt.inspect(old)).status == "canceled"
        assert [p.run_id for p in await rt.list_paused()] == [new]  # the old pause ended
        await rt.resume(await paused_token(rt, new), {"ok": True})
        assert (await rt.wait(new)).status == "completed"
        assert (await rt.migration_links(old)).migrated_to == new


def paid(version: str, charged: list[Any], items: list[int]) -> cf.Flow:
    """Each item is charged, then waits until its own time: a run migrated after the first
    item is done and the second is charged and waiting."""

    def per_item(item: int, flow: cf.Flow) -> cf.Flow:
        charge = flow.step("charge", lambda ctx: charged.append(item) or item * 10)
        return charge.sleep("nap", lambda ctx: item)

    each = cf.define("paid", version=version).for_each("items", lambda ctx: list(items), per_item)
    return each.step("total", lambda ctx: sum(r["result"] for r in ctx.last["results"]))


async def test_a_migrated_run_keeps_what_its_items_and_subflows_completed(tmp_path: Path) -> None:
    """The steps a run's ``for_each`` items and subflows had completed ran again in the new
    run (the conformance auditor's h25 H1: a charge made twice per item): only the root's were
    carried. A child of the new run takes its old counterpart's outputs (the same path, the
    same place among its siblings, the same payload); the rest runs."""
    clock = ManualClock()
    charged: list[Any] = []
    items = [10, 1000]
    db = tmp_path / "paid.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[paid("v1", charged, items)]) as rt:
        old = await rt.trigger("paid")
        await rt.wait_idle()
        clock.advance(20)  # item 10 is done; item 1000 is charged and sleeping
        await rt.wait_idle()
        assert sorted(charged) == [10, 1000]
        rt.register(paid("v2", charged, items))
        new = await rt.migrate(old, "v2")
        await rt.wait_idle()
        clock.advance(1001)
        result = await rt.wait(new, timeout=5)
        assert (result.status, result.output) == ("completed", 10100)
        assert sorted(charged) == [10, 1000]  # each item charged once

        # a for_each whose items come out otherwise this time takes nothing of the old ones
        charged.clear()
        items[:] = [10, 1000]
        other = await rt.trigger("paid")
        await rt.wait_idle()
        items[:] = [1000, 10]  # the new run's items, in another order
        rt.register(paid("v3", charged, items))
        moved = await rt.migrate(other, "v3")
        await rt.wait_idle()
        clock.advance(1001)
        assert (await rt.wait(moved, timeout=5)).status == "completed"
        assert sorted(charged) == [10, 10, 1000, 1000]  # nothing carried to another item


async def test_a_migrated_run_keeps_the_steps_its_subflow_completed(rt: cf.Runtime) -> None:
    charged: list[str] = []
    tokens: list[str] = []

    def flows(version: str) -> cf.Flow:
        child = cf.define("pay", version=version).step("charge", lambda ctx: charged.append("c"))
        child = child.human_in_the_loop("confirm", on_pause=lambda ctx, t: tokens.append(t))
        return cf.define("buy", version=version).step("a", lambda ctx: 0).subflow("p", child)

    rt.register(flows("v1"))
    old = await rt.trigger("buy")
    await rt.wait_idle()
    assert (charged, len(tokens)) == (["c"], 1)
    rt.register(flows("v2"))
    new = await rt.migrate(old, "v2")
    await rt.wait_idle()
    assert charged == ["c"]  # the subflow's charge is kept; its pause is a new one
    assert len(tokens) == 2
    await rt.resume(tokens[-1], {"approved": True})
    assert (await rt.wait(new, timeout=5)).status == "completed"
    assert charged == ["c"]


async def test_a_resumed_run_keeps_what_its_items_completed(tmp_path: Path) -> None:
    """A resume of a run canceled while its ``for_each`` was half done: the items done stay
    done (their charges are not made again), the rest run."""
    clock = ManualClock()
    charged: list[Any] = []
    db = tmp_path / "resume.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[paid("v1", charged, [10, 1000])]) as rt:
        run_id = await rt.trigger("paid")
        await rt.wait_idle()
        clock.advance(20)
        await rt.wait_idle()
        await rt.cancel(run_id)
        resumed = await rt.replay(run_id, resume=True)
        await rt.wait_idle()
        clock.advance(1001)
        result = await rt.wait(resumed, timeout=5)
        assert (result.status, result.output) == ("completed", 10100)
        assert sorted(charged) == [10, 1000]


async def test_the_id_a_pending_migration_planned_is_not_for_another_start(rt: cf.Runtime) -> None:
    """A migration whose new run failed to start stays pending, the new run's id published
    (``migrated_to``, the error): a caller started a run of another flow under that id, and the
    migration asked again took that run for its own, the migrated run lost (the hostile
    client's h25 H1). The id is refused to other starts, and a migration whose id was taken
    anyway (before this runtime) says so rather than ending on a stranger's run."""

    def flaky(version: str) -> cf.Flow:
        def boom(ctx: cf.FlowContext) -> bool:
            if version == "v2" and ctx.payload.get("boom"):
                raise RuntimeError("the new version's first node is down")
            return True

        # (v2's if_ is new: one the old run decided is not asked again, conform h39 F5)
        split = "go" if version == "v1" else "go2"
        flow = cf.define("flaky", version=version).if_(split, boom).step("a", str).end_if()
        return flow.pause("hold")

    rt.register(flaky("v1"))
    rt.register(cf.define("other").step("s", str))
    old = await rt.trigger("flaky", {"boom": True})
    await rt.wait_idle()
    rt.register(flaky("v2"))
    with pytest.raises(MigrationError, match="the migration is pending"):
        await rt.migrate(old, "v2")
    planned = (await rt.migration_links(old)).migrated_to
    assert planned is not None
    with pytest.raises(cf.errors.InstanceExistsError, match="a migration under way starts"):
        await rt.trigger("other", instance_id=planned)
    with pytest.raises(cf.errors.InstanceExistsError):
        await rt.start_workflow("flaky", version="v1", instance_id=planned)
    assert not await rt.store.instance_exists(planned)


async def test_a_part_of_a_run_is_not_canceled_as_a_run(rt: cf.Runtime) -> None:
    """``cancel`` took the id of a subflow's run (or an item), and the run completed without
    that part, its approval skipped, reported as success (the hostile client's h25 H2): the
    id is not a run's, and nothing is canceled."""
    approval = cf.define("approval").human_in_the_loop("approve").step("ok", lambda ctx: 1)
    order = cf.define("order-sub").subflow("check", approval).step("ship", lambda ctx: "shipped")
    rt.register(order)
    run_id = await rt.trigger("order-sub")
    await rt.wait_idle()
    [child] = await rt.child_workflows(run_id, "check")
    with pytest.raises(cf.errors.NotFoundError, match=f"it is a part of run '{run_id}'"):
        await rt.cancel(child.id)
    await rt.wait_idle()
    assert (await rt.inspect(run_id)).status == "waiting"  # still at the approval


async def test_a_pending_migrations_run_keeps_its_place_across_a_restart(tmp_path: Path) -> None:
    """A concurrency-1 flow's run migrated, its new run's start raising: the migration is
    pending, the old run canceled. A restart counted the runs in progress, found none, and
    started the queued run; the migration, finished later, started its run beside it (the
    hostile client's h25 M4). The place stays the migration's."""
    down = [True]

    def limited(version: str) -> cf.Flow:
        def gate(ctx: cf.FlowContext) -> bool:
            if version == "v1" and down:
                raise RuntimeError("v1's first node is down")
            return True

        flow = cf.define("one", version=version, concurrency=1).if_(f"go_{version}", gate)
        flow = flow.step("a", str)
        return flow.end_if().pause("hold")

    db = tmp_path / "one.db"
    flows = [limited("v1"), limited("v2")]
    async with cf.Runtime(db=db, workflows=flows) as rt:
        first = await rt.trigger("one")
        queued = await rt.trigger("one")
        await rt.wait_idle()
        assert (await rt.inspect(first)).status == "waiting"
        with pytest.raises(MigrationError, match="the migration is pending"):
            await rt.migrate(first, "v1")
    async with cf.Runtime(db=db, workflows=flows) as rt:
        await rt.wait_idle()
        assert await rt.store.queued_run(queued) is not None  # still in line
        down.clear()
        new = await rt.migrate(first, "v1")
        await rt.wait_idle()
        assert (await rt.inspect(new)).status == "waiting"
        assert await rt.store.queued_run(queued) is not None
        [pause] = [p for p in await rt.list_paused() if p.run_id == new]
        await rt.resume(pause.token, {"approved": True})
        await rt.wait_idle()
        assert await rt.store.queued_run(queued) is None  # its turn came
        assert (await rt.inspect(queued)).status == "waiting"


async def test_cancel_gives_up_a_migration_whose_new_run_cannot_start(tmp_path: Path) -> None:
    """A concurrency-1 flow's run migrated to an older version that cannot start from its
    payload: the migration stayed pending, holding the flow's place, and nothing a caller could
    ask freed it, a restart included; every later run waited for good (hostile h26 H2).
    ``cancel`` of the run gives the migration up: the queued run takes the place, and the run
    canceled for the migration can be replayed."""

    ended: list[str] = []
    hooks = cf.Hooks(on_complete=lambda ctx: ended.append(ctx.run.id))

    def orders(version: str) -> cf.Flow:
        def amount(ctx: cf.FlowContext) -> bool:  # v1 needs an amount, v2 made it optional
            return bool(ctx.payload["amount"] if version == "v1" else ctx.payload.get("amount"))

        flow = cf.define("orders", version=version, concurrency=1, hooks=hooks)
        flow = flow.if_(f"big_{version}", amount)  # (a new if_: asked in a migration)
        return flow.step("review", str).end_if().pause("hold")

    db = tmp_path / "orders.db"
    flows = [orders("v1"), orders("v2")]
    async with cf.Runtime(db=db, workflows=flows) as rt:
        first = await rt.trigger("orders", {"note": "no amount"})  # on v2, the newest
        queued = await rt.trigger("orders", {"amount": 1})
        await rt.wait_idle()
        with pytest.raises(MigrationError, match="raised KeyError"):
            await rt.migrate(first, "v1")
        with pytest.raises(MigrationError, match="raised KeyError"):
            await rt.migrate(first, "v1")  # its payload is the run's: it raises again
    async with cf.Runtime(db=db, workflows=flows) as rt:
        await rt.wait_idle()
        assert await rt.store.queued_run(queued) is not None  # the place is the migration's
        assert ended == []  # its end is its successor's, which has not started
        planned = (await rt.migration_links(first)).migrated_to
        await rt.cancel(first, reason="v1 cannot take it")  # gives it up
        await rt.wait_idle()
        assert ended == [first]  # the run's end, after all (the reviewer's h26 M2)
        # its trace ends with the cancel that gave the migration up (conform h27 M6)
        last = (await rt.trace(first)).roots[-1].span
        assert (last.operation, last.attributes) == (
            "Action.cancel",
            {
                "principal": None,
                "reason": "v1 cannot take it",
                "migration_given_up": planned,
                "to_version": "v1",
            },
        )
        # it names no successor: the planned run will never be its (the verifier's h26 V1)
        assert (await rt.migration_links(first)).migrated_to is None
        assert (await rt.inspect(first)).migrated_to is None
        assert await rt.store.queued_run(queued) is None  # its turn came
        assert (await rt.inspect(queued)).status == "waiting"
        assert (await rt.inspect(first)).status == "canceled"
        with pytest.raises(cf.errors.InvalidStateTransitionError):
            await rt.cancel(first)  # nothing more to give up: it has ended
        again = await rt.replay(first)
        assert (await rt.inspect(again)).workflow == "orders"
        resumed = await rt.replay(first, resume=True)  # or go on from where it stopped
        assert (await rt.inspect(resumed)).replay_of == first


async def test_a_run_a_migration_replaced_is_not_replayed_beside_it(rt: cf.Runtime) -> None:
    """A replay of a run a migration canceled started its work again beside the run that goes
    on from it (the newcomer's h25 F5: an invoice approved and booked twice): refused, naming
    that run. Its id, a child's, is told apart from an unknown one (F4)."""
    rt.register(cf.define("inv", version="v1").step("a", str).pause("approve"))
    old = await rt.trigger("inv")
    await rt.wait_idle()
    rt.register(cf.define("inv", version="v2").step("a", str).pause("approve"))
    new = await rt.migrate(old, "v2")
    with pytest.raises(MigrationError, match=f"replay '{new}'"):
        await rt.replay(old)
    assert len(await rt.list_runs(workflow="inv")) == 2
    with pytest.raises(cf.errors.NotFoundError, match=f"it names a part of run '{new}'"):
        await rt.inspect(f"{new}.w1")
    for odd in ("..", ".w1"):  # no part of a run named "" (hostile h29 L2)
        with pytest.raises(cf.errors.NotFoundError, match=f"no run '{odd}'; check the id"):
            await rt.inspect(odd)


async def test_an_items_subflow_takes_only_that_items_outputs(rt: cf.Runtime) -> None:
    """Children were matched by their place among all the run's workflows at their path: item
    A's subflow, done, was fast-forwarded whole and made no subflow run, so item B's new one
    was the first at its path and took A's old outputs: B's approval and charge skipped (the
    reviewer's h25 H1). A child is matched by its place under its own parent."""
    charged: list[str] = []
    tokens: list[str] = []

    def order(version: str) -> cf.Flow:
        pay = cf.define("pay", version=version)
        pay = pay.human_in_the_loop("confirm", on_pause=lambda ctx, token: tokens.append(token))
        pay = pay.step("charge", lambda ctx: charged.append(version) or "charged")

        def per_item(item: str, flow: cf.Flow) -> cf.Flow:
            return flow.subflow("pay", pay, input={"customer": "c-1"})  # the same for both

        each = cf.define("order2", version=version).for_each(
            "items", lambda ctx: ["A", "B"], per_item
        )
        return each.step("done", lambda ctx: ctx.last)

    rt.register(order("v1"))
    old = await rt.trigger("order2")
    await rt.wait_idle()
    await rt.resume(tokens[0], {"approved": True})  # item A's: approved and charged
    await rt.wait_idle()
    assert (charged, len(tokens)) == (["v1"], 2)
    rt.register(order("v2"))
    new = await rt.migrate(old, "v2")
    await rt.wait_idle()
    assert (await rt.inspect(new)).status == "waiting"  # item B's approval is asked again
    assert (charged, len(tokens)) == (["v1"], 3)
    await rt.resume(tokens[-1], {"approved": True})
    assert (await rt.wait(new, timeout=5)).status == "completed"
    assert charged == ["v1", "v2"]  # A's charge kept, B's made once


async def test_a_migration_whose_id_was_taken_gives_up_and_its_run_replays(
    rt: cf.Runtime,
) -> None:
    """Before planned ids were refused to other starts, a stranger's run could take one: the
    migration then told to replay the run, and the replay was refused, naming the stranger's
    run; the plan stayed for good (the reviewer's h25 M3). The migration gives up (its plan
    dropped), and the run replays."""

    def flaky(version: str, down: list[bool]) -> cf.Flow:
        def gate(ctx: cf.FlowContext) -> bool:
            if version == "v2" and down:
                raise RuntimeError("down")
            return True

        flow = cf.define("flaky2", version=version).if_(f"go_{version}", gate)
        return flow.step("a", str).end_if()

    down = [True]
    rt.register(flaky("v1", down).pause("hold"))
    rt.register(cf.define("stranger").step("s", str))
    old = await rt.trigger("flaky2")
    await rt.wait_idle()
    rt.register(flaky("v2", down).pause("hold"))
    with pytest.raises(MigrationError, match="the migration is pending"):
        await rt.migrate(old, "v2")
    planned = (await rt.migration_links(old)).migrated_to
    assert planned is not None
    rt.runs._reserved = None  # as a runtime before planned ids were refused
    await rt.trigger("stranger", instance_id=planned)
    down.clear()
    with pytest.raises(MigrationError, match="another start took"):
        await rt.migrate(old, "v2")
    assert await kept_by_migrations(rt.store, rt.clock.now()) == set()
    replayed = await rt.replay(old)
    await rt.wait_idle()
    assert (await rt.inspect(replayed)).status == "waiting"  # at its pause, on v2


def half_done(kind: str, version: str, calls: Counter[str], gate: asyncio.Event) -> cf.Flow:
    """A ``parallel``, ``for_each`` or ``batch`` whose first part completes at once and whose
    second waits for ``gate`` (raising while ``calls`` says it ran once, for a resume)."""

    async def held(name: str) -> None:
        calls[name] += 1
        if calls[name] == 1 and version == "fails":
            raise ConnectionError(f"{name} broke")
        await gate.wait()

    async def fast(ctx: Any) -> str:
        calls["fast"] += 1
        return "F"

    async def slow(ctx: Any) -> str:
        await held("slow")
        return "S"

    async def per_item(item: int, ctx: Any) -> int:
        if item == 2:
            await held("item2")
        else:
            calls[f"item{item}"] += 1
        return item * 10

    async def per_chunk(chunk: list[int], ctx: Any) -> int:
        if chunk[0] == 3:
            await held("chunk3")
        else:
            calls[f"chunk{chunk[0]}"] += 1
        return sum(chunk)

    flow = cf.define(f"half-{kind}", version="v1" if version == "fails" else version)
    if kind == "parallel":
        flow = flow.parallel("g", [fast, slow])
    elif kind == "for_each":
        flow = flow.for_each("g", lambda ctx: [1, 2], per_item)
    else:
        flow = flow.batch("g", lambda ctx: [1, 2, 3, 4], 2, per_chunk)
    return flow.step("z", lambda ctx: ctx.last)


DONE_FIRST = {"parallel": "fast", "for_each": "item1", "batch": "chunk1"}
OUTPUT = {
    "parallel": ["F", "S"],
    "for_each": [10, 20],
    "batch": [3, 7],
}


def _results(output: Any) -> Any:
    return output if isinstance(output, list) else [r["result"] for r in output["results"]]


@pytest.mark.parametrize("kind", ["parallel", "for_each", "batch"])
async def test_a_half_done_group_keeps_its_done_half_when_migrated(
    tmp_path: Path, kind: str
) -> None:
    """A run migrated while its ``parallel`` (``for_each``, ``batch``) was half done: the new run
    called the done half's functions again, under new idempotency keys (conform h26 H3: an
    item charged twice). Each work item the old run completed completes with its output."""
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    async with cf.Runtime(
        db=tmp_path / "half.db", workflows=[half_done(kind, "v1", calls, gate)]
    ) as rt:
        old = await rt.trigger(f"half-{kind}")
        rt.register(half_done(kind, "v2", calls, gate))
        for _ in range(200):
            if calls[DONE_FIRST[kind]] and sum(calls.values()) >= 2:
                break
            await asyncio.sleep(0.01)
        new = await rt.migrate(old, "v2")
        gate.set()
        result = await rt.wait(new, timeout=5)
        # its trace says which item's function was not called (conform h27 L1)
        spans = await rt.spans(new)
        carried = [s for s in spans if s.operation == "WorkItem.carried"]
        assert [s.attributes for s in carried] == [{"from_run": old}]
    assert (result.status, _results(result.output)) == ("completed", OUTPUT[kind])
    assert calls[DONE_FIRST[kind]] == 1, dict(calls)


@pytest.mark.parametrize("kind", ["parallel", "for_each", "batch"])
async def test_a_resume_keeps_the_done_half_of_the_group_that_failed(
    tmp_path: Path, kind: str
) -> None:
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    gate.set()
    async with cf.Runtime(
        db=tmp_path / "half.db", workflows=[half_done(kind, "fails", calls, gate)]
    ) as rt:
        failed = await rt.trigger(f"half-{kind}")
        assert (await rt.wait(failed, timeout=5)).status == "failed"
        resumed = await rt.replay(failed, resume=True)
        result = await rt.wait(resumed, timeout=5)
        # what it went on from is in its recorded trigger still (its start used a copy: the
        # reviewer's h26 L3)
        recorded = (await rt.replays.recorded_trigger(resumed)).resumed
        assert recorded is not None
        assert [c.items for c in recorded.children if c.items]
    assert (result.status, _results(result.output)) == ("completed", OUTPUT[kind])
    assert calls[DONE_FIRST[kind]] == 1, dict(calls)


async def test_a_resume_keeps_the_iterations_a_while_loop_completed(tmp_path: Path) -> None:
    """Each iteration of a ``while_`` is durable: a resume of a run whose loop failed at its
    third called the first two again (conform h26 H3)."""
    calls: Counter[int] = Counter()

    def body(ctx: Any) -> dict[str, int]:
        n = ctx.last["n"] + 1
        calls[n] += 1
        if n == 3 and calls[n] == 1:
            raise ConnectionError("iteration 3 broke")
        return {"n": n}

    flow = cf.define("loop").step("init", lambda ctx: {"n": 0})
    flow = flow.while_("count", lambda ctx: ctx.last["n"] < 4, body).step("end", lambda c: c.last)
    async with cf.Runtime(db=tmp_path / "loop.db", workflows=[flow]) as rt:
        failed = await rt.trigger("loop")
        assert (await rt.wait(failed, timeout=5)).status == "failed"
        result = await rt.wait(await rt.replay(failed, resume=True), timeout=5)
    assert (result.status, result.output) == ("completed", {"n": 4})
    assert calls == {1: 1, 2: 1, 3: 2, 4: 1}


async def test_a_migrated_run_ends_once_its_hooks_are_called_once(rt: cf.Runtime) -> None:
    """The old run canceled for its migration called ``on_complete`` while its work went on in
    the new run, which called ``on_success`` and ``on_complete`` again: one order, two ends
    (conform h26 L1). The new run starts without ``on_start``, as one business run; it ends so."""
    hooks: list[tuple[str, str]] = []

    def hooked(version: str) -> cf.Flow:
        on = cf.Hooks(
            on_start=lambda ctx: hooks.append(("start", ctx.run.id)),
            on_success=lambda ctx: hooks.append(("success", ctx.run.id)),
            on_complete=lambda ctx: hooks.append(("complete", ctx.run.id)),
        )
        flow = cf.define("hooked", version=version, hooks=on).step("a", lambda ctx: "A")
        return flow.pause("hold").step("b", lambda ctx: version)

    rt.register(hooked("v1"))
    old = await rt.trigger("hooked")
    await rt.wait_idle()
    rt.register(hooked("v2"))
    new = await rt.migrate(old, "v2")
    await rt.resume(await paused_token(rt, new), {"approved": True})
    assert (await rt.wait(new, timeout=5)).output == "v2"
    await rt.wait_idle()
    assert hooks == [("start", old), ("success", new), ("complete", new)]


async def test_a_half_done_parallel_whose_functions_were_reordered_keeps_each_ones_output(
    tmp_path: Path,
) -> None:
    """Carried by place, a ``parallel`` reordered between versions gave ``slow``'s place the
    output ``fast`` had recorded, never called ``slow``, and called ``fast`` again (conform h27
    M2). Each function is its item's by name: the done one keeps its output where the new
    list puts it, the other runs."""
    calls: Counter[str] = Counter()
    gate = asyncio.Event()

    def checks(version: str) -> cf.Flow:
        async def fast(ctx: Any) -> str:
            calls["fast"] += 1
            return "F"

        async def slow(ctx: Any) -> str:
            calls["slow"] += 1
            await gate.wait()
            return "S"

        listed = [fast, slow] if version == "v1" else [slow, fast, lambda ctx: "new"]
        return cf.define("checks", version=version).parallel("g", listed)

    async with cf.Runtime(db=tmp_path / "reordered.db", workflows=[checks("v1")]) as rt:
        old = await rt.trigger("checks")
        rt.register(checks("v2"))
        for _ in range(200):
            if calls["fast"] and calls["slow"]:
                break
            await asyncio.sleep(0.01)
        new = await rt.migrate(old, "v2")
        gate.set()
        result = await rt.wait(new, timeout=5)
    assert (result.status, result.output) == ("completed", ["S", "F", "new"])
    assert calls == {"fast": 1, "slow": 2}  # slow was running: it runs again, as a step does


async def test_a_migrated_runs_timeout_counts_afresh(rt: cf.Runtime, clock: ManualClock) -> None:
    """``define(timeout="1h")``: a run migrated 30 minutes in waited on with no limit (conform
    h27 M7). Its timeout counts from the migration, as its sleeps do."""

    def timed(version: str) -> cf.Flow:
        return cf.define("timed", version=version, timeout="1h").pause("hold").step("b", str)

    rt.register(timed("v1"))
    old = await rt.trigger("timed")
    await rt.wait_idle()
    rt.register(timed("v2"))
    clock.advance(1800)
    new = await rt.migrate(old, "v2")
    await rt.wait_idle()
    clock.advance(3500)  # past the first run's deadline, not the migrated one's
    await rt.wait_idle()
    assert (await rt.inspect(new)).status == "waiting"
    clock.advance(200)
    result = await rt.wait(new, timeout=5)
    assert (result.status, result.error) == ("failed", "run timed out after 3600 s")


def _pending_orders(hooks: cf.Hooks, down: list[bool], gate: asyncio.Event | None = None) -> Any:
    """Two versions of a flow whose v1 cannot start a run while ``down`` (a service it reads
    at its first step is down), the run waiting at a pause in v2."""

    def orders(version: str) -> cf.Flow:
        def first(ctx: cf.FlowContext) -> bool:
            if version == "v1" and down:
                raise ConnectionError("the rates service is down")
            return True

        flow = cf.define("orders", version=version, concurrency=1, hooks=hooks)
        # (each version's if_ its own: one a run decided is not asked again in a migration)
        return flow.if_(f"big_{version}", first).step("review", str).end_if().pause("hold")

    return [orders("v1"), orders("v2")]


async def _pending(rt: cf.Runtime) -> str:
    run_id = await rt.trigger("orders", {"n": 1})
    await rt.wait_idle()
    with pytest.raises(MigrationError, match="the migration is pending"):
        await rt.migrate(run_id, "v1")
    return run_id


@pytest.mark.parametrize("first", ["cancel", "migrate"])
async def test_a_give_up_and_a_migration_asked_at_once_are_not_both_done(
    tmp_path: Path, first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cause fixed, one caller asked the pending migration again while another canceled the
    run: both were answered as done, the planned run started after the give-up freed its place
    (two runs of a concurrency-1 flow), the run's end hooks were called by both, and a resume of
    it then ran its work in a third (hostile h27 H1); concurrent cancels each gave it up and
    called the hooks (L1). One wins: a migration, or one give-up, whose hooks are called once."""
    ended: list[str] = []
    down = [True]
    hooks = cf.Hooks(on_complete=lambda ctx: ended.append(ctx.run.id))
    async with cf.Runtime(db=tmp_path / "race.db", workflows=_pending_orders(hooks, down)) as rt:
        run_id = await _pending(rt)
        queued = await rt.trigger("orders", {"n": 2})  # behind the run's place
        planned = (await rt.migration_links(run_id)).migrated_to
        down.clear()
        exists = rt.store.instance_exists

        async def slow_answer(instance_id: str) -> bool:  # the window a loaded store leaves
            found = await exists(instance_id)
            await asyncio.sleep(0.05)
            return found

        monkeypatch.setattr(rt.store, "instance_exists", slow_answer)
        calls = [rt.cancel(run_id), rt.migrate(run_id, "v1"), rt.cancel(run_id)]
        if first == "migrate":
            calls.reverse()
        answers = await asyncio.gather(*calls, return_exceptions=True)
        await rt.wait_idle()
        won = [a for a in answers if not isinstance(a, BaseException)]
        assert len(won) == 1, answers  # (a cancel answers None)
        # the others told why, not that the run "has ended, and nothing changes it any more"
        # while its migration was still to give up (hostile h29 M1)
        assert all(isinstance(a, MigrationError) for a in answers if a not in won), answers
        migrated = won == [planned]
        assert (await rt.migration_links(run_id)).migrated_to == (planned if migrated else None)
        assert await rt.store.instance_exists(planned) is migrated
        assert ended == ([] if migrated else [run_id])
        # one run in progress: the migrated one, or the queued one the give-up let in
        assert (await rt.store.queued_run(queued) is not None) is migrated
        assert (await rt.inspect(queued)).status == "waiting"  # (in its queue, or at its pause)


async def test_the_end_hooks_of_a_given_up_migration_are_owed_until_called(tmp_path: Path) -> None:
    """A give-up called the run's end hooks off the record: a crash while they ran, and they
    were never called (chaos h27 F3). They are owed from the commit that gives it up, as any
    run's end's are: cut by a stop, they are called at the next start."""
    calls: list[str] = []
    hung = asyncio.Event()  # never set: the hook hangs until the stop gives up on it

    async def on_complete(ctx: Any) -> None:
        calls.append(ctx.run.id)
        if len(calls) == 1:
            await hung.wait()

    down = [True]
    flows = _pending_orders(cf.Hooks(on_complete=on_complete), down)
    rt = cf.Runtime(db=tmp_path / "owed.db", workflows=flows)
    await rt.start()
    run_id = await _pending(rt)
    await rt.cancel(run_id)  # gives the migration up
    for _ in range(500):
        if calls:
            break
        await asyncio.sleep(0.01)
    await rt.stop(drain=0.2)  # the hook is cut
    async with cf.Runtime(db=tmp_path / "owed.db", workflows=flows) as again:
        await again.wait_idle()
        for _ in range(500):
            if len(calls) == 2:
                break
            await asyncio.sleep(0.01)
    assert calls == [run_id, run_id]


async def test_a_second_migration_keeps_what_the_first_carried_and_the_run_had_not_reached(
    tmp_path: Path,
) -> None:
    """Migrated to a version with a new first step that waits, the run had not yet reached the
    steps the old run completed when it was migrated again: the second migration carried only
    what the run itself completed, and those steps (and a ``for_each``'s done items) ran again
    (chaos h27 F5). What a run was handed and has not used goes on with it."""
    calls: Counter[str] = Counter()

    def charge(ctx: Any) -> str:
        calls["charge"] += 1
        return "charged"

    def per_item(item: int, ctx: Any) -> int:
        calls[f"item{item}"] += 1
        return item

    def order(version: str) -> cf.Flow:
        flow = cf.define("order", version=version)
        if version != "v1":
            flow = flow.pause("check")  # a new first step: the run waits there
        flow = flow.step("charge", charge).for_each("lines", lambda ctx: [1, 2], per_item)
        return flow.pause("ship").step("done", lambda ctx: ctx.steps["lines"])

    db = tmp_path / "twice.db"
    async with cf.Runtime(db=db, workflows=[order("v1")]) as rt:
        run_id = await rt.trigger("order")
        await rt.wait_idle()
        rt.register(order("v2"))
        rt.register(order("v3"))
        second = await rt.migrate(run_id, "v2")
        await rt.wait_idle()
        third = await rt.migrate(second, "v3")
        await rt.wait_idle()
        for _ in range(2):  # check, then ship
            [paused] = await rt.list_paused()
            await rt.resume(paused.token, {})
            await rt.wait_idle()
        result = await rt.wait(third, timeout=5)
    assert result.status == "completed"
    assert calls == {"charge": 1, "item1": 1, "item2": 1}


async def test_a_pending_migration_waits_for_a_runtime_that_registers_its_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A runtime without the migration's target version tried to carry it on at its start and
    logged an ERROR with a traceback and the Python API's advice (newcomer h27). It leaves the
    plan, saying which version it waits for; the next runtime that registers it carries it on."""
    down = [True]
    db = tmp_path / "waits.db"
    v1, v2 = _pending_orders(cf.Hooks(), down)
    async with cf.Runtime(db=db, workflows=[v1, v2]) as rt:
        run_id = await _pending(rt)
        planned = (await rt.migration_links(run_id)).migrated_to
    down.clear()
    with caplog.at_level("WARNING", logger="cronflow_actors.runtime.migrations"):
        async with cf.Runtime(db=db, workflows=[v2]) as rt:
            await rt.wait_idle()
            assert not await rt.store.instance_exists(planned)
    waits = [r for r in caplog.records if "waits for a process that registers" in r.message]
    assert [r.levelname for r in waits] == ["WARNING"]
    assert "orders v1" in waits[0].message
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    async with cf.Runtime(db=db, workflows=[v1, v2]) as rt:
        await rt.wait_idle()
        assert (await rt.inspect(planned)).status == "waiting"


async def test_a_migration_through_a_version_in_between_runs_nothing_there(
    tmp_path: Path,
) -> None:
    """One ``migrate(run, "v3")`` through v2 (the registered migrations v1->v2, v2->v3): the
    v2 run, which lives only for the hop, called the running step's function too, v2's code,
    before it was canceled for the next hop (conform h27 M5). It runs nothing; the step runs
    again in v3 only, as a migration documents."""
    calls: Counter[str] = Counter()
    gate = asyncio.Event()

    def hop(version: str) -> cf.Flow:
        async def charge(ctx: Any) -> str:
            calls[version] += 1
            await gate.wait()
            return f"charged by {version}"

        return cf.define("hop", version=version).step("a", lambda ctx: "a").step("charge", charge)

    async with cf.Runtime(db=tmp_path / "hop.db", workflows=[hop("v1")]) as rt:
        run_id = await rt.trigger("hop")
        for version in ("v2", "v3"):
            rt.register(hop(version))
        rt.register(cf.net.migration("v1", "v2", workflow="hop").build())
        rt.register(cf.net.migration("v2", "v3", workflow="hop").build())
        for _ in range(300):
            if calls["v1"]:
                break
            await asyncio.sleep(0.01)
        new = await rt.migrate(run_id, "v3")
        gate.set()
        result = await rt.wait(new, timeout=5)
    assert (result.status, result.output) == ("completed", "charged by v3")
    assert calls == {"v1": 1, "v3": 1}


def test_a_parallel_function_is_its_item_by_name_and_an_older_run_s_item_by_place() -> None:
    """A ``parallel``'s item names its function by qualified name and which of that name it is,
    not its module (a file served as ``app`` and run as ``__main__``: the reviewer's h27 H3,
    every run in flight failed after such a restart). A carried item matches the new item of
    the same function wherever the list puts it, and one a version before recorded by place
    alone (``{"index": i}``) the item at that place (H1: an upgraded run called its done
    functions again)."""
    from cronflow_actors.flow.fanout import _function_payloads, _place_of
    from cronflow_actors.messages.migrations import same_item

    def fetch(ctx: Any) -> int:
        return 1

    def price(ctx: Any) -> int:
        return 2

    payloads = _function_payloads([fetch, price, fetch])
    assert [(p["index"], p["fn"].rsplit(".", 1)[-1], p["nth"]) for p in payloads] == [
        (0, "fetch", 0),
        (1, "price", 0),
        (2, "fetch", 1),
    ]
    assert all(":" not in p["fn"] for p in payloads)  # no module in the name
    reordered = _function_payloads([price, fetch, fetch])
    assert same_item(payloads[0], reordered[1])  # fetch, first of its name, now second
    assert not same_item(payloads[0], reordered[0])
    assert same_item({"index": 1}, reordered[1])  # an older run's item: by place
    assert not same_item({"index": 1}, reordered[0])
    assert not same_item({"item": 1, "index": 1}, reordered[1])  # a for_each's: by value
    place = _place_of(reordered)
    assert [place(p) for p in payloads] == [1, 0, 2]
    assert place({"index": 2}) == 2  # an older run's item goes on by place
    assert place({"index": 0, "fn": "renamed", "nth": 0}) == 0


GROUPS = {
    "parallel": lambda flow: flow.parallel("a", [lambda ctx: 1, lambda ctx: 2]),
    "race": lambda flow: flow.race("a", [lambda ctx: "won"]),
    "for_each": lambda flow: flow.for_each("a", lambda ctx: [1, 2], lambda item, ctx: item * 10),
}


@pytest.mark.parametrize("kind", sorted(GROUPS))
async def test_a_carried_group_is_the_next_steps_last_and_the_runs_output(
    rt: cf.Runtime, clock: ManualClock, kind: str
) -> None:
    """A ``parallel``, ``race`` or ``for_each`` a migration or a resume carried over left
    ``ctx.last`` as it was before it (None): the next step read None, and a run that ended
    there had no output (conform h32 F1), where ``ctx.steps`` and ``inspect`` showed it."""
    attempts: Counter[str] = Counter()

    def after(ctx: cf.FlowContext) -> Any:
        attempts[ctx.run.workflow_id] += 1
        if ctx.run.workflow_id == "g" and attempts["g"] == 1:
            raise ConnectionError("down")
        return {"last": ctx.last}

    def flow(name: str, version: str) -> cf.Flow:
        return GROUPS[kind](cf.define(name, version=version)).sleep("nap", "1m").step("b", after)

    rt.register(flow("g", "v1"))
    rt.register(flow("m", "v1"))
    failed = await failed_after(rt, clock, "g")
    [group] = [s for s in (await rt.inspect(failed)).steps if s.id == "a"]
    resumed = await rt.wait(await rt.replay(failed, resume=True), timeout=5)
    assert (resumed.status, resumed.output) == ("completed", {"last": group.output})

    held = await rt.trigger("m")
    await rt.wait_idle()  # asleep after its group
    rt.register(flow("m", "v2"))
    moved = await rt.migrate(held, "v2")
    await rt.wait_idle()
    clock.advance(60)
    migrated = await rt.wait(moved, timeout=5)
    assert (migrated.status, migrated.output) == ("completed", {"last": group.output})


async def test_the_end_hooks_of_a_resumed_run_list_only_what_ran_in_it(tmp_path: Path) -> None:
    """A resumed run's ``ctx.run.completed`` listed the function of a ``parallel`` its run
    before had completed under the resumed run's key, which nothing ran under, and the key it
    charged under nowhere (conform h32 F2): a carried item ran in the run before, and is not
    listed, as a carried step is not."""
    keys: dict[str, list[str]] = {"fast": [], "slow": []}
    ended: list[dict[str, list[str]]] = []

    async def fast(ctx: Any) -> str:
        keys["fast"].append(ctx.idempotency_key)
        return "F"

    async def slow(ctx: Any) -> str:
        keys["slow"].append(ctx.idempotency_key)
        await asyncio.sleep(0.05)  # after fast completed
        if len(keys["slow"]) == 1:
            raise ConnectionError("slow broke")
        return "S"

    hooks = cf.Hooks(on_complete=lambda ctx: ended.append(dict(ctx.run.completed)))
    flow = cf.define("pair", hooks=hooks).parallel("g", [fast, slow]).step("z", str)
    async with cf.Runtime(db=tmp_path / "pair.db", workflows=[flow]) as rt:
        failed = await rt.trigger("pair")
        assert (await rt.wait(failed, timeout=5)).status == "failed"
        resumed = await rt.replay(failed, resume=True)
        assert (await rt.wait(resumed, timeout=5)).status == "completed"
        for _ in range(100):
            if len(ended) == 2:
                break
            await asyncio.sleep(0.01)
    assert len(keys["fast"]) == 1  # not called again
    first, then = ended
    assert first == {"g": keys["fast"]}
    assert then["g"] == [keys["slow"][1]]  # slow's second call, under the key it kept
    assert len(then["z"]) == 1


async def test_a_carried_step_has_its_kind_for_a_reader_without_the_flow(tmp_path: Path) -> None:
    """``inspect --db`` (a reader with no definition) showed a migrated run's carried steps as
    ``unknown``, where the server showed ``step`` (chaos h32 F2)."""
    db = tmp_path / "kinds.db"
    flows = [cf.define("k", version=v).step("one", str).pause("hold") for v in ("v1", "v2")]
    async with cf.Runtime(db=db, workflows=flows) as rt:
        old = await rt.trigger("k")
        await rt.wait_idle()
        new = await rt.migrate(old, "v1")
        await rt.wait_idle()
        served = [(s.id, s.kind) for s in (await rt.inspect(new)).steps]
        # and that it was carried, not run here (review h32 F1: the console told it by its
        # missing start, which a dummy task or an empty for_each has too)
        assert [s.carried for s in (await rt.inspect(new)).steps] == [True, False]
        assert not any(s.carried for s in (await rt.inspect(old)).steps)
    store = await open_store_to_read(str(db), setting="--db")
    reader = cf.Runtime(store=store)  # not started, no flows: as the CLI's --db reads
    try:
        read = [(s.id, s.kind) for s in (await reader.inspect(new)).steps]
    finally:
        await store.close()
    assert served[0] == ("one", "step")
    assert read == served


async def test_a_carried_step_keeps_the_error_its_fallback_answered(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """A step whose ``on_error`` answered shows ``completed`` with the error beside its output;
    carried over by a resume or a migration it read as if it had succeeded (conform h31 F3)."""
    tries: Counter[str] = Counter()

    def charge(ctx: cf.FlowContext) -> str:
        raise ConnectionError("the bank is down")

    def ship(ctx: cf.FlowContext) -> str:
        tries[ctx.run.workflow_id] += 1
        if ctx.run.workflow_id == "g" and tries["g"] == 1:
            raise RuntimeError("no truck")
        return "shipped"

    def flow(name: str, version: str) -> cf.Flow:
        answered = cf.define(name, version=version).step("charge", charge)
        return answered.on_error(lambda ctx: "later").sleep("nap", "1m").step("ship", ship)

    answered = "ConnectionError: the bank is down"
    rt.register(flow("g", "v1"))
    failed = await failed_after(rt, clock, "g")
    [before] = [s for s in (await rt.inspect(failed)).steps if s.id == "charge"]
    assert (before.status, before.output, before.error) == ("completed", "later", answered)
    resumed = await rt.replay(failed, resume=True)
    assert (await rt.wait(resumed, timeout=5)).status == "completed"
    resumed_again = await rt.replay(failed, resume=True)  # (the same run answers)
    [kept] = [s for s in (await rt.inspect(resumed_again)).steps if s.id == "charge"]
    assert (kept.status, kept.output, kept.error, kept.attempts) == (
        "completed",
        "later",
        answered,
        0,
    )

    rt.register(flow("m", "v1"))
    held = await rt.trigger("m")
    await rt.wait_idle()  # asleep after charge
    rt.register(flow("m", "v2"))
    moved = await rt.migrate(held, "v2")
    await rt.wait_idle()
    again = await rt.migrate(moved, "v1")  # carried on by a second migration too
    await rt.wait_idle()
    for run_id in (moved, again):
        [kept] = [s for s in (await rt.inspect(run_id)).steps if s.id == "charge"]
        assert (kept.output, kept.error) == ("later", answered), run_id


async def test_a_carried_subflow_or_flow_per_item_reads_as_carried(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """A ``subflow`` or a ``for_each`` of item flows carried over read "not started" after a
    resume (no kind of its own kept), and as run here after a migration (its child workflows
    made anew, each carried), where the other carried steps read "carried over" (conform h33
    F2)."""
    fail = {"on": True}

    def b(ctx: cf.FlowContext) -> str:
        if fail["on"]:
            raise ValueError("b fails")
        return "b"

    def per(item: Any, flow: cf.Flow) -> cf.Flow:
        return flow.step("s", lambda ctx: item)

    def flow(version: str) -> cf.Flow:
        return (
            cf.define("f", version=version)
            .subflow("sub", "kid")
            .for_each("fef", lambda ctx: [1, 2], per)
            .sleep("nap", "1m")
            .step("b", b)
        )

    rt.register(cf.define("kid").step("k", lambda ctx: "kid-out"))
    rt.register(flow("v1"))
    failed = await failed_after(rt, clock, "f")
    fail["on"] = False
    resumed = await rt.replay(failed, resume=True)
    await rt.wait_idle()
    clock.advance(60)
    assert (await rt.wait(resumed, timeout=5)).status == "completed"
    held = await rt.trigger("f")
    await rt.wait_idle()  # asleep, after both
    rt.register(flow("v2"))
    moved = await rt.migrate(held, "v2")
    await rt.wait_idle()
    for run_id in (moved, resumed):
        shown = {s.id: s for s in (await rt.inspect(run_id)).steps}
        for name in ("sub", "fef"):
            step = shown[name]
            assert (step.status, step.carried, step.attempts) == ("completed", True, 0), run_id
            assert step.started_at is None
    assert not {s.id: s for s in (await rt.inspect(resumed)).steps}["b"].carried  # it ran here


async def test_a_group_deadline_its_fallback_answered_is_kept_when_carried_over(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """The error of a ``race`` whose deadline its ``on_error`` answered (the task's own, no
    item's) was lost by a resume and a migration: the carried step showed no error (review
    h33 F2), where a step's answered error is kept."""
    fail = {"on": True}

    async def forever(ctx: cf.FlowContext) -> None:
        await asyncio.sleep(3600)

    def last(ctx: cf.FlowContext) -> str:
        if fail["on"]:
            raise ValueError("later step fails")
        return "ok"

    def flow(version: str) -> cf.Flow:
        return (
            cf.define("f", version=version)
            .race("r", [forever], timeout="30s")
            .on_error(lambda ctx: "fallback")
            .sleep("nap", "1m")
            .step("last", last)
        )

    said = "StepTimeoutError: race 'r' timed out after 30 s"
    rt.register(flow("v1"))
    failed = await rt.trigger("f")
    await asyncio.sleep(0.05)
    clock.advance(30)
    await rt.wait_idle()
    clock.advance(60)
    assert (await rt.wait(failed, timeout=5)).status == "failed"
    fail["on"] = False
    resumed = await rt.replay(failed, resume=True)
    await rt.wait_idle()
    held = await rt.trigger("f")
    await asyncio.sleep(0.05)
    clock.advance(30)
    await rt.wait_idle()  # asleep, after its race
    rt.register(flow("v2"))
    moved = await rt.migrate(held, "v2")
    await rt.wait_idle()
    for run_id in (resumed, moved):
        [step] = [s for s in (await rt.inspect(run_id)).steps if s.id == "r"]
        assert (step.status, step.output, step.error, step.carried) == (
            "completed",
            "fallback",
            said,
            True,
        ), run_id


async def test_the_migration_of_a_resume_is_no_replay(rt: cf.Runtime, clock: ManualClock) -> None:
    """A resume B of a failed run A, migrated to C: C read "replay of A" (its envelope's), where
    it is the migration of B (retest h33 F9); B is A's resume, and A's work is now in C."""
    fail = {"on": True}

    def charge(ctx: cf.FlowContext) -> str:
        if fail["on"]:
            raise ValueError("down")
        return "charged"

    def flow(version: str) -> cf.Flow:
        return cf.define("f", version=version).step("charge", charge).pause("hold")

    rt.register(flow("v1"))
    first = await rt.trigger("f")
    assert (await rt.wait(first, timeout=5)).status == "failed"
    fail["on"] = False
    resumed = await rt.replay(first, resume=True)
    await rt.wait_idle()  # at its pause
    rt.register(flow("v2"))
    moved = await rt.migrate(resumed, "v2")
    await rt.wait_idle()
    shown = await rt.inspect(moved)
    assert (shown.replay_of, shown.migrated_from) == (None, resumed)
    assert (await rt.inspect(resumed)).replay_of == first
    assert (await rt.inspect(first)).current_run_id == moved
    # B's work goes on in C: a replay of B would do it twice (conform h34 F2: it started one,
    # the migration's links reading "migrated from" nothing)
    assert (await rt.migration_links(moved)).migrated_from == resumed
    assert (await rt.migration_links(resumed)).migrated_from is None  # A's resume, no migration
    with pytest.raises(MigrationError, match=f"replay '{moved}'"):
        await rt.replay(resumed)
    assert len(await rt.list_runs(workflow="f")) == 3


async def test_a_wait_timeout_its_fallback_answered_is_kept_when_carried_over(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    """A ``wait_for_event`` whose timeout its ``on_error`` answered lost that error when a
    resume carried the step over (retest2 h33 F3), as a group's deadline did."""
    fail = {"on": True}

    def last(ctx: cf.FlowContext) -> str:
        if fail["on"]:
            raise ValueError("later step fails")
        return "ok"

    flow = (
        cf.define("w")
        .wait_for_event("w", "never.comes", timeout="30s")
        .on_error(lambda ctx: {"fb": "wait"})
        .step("last", last)
    )
    rt.register(flow)
    failed = await failed_after(rt, clock, "w", 30)
    [was] = [s for s in (await rt.inspect(failed)).steps if s.id == "w"]
    assert was.error == "StepTimeoutError: timed out after 30 s waiting for event 'never.comes'"
    assert was.error_type == "cronflow_actors.errors.StepTimeoutError"
    fail["on"] = False
    resumed = await rt.replay(failed, resume=True)
    assert (await rt.wait(resumed, timeout=5)).status == "completed"
    [step] = [s for s in (await rt.inspect(resumed)).steps if s.id == "w"]
    assert (step.status, step.output, step.error, step.carried) == (
        "completed",
        {"fb": "wait"},
        was.error,
        True,
    )

"""``Runtime.replay``: a new run from a run's recorded trigger or a new payload, with mocked
steps for that run only; what a restart does to a replay's mocks; inspecting runs of flows that
are no longer registered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors.cli.render import render_run
from cronflow_actors.errors import (
    ConfigurationError,
    MigrationError,
    NotFoundError,
    ReplayRefusedError,
)
from cronflow_actors.kernel import ManualClock


def checkout(charged: list[Any]) -> cf.Flow:
    def charge(ctx: Any) -> dict[str, Any]:
        charged.append(ctx.payload["amount"])  # the side effect a mock stands in for
        return {"charged": ctx.payload["amount"]}

    return (
        cf.define("checkout")
        .step(
            "read",
            lambda ctx: {
                "payload": ctx.payload,
                "tenant": ctx.trigger.headers.get("x-tenant"),
                "kind": ctx.trigger.kind,
            },
        )
        .sleep("settle", "10m")
        .step("charge", charge, retry=cf.Retry(attempts=2, delay=5, backoff="fixed"))
        .step("receipt", lambda ctx: {"receipt": ctx.last, "read": ctx.steps["read"]})
    )


async def test_a_replay_runs_again_from_the_recorded_trigger(
    tmp_path: Path, clock: ManualClock
) -> None:
    charged: list[Any] = []
    async with cf.Runtime(
        db=tmp_path / "replay.db", clock=clock, workflows=[checkout(charged)]
    ) as rt:
        original = await rt.trigger("checkout", {"amount": 30}, headers={"x-tenant": "acme"})
        await rt.wait_idle()
        clock.advance(600)
        first = await rt.wait(original)
        again = await rt.replay(original)
        await rt.wait_idle()
        clock.advance(600)
        replayed = await rt.wait(again)
        assert replayed.output == first.output
        read = {"payload": {"amount": 30}, "tenant": "acme", "kind": "manual"}
        assert first.output["read"] == read
        assert charged == [30, 30]
        info = await rt.inspect(again)
        assert (info.replay_of, info.payload) == (original, {"amount": 30})
        assert info.status == "completed"
        assert (await rt.inspect(original)).replay_of is None

        # a new payload; the recorded headers and kind stay
        other = await rt.replay(original, payload={"amount": 5})
        await rt.wait_idle()
        clock.advance(600)
        output = (await rt.wait(other)).output
        assert output["read"] == {"payload": {"amount": 5}, "tenant": "acme", "kind": "manual"}
        assert charged == [30, 30, 5]
        assert len(await rt.list_runs(workflow="checkout")) == 3
        # counted as replays, not as starts by the recorded trigger (newcomer h22 L8)
        started = {
            line.split('trigger="', 1)[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in rt.metrics.render().decode().splitlines()
            if line.startswith("cronflow_runs_started_total{") and 'workflow="checkout"' in line
        }
        assert started == {"manual": 1.0, "replay": 2.0, "migration": 0.0}


async def test_mocked_steps_replace_the_real_ones_for_that_run_only(
    tmp_path: Path, clock: ManualClock
) -> None:
    charged: list[Any] = []
    mock_calls: list[int] = []

    def fake_charge(ctx: Any) -> dict[str, Any]:
        mock_calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("the fake gateway blips once")
        return {"charged": "fake"}

    async with cf.Runtime(
        db=tmp_path / "mock.db", clock=clock, workflows=[checkout(charged)]
    ) as rt:
        original = await rt.trigger("checkout", {"amount": 30})
        await rt.wait_idle()
        clock.advance(600)
        await rt.wait(original)
        replay = await rt.replay(original, mock_steps={"charge": fake_charge})
        await rt.wait_idle()
        assert rt.instances.__len__() == 0  # asleep, out of memory: its mock must outlive that
        clock.advance(600)  # the sleep ends; the mock fails once and is retried 5 s later
        await rt.wait_idle()
        clock.advance(5)
        result = await rt.wait(replay)
        assert result.output["receipt"] == {"charged": "fake"}
        assert mock_calls == [1, 2]  # the step's retry applies to its mock
        assert charged == [30]  # the real charge ran for the original run only
        steps = {s.id: s for s in (await rt.inspect(replay)).steps}
        assert (steps["charge"].attempts, steps["charge"].output) == (2, {"charged": "fake"})
        # later runs of the flow are not mocked
        plain = await rt.trigger("checkout", {"amount": 7})
        await rt.wait_idle()
        clock.advance(600)
        await rt.wait(plain)
        assert charged == [30, 7]
        assert await rt.store.kv_get("cronflow:replays", "mocked", now=clock.now()) == {}


async def test_a_mock_lost_in_a_restart_fails_its_step_instead_of_running_the_real_one(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "lost.db"
    charged: list[Any] = []
    async with cf.Runtime(db=db, clock=clock, workflows=[checkout(charged)]) as first:
        original = await first.trigger("checkout", {"amount": 30})
        await first.wait_idle()
        clock.advance(600)
        await first.wait(original)
        replay = await first.replay(original, mock_steps={"charge": lambda ctx: "fake"})
        await first.wait_idle()  # asleep before the mocked step
    async with cf.Runtime(db=db, clock=clock, workflows=[checkout(charged)]) as second:
        clock.advance(600)
        result = await second.wait(replay)
        assert result.status == "failed"
        assert result.error is not None
        assert "MockLostError" in result.error
        assert "step 'charge' of replay" in result.error
        assert charged == [30]  # the real charge did not run in the mock's place
        info = await second.inspect(replay)
        steps = {s.id: s for s in info.steps}
        assert steps["read"].status == "completed"  # recorded before the restart
        assert steps["charge"].attempts == 1  # no retry for a lost mock
        assert info.replay_of == original
        # a replay without mocks, and new runs, are not affected by the restart
        again = await second.replay(original)
        await second.wait_idle()
        clock.advance(600)
        assert (await second.wait(again)).status == "completed"
        assert charged == [30, 30]
        assert await second.store.kv_get("cronflow:replays", "mocked", now=clock.now()) == {}


async def test_a_bad_replay_is_refused_and_starts_nothing(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "refused.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[checkout([])]) as rt:
        original = await rt.trigger("checkout", {"amount": 1})
        await rt.wait_idle()
        with pytest.raises(NotFoundError, match="no run 'nope'"):
            await rt.replay("nope")
        with pytest.raises(ConfigurationError, match=r"one of \['read', 'charge', 'receipt'\]"):
            await rt.replay(original, mock_steps={"settle": lambda ctx: None})
        with pytest.raises(ConfigurationError, match="a function"):
            await rt.replay(original, mock_steps={"charge": "fake"})
        with pytest.raises(ConfigurationError, match="a dict of step ids"):
            await rt.replay(original, mock_steps=["charge"])  # type: ignore[arg-type]
        assert len(await rt.list_runs()) == 1
    async with cf.Runtime(db=db, clock=clock) as bare:  # the flow is not registered here
        with pytest.raises(NotFoundError, match="no flow 'checkout'"):
            await bare.replay(original)


async def test_a_replay_with_an_id_of_its_own_starts_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A client's retry of a replay started a second one (hostile h23): ``instance_id``, as for
    ``trigger``, makes it safe to repeat. A mocked replay under a taken id is refused before it
    touches the mocks of the run that has that id."""
    charged: list[Any] = []
    async with cf.Runtime(
        db=tmp_path / "once.db", clock=clock, workflows=[checkout(charged)]
    ) as rt:
        original = await rt.trigger("checkout", {"amount": 30})
        await rt.wait_idle()
        clock.advance(600)
        await rt.wait(original)
        mocked = await rt.replay(
            original, mock_steps={"charge": lambda ctx: "first"}, instance_id="m-1"
        )
        assert mocked == "m-1"
        await rt.wait_idle()  # asleep before its mocked step
        for mocks in (None, {"charge": lambda ctx: "second"}):
            with pytest.raises(cf.errors.InstanceExistsError, match="'m-1' already exists"):
                await rt.replay(original, mock_steps=mocks, instance_id="m-1")
        with pytest.raises(ConfigurationError, match="letters, digits"):
            await rt.replay(original, instance_id="hook:" + "0" * 32)
        clock.advance(600)
        result = await rt.wait("m-1")
        assert result.output["receipt"] == "first"  # its own mock, not the refused one's
        assert charged == [30]
        assert len(await rt.list_runs(workflow="checkout")) == 2


async def test_a_run_of_a_flow_no_longer_registered_is_inspected_from_its_snapshot(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "orphan.db"
    flow = (
        cf.define("orphan")
        .step("a", lambda ctx: "A")
        .sleep("nap", "1m")
        .human_in_the_loop("approve", description="ok?")
        .step("b", lambda ctx: "B")
    )
    async with cf.Runtime(db=db, clock=clock, workflows=[flow]) as first:
        run_id = await first.trigger("orphan")
        await first.wait_idle()
        clock.advance(60)
        await first.wait_idle()
    async with cf.Runtime(db=db, clock=clock) as second:
        info = await second.inspect(run_id)
        assert (info.workflow, info.status, info.workflow_name) == ("orphan", "waiting", None)
        assert [(s.id, s.kind, s.status) for s in info.steps] == [
            ("a", "step", "completed"),
            ("nap", "sleep", "completed"),
            ("approve", "human", "waiting"),
        ]
        assert info.steps[0].output == "A"
        [listed] = await second.list_runs()
        assert listed.id == run_id


async def test_a_failed_run_resumes_from_its_failed_step_keeping_what_it_completed(
    tmp_path: Path,
) -> None:
    """A replay ran every step again, side effects included; migrate refused a run that had
    ended (newcomer h23 M2: Temporal's reset, DBOS's resume). ``resume=True`` keeps what the
    run completed, with its recorded outputs, and runs the rest from the step that failed."""
    charged: list[int] = []
    down = [True]
    keys: list[str] = []

    def charge(ctx: Any) -> dict[str, Any]:
        charged.append(ctx.payload["amount"])
        return {"charged": ctx.payload["amount"]}

    def ship(ctx: Any) -> str:
        keys.append(ctx.idempotency_key)
        if down:
            raise ConnectionError("carrier down")
        return f"shipped after {ctx.steps['charge']['charged']}"

    flow = cf.define("order").step("charge", charge).step("ship", ship)
    db = tmp_path / "resume.db"
    async with cf.Runtime(db=db, workflows=[flow]) as rt:
        failed = await rt.trigger("order", {"amount": 30})
        assert (await rt.wait(failed)).status == "failed"
        with pytest.raises(ConfigurationError, match="none with resume=True"):
            await rt.replay(failed, payload={"amount": 1}, resume=True)
        with pytest.raises(ConfigurationError, match="a resume's id is its run's"):
            await rt.replay(failed, resume=True, instance_id="mine")
        down.clear()  # the carrier is back (a fix deployed)
        resumed = await rt.replay(failed, resume=True)
        # one resume a run: asked again (a client's retry), the same one answers, nothing more
        # runs (the review's H2: each resume ran the rest again)
        assert await rt.replay(failed, resume=True) == resumed
        assert resumed.startswith("resume:")
        result = await rt.wait(resumed)
        assert (result.status, result.output) == ("completed", "shipped after 30")
        assert charged == [30]  # not charged again
        # the step that failed keeps its idempotency key: what it may have done before it
        # failed is known by it downstream (the review's H2)
        assert keys == [keys[0], keys[0]]
        assert keys[0].startswith(failed)
        info = await rt.inspect(resumed)
        assert (info.replay_of, info.migrated_from) == (failed, None)
        assert (await rt.migration_links(resumed)).migrated_from is None  # (the review's M)
        steps = {s.id: (s.status, s.attempts, s.output) for s in info.steps}
        assert steps["charge"] == ("completed", 0, {"charged": 30})  # kept, not run
        assert steps["ship"][:2] == ("completed", 1)
        before = await rt.inspect(failed)
        assert before.status == "failed"  # the run itself is as it was, and says where its
        assert before.resumed_as == resumed  # work goes on (newcomer h31 F2)
        shown = render_run(msgspec.to_builtins(before))  # (as the CLI's inspect prints it)
        assert f"  resumed as {resumed} (its work went on there)" in shown.splitlines()
        assert (await rt.inspect(resumed)).resumed_as is None
        listed = {run.id: run.resumed_as for run in await rt.list_runs(workflow="order")}
        assert listed == {resumed: None, failed: resumed}  # (newcomer h35 F5: a listing says it)
        with pytest.raises(ReplayRefusedError, match="it is completed: a resume goes on from"):
            await rt.replay(resumed, resume=True)  # (a MigrationError too: devx h40 F10)
        again = await rt.replay(failed)  # from the start, as before
        assert (await rt.wait(again)).status == "completed"
        assert charged == [30, 30]
        assert len(await rt.list_runs(workflow="order")) == 3


async def test_a_run_a_migration_replaced_is_not_resumed(rt: cf.Runtime) -> None:
    """Canceled for its migration, its successor goes on from it: resuming it too ran the
    rest twice (the review's H1)."""
    rt.register(cf.define("flow", version="v1").step("a", str).pause("wait").step("b", str))
    run_id = await rt.trigger("flow")
    await rt.wait_idle()
    rt.register(cf.define("flow", version="v2").step("a", str).pause("wait").step("b", str))
    new = await rt.migrate(run_id, "v2")
    assert (await rt.inspect(run_id)).status == "canceled"
    with pytest.raises(ReplayRefusedError, match=f"canceled for its migration to '{new}'"):
        await rt.replay(run_id, resume=True)
    with pytest.raises(MigrationError, match=f"canceled for its migration to '{new}'"):
        await rt.replay(run_id)  # (the class it had, as a caller may catch it)


async def test_a_queued_resume_goes_on_though_its_run_was_deleted_meanwhile(
    rt: cf.Runtime,
) -> None:
    """A resume waiting in its flow's queue read the run it resumes when it left the queue:
    deleted meanwhile (retention), it could not start and held the queue (the review's M5).
    It keeps what it needs from the start."""
    import asyncio

    gate, holds = asyncio.Event(), asyncio.Event()
    prepared: list[str] = []

    async def work(ctx: Any) -> str:
        if ctx.payload == "fail" and not gate.is_set():
            raise ValueError("failed")
        if ctx.payload == "hold":
            holds.set()
        await gate.wait()
        return f"done after {ctx.steps['prepare']}"

    flow = cf.define("one", concurrency=1).step("prepare", lambda ctx: prepared.append(ctx.payload))
    rt.register(flow.step("work", work))
    failed = await rt.trigger("one", "fail")
    assert (await rt.wait(failed)).status == "failed"
    holding = await rt.trigger("one", "hold")
    await holds.wait()  # (wait_idle would wait for its gate)
    resumed = await rt.replay(failed, resume=True)  # queued behind the one holding the place
    assert (await rt.inspect(resumed)).steps == []
    assert await rt.store.prune(finished_before=rt.clock.now() + 1) == 1  # the failed run
    behind = await rt.trigger("one", "next")
    gate.set()
    assert (await rt.wait(holding, timeout=5)).status == "completed"
    ended = await rt.wait(resumed, timeout=5)
    assert (ended.status, ended.output) == ("completed", "done after None")
    assert (await rt.wait(behind, timeout=5)).status == "completed"  # the queue went on
    assert prepared == ["fail", "hold", "next"]  # the resume kept its prepare step


@pytest.mark.parametrize("where", ["subflow", "for_each", "batch"])
async def test_a_step_that_failed_in_a_part_of_a_run_keeps_its_key_when_resumed(
    tmp_path: Path, where: str
) -> None:
    """The step that failed keeps its ``ctx.idempotency_key`` when its run is resumed: a step of
    a subflow's run, of a flow per item or per chunk got a new one, and a call that had acted
    before its answer was lost was made again under a key its service could not know (the
    newcomer's h26 F0: a reservation per chunk made twice)."""
    keys: list[str] = []
    down = [True]

    def charge(ctx: Any) -> str:
        keys.append(ctx.idempotency_key)
        if down:
            raise ConnectionError("payment service down (it may have charged)")
        return "charged"

    child = cf.define("pay").step("charge", charge)
    flow = cf.define("order").step("a", lambda ctx: 1)
    if where == "subflow":
        flow = flow.subflow("pay", child)
    elif where == "for_each":
        flow = flow.for_each(
            "lines", lambda ctx: [1, 2], lambda item, flow: flow.step("charge", charge)
        )
    else:
        flow = flow.batch(
            "lines", lambda ctx: [1, 2, 3], 2, lambda chunk, flow: flow.step("charge", charge)
        )
    async with cf.Runtime(db=tmp_path / "keys.db", workflows=[child, flow]) as rt:
        failed = await rt.trigger("order")
        assert (await rt.wait(failed, timeout=5)).status == "failed"
        before = set(keys)
        keys.clear()
        down.clear()
        resumed = await rt.replay(failed, resume=True)
        assert (await rt.wait(resumed, timeout=5)).status == "completed"
        # each step that failed ran again under its key (a chunk that never began: its own)
        assert before <= set(keys), (before, keys)


async def test_each_item_of_a_resumed_group_keeps_its_own_key(tmp_path: Path) -> None:
    """A resumed ``for_each`` whose items 2 (failed) and 3 (in flight, canceled with its step)
    did not complete: each ran again under the key of the step's last item, item 2 under item
    3's, the two sharing one (the reviewer's h26 H1: one customer's charge answered with
    another's). Each keeps its own; item 1, done, is not run again."""
    seen: list[tuple[int, str]] = []
    calls: list[int] = []
    gate = asyncio.Event()

    async def per_item(item: int, ctx: Any) -> int:
        seen.append((item, ctx.idempotency_key))
        calls.append(item)
        first = calls.count(item) == 1
        if item == 2 and first:
            raise ConnectionError("item 2 broke")
        if item == 3 and first:
            await gate.wait()  # in flight when item 2 fails
        return item * 10

    flow = cf.define("keys").for_each("g", lambda ctx: [1, 2, 3], per_item)
    first, result = await _resumed_after_failing(tmp_path, flow, seen, gate.set)
    assert result.status == "completed"
    assert dict(seen) == {2: first[2], 3: first[3]}


async def _resumed_after_failing(
    tmp_path: Path, flow: cf.Flow, seen: list[tuple[int, str]], fix: Any
) -> tuple[dict[int, str], Any]:
    """Run ``flow`` until it fails, then ``fix()`` and resume it: the keys ``seen`` before the
    resume (``seen`` then holds the resume's), and the resume's result."""
    async with cf.Runtime(db=tmp_path / "resumed.db", workflows=[flow]) as rt:
        failed = await rt.trigger(flow.id)
        assert (await rt.wait(failed, timeout=5)).status == "failed"
        first = dict(seen)
        seen.clear()
        fix()
        return first, await rt.wait(await rt.replay(failed, resume=True), timeout=5)


@pytest.mark.parametrize("kind", ["batch", "while_"])
async def test_the_units_after_the_one_that_failed_have_keys_of_their_own(
    tmp_path: Path, kind: str
) -> None:
    """A resumed ``batch`` gave every chunk after the one that failed that chunk's key, and a
    ``while_`` every later iteration (one payload for all): two units of work under one key, a
    charge answered with another's (chaos h27 F1). The one that failed keeps its key, once."""
    seen: list[tuple[int, str]] = []
    down = [True]

    def unit(n: int, ctx: Any) -> int:
        seen.append((n, ctx.idempotency_key))
        if n == 2 and down:
            raise ConnectionError("unit 2 broke")
        return n

    if kind == "batch":
        flow = cf.define("units").batch(
            "g", lambda ctx: [1, 2, 3, 4], 1, lambda chunk, ctx: unit(chunk[0], ctx)
        )
    else:
        flow = cf.define("units").while_(
            "g", lambda ctx: (ctx.last or 0) < 4, lambda ctx: unit((ctx.last or 0) + 1, ctx)
        )
    first, result = await _resumed_after_failing(tmp_path, flow, seen, down.clear)
    assert result.status == "completed"
    assert [n for n, _ in seen] == [2, 3, 4]  # unit 1 is not run again
    keys = dict(seen)
    assert keys[2] == first[2]
    assert len({keys[2], keys[3], keys[4]}) == 3, seen


@pytest.mark.parametrize("broken", [False, True])
async def test_a_resume_onto_a_newer_version_runs_no_migrations_code(
    tmp_path: Path, broken: bool
) -> None:
    """A resume onto a version a migration was registered to ran that migration's code: its
    task migrator (answering ``continue``) had a completed step called again, its initializer
    and finalizer ran, and one that raised made every resume raise it, so a run whose migration
    was given up for that reason could not be resumed (conform h27 H1). A resume keeps what
    the run completed and runs the rest; it is no migration."""
    calls: list[str] = []
    seen: list[str] = []

    def order(version: str) -> cf.Flow:
        def charge(ctx: Any) -> str:
            calls.append(f"{version}:charge")
            return "charged"

        def ship(ctx: Any) -> str:
            if version == "v1":
                raise ConnectionError("carrier down")
            return "shipped"

        return cf.define("order", version=version).step("charge", charge).step("ship", ship)

    def initializer(ctx: Any) -> None:
        seen.append("initializer")
        if broken:
            raise RuntimeError("the migration's initializer is down")

    migration = (
        cf.net.migration("v1", "v2", workflow="order")
        .task_migrators({"order/charge": lambda ctx: seen.append("migrator") or "continue"})
        .initializer(initializer)
        .finalizer(lambda ctx: seen.append("finalizer"))
        .build()
    )
    async with cf.Runtime(db=tmp_path / "r.db", workflows=[order("v1")]) as rt:
        failed = await rt.trigger("order")
        assert (await rt.wait(failed, timeout=5)).status == "failed"
        rt.register(order("v2"))
        rt.register(migration)
        resumed = await rt.replay(failed, resume=True)
        result = await rt.wait(resumed, timeout=5)
        assert (result.status, result.output) == ("completed", "shipped")
        assert (await rt.inspect(resumed)).version == "v2"
    assert calls == ["v1:charge"]  # charged once
    assert seen == []


async def test_a_resumed_runs_timeout_counts_from_the_resume(tmp_path: Path) -> None:
    """A resumed run had no run ``timeout`` (conform h27 M7, as a migrated one): it counts from
    the resume."""
    clock = ManualClock(start=1_000_000.0)
    down = [True]

    def flaky(ctx: Any) -> str:
        if down:
            raise ConnectionError("down")
        return "up"

    flow = cf.define("timed", timeout="1h").step("a", flaky).pause("hold")
    async with cf.Runtime(db=tmp_path / "t.db", clock=clock, workflows=[flow]) as rt:
        failed = await rt.trigger("timed")
        assert (await rt.wait(failed, timeout=5)).status == "failed"
        clock.advance(3000)
        down.clear()
        resumed = await rt.replay(failed, resume=True)
        await rt.wait_idle()
        clock.advance(3500)
        await rt.wait_idle()
        assert (await rt.inspect(resumed)).status == "waiting"
        clock.advance(200)
        result = await rt.wait(resumed, timeout=5)
        assert (result.status, result.error) == ("failed", "run timed out after 3600 s")


async def test_a_resume_of_a_resume_keeps_what_the_first_run_completed_and_its_key(
    tmp_path: Path,
) -> None:
    """A resume canceled in its flow's queue (it never started) was resumed in turn: its own
    record was empty, so the new run ran the first run's completed step again and the failed
    step under a new key (newcomer h27 F2). A resume that failed again, resumed, gave its step
    its own key, not the one it kept. What a run was handed and did not use goes on, keys too."""
    calls: list[tuple[str, str]] = []
    down = [True]

    def charge(ctx: Any) -> str:
        calls.append(("charge", ctx.idempotency_key))
        return "charged"

    def ship(ctx: Any) -> str:
        calls.append(("ship", ctx.idempotency_key))
        if down:
            raise ConnectionError("carrier down")
        return "shipped"

    flow = (
        cf.define("order", concurrency=1)
        .if_("held", lambda ctx: bool(ctx.payload.get("hold")))
        .pause("hold")
        .end_if()
        .step("charge", charge)
        .step("ship", ship)
    )
    async with cf.Runtime(db=tmp_path / "chain.db", workflows=[flow]) as rt:
        failed = await rt.trigger("order", {})
        assert (await rt.wait(failed, timeout=5)).status == "failed"
        [key] = {k for step, k in calls if step == "ship"}
        again = await rt.wait(await rt.replay(failed, resume=True), timeout=5)  # fails again
        assert again.status == "failed"
        holder = await rt.trigger("order", {"hold": True})  # takes the flow's one place
        await rt.wait_idle()
        queued = await rt.replay(again.id, resume=True)
        await rt.cancel(queued)  # canceled in its queue: it never started
        await rt.cancel(holder)
        down.clear()
        resumed = await rt.wait(await rt.replay(queued, resume=True), timeout=5)
        assert (resumed.status, resumed.output) == ("completed", "shipped")
    assert [c for c in calls if c[0] == "charge"] == [("charge", calls[0][1])]
    assert {k for step, k in calls if step == "ship"} == {key}


def test_a_key_an_older_resume_stored_twice_is_taken_once() -> None:
    """A run resumed by an older version stored a root step's kept key both by step
    (``MigrationRecord.keys``) and by step and payload (the root's ``CarriedChild.keys``): the
    first item took it from one, the next from the other, two units of work under one key (the
    reviewer's h27 H2). Taken from one, it goes from both; the next item keeps its own."""
    from cronflow_actors.engine.fast_forward import take_key
    from cronflow_actors.messages.engine import InstanceState, WorkflowRecord, WorkItemRecord
    from cronflow_actors.messages.migrations import CarriedChild, MigrationRecord

    root = WorkflowRecord(id="r", name="loop")
    state = InstanceState(id="r", workflow="loop", workflows={"r": root})
    for taken_first in ("by step and payload", "by step"):
        state.migration = MigrationRecord(
            workflow="loop",
            from_instance="old",
            from_version="v1",
            to_version="v1",
            keys={"g": "old.w2"},
            children=[CarriedChild(path=(), keys=[("g", None, "old.w2")])],
        )
        if taken_first == "by step":
            state.migration.children[0].keys.clear()
            state.migration.children[0].keys.append(("g", "other payload", "old.w2"))
        items = [
            WorkItemRecord(id=f"r.w{n}", name="g", workflow_id="r", task="g", generation=n)
            for n in (3, 4)
        ]
        assert [take_key(state, root, item) for item in items] == ["old.w2", ""], taken_first


def per_line_orders(charged: list[Any]) -> cf.Flow:
    """A ``for_each`` whose handler builds a flow per item, after a sleep."""

    def per_line(line: Any, flow: cf.Flow) -> cf.Flow:
        def charge(ctx: Any) -> str:
            charged.append(line)
            return f"charged {line}"

        return flow.step("charge", charge)

    each = cf.define("orders").sleep("settle", "10m")
    return each.for_each("lines", lambda ctx: ctx.payload["lines"], per_line)


async def test_a_mock_of_a_for_each_that_builds_a_flow_per_item_stands_in_for_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The mock was accepted and never called: each item's flow ran its real functions, and a
    replay meant to mock the charge out charged (conform h39 F3). It is called per item, as a
    ``for_each`` of one function calls it, and a restart that lost it fails the construct."""
    charged: list[Any] = []
    mocks = {"lines": lambda item, ctx: f"mocked {item}"}
    mocked = [{"item": n, "result": f"mocked {n}", "index": n - 1} for n in (1, 2)]
    harness = per_line_orders(charged).test().trigger({"lines": [1, 2]})
    tested = await harness.mock_step("lines", mocks["lines"]).run()
    assert (tested.status, tested.output["results"], charged) == ("completed", mocked, [])

    db = tmp_path / "orders.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[per_line_orders(charged)]) as rt:
        original = await rt.trigger("orders", {"lines": [1, 2]})
        await rt.wait_idle()
        clock.advance(600)
        assert (await rt.wait(original)).status == "completed"
        assert sorted(charged) == [1, 2]
        replay = await rt.replay(original, mock_steps=mocks)
        await rt.wait_idle()
        clock.advance(600)
        assert (await rt.wait(replay)).output["results"] == mocked
        assert sorted(charged) == [1, 2]  # the real charges: the original run's alone
        lost = await rt.replay(original, mock_steps=mocks)
        await rt.wait_idle()  # asleep before the mocked construct
    async with cf.Runtime(db=db, clock=clock, workflows=[per_line_orders(charged)]) as again:
        clock.advance(600)
        result = await again.wait(lost)
        assert result.status == "failed"
        assert "MockLostError" in str(result.error)
        assert sorted(charged) == [1, 2]


async def test_a_chain_of_resumes_stores_no_more_for_each_resume(tmp_path: Path) -> None:
    """Each resume of a resume held the one before's trigger twice over (its root, and its
    root's entry among the children): the stored run doubled at each, and a chain of 20 took
    2 GB and a minute a resume (h44). Its steps' outputs still go on."""
    tries: list[int] = []

    def flaky(ctx: cf.FlowContext) -> str:
        tries.append(1)
        if len(tries) < 12:
            raise RuntimeError("down")
        return "up"

    flow = cf.define("flaky").step("first", lambda ctx: "kept").step("second", flaky)
    async with cf.Runtime(db=tmp_path / "chain.db", workflows=[flow]) as rt:
        run = await rt.trigger("flaky", {"order": 7})
        await rt.wait(run)
        sizes = []
        for _ in range(11):
            run = await rt.replay(run, resume=True)
            result = await rt.wait(run)
            snapshot = await rt.store.load_snapshot(run)
            assert snapshot is not None
            sizes.append(len(snapshot.body))
        assert result.status == "completed"
        info = await rt.inspect(run)
        assert [(s.id, s.output) for s in info.steps] == [("first", "kept"), ("second", "up")]
        assert info.payload == {"order": 7}
        assert max(sizes) <= sizes[1] * 1.2, sizes

"""One owner per instance: concurrent starts of one id start it once, a database has one owning
runtime at a time, and resume tokens cannot be guessed from run ids."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.errors import (
    InstanceExistsError,
    LeaseHeldError,
    LeaseLostError,
    ResumeError,
    SnapshotDamagedError,
)
from cronflow_actors.kernel import ManualClock
from cronflow_actors.messages import LeaseRecord
from cronflow_actors.runtime.collector import RunsInMemory, runs_in_memory
from cronflow_actors.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]


def counted(calls: Counter[str]) -> net.NetSpec:
    async def step(ctx: Any) -> str:
        calls[ctx.parent.id] += 1
        await asyncio.sleep(0.01)
        return "done"

    def initialized(ctx: Any) -> None:
        calls["initialized " + ctx.workflow.id] += 1

    return (
        net.workflow("once")
        .start_condition("start")
        .end_condition("end")
        .task("t", net.task(step))
        .connect_condition("start", "t")
        .connect_task("t", "end")
        .activities(on_initialized=initialized)
        .build()
    )


async def test_fifty_concurrent_starts_of_one_id_start_it_once(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    async with cf.Runtime(db=tmp_path / "o.db", workflows=[counted(calls)]) as rt:
        results = await asyncio.gather(
            *(rt.start_workflow("once", instance_id="order-1") for _ in range(50)),
            return_exceptions=True,
        )
        assert results.count("order-1") == 1
        refused = [r for r in results if r != "order-1"]
        assert len(refused) == 49
        assert all(isinstance(r, InstanceExistsError) for r in refused)
        info = await rt.wait_workflow("order-1")
        assert (info.state, info.output) == ("completed", "done")
        # Started again after it ended: still refused, and nothing ran again.
        with pytest.raises(InstanceExistsError):
            await rt.start_workflow("once", instance_id="order-1")
        await rt.wait_idle()
    # The duplicates ran none of the workflow's code, not even its initialize activity.
    assert calls == {"order-1": 1, "initialized order-1": 1}


@pytest.mark.parametrize("concurrency", [None, 1])
async def test_fifty_concurrent_triggers_of_one_run_id_run_it_once(
    tmp_path: Path, concurrency: int | None
) -> None:
    ran: Counter[str] = Counter()

    async def step(ctx: Any) -> str:
        ran[ctx.run.id] += 1
        return "ok"

    flow = cf.define("dedupe", concurrency=concurrency).step("s", step)
    async with cf.Runtime(db=tmp_path / "t.db", workflows=[flow]) as rt:
        if concurrency:  # the limit is taken, so the duplicates race on the queue
            blocker = await rt.trigger("dedupe", instance_id="first")
        results = await asyncio.gather(
            *(rt.trigger("dedupe", {"n": n}, instance_id="key-7") for n in range(50)),
            return_exceptions=True,
        )
        assert results.count("key-7") == 1
        assert sum(isinstance(r, InstanceExistsError) for r in results) == 49
        assert (await rt.wait("key-7", timeout=10)).status == "completed"
        if concurrency:
            await rt.wait(blocker, timeout=10)
    assert ran["key-7"] == 1


async def test_a_second_runtime_on_the_same_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "owned.db"
    async with cf.Runtime(db=db) as first:
        second = cf.Runtime(db=db)
        with pytest.raises(LeaseHeldError) as refused:
            await second.start()
        assert f"pid {os.getpid()}" in str(refused.value)
        assert first.lease.owner in str(refused.value)
        assert second.state == "stopped"
        assert first.state == "running"
    # A clean stop releases the lease: the next runtime starts at once.
    began = time.monotonic()
    async with cf.Runtime(db=db) as third:
        assert third.state == "running"
    assert time.monotonic() - began < 1.0


async def test_a_start_that_fails_midway_leaves_nothing_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run in flight whose snapshot no longer decodes: recovery fails after the lease is taken,
    # the actors are running and another run is in memory. The caller's start raises, and
    # 'async with' never calls stop(): the runtime must let go of it all.
    db = tmp_path / "broken.db"
    gate = asyncio.Event()
    started: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]

    async def held(ctx: Any) -> str:
        started[ctx.payload].set()
        await gate.wait()
        return "done"

    flow = cf.define("held").step("s", held)
    async with cf.Runtime(db=db, workflows=[flow]) as rt:
        good, broken = await rt.trigger("held", 0), await rt.trigger("held", 1)
        await asyncio.gather(*(event.wait() for event in started))
    with sqlite3.connect(db) as connection:  # a map, but not a snapshot: found as it loads,
        connection.execute(  # after the good run (recovery loads the latest updated first)
            "UPDATE instances SET body = x'80', updated_at = 0 WHERE instance_id = ?", (broken,)
        )
    counted, loaded = runs_in_memory.count, []
    added = RunsInMemory.added
    monkeypatch.setattr(RunsInMemory, "added", lambda self: (loaded.append(1), added(self)))
    first = cf.Runtime(db=db, workflows=[flow])
    with pytest.raises(SnapshotDamagedError, match=f"snapshot of run '{broken}' cannot be read"):
        await first.start()
    assert first.state == "stopped"
    assert loaded == [1]  # the good run was loaded before the failure
    assert runs_in_memory.count == counted  # and it left memory with the stop
    monkeypatch.undo()
    # the lease was given back: another runtime takes the file at once (and fails the same way,
    # not with LeaseHeldError)
    began = time.monotonic()
    with pytest.raises(SnapshotDamagedError, match="restore the database from a backup") as e:
        await cf.Runtime(db=db, workflows=[flow]).start()
    assert time.monotonic() - began < 1.0
    assert e.value.instance_id == broken
    assert isinstance(e.value.__cause__, msgspec.ValidationError)
    with sqlite3.connect(db) as connection:  # not even MessagePack: found by the pinning scan
        connection.execute("UPDATE instances SET body = x'c1' WHERE instance_id = ?", (broken,))
    with pytest.raises(SnapshotDamagedError, match=f"snapshot of run '{broken}'") as e:
        await cf.Runtime(db=db, workflows=[flow]).start()
    assert isinstance(e.value.__cause__, msgspec.DecodeError)
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM instances WHERE instance_id = ?", (broken,))
    gate.set()
    async with cf.Runtime(db=db, workflows=[flow]) as again:
        assert (await again.wait(good, timeout=10)).output == "done"


async def test_a_runtime_that_lost_its_lease_writes_nothing(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "lost.db"
    calls: Counter[str] = Counter()
    async with cf.Runtime(db=db, clock=clock, workflows=[counted(calls)]) as first:
        await first.wait_workflow(await first.start_workflow("once"))
        # This runtime stalls (its clock, and so its heartbeat, stands still) while another
        # one takes the expired lease over.
        async with SQLiteStore(db) as other:
            now = clock.now() + 60
            await other.acquire_lease(
                LeaseRecord(
                    owner="other",
                    host="h",
                    pid=1,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=now + 5,
                )
            )
        with pytest.raises(LeaseLostError, match="other holds it"):
            await first.start_workflow("once", instance_id="after-the-loss")
        async with SQLiteStore(db) as check:
            assert await check.load_snapshot("after-the-loss") is None


def _owner(db: Path, lease: float) -> subprocess.Popen[str]:
    code = (
        "import asyncio, sys\n"
        "import cronflow_actors as cf\n"
        "async def main():\n"
        f"    async with cf.Runtime(db=sys.argv[1], lease_seconds={lease}):\n"
        "        print('ready', flush=True)\n"
        "        await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def test_after_a_sigkill_the_next_runtime_takes_over_once_the_lease_expires(
    tmp_path: Path,
) -> None:
    db = tmp_path / "killed.db"
    # a lease of 3 s: the kill, and opening the store below, may take a second on a loaded
    # machine, and the refusal half must find it not yet expired
    owner = _owner(db, lease=3.0)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert owner.stdout is not None
    owner.stdout.close()
    # The dead runtime's lease has not expired yet: refused without waiting ...
    with pytest.raises(LeaseHeldError, match="expires in"):
        await cf.Runtime(db=db).start()
    # ... and taken over as soon as it has, with wait_for_lease.
    began = time.monotonic()
    async with cf.Runtime(db=db, wait_for_lease=True) as taker:
        waited = time.monotonic() - began
        assert taker.lease.held
    assert waited < 4.0  # about the lease's rest, not a whole wait of its own


async def test_a_token_derived_from_a_run_id_is_refused(rt: cf.Runtime) -> None:
    rt.register(cf.define("hold").human_in_the_loop("approve", description="ok?").step("s", str))
    run_id = await rt.trigger("hold")
    await rt.wait_idle()
    [paused] = await rt.list_paused()
    assert run_id not in paused.token
    assert len(paused.token) >= 22  # 128 bits and more, url-safe
    for guess in (f"{run_id}.w1", f"{run_id}.w2", f"{run_id}.w3", run_id, paused.token[:-1]):
        with pytest.raises(ResumeError, match="no run is paused with this token") as refused:
            await rt.resume(guess, {"approved": True})
        assert not refused.value.ended
    assert (await rt.inspect(run_id)).status == "waiting"
    await rt.resume(paused.token, {"approved": True})
    assert (await rt.wait(run_id)).status == "completed"
    with pytest.raises(ResumeError, match="already ended") as again:
        await rt.resume(paused.token, {"approved": True})
    assert again.value.ended


async def test_a_lease_admits_work_while_renewed_and_waits_when_its_renewal_is_overdue(
    tmp_path: Path,
) -> None:
    """What the blocking pool asks before a queued call starts: a lease renewed within its
    duration admits it; one overdue (the process was paused) says neither yes nor no until the
    heartbeat renews it or finds it lost; a lost one refuses."""
    clock = ManualClock()
    async with cf.Runtime(db=tmp_path / "lease.db", clock=clock, lease_seconds=1) as rt:
        lease: Any = rt.lease
        assert lease.admits() is True
        clock.advance(1.5)  # as if the process had been paused past its lease
        assert lease.admits() is None
        for _ in range(100):  # the heartbeat, woken by the jump, renews it
            await asyncio.sleep(0.01)
            if lease.admits():
                break
        assert lease.admits() is True
        lease.held = False
        assert lease.admits() is False
        lease.held = True  # (for the stop's release)


async def taken_over(rt: cf.Runtime, db: Path, clock: ManualClock) -> None:
    """Another process takes ``db`` over while ``rt``'s lease is overdue, and ``rt``'s
    heartbeat finds its lease lost: the runtime has failed."""
    async with SQLiteStore(db) as other:
        now = clock.now() + 60
        record = LeaseRecord(
            owner="other", host="h", pid=1, acquired_at=now, renewed_at=now, expires_at=now + 5
        )
        await other.acquire_lease(record)
    clock.advance(60)  # the heartbeat finds the lease lost
    for _ in range(100):
        await asyncio.sleep(0.01)
        if rt.state == "failed":
            break
    assert rt.state == "failed"


async def test_a_step_committed_before_the_lease_lapsed_begins_only_under_a_renewed_lease(
    tmp_path: Path,
) -> None:
    """A process paused past its lease (SIGSTOP, a frozen VM, a loop blocked) wakes with
    attempts it committed before, which the process that took the database over may have run
    and recorded by now: an ``async def`` step began at once, before the heartbeat could tell
    (the crash tester's h24 F1; the blocking pool already waited for the lease's word). It
    waits for that word: begins once the lease is renewed, never once it is found lost."""
    clock = ManualClock()
    began: list[str] = []

    async def work(ctx: Any) -> str:
        began.append(ctx.run.id)
        return "done"

    flow = cf.define("loop-step").step("a", work)
    db = tmp_path / "zombie.db"
    async with cf.Runtime(db=db, clock=clock, lease_seconds=1, workflows=[flow]) as rt:
        lease: Any = rt.lease
        lease._renewed_at = clock.monotonic() - 2  # overdue: its renewal not yet known
        kept = await rt.trigger("loop-step")
        await asyncio.sleep(0.1)
        assert began == []  # committed started, and waiting for the lease's word
        clock.advance(0.5)  # the heartbeat renews it (nobody else took it)
        assert (await rt.wait(kept, timeout=5)).output == "done"
        assert began == [kept]

        lease._renewed_at = clock.monotonic() - 2
        lost = await rt.trigger("loop-step")
        await asyncio.sleep(0.1)
        await taken_over(rt, db, clock)
        await asyncio.sleep(0.1)
        assert began == [kept]  # the other process's to run: never begun here
        assert lost not in began


async def test_the_end_hooks_a_run_owes_begin_only_under_a_renewed_lease(tmp_path: Path) -> None:
    """A run's end hooks are called at least once, off its end's commit: a process paused past
    its lease between that commit and its hooks called the ``async def`` ones at once, while
    the process that took over, finding them owed, called them too. They wait for the lease's
    word as a step does: called once it is renewed, never once it is found lost (left owed)."""
    clock = ManualClock()
    called: list[str] = []
    go = asyncio.Event()

    async def hook(ctx: Any) -> None:
        called.append(ctx.run.id)

    async def work(ctx: Any) -> str:
        await go.wait()
        return "done"

    flow = cf.define("hooked", hooks=cf.Hooks(on_success=hook)).step("a", work)
    db = tmp_path / "hooks.db"
    async with cf.Runtime(db=db, clock=clock, lease_seconds=1, workflows=[flow]) as rt:
        lease: Any = rt.lease
        kept = await rt.trigger("hooked")
        await asyncio.sleep(0.05)  # its step has begun
        lease._renewed_at = clock.monotonic() - 2  # overdue: its renewal not yet known
        go.set()
        assert (await rt.wait(kept, timeout=5)).output == "done"
        await asyncio.sleep(0.1)
        assert called == []  # the end is durable; its hook waits for the lease's word
        clock.advance(0.5)  # the heartbeat renews it (nobody else took it)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if called:
                break
        assert called == [kept]

        go.clear()
        lost = await rt.trigger("hooked")
        await asyncio.sleep(0.05)
        lease._renewed_at = clock.monotonic() - 2
        go.set()
        assert (await rt.wait(lost, timeout=5)).output == "done"
        await asyncio.sleep(0.1)
        await taken_over(rt, db, clock)
        await asyncio.sleep(0.1)
        assert called == [kept]  # the other process's to call: never called here
    async with SQLiteStore(db) as store:
        snapshot = await store.load_snapshot(lost)
        assert snapshot is not None
        assert snapshot.runnable  # the hooks are still owed


def test_a_lease_held_by_a_process_that_ended_here_says_so() -> None:
    """Serve started again at once after a crash exits 2 while the dead process's lease lasts:
    the refusal says that process is gone, and what a supervisor should pass (the newcomer's
    L2). Only said: a host name shared by containers may hide a live holder."""
    import socket

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    here = socket.gethostname()
    gone = LeaseHeldError("x.db", "r1", here, int(ended.stdout), 3.2)
    assert "(no process has that pid on this host now" in str(gone)
    assert "--wait-for-lease (serve, as a supervisor that restarts it should;" in str(gone)
    assert "CRONFLOW_WAIT_FOR_LEASE=1 make run" in str(gone)  # make run takes no flag (h42 F5)
    assert "call its API (POST /runs, cronflow-actors run) instead" in str(gone)  # (h42 F7)
    for host, pid in ((here, os.getppid()), ("another-host", int(ended.stdout))):
        assert "no process has that pid" not in str(LeaseHeldError("x.db", "r1", host, pid, 3.2))
    # its pid come round to this process (a container's PID 1, restarted): the holder is gone,
    # not this one, which waits for its lease (retest h44 N2: "stop it (kill 1)")
    restarted = str(LeaseHeldError("x.db", "r1", here, os.getpid(), 3.2))
    assert "(no process has that pid on this host now" in restarted
    assert "CRONFLOW_WAIT_FOR_LEASE=1 make run" in restarted


def test_a_lease_held_by_a_process_running_here_says_to_stop_it_not_to_wait() -> None:
    """A second ``make run`` on the same file was told to pass CRONFLOW_WAIT_FOR_LEASE=1,
    which then waited for as long as the first one served (newcomer h44 F1)."""
    import socket

    here = LeaseHeldError("x.db", "r1", socket.gethostname(), os.getppid(), 3.2)
    assert f"That runtime runs on this host: stop it (kill {os.getppid()}:" in str(here)
    assert "give this one a database of its own (--db; DB=other.db with make run)" in str(here)
    assert "--wait-for-lease would wait until it stops" in str(here)
    assert "CRONFLOW_WAIT_FOR_LEASE=1" not in str(here)
    elsewhere = LeaseHeldError("x.db", "r1", "another-host", os.getppid(), 3.2)
    assert "CRONFLOW_WAIT_FOR_LEASE=1 make run" in str(elsewhere)  # it may be ending there


def frozen_renewals(rt: cf.Runtime) -> asyncio.Event:
    """The store's lease renewals held until the event is set (a frozen disk's)."""
    thawed, renew = asyncio.Event(), rt.store.renew_lease

    async def frozen(*args: Any, **kwargs: Any) -> None:
        await thawed.wait()
        await renew(*args, **kwargs)

    rt.store.renew_lease = frozen  # type: ignore[method-assign]
    return thawed


async def test_a_database_that_does_not_answer_the_lease_is_said_and_not_ready(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A frozen disk held every write for 25 s while /readyz said the lease was "ok" and the
    log said nothing (crash h44 F2): the renewal overdue, readiness says so, and the log says
    when it began to wait and when the database answered."""
    async with cf.Runtime(db=tmp_path / "frozen.db", lease_seconds=0.6) as rt:
        thawed = frozen_renewals(rt)
        said = "the database has not answered the database lease's renewal for 0.6 s"
        for _ in range(50):
            await asyncio.sleep(0.1)
            if (await rt.readiness())["lease"] != "ok" and said in caplog.text:
                break
        lease = (await rt.readiness())["lease"]
        assert lease.startswith("its renewal is overdue: the database has not answered for over")
        assert said in caplog.text
        thawed.set()
        for _ in range(50):
            await asyncio.sleep(0.1)
            if (await rt.readiness())["lease"] == "ok":
                break
        assert (await rt.readiness())["lease"] == "ok"
        assert "the database answered the database lease's renewal after" in caplog.text


async def test_a_database_that_does_not_answer_as_the_runtime_starts_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen disk at the start held it with no line in the log (retest-edge h44 N5): the
    opening and the lease's first take are said when late (after a fixed patience, not the
    lease's duration, which may be a day: review h45 F18), and again when answered."""
    from cronflow_actors.runtime import ownership

    monkeypatch.setattr(ownership, "PATIENCE", 0.6)
    for late in ("open", "acquire_lease"):
        rt = cf.Runtime(db=tmp_path / f"{late}.db", lease_seconds=3600)
        thawed, store = asyncio.Event(), rt.store
        answer = getattr(store, late)

        async def frozen(
            *args: Any, answer: Any = answer, thawed: asyncio.Event = thawed, **kwargs: Any
        ) -> Any:
            await thawed.wait()
            return await answer(*args, **kwargs)

        setattr(store, late, frozen)
        starting = asyncio.ensure_future(rt.start())
        what = "its opening" if late == "open" else "the database lease's take"
        said = f"the database has not answered {what} for 0.6 s"
        for _ in range(50):
            await asyncio.sleep(0.1)
            if said in caplog.text:
                break
        assert said in caplog.text
        assert "the runtime's start waits for it (serve takes no connection" in caplog.text
        assert not starting.done()
        thawed.set()
        await starting
        assert f"the database answered {what} after" in caplog.text
        assert rt.state == "running"
        await rt.stop()
        caplog.clear()


async def test_a_late_renewal_is_said_after_a_fixed_patience_not_the_leases_duration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a lease of an hour a frozen disk was said after an hour (retest3 h45 N3): the log
    says it after ``PATIENCE``; /readyz turns after the lease's duration, as documented."""
    from cronflow_actors.runtime import ownership

    monkeypatch.setattr(ownership, "PATIENCE", 0.3)
    async with cf.Runtime(db=tmp_path / "long.db", lease_seconds=3) as rt:
        thawed = frozen_renewals(rt)
        said = "the database has not answered the database lease's renewal for 0.3 s"
        for _ in range(30):  # (a renewal every second, said 0.3 s later)
            await asyncio.sleep(0.1)
            if said in caplog.text:
                break
        assert said in caplog.text
        assert "/readyz says not ready once it has waited the lease's duration" in caplog.text
        assert (await rt.readiness())["lease"] == "ok"  # (the lease's 3 s have not passed)
        thawed.set()

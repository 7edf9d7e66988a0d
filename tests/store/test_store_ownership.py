"""The Store contract for ownership and passivation, against both stores: the owner lease and
fenced writes, wake-up rows (waits), queued runs, and listings paged by keyset."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from cronflow_actors.errors import (
    DuplicateInstanceError,
    LeaseHeldError,
    LeaseLostError,
    StoreFailedError,
)
from cronflow_actors.messages import LeaseRecord, Mutation, QueuedRun, SnapshotRecord, WaitRecord
from cronflow_actors.store import SQLiteStore, Store
from tests.store.conftest import only_snapshot, snapshot, timer


def lease(owner: str, now: float, duration: float = 5.0) -> LeaseRecord:
    return LeaseRecord(
        owner=owner,
        host="test-host",
        pid=42,
        acquired_at=now,
        renewed_at=now,
        expires_at=now + duration,
    )


def wait(wait_id: str, key: str, *, kind: str = "event", at: float = 1.0) -> WaitRecord:
    return WaitRecord(
        wait_id=wait_id, instance_id="i1", kind=kind, key=key, step="s", created_at=at
    )


async def test_a_live_lease_keeps_a_second_owner_out_until_it_expires(store: Store) -> None:
    await store.acquire_lease(lease("first", now=100))
    with pytest.raises(LeaseHeldError, match=r"owned by runtime first \(pid 42 on test-host\)"):
        await store.acquire_lease(lease("second", now=103))
    held = await store.current_lease()
    assert held is not None
    assert held.owner == "first"
    # Renewed at 104, it lasts until 109; at 110 it has expired and may be taken over.
    await store.renew_lease("runtime", "first", now=104, expires_at=109)
    with pytest.raises(LeaseHeldError, match=r"expires in 1\.0 s"):
        await store.acquire_lease(lease("second", now=108))
    await store.acquire_lease(lease("second", now=110))
    held = await store.current_lease()
    assert held is not None
    assert held.owner == "second"


async def test_a_released_lease_can_be_taken_at_once(store: Store) -> None:
    await store.acquire_lease(lease("first", now=100))
    await store.release_lease("runtime", "first")
    assert await store.current_lease() is None
    await store.acquire_lease(lease("second", now=100.5))


async def test_an_owner_that_lost_its_lease_writes_nothing_more(tmp_path: Path) -> None:
    path = tmp_path / "owned.db"
    async with SQLiteStore(path) as first, SQLiteStore(path) as second:
        await first.acquire_lease(lease("first", now=100, duration=1))
        await first.commit(only_snapshot(snapshot(revision=1)))
        # Another runtime takes the expired lease; the first one's next write is fenced off.
        await second.acquire_lease(lease("second", now=200))
        with pytest.raises(LeaseLostError, match=r"runtime first lost its lease.*second holds it"):
            await first.commit(only_snapshot(snapshot(revision=2, status="stale")))
        loaded = await second.load_snapshot("i1")
        assert loaded is not None
        assert loaded.revision == 1
        with pytest.raises(StoreFailedError, match="lost its lease"):
            await first.commit(only_snapshot(snapshot("other", revision=1)))
        # The new owner writes on from the stored revision.
        await second.commit(only_snapshot(snapshot(revision=2, status="taken over")))


async def test_renewing_a_lost_lease_fails_the_store(store: Store) -> None:
    await store.acquire_lease(lease("first", now=100, duration=1))
    await store.acquire_lease(lease("second", now=200))
    with pytest.raises(LeaseLostError):
        await store.renew_lease("runtime", "first", now=201, expires_at=206)
    with pytest.raises(StoreFailedError):
        await store.kv_set("ns", "k", 1, now=201)


async def test_waits_are_found_by_key_and_listed_oldest_first(store: Store) -> None:
    await store.commit(
        Mutation(
            snapshot=snapshot(revision=1),
            waits_set=(
                wait("w1", "paid", at=3),
                wait("w2", "paid", at=1),
                wait("w3", "shipped", at=2),
                wait("w4", "tok-abc", kind="pause", at=4),
            ),
        )
    )
    assert [w.wait_id for w in await store.open_waits("event")] == ["w2", "w3", "w1"]
    assert [w.wait_id for w in await store.open_waits("event", key="paid")] == ["w2", "w1"]
    page = await store.open_waits("event", limit=2)
    assert [w.wait_id for w in page] == ["w2", "w3"]
    after = (page[-1].created_at, page[-1].wait_id)
    assert [w.wait_id for w in await store.open_waits("event", after=after)] == ["w1"]
    assert await store.count_open_waits("event") == 3
    found = await store.find_wait("pause", "tok-abc")
    assert found is not None
    assert (found.wait_id, found.ended) == ("w4", False)
    # An ended wait leaves the open listings, but its token is still known (as ended).
    await store.commit(Mutation(snapshot=snapshot(revision=2), waits_end=("w4", "w1")))
    assert await store.open_waits("pause") == []
    assert [w.wait_id for w in await store.open_waits("event", key="paid")] == ["w2"]
    ended = await store.find_wait("pause", "tok-abc")
    assert ended is not None
    assert ended.ended
    assert await store.find_wait("pause", "tok-unknown") is None


async def test_queued_runs_keep_their_order_and_their_ids(store: Store) -> None:
    for n in range(3):
        run = QueuedRun(queue="q", instance_id=f"r{n}", workflow="wf", queued_at=float(n))
        assert await store.enqueue(run) > 0
    assert await store.instance_exists("r1")
    with pytest.raises(DuplicateInstanceError, match="'r1'"):
        await store.enqueue(QueuedRun(queue="q", instance_id="r1", workflow="wf", queued_at=9))
    # A stored instance's id cannot be queued, and a queued run's id cannot be started ...
    await store.commit(only_snapshot(snapshot("taken", revision=1)))
    with pytest.raises(DuplicateInstanceError):
        await store.enqueue(QueuedRun(queue="q", instance_id="taken", workflow="wf", queued_at=9))
    with pytest.raises(DuplicateInstanceError):
        await store.commit(only_snapshot(snapshot("r0", revision=1)))
    # ... except by the start that takes it off the queue, in the same transaction.
    head = await store.queued("q", limit=2)
    assert [r.instance_id for r in head] == ["r0", "r1"]
    assert [r.instance_id for r in await store.queued("q", after=head[-1].seq)] == ["r2"]
    await store.commit(Mutation(snapshot=snapshot("r0", revision=1), dequeued=("r0",)))
    assert [r.instance_id for r in await store.queued("q")] == ["r1", "r2"]
    assert await store.queue_length("q") == 2
    assert await store.queued_run("r0") is None
    queued = await store.queued_run("r2")
    assert queued is not None
    assert queued.workflow == "wf"


async def test_queued_runs_are_listed_newest_first_by_keyset(store: Store) -> None:
    for n, (queue, workflow) in enumerate([("q", "a"), ("shared", "b"), ("q", "a"), ("q", "a")]):
        await store.enqueue(
            QueuedRun(queue=queue, instance_id=f"r{n}", workflow=workflow, queued_at=10.0 + n)
        )
    listed = await store.list_queued(limit=2)
    assert [r.instance_id for r in listed] == ["r3", "r2"]
    after = (listed[-1].queued_at, listed[-1].instance_id)
    assert [r.instance_id for r in await store.list_queued(before=after)] == ["r1", "r0"]
    assert [r.instance_id for r in await store.list_queued(workflow="a")] == ["r3", "r2", "r0"]
    assert await store.list_queued(workflow="nope") == []
    await store.commit(Mutation(snapshot=snapshot("r2", revision=1), dequeued=("r2",)))
    assert [r.instance_id for r in await store.list_queued()] == ["r3", "r1", "r0"]


def run(instance_id: str, created: float, *, workflow: str = "wf", status: str = "running"):  # type: ignore[no-untyped-def]
    return SnapshotRecord(
        instance_id=instance_id,
        workflow=workflow,
        status=status,
        revision=1,
        updated_at=created,
        created_at=created,
    )


async def test_runs_are_listed_newest_first_by_keyset(store: Store) -> None:
    for n in range(5):
        status = "waiting" if n % 2 else "running"
        await store.commit(only_snapshot(run(f"r{n}", float(n), status=status)))
    await store.commit(only_snapshot(run("x", 2.0, workflow="other")))
    first = await store.list_runs(limit=3)
    assert [s.instance_id for s in first] == ["r4", "r3", "x"]
    cursor = (first[-1].created_at, first[-1].instance_id)
    rest = await store.list_runs(limit=3, before=cursor)
    assert [s.instance_id for s in rest] == ["r2", "r1", "r0"]
    assert [s.instance_id for s in await store.list_runs(workflow="other")] == ["x"]
    assert [s.instance_id for s in await store.list_runs(status="waiting")] == ["r3", "r1"]
    assert sorted(await store.unfinished_ids("wf")) == ["r0", "r1", "r2", "r3", "r4"]


async def test_a_page_of_big_runs_stops_at_a_byte_budget(store: Store) -> None:
    sizes = [100, 300, 50, 700, 10]  # bodies, newest last
    for n, size in enumerate(sizes):
        record = msgspec.structs.replace(run(f"r{n}", float(n)), body=b"x" * size)
        await store.commit(only_snapshot(record))
    # newest first: 10, 700 (past 500 bytes: the page ends with it)
    page = await store.list_runs(limit=50, max_bytes=500)
    assert [s.instance_id for s in page] == ["r4", "r3"]
    cursor = (page[-1].created_at, page[-1].instance_id)
    rest = await store.list_runs(limit=50, before=cursor, max_bytes=500)
    assert [s.instance_id for s in rest] == ["r2", "r1", "r0"]  # 450 bytes: all that is left
    one = await store.list_runs(limit=50, max_bytes=1)
    assert [s.instance_id for s in one] == ["r4"]  # always one at least
    assert len(await store.list_runs(limit=2, max_bytes=10_000)) == 2


async def test_a_page_of_big_pauses_stops_at_a_byte_budget(store: Store) -> None:
    await store.commit(only_snapshot(run("r1", 1.0)))
    await store.commit(only_snapshot(run("r2", 2.0)))
    sizes = [10, 700, 50, 300, 100]  # data, oldest first
    waits = tuple(
        msgspec.structs.replace(
            wait(f"w{n}", f"tok{n}", kind="pause", at=float(n)),
            instance_id="r2" if n == 3 else "r1",
            data=b"x" * size,
        )
        for n, size in enumerate(sizes)
    )
    await store.commit(Mutation(waits_set=waits))
    # oldest first: 10, 700 (past 500 bytes: the page ends with it)
    page = await store.open_waits("pause", limit=50, max_bytes=500)
    assert [w.wait_id for w in page] == ["w0", "w1"]
    after = (page[-1].created_at, page[-1].wait_id)
    rest = await store.open_waits("pause", after=after, limit=50, max_bytes=500)
    assert [w.wait_id for w in rest] == ["w2", "w3", "w4"]  # 450 bytes: all that is left
    one = await store.open_waits("pause", after=(0.5, ""), limit=50, max_bytes=1)
    assert [w.wait_id for w in one] == ["w1"]  # always one at least, however big
    assert len(await store.open_waits("pause", limit=2, max_bytes=10_000)) == 2
    assert [w.wait_id for w in await store.open_waits("pause", instance_id="r2")] == ["w3"]
    mine = await store.open_waits("pause", instance_id="r1", limit=1)
    assert [w.wait_id for w in mine] == ["w0"]  # a run's oldest pause first


async def test_runnable_instances_are_found_without_the_others(store: Store) -> None:
    busy = SnapshotRecord(
        instance_id="busy", workflow="wf", status="running", revision=1, updated_at=1, runnable=True
    )
    await store.commit(only_snapshot(busy))
    await store.commit(only_snapshot(run("idle", 1.0, status="waiting")))
    assert [s.instance_id for s in await store.list_snapshots(runnable=True)] == ["busy"]


async def test_timers_are_read_in_pages_of_due_time(store: Store) -> None:
    await store.commit(
        Mutation(
            snapshot=snapshot(revision=1),
            timers_set=tuple(timer(f"t{n}", float(n % 3)) for n in range(6)),
        )
    )
    page = await store.load_timers(limit=4)
    assert [(t.due_at, t.timer_id) for t in page] == [(0, "t0"), (0, "t3"), (1, "t1"), (1, "t4")]
    rest = await store.load_timers(after=(page[-1].due_at, page[-1].timer_id))
    assert [t.timer_id for t in rest] == ["t2", "t5"]


async def test_unfinished_runs_are_running_waiting_or_held(store: Store) -> None:
    """What a flow's limits count after a restart: its runs that are not over, held ones too."""
    statuses = ["running", "waiting", "blocked", "completed", "failed", "canceled"]
    for n, status in enumerate(statuses):
        await store.commit(only_snapshot(run(f"r{n}", float(n), status=status)))
    await store.commit(only_snapshot(run("x", 9.0, workflow="other", status="blocked")))
    assert sorted(await store.unfinished_ids("wf")) == ["r0", "r1", "r2"]
    assert await store.unfinished_ids("other") == ["x"]


async def test_a_holder_paused_inside_a_write_keeps_the_lease_held_not_the_store_failed(
    tmp_path: Path,
) -> None:
    # a standby (wait_for_lease) retries a held lease; a busy file was a failed store, and
    # the standby exited where it should wait for the holder (paused in a write, SIGSTOP)
    path = tmp_path / "busy.db"
    async with SQLiteStore(path) as holder:
        await holder.acquire_lease(lease("holder", now=100))
    paused = sqlite3.connect(path, isolation_level=None)
    paused.execute("BEGIN IMMEDIATE")  # the holder's write, never ended
    try:
        async with SQLiteStore(path, busy_timeout=0.1) as standby:
            with pytest.raises(LeaseHeldError) as held:
                await standby.acquire_lease(lease("standby", now=200))  # expired, but locked
            assert (held.value.owner, held.value.expires_in) == ("holder", 0.0)
            paused.execute("ROLLBACK")  # the holder goes on, or dies: the lock is gone
            await standby.acquire_lease(lease("standby", now=200))
            current = await standby.current_lease()
            assert current is not None
            assert current.owner == "standby"
    finally:
        paused.close()

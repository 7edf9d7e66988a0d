"""What the store tells the metrics, run against the SQLite store and its in-memory twin alike:
runs in flight by status from the indexes, queue lengths, and each commit as it happens."""

from __future__ import annotations

import pytest

from cronflow_actors.messages import Mutation, QueuedRun, WaitRecord
from cronflow_actors.store import Store
from tests.store.conftest import only_snapshot, snapshot


def pause(instance_id: str, wait_id: str, *, kind: str = "pause") -> WaitRecord:
    return WaitRecord(
        wait_id=wait_id, instance_id=instance_id, kind=kind, key=f"key-{wait_id}", created_at=1.0
    )


async def test_runs_in_flight_are_counted_by_workflow_and_status(store: Store) -> None:
    assert await store.count_in_flight() == {}
    await store.commit(only_snapshot(snapshot("r1", workflow="a", status="running")))
    await store.commit(only_snapshot(snapshot("r2", workflow="a", status="running")))
    await store.commit(only_snapshot(snapshot("w1", workflow="a", status="waiting")))
    await store.commit(only_snapshot(snapshot("w2", workflow="b", status="waiting")))
    await store.commit(
        only_snapshot(snapshot("done", workflow="a", status="completed", terminal=True))
    )
    await store.commit(only_snapshot(snapshot("gone", workflow="b", status="failed")))
    # a waiting run with an open pause is paused (and not waiting); an event wait is not a pause
    await store.commit(
        Mutation(
            snapshot=snapshot("p1", workflow="b", status="waiting"),
            waits_set=(pause("p1", "p1.a"), pause("p1", "p1.b")),  # two pauses, one run
        )
    )
    await store.commit(
        Mutation(
            snapshot=snapshot("e1", workflow="b", status="waiting"),
            waits_set=(pause("e1", "e1.a", kind="event"),),
        )
    )
    assert await store.count_in_flight() == {
        ("a", "running"): 2,
        ("a", "waiting"): 1,
        ("b", "waiting"): 2,
        ("b", "paused"): 1,
    }


async def test_a_pause_that_ended_or_a_run_that_moved_on_is_no_longer_paused(store: Store) -> None:
    await store.commit(
        Mutation(
            snapshot=snapshot("p1", workflow="a", status="waiting"),
            waits_set=(pause("p1", "p1.a"),),
        )
    )
    await store.commit(
        Mutation(
            snapshot=snapshot("p2", workflow="a", status="waiting"),
            waits_set=(pause("p2", "p2.a"),),
        )
    )
    assert await store.count_in_flight() == {("a", "paused"): 2}
    # p1 is resumed: its pause ends and it runs; p2 runs another branch while its pause is open
    await store.commit(
        Mutation(snapshot=snapshot("p1", 2, workflow="a", status="running"), waits_end=("p1.a",))
    )
    await store.commit(only_snapshot(snapshot("p2", 2, workflow="a", status="running")))
    assert await store.count_in_flight() == {("a", "running"): 2}
    await store.commit(
        only_snapshot(snapshot("p1", 3, workflow="a", status="completed", terminal=True))
    )
    await store.commit(only_snapshot(snapshot("p2", 3, workflow="a", status="waiting")))
    assert await store.count_in_flight() == {("a", "paused"): 1}


async def test_queue_lengths_count_the_runs_of_each_queue(store: Store) -> None:
    assert await store.queue_lengths() == {}
    for n, queue in enumerate(["q1", "q1", "q2"]):
        await store.enqueue(
            QueuedRun(queue=queue, instance_id=f"r{n}", workflow=queue, queued_at=float(n))
        )
    assert await store.queue_lengths() == {"q1": 2, "q2": 1}
    await store.commit(Mutation(snapshot=snapshot("r2", revision=1), dequeued=("r2",)))
    assert await store.queue_lengths() == {"q1": 2}


async def test_queued_runs_are_counted_by_workflow_whatever_queue_they_wait_in(
    store: Store,
) -> None:
    assert await store.queued_by_workflow() == {}
    for n, (queue, workflow) in enumerate(
        [("queue:emails", "welcome"), ("queue:emails", "digest"), ("welcome", "welcome")]
    ):
        await store.enqueue(
            QueuedRun(queue=queue, instance_id=f"r{n}", workflow=workflow, queued_at=float(n))
        )
    assert await store.queued_by_workflow() == {"welcome": 2, "digest": 1}
    await store.commit(Mutation(snapshot=snapshot("r1", revision=1), dequeued=("r1",)))
    assert await store.queued_by_workflow() == {"welcome": 2}


async def test_the_commit_observer_hears_of_every_commit_once_it_is_durable(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[tuple[float, int]] = []

    def observer(seconds: float, writes: int) -> None:
        heard.append((seconds, writes))

    store.watch_commits(observer)
    await store.commit(only_snapshot(snapshot("a")))
    await store.commit(only_snapshot(snapshot("b")))
    assert len(heard) == 2
    assert all(seconds >= 0 and writes >= 1 for seconds, writes in heard)
    assert sum(writes for _, writes in heard) == 2

    def broken(_seconds: float, _writes: int) -> None:
        raise RuntimeError("observer bug")

    store.watch_commits(broken)
    await store.commit(only_snapshot(snapshot("c")))  # an observer's error changes nothing
    assert await store.load_snapshot("c") is not None
    assert "observer bug" in caplog.text
    store.watch_commits(None)
    await store.commit(only_snapshot(snapshot("d")))
    assert len(heard) == 2

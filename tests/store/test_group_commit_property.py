"""Group commit is invisible: a batch leaves the same state as its mutations applied one by one,
and refuses the same mutations (a stale revision, a second first snapshot) with the same errors."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronflow_actors.messages import (
    JournalEntry,
    Mutation,
    SnapshotRecord,
    TimerRecord,
    WaitRecord,
)
from cronflow_actors.store import MemoryStore, SQLiteStore, Store

INSTANCES = ["a", "b", "c"]

snapshots = st.builds(
    lambda instance, revision, status: SnapshotRecord(
        instance_id=instance,
        workflow="wf",
        status=status,
        revision=revision,
        updated_at=float(revision),
        body=f"{instance}{revision}{status}".encode(),
    ),
    st.sampled_from(INSTANCES),
    st.integers(1, 4),
    st.sampled_from(["running", "waiting", "completed"]),
)
timers = st.builds(
    lambda timer_id, due: TimerRecord(timer_id=timer_id, instance_id="a", due_at=due, kind="k"),
    st.sampled_from(["t1", "t2", "t3"]),
    st.floats(0, 100, allow_nan=False),
)
waits = st.builds(
    lambda wait_id, key: WaitRecord(
        wait_id=wait_id, instance_id="a", kind="event", key=key, created_at=1.0
    ),
    st.sampled_from(["w1", "w2"]),
    st.sampled_from(["paid", "shipped"]),
)
journal = st.builds(
    lambda item, attempt, outcome: JournalEntry(
        instance_id="a", work_item_id=item, attempt=attempt, outcome=outcome, recorded_at=0.0
    ),
    st.sampled_from(["w1", "w2"]),
    st.integers(1, 2),
    st.sampled_from(["completed", "failed"]),
)
mutations = st.builds(
    Mutation,
    snapshot=st.one_of(st.none(), snapshots),
    journal=st.lists(journal, max_size=2).map(tuple),
    timers_set=st.lists(timers, max_size=2).map(tuple),
    timers_cancel=st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=2).map(tuple),
    waits_set=st.lists(waits, max_size=1).map(tuple),
    waits_end=st.lists(st.sampled_from(["w1", "w2"]), max_size=1).map(tuple),
)

# Every mutation that touches instance "a"'s journal, timers or waits goes after a snapshot of "a".
BOOT = Mutation(
    snapshot=SnapshotRecord(instance_id="a", workflow="wf", status="new", revision=1, updated_at=0)
)


async def state_of(store: Store) -> tuple[object, ...]:
    return (
        sorted(await store.list_snapshots(), key=lambda s: s.instance_id),
        [(j.work_item_id, j.attempt, j.outcome) for j in await store.load_journal("a")],
        await store.load_timers(),
        [await store.find_wait("event", key) for key in ("paid", "shipped")],
    )


def outcome(result: object) -> str | None:
    return type(result).__name__ if isinstance(result, BaseException) else None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutations, min_size=1, max_size=12))
def test_a_batch_equals_its_mutations_applied_in_order(batch: list[Mutation]) -> None:
    async def run() -> None:
        one_by_one = MemoryStore()
        await one_by_one.open()
        await one_by_one.commit(BOOT)
        expected = []
        for mutation in batch:
            try:
                await one_by_one.commit(mutation)
                expected.append(None)
            except Exception as error:
                expected.append(type(error).__name__)
        with tempfile.TemporaryDirectory() as tmp:
            async with SQLiteStore(Path(tmp) / "p.db") as batched:
                await batched.commit(BOOT)
                # Submitted together, so the writer takes them as one transaction.
                results = await asyncio.gather(
                    *(batched.commit(m) for m in batch), return_exceptions=True
                )
                assert [outcome(r) for r in results] == expected
                if not any(expected):
                    assert batched.statistics().batches <= 2
                assert await state_of(batched) == await state_of(one_by_one)

    asyncio.run(run())

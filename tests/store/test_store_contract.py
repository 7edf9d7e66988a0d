"""The Store contract, run against the SQLite store and its in-memory twin alike."""

from __future__ import annotations

import asyncio

import pytest

from cronflow_actors.errors import (
    ConfigurationError,
    DuplicateInstanceError,
    MutationRejectedError,
    RevisionConflictError,
    StateValueError,
    StoreClosedError,
)
from cronflow_actors.messages import Mutation
from cronflow_actors.store import MISSING, MemoryStore, Store
from tests.store.conftest import entry, only_snapshot, snapshot, timer


async def test_a_committed_snapshot_reads_back_equal(store: Store) -> None:
    record = snapshot(body=b"\x00\x01binary")
    await store.commit(only_snapshot(record))
    assert await store.load_snapshot("i1") == record
    assert await store.load_snapshot("nope") is None


async def test_revision_one_is_a_new_row_and_a_second_one_is_refused(store: Store) -> None:
    await store.commit(only_snapshot(snapshot(revision=1, status="running")))
    with pytest.raises(DuplicateInstanceError, match=r"'i1'.*already stored"):
        await store.commit(
            Mutation(snapshot=snapshot(revision=1, status="other"), timers_set=(timer("t", 5),))
        )
    loaded = await store.load_snapshot("i1")
    assert loaded is not None
    assert (loaded.revision, loaded.status) == (1, "running")
    assert await store.load_timers() == []
    assert await store.instance_exists("i1")
    assert not await store.instance_exists("i2")
    assert await store.existing_among(["i2", "i1", "i1\x00"]) == {"i1"}  # one read of many
    assert await store.existing_among([]) == set()


async def test_a_snapshot_replaces_only_the_revision_it_was_based_on(store: Store) -> None:
    await store.commit(only_snapshot(snapshot(revision=1)))
    await store.commit(only_snapshot(snapshot(revision=2, status="started")))
    # A stale writer (based on revision 1) and one that skips ahead are both refused.
    for stale in (2, 4):
        with pytest.raises(RevisionConflictError, match=r"based on revision \d, but the store has"):
            await store.commit(only_snapshot(snapshot(revision=stale, status="stale")))
    # An update of an instance that was never stored is a conflict too.
    with pytest.raises(RevisionConflictError, match="no stored snapshot"):
        await store.commit(only_snapshot(snapshot("ghost", revision=3)))
    await store.commit(only_snapshot(snapshot(revision=3, status="completed", terminal=True)))
    loaded = await store.load_snapshot("i1")
    assert loaded is not None
    assert (loaded.revision, loaded.status, loaded.terminal) == (3, "completed", True)
    assert await store.load_snapshot("ghost") is None


async def test_list_snapshots_filters_orders_and_pages(store: Store) -> None:
    await store.commit(only_snapshot(snapshot("a", updated_at=1, workflow="x")))
    await store.commit(only_snapshot(snapshot("b", updated_at=3, workflow="y", status="waiting")))
    await store.commit(
        only_snapshot(snapshot("c", updated_at=2, workflow="x", status="done", terminal=True))
    )
    ids = [s.instance_id for s in await store.list_snapshots()]
    assert ids == ["b", "c", "a"]
    assert [s.instance_id for s in await store.list_snapshots(terminal=False)] == ["b", "a"]
    assert [s.instance_id for s in await store.list_snapshots(workflow="x")] == ["c", "a"]
    assert [s.instance_id for s in await store.list_snapshots(status="waiting")] == ["b"]
    assert [s.instance_id for s in await store.list_snapshots(limit=1, offset=1)] == ["c"]
    with pytest.raises(ConfigurationError, match="limit"):
        await store.list_snapshots(limit=-1)


async def test_the_journal_records_each_attempt_once_in_order(store: Store) -> None:
    await store.commit(Mutation(snapshot=snapshot(), journal=(entry(work_item="w1"),)))
    await store.commit(
        Mutation(
            snapshot=snapshot(revision=2),
            journal=(
                entry(work_item="w2", outcome="failed", output=None, error="boom"),
                entry(work_item="w2", attempt=2),
            ),
        )
    )
    # Recording the same (instance, work item, attempt) again keeps the first record.
    await store.commit(Mutation(journal=(entry(work_item="w1", output=b"recomputed"),)))
    journal = await store.load_journal("i1")
    assert [(j.work_item_id, j.attempt, j.outcome) for j in journal] == [
        ("w1", 1, "completed"),
        ("w2", 1, "failed"),
        ("w2", 2, "completed"),
    ]
    assert journal[0].output == b"out"
    assert journal[1].error == "boom"


async def test_the_journal_reads_back_in_order_in_pages(store: Store) -> None:
    await store.commit(Mutation(snapshot=snapshot(), journal=(entry(step_id="charge"),)))
    await store.commit(Mutation(snapshot=snapshot("i2"), journal=(entry("i2", "x1"),)))
    await store.commit(
        Mutation(
            snapshot=snapshot(revision=2),
            journal=(
                entry(work_item="w2", outcome="retry", output=None, error="boom", recorded_at=7.0),
                entry(work_item="w2", attempt=2),
            ),
        )
    )
    await store.commit(Mutation(journal=(entry(work_item="w3"), entry(work_item="w1"))))

    journal = await store.read_journal("i1")
    assert [(j.kind, j.element, j.attempt, j.revision) for j in journal] == [
        ("completed", "w1", 1, 1),
        ("retry", "w2", 1, 2),
        ("completed", "w2", 2, 2),
        ("completed", "w3", 1, None),  # written without a snapshot
    ]
    assert {j.instance_id for j in journal} == {"i1"}
    assert (journal[0].step, journal[0].output, journal[0].at) == ("charge", b"out", 100.0)
    assert (journal[1].error, journal[1].output, journal[1].at) == ("boom", None, 7.0)
    seqs = [j.seq for j in journal]
    assert seqs == sorted(set(seqs))

    first = await store.read_journal("i1", limit=3)
    rest = await store.read_journal("i1", after=first[-1].seq, limit=3)
    assert first + rest == journal
    assert await store.read_journal("i1", after=journal[-1].seq) == []
    assert await store.read_journal("ghost") == []
    assert [j.element for j in await store.read_journal("i2")] == ["x1"]
    with pytest.raises(ConfigurationError, match="limit"):
        await store.read_journal("i1", limit=0)


async def test_a_pruned_instance_takes_its_journal_along(store: Store) -> None:
    done = snapshot(status="completed", terminal=True, updated_at=1.0)
    await store.commit(Mutation(snapshot=done, journal=(entry(),)))
    assert await store.prune(finished_before=50.0) == 1
    assert await store.read_journal("i1") == []


async def test_prune_leaves_the_instances_it_is_told_to_keep(store: Store) -> None:
    for ident in ("a", "b", "c"):
        done = snapshot(instance_id=ident, status="canceled", terminal=True, updated_at=1.0)
        await store.commit(Mutation(snapshot=done))
    many = [f"other-{n}" for n in range(40_000)]  # past SQLite's limit of parameters
    assert await store.prune(finished_before=50.0, keep=["a", *many, "c"]) == 1
    assert await store.load_snapshot("b") is None
    assert await store.prune(finished_before=50.0, keep={"c"}) == 1
    assert [s.instance_id for s in await store.list_snapshots()] == ["c"]


async def test_prune_leaves_the_instances_a_kv_namespace_names(store: Store) -> None:
    """Read in the delete's own statement: a key written before it keeps its instance (a
    resume's link, read before the prune and then deleted from under it: review h42 F2)."""
    for ident in ("a", "b"):
        done = snapshot(instance_id=ident, status="failed", terminal=True, updated_at=1.0)
        await store.commit(Mutation(snapshot=done))
    await store.kv_set("links", "a", ["resume:a", 1.0], now=1.0)
    await store.kv_set("other", "b", 1, now=1.0)  # another namespace's keeps nothing
    assert await store.prune(finished_before=50.0, keep_keys_of="links") == 1
    assert [s.instance_id for s in await store.list_snapshots()] == ["a"]
    await store.kv_delete("links", "a")
    assert await store.prune(finished_before=50.0, keep_keys_of="links") == 1


async def test_a_mutation_for_an_unknown_instance_is_rejected_whole(store: Store) -> None:
    bad = Mutation(
        snapshot=snapshot("known"),
        journal=(entry(instance_id="ghost"),),
    )
    with pytest.raises(MutationRejectedError, match="ghost"):
        await store.commit(bad)
    # Nothing of the rejected mutation was written, not even its valid snapshot.
    assert await store.load_snapshot("known") is None
    assert await store.load_journal("ghost") == []
    with pytest.raises(MutationRejectedError):
        await store.commit(Mutation(timers_set=(timer("t", 5, instance_id="ghost"),)))
    assert await store.load_timers() == []


async def test_timers_are_set_moved_cancelled_and_found_when_due(store: Store) -> None:
    await store.commit(
        Mutation(
            snapshot=snapshot(), timers_set=(timer("t1", 50), timer("t2", 10), timer("t3", 30))
        )
    )
    assert [t.timer_id for t in await store.load_timers()] == ["t2", "t3", "t1"]
    assert [t.timer_id for t in await store.due_timers(30)] == ["t2", "t3"]
    assert [t.timer_id for t in await store.due_timers(30, limit=1)] == ["t2"]
    # Set then cancel in one mutation leaves it cancelled; moving a timer changes its due time.
    await store.commit(
        Mutation(timers_set=(timer("t4", 1), timer("t1", 5)), timers_cancel=("t4", "t2"))
    )
    assert [(t.timer_id, t.due_at) for t in await store.load_timers()] == [
        ("t1", 5.0),
        ("t3", 30.0),
    ]
    assert [t.timer_id for t in await store.load_timers(instance_id="other")] == []


async def test_key_value_state_with_ttl(store: Store) -> None:
    assert await store.kv_get("ns", "k", now=0) is MISSING
    assert await store.kv_get("ns", "k", now=0, default=41) == 41
    await store.kv_set("ns", "k", {"a": [1, 2]}, now=100)
    assert await store.kv_get("ns", "k", now=100) == {"a": [1, 2]}
    assert await store.kv_get("other", "k", now=100) is MISSING
    await store.kv_set("ns", "short", "x", now=100, ttl=10)
    assert await store.kv_get("ns", "short", now=109.9) == "x"
    assert await store.kv_get("ns", "short", now=110) is MISSING
    assert await store.kv_purge_expired(now=110) == 1
    assert await store.kv_delete("ns", "k") is True
    assert await store.kv_delete("ns", "k") is False


async def test_a_stored_value_is_a_copy(store: Store) -> None:
    value = {"items": [1]}
    await store.kv_set("ns", "k", value, now=0)
    value["items"].append(2)
    assert await store.kv_get("ns", "k", now=0) == {"items": [1]}


async def test_setdefault_sets_unless_a_live_value_is_there(store: Store) -> None:
    """What a keyed publish names its payload with: one step, so two callers at once (in any
    process) agree on the first (the reviewer's h24 M3: a read, then a write, did not)."""
    assert await store.kv_setdefault("ns", "k", "first", now=0, ttl=10) == "first"
    assert await store.kv_setdefault("ns", "k", "second", now=5) == "first"
    assert await store.kv_get("ns", "k", now=5) == "first"
    assert await store.kv_setdefault("ns", "k", "third", now=10) == "third"  # it expired
    assert await store.kv_get("ns", "k", now=1000) == "third"  # (set without an expiry)
    values = await asyncio.gather(*(store.kv_setdefault("ns", "race", n, now=0) for n in range(20)))
    assert len(set(values)) == 1


async def test_items_lists_the_live_keys_of_one_namespace(store: Store) -> None:
    """What the plans of migrations under way are read with: one key a plan, so that two
    processes adding plans at once never write over each other's (h25 chaos F1)."""
    assert await store.kv_items("plans", now=0) == {}
    await store.kv_set("plans", "a", {"hops": [["v2", "x"]]}, now=0)
    await store.kv_set("plans", "b", [1, 2], now=0, ttl=10)
    await store.kv_set("other", "c", 3, now=0)
    assert await store.kv_items("plans", now=5) == {"a": {"hops": [["v2", "x"]]}, "b": [1, 2]}
    assert await store.kv_items("plans", now=10) == {"a": {"hops": [["v2", "x"]]}}  # b expired
    await store.kv_delete("plans", "a")
    assert await store.kv_items("plans", now=0) == {"b": [1, 2]}


async def test_incr_counts_from_zero_and_keeps_the_expiry(store: Store) -> None:
    assert await store.kv_incr("ns", "n", now=0) == 1
    assert await store.kv_incr("ns", "n", 41, now=0) == 42
    assert await store.kv_incr("ns", "n", 0.5, now=0) == 42.5
    assert await store.kv_incr("ns", "t", 1, now=0, ttl=10) == 1
    assert await store.kv_incr("ns", "t", 1, now=5) == 2  # keeps the expiry at 10
    assert await store.kv_get("ns", "t", now=10) is MISSING
    assert await store.kv_incr("ns", "t", 1, now=10) == 1  # expired counts as absent


async def test_incr_on_a_non_number_is_a_clear_error_and_changes_nothing(store: Store) -> None:
    await store.kv_set("ns", "name", "alice", now=0)
    await store.kv_set("ns", "flag", True, now=0)
    with pytest.raises(StateValueError, match=r"'name'.*str 'alice', not a number"):
        await store.kv_incr("ns", "name", now=0)
    with pytest.raises(StateValueError, match="bool"):
        await store.kv_incr("ns", "flag", now=0)
    with pytest.raises(StateValueError):
        await store.kv_incr("ns", "fresh", "1", now=0)  # type: ignore[arg-type]
    assert await store.kv_get("ns", "name", now=0) == "alice"
    assert await store.kv_get("ns", "fresh", now=0) is MISSING


async def test_a_ttl_must_be_positive(store: Store) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        await store.kv_set("ns", "k", 1, now=0, ttl=0)
    assert await store.kv_get("ns", "k", now=0) is MISSING


async def test_concurrent_commits_all_become_durable(store: Store) -> None:
    await asyncio.gather(
        *(store.commit(only_snapshot(snapshot(f"i{n}", revision=1))) for n in range(200))
    )
    assert len(await store.list_snapshots()) == 200


async def test_a_closed_store_refuses_work() -> None:
    store = MemoryStore()
    with pytest.raises(StoreClosedError, match=r"await store\.open"):
        await store.load_snapshot("x")
    await store.open()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.commit(only_snapshot(snapshot()))


async def test_a_key_holding_a_nul_finds_nothing_in_every_store(store: Store) -> None:
    """An id a caller sent with a NUL in it (``GET /runs/a%00b``) is no row's: PostgreSQL's text
    cannot take one, and its reads raised, a 500 over HTTP (review h33 F3); each store answers
    as for any id it does not hold."""
    await store.commit(only_snapshot(snapshot()))
    nul = "i1\x00b"
    assert await store.load_snapshot(nul) is None
    assert await store.instance_exists(nul) is False
    assert await store.queued_run(nul) is None
    assert await store.find_wait("pause", nul) is None
    assert await store.open_waits("pause", instance_id=nul) == []
    assert await store.load_journal(nul) == []
    assert await store.kv_get("ns", nul, now=0.0, default="none") == "none"
    assert await store.load_snapshot("i1") is not None  # (the store still reads)

"""The audit trail's part of the Store contract, against the SQLite store and its in-memory twin:
spans are written with their mutation, read back in order by trace and page, and pruned with
their run."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cronflow_actors.errors import ConfigurationError, MutationRejectedError, RevisionConflictError
from cronflow_actors.messages import Mutation, encode
from cronflow_actors.messages.audit import AuditSpan, SpanRows
from cronflow_actors.store import SQLiteStore, Store, latest_version
from tests.store.conftest import snapshot


def spans(trace: str, revision: int, count: int, **attributes: Any) -> tuple[AuditSpan, ...]:
    return tuple(
        AuditSpan(
            trace_id=trace,
            span_id=f"{revision}.{n}",
            parent_id=None if n == 1 else f"{revision}.1",
            instance_id=trace if n % 2 else f"{trace}.f9",
            operation="Task.enable" if n > 1 else "Action.start",
            element=f"t{n}",
            started_at=100.0 + revision,
            ended_at=100.5 + revision,
            revision=revision,
            attributes={"before": "disabled", "after": "enabled", "n": n, **attributes},
        )
        for n in range(1, count + 1)
    )


def ids(found: list[AuditSpan]) -> list[str]:
    return [span.span_id for span in found]


async def test_spans_are_written_with_their_snapshot_and_read_back_in_order(store: Store) -> None:
    written = spans("i1", 1, 3, nested={"a": [1, 2.5, None]}, text="é")
    await store.commit(Mutation(snapshot=snapshot(revision=1), spans=SpanRows.of(written)))
    await store.commit(
        Mutation(snapshot=snapshot(revision=2), spans=SpanRows.of(spans("i1", 2, 12)))
    )
    await store.commit(Mutation(snapshot=snapshot("i2"), spans=SpanRows.of(spans("i2", 1, 2))))
    found = await store.read_spans("i1")
    assert found[:3] == list(written)
    assert ids(found) == ["1.1", "1.2", "1.3", *(f"2.{n}" for n in range(1, 13))]
    assert ids(await store.read_spans("i2")) == ["1.1", "1.2"]
    assert await store.read_spans("nobody") == []


async def test_a_trace_reads_in_pages_after_a_span(store: Store) -> None:
    for revision, count in ((1, 3), (2, 1), (3, 4)):
        await store.commit(
            Mutation(
                snapshot=snapshot(revision=revision),
                spans=SpanRows.of(spans("i1", revision, count)),
            )
        )
    pages: list[list[str]] = []
    after = None
    while page := await store.read_spans("i1", after=after, limit=3):
        pages.append(ids(page))
        after = page[-1].span_id
    assert pages == [["1.1", "1.2", "1.3"], ["2.1", "3.1", "3.2"], ["3.3", "3.4"]]
    assert ids(await store.read_spans("i1", after="1.2", limit=2)) == ["1.3", "2.1"]
    assert ids(await store.read_spans("i1", after="3.4")) == []
    assert ids(await store.read_spans("i1", after="9.1")) == []


@pytest.mark.parametrize("after", ["", "1", "x.1", "1.x", "1.2.3", "-1.1"])
async def test_a_bad_cursor_or_limit_is_refused(store: Store, after: str) -> None:
    with pytest.raises(ConfigurationError, match="after"):
        await store.read_spans("i1", after=after)
    with pytest.raises(ConfigurationError, match="limit"):
        await store.read_spans("i1", limit=0)


async def test_spans_need_their_run_and_a_refused_mutation_writes_none(store: Store) -> None:
    with pytest.raises(MutationRejectedError, match="'ghost' has no snapshot"):
        await store.commit(Mutation(spans=SpanRows.of(spans("ghost", 1, 2))))
    await store.commit(
        Mutation(snapshot=snapshot(revision=1), spans=SpanRows.of(spans("i1", 1, 2)))
    )
    # a snapshot that does not follow the stored one: its spans are not written either
    with pytest.raises(RevisionConflictError):
        await store.commit(
            Mutation(snapshot=snapshot(revision=3), spans=SpanRows.of(spans("i1", 3, 5)))
        )
    with pytest.raises(MutationRejectedError):  # the spans of a revision are written once
        await store.commit(Mutation(spans=SpanRows.of(spans("i1", 1, 1))))
    assert ids(await store.read_spans("i1")) == ["1.1", "1.2"]
    assert await store.read_spans("ghost") == []


async def test_pruning_a_run_deletes_its_spans(store: Store) -> None:
    await store.commit(
        Mutation(snapshot=snapshot(revision=1), spans=SpanRows.of(spans("i1", 1, 2)))
    )
    done = snapshot("i1", 2, status="completed", terminal=True, updated_at=50.0)
    await store.commit(Mutation(snapshot=done, spans=SpanRows.of(spans("i1", 2, 2))))
    await store.commit(Mutation(snapshot=snapshot("i2"), spans=SpanRows.of(spans("i2", 1, 1))))
    assert await store.prune(finished_before=60.0) == 1
    assert await store.read_spans("i1") == []
    assert ids(await store.read_spans("i2")) == ["1.1"]


async def test_a_group_commit_keeps_the_spans_of_every_coalesced_snapshot(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "a.db") as store:
        # one batch: revision 2 is the only snapshot written, but both commits' spans are (a
        # commit first, which the writer may take alone at once: the others queue behind it
        # together, however loaded the machine is)
        await asyncio.gather(
            store.commit(Mutation(snapshot=snapshot("i0"))),
            store.commit(
                Mutation(snapshot=snapshot(revision=1), spans=SpanRows.of(spans("i1", 1, 3)))
            ),
            store.commit(
                Mutation(snapshot=snapshot(revision=2), spans=SpanRows.of(spans("i1", 2, 2)))
            ),
            store.commit(Mutation(snapshot=snapshot("i2"), spans=SpanRows.of(spans("i2", 1, 1)))),
        )
        assert store.statistics().snapshots_coalesced == 1
    async with SQLiteStore(tmp_path / "a.db") as store:
        assert ids(await store.read_spans("i1")) == ["1.1", "1.2", "1.3", "2.1", "2.2"]
        assert ids(await store.read_spans("i2")) == ["1.1"]
        assert await store.schema_version() == latest_version()


async def test_rows_written_in_the_first_layout_still_read(tmp_path: Path) -> None:
    """A database from before the event rows: one msgpack array per span."""
    store = SQLiteStore(tmp_path / "old.db")
    await store.open()
    try:
        await store.commit(Mutation(snapshot=snapshot(revision=1)))
        old = [
            [1, 0, None, "Action.start", None, 10.0, 10.5, {"principal": "ada"}],
            [2, 1, "i1.f2", "Task.enable", "t1", 10.0, 10.0, {"before": "disabled"}],
        ]
        with sqlite3.connect(tmp_path / "old.db") as db:
            db.execute(
                "INSERT INTO audit (trace_id, revision, spans) VALUES (?, ?, ?)",
                ("i1", 1, encode(old)),
            )
        found = await store.read_spans("i1")
    finally:
        await store.close()
    assert [(s.span_id, s.parent_id, s.instance_id, s.operation, s.element) for s in found] == [
        ("1.1", None, "i1", "Action.start", "i1"),
        ("1.2", "1.1", "i1.f2", "Task.enable", "t1"),
    ]
    assert (found[0].started_at, found[0].ended_at) == (10.0, 10.5)
    assert found[1].attributes == {"before": "disabled"}

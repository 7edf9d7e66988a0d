from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cronflow_actors.messages import JournalEntry, Mutation, SnapshotRecord, TimerRecord
from cronflow_actors.store import MemoryStore, SQLiteStore, Store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    await opened.open()
    yield opened
    await opened.close()


def snapshot(
    instance_id: str = "i1",
    revision: int = 1,
    *,
    status: str = "running",
    workflow: str = "wf",
    terminal: bool = False,
    updated_at: float = 100.0,
    body: bytes = b"state",
) -> SnapshotRecord:
    return SnapshotRecord(
        instance_id=instance_id,
        workflow=workflow,
        version="v1",
        status=status,
        terminal=terminal,
        revision=revision,
        updated_at=updated_at,
        body=body,
    )


def entry(
    instance_id: str = "i1", work_item: str = "w1", attempt: int = 1, **kw: object
) -> JournalEntry:
    fields: dict[str, object] = {"outcome": "completed", "output": b"out", "recorded_at": 100.0}
    fields.update(kw)
    return JournalEntry(instance_id=instance_id, work_item_id=work_item, attempt=attempt, **fields)  # type: ignore[arg-type]


def timer(timer_id: str, due_at: float, instance_id: str = "i1") -> TimerRecord:
    return TimerRecord(timer_id=timer_id, instance_id=instance_id, due_at=due_at, kind="sleep")


def only_snapshot(record: SnapshotRecord) -> Mutation:
    return Mutation(snapshot=record)

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cronflow_actors.messages import JournalEntry, Mutation, SnapshotRecord, TimerRecord
from cronflow_actors.store import MemoryStore, SQLiteStore, Store
from tests.pg.server import TemporaryPostgres


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "s.db")
    else:
        opened = await _empty_postgres(request.getfixturevalue("postgres_server"))
    await opened.open()
    yield opened
    await opened.close()


_CONTRACT_TABLES = (
    "instances, journal, audit, timers, waits, run_queue, leases, kv, processes, inbox"
)


async def _empty_postgres(server: TemporaryPostgres) -> Store:
    """A store on the session's contract database, emptied (one database for every contract
    test: emptying it is much faster than creating one)."""
    from cronflow_actors.store.postgres import PostgresStore

    global _contract_url
    if _contract_url is None:
        _contract_url = server.create_database()
    store = PostgresStore(_contract_url)
    await store.open()  # creates the schema the first time
    await store.close()
    server.psql(
        f"TRUNCATE {_CONTRACT_TABLES} RESTART IDENTITY CASCADE", _contract_url.rsplit("/", 1)[1]
    )
    return PostgresStore(_contract_url)


_contract_url: str | None = None


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

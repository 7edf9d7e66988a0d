"""What only the SQLite store does: a real file, pragmas, migrations, group commit, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

import cronflow_actors as cf
from cronflow_actors.errors import (
    ConfigurationError,
    LeaseHeldError,
    MutationRejectedError,
    SchemaVersionError,
    StoreClosedError,
    StoreFailedError,
)
from cronflow_actors.messages import Mutation, encode
from cronflow_actors.store import MIGRATIONS, SQLiteStore, latest_version
from cronflow_actors.store import _sql as sql
from tests.store.conftest import entry, only_snapshot, snapshot, timer


async def test_everything_survives_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    async with SQLiteStore(path) as store:
        await store.commit(
            Mutation(snapshot=snapshot(), journal=(entry(),), timers_set=(timer("t", 9),))
        )
        await store.kv_set("ns", "k", [1, "two"], now=0)
    async with SQLiteStore(path) as reopened:
        assert await reopened.load_snapshot("i1") == snapshot()
        assert [j.work_item_id for j in await reopened.load_journal("i1")] == ["w1"]
        assert [t.timer_id for t in await reopened.load_timers()] == ["t"]
        assert await reopened.kv_get("ns", "k", now=0) == [1, "two"]


@pytest.mark.parametrize(("level", "code"), [("FULL", 2), ("normal", 1), ("OFF", 0), ("EXTRA", 3)])
async def test_pragmas_are_set_on_the_connection(tmp_path: Path, level: str, code: int) -> None:
    async with SQLiteStore(tmp_path / "p.db", synchronous=level, busy_timeout=2.5) as store:
        writer = store._writer_connection
        assert writer is not None
        for pragma, expected in [
            ("journal_mode", "wal"),
            ("synchronous", code),
            ("foreign_keys", 1),
            ("busy_timeout", 2500),
        ]:
            async with writer.execute(f"PRAGMA {pragma}") as cursor:
                row = await cursor.fetchone()
            assert row is not None
            assert row[0] == expected, pragma


async def test_a_connection_whose_pragmas_fail_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[aiosqlite.Connection] = []
    connect = aiosqlite.connect

    def recording_connect(*args: object, **kwargs: object) -> aiosqlite.Connection:
        connection = connect(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(connection)
        return connection

    execute = aiosqlite.Connection.execute

    def failing_execute(self: aiosqlite.Connection, sql: str, *args: object) -> object:
        if sql.startswith("PRAGMA foreign_keys"):
            raise sqlite3.OperationalError("disk I/O error")
        return execute(self, sql, *args)

    monkeypatch.setattr(aiosqlite, "connect", recording_connect)
    monkeypatch.setattr(aiosqlite.Connection, "execute", failing_execute)
    store = SQLiteStore(tmp_path / "io.db")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        await store.open()
    assert len(opened) == 1
    opened[0]._thread.join(timeout=5)  # what close() ends; left open, it would run on
    assert not opened[0]._thread.is_alive()


def test_bad_settings_are_reported_with_the_setting_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'synchronous' has the value 'SOMETIMES'"):
        SQLiteStore(tmp_path / "x.db", synchronous="SOMETIMES")
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        SQLiteStore(tmp_path / "x.db", busy_timeout=-1)
    with pytest.raises(ConfigurationError, match="max_batch"):
        SQLiteStore(tmp_path / "x.db", max_batch=0)
    assert not (tmp_path / "x.db").exists()


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [number for number, _, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert latest_version() == len(MIGRATIONS)


async def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    for _ in range(2):
        async with SQLiteStore(path) as store:
            assert await store.schema_version() == latest_version()
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, latest_version() + 1))


async def test_a_journal_written_before_revisions_were_kept_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with database_at(path, 3) as raw:
        raw.execute(
            "INSERT INTO instances (instance_id, workflow, status, revision, updated_at, body) "
            "VALUES ('i1', 'wf', 'running', 4, 1.0, x'')"
        )
        raw.execute(
            "INSERT INTO journal (instance_id, work_item_id, attempt, outcome, recorded_at) "
            "VALUES ('i1', 'w1', 1, 'completed', 2.0)"
        )
    async with SQLiteStore(path) as store:
        assert await store.schema_version() == latest_version()
        (old,) = await store.read_journal("i1")
        assert (old.element, old.kind, old.revision) == ("w1", "completed", None)
        await store.commit(
            Mutation(snapshot=snapshot(revision=5), journal=(entry(work_item="w2"),))
        )
        assert [j.revision for j in await store.read_journal("i1")] == [None, 5]
        assert [j.work_item_id for j in await store.load_journal("i1")] == ["w1", "w2"]


async def test_journals_and_audit_trails_of_version_6_keep_their_order_keyed_by_run(
    tmp_path: Path,
) -> None:
    # version 7 keeps both in their run's key order (one page a commit each, not two and a
    # counter): what was written before reads back in the order it was written
    path = tmp_path / "v6.db"
    with database_at(path, 6) as raw:
        for run in ("a", "b"):
            raw.execute(
                "INSERT INTO instances (instance_id, workflow, status, revision, updated_at, "
                "body) VALUES (?, 'wf', 'running', 9, 1.0, x'')",
                (run,),
            )
        # two runs' entries interleaved, and one of "a" written out of work-item order
        for run, item in (("a", "w3"), ("b", "w1"), ("a", "w1"), ("b", "w2"), ("a", "w2")):
            raw.execute(
                "INSERT INTO journal (instance_id, work_item_id, attempt, outcome, recorded_at, "
                "revision) VALUES (?, ?, 1, 'completed', 2.0, 1)",
                (run, item),
            )
        for run, revision in (("a", 2), ("b", 1), ("a", 1)):
            spans = [[1, 0, None, f"Op.{run}{revision}", None, 1.0, 1.0, {}]]
            raw.execute(
                "INSERT INTO audit (trace_id, revision, spans) VALUES (?, ?, ?)",
                (run, revision, encode(spans)),
            )
    async with SQLiteStore(path) as store:
        assert await store.schema_version() == latest_version()
        a = await store.read_journal("a")
        assert [j.element for j in a] == ["w3", "w1", "w2"]
        assert [j.element for j in await store.read_journal("b")] == ["w1", "w2"]
        assert await store.read_journal("a", after=a[0].seq) == a[1:]
        await store.commit(
            Mutation(
                snapshot=snapshot("a", revision=10), journal=(entry("a", "w4"), entry("a", "w3"))
            )
        )  # a new entry numbered after the run's last; an attempt recorded again: kept once
        again = await store.read_journal("a")
        assert [(j.element, j.revision) for j in again] == [
            ("w3", 1),
            ("w1", 1),
            ("w2", 1),
            ("w4", 10),
        ]
        assert [j.seq for j in again] == sorted({j.seq for j in again})
        spans = await store.read_spans("a")
        assert [s.operation for s in spans] == ["Op.a1", "Op.a2"]
        assert [s.operation for s in await store.read_spans("b")] == ["Op.b1"]
    with sqlite3.connect(path) as raw:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert {"journal", "audit"} <= tables
    assert "journal_by_run" not in tables


async def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO schema_version VALUES (999, 'from the future', 0)")
    before = path.read_bytes()
    store = SQLiteStore(path)
    with pytest.raises(SchemaVersionError, match="schema version 999"):
        await store.open()
    with pytest.raises(StoreClosedError):
        await store.load_snapshot("x")
    assert path.read_bytes() == before


async def test_another_programs_database_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    """serve, db migrate and db prune gave another program's file cronflow's tables and WAL,
    without a word (devx h43 F15)."""
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        raw.commit()
    before = path.read_bytes()
    with pytest.raises(ConfigurationError) as refused:
        await SQLiteStore(path).open()
    assert "this one is another program's (its tables: users)" in str(refused.value)
    assert "give the runtime a file of its own" in str(refused.value)
    assert path.read_bytes() == before
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)


async def test_a_file_another_process_keeps_locked_is_refused_saying_so(tmp_path: Path) -> None:
    """A rollback-journal file (what db backup writes) that a sqlite3 shell keeps in a
    transaction ended serve and db prune with a raw traceback (devx h43 F3)."""
    path = tmp_path / "backup.db"
    async with SQLiteStore(path):
        pass
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA journal_mode = DELETE")
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        store = SQLiteStore(path)
        store.busy_timeout = 0.2
        with pytest.raises(ConfigurationError) as refused:
            await store.open()
        holder.execute("ROLLBACK")
    said = str(refused.value)
    assert "a database no other process keeps locked; SQLite said: database is locked" in said
    assert "open it again once that lock is released" in said


async def test_a_write_another_process_keeps_locked_out_says_so(tmp_path: Path) -> None:
    """It said "check the database file and the disk" (devx h43 F3)."""
    path = tmp_path / "held.db"
    store = SQLiteStore(path, busy_timeout=0.2)
    async with store:
        with closing(sqlite3.connect(path, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreFailedError) as failed:
                await store.commit(only_snapshot(snapshot("i1", revision=1)))
            holder.execute("ROLLBACK")
    assert "because another process kept it locked (a sqlite3 shell" in str(failed.value)


async def test_group_commit_writes_only_the_newest_snapshot_per_instance(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "g.db") as store:
        commits = [
            store.commit(
                only_snapshot(snapshot(f"i{n % 50}", revision=n // 50 + 1, body=b"%d" % n))
            )
            for n in range(500)
        ]
        await asyncio.gather(*commits)
        stats = store.statistics()
        assert stats.mutations == 500
        assert stats.batches < 500
        assert stats.snapshots_coalesced > 0
        assert stats.snapshots_written + stats.snapshots_coalesced == 500
        for i in range(50):
            loaded = await store.load_snapshot(f"i{i}")
            assert loaded is not None
            assert loaded.revision == 10
            assert loaded.body == b"%d" % (450 + i)


async def test_one_bad_mutation_fails_only_its_own_caller(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "b.db") as store:
        good = [store.commit(only_snapshot(snapshot(f"ok{n}"))) for n in range(10)]
        bad = store.commit(Mutation(journal=(entry(instance_id="ghost"),)))
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        assert results[:10] == [None] * 10
        assert isinstance(results[10], MutationRejectedError)
        assert "ghost" in str(results[10])
        assert len(await store.list_snapshots()) == 10


async def test_memory_path_gives_a_private_database() -> None:
    async with SQLiteStore(":memory:") as one, SQLiteStore(":memory:") as two:
        await one.commit(only_snapshot(snapshot()))
        assert await one.load_snapshot("i1") is not None
        assert await two.load_snapshot("i1") is None


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from cronflow_actors.messages import Mutation, SnapshotRecord
    from cronflow_actors.store import SQLiteStore

    async def main(path):
        store = SQLiteStore(path)
        await store.open()
        n = 0
        while True:
            batch = [
                store.commit(Mutation(snapshot=SnapshotRecord(
                    instance_id=f"i{n + k}", workflow="wf", status="running",
                    revision=1, updated_at=0.0, body=b"x" * 64)))
                for k in range(20)
            ]
            await asyncio.gather(*batch)
            n += 20
            print(n, flush=True)  # everything up to n is durable now

    asyncio.run(main(sys.argv[1]))
    """
)


def test_commits_acknowledged_before_sigkill_survive_it(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    acknowledged = 0
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged >= 400:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert acknowledged >= 400

    async def count() -> tuple[int, set[str]]:
        async with SQLiteStore(path) as store:
            found = await store.list_snapshots()
        return len(found), {s.instance_id for s in found}

    total, ids = asyncio.run(count())
    assert total >= acknowledged
    assert {f"i{n}" for n in range(acknowledged)} <= ids


async def test_reads_see_every_commit_that_returned_while_reads_overlap(tmp_path: Path) -> None:
    # Many reads in flight on the one reader connection: none may keep a stale snapshot open.
    async with SQLiteStore(tmp_path / "r.db") as store:
        misses = []

        async def one(n: int) -> None:
            for revision in (1, 2, 3):
                await store.commit(only_snapshot(snapshot(f"i{n}", revision=revision)))
                loaded = await store.load_snapshot(f"i{n}")
                if loaded is None or loaded.revision != revision:
                    misses.append((n, revision))
                await store.list_snapshots(limit=5)

        await asyncio.gather(*(one(n) for n in range(300)))
        assert misses == []


def test_numbering_a_journal_entry_reads_nothing_of_its_runs_journal() -> None:
    # its seq was max(seq) + 1 over the run's entries, whose key is (run, work item, attempt):
    # every insert read the run's whole journal (57 steps of SQLite's machine into an empty
    # one, 10,055 after 2,000 entries: the review of h22, M2); it is made of the revision
    db = sqlite3.connect(":memory:")
    for _version, _what, statements in MIGRATIONS:
        for statement in statements:
            db.execute(statement)
    db.execute(
        "INSERT INTO instances (instance_id, workflow, status, revision, updated_at, body) "
        "VALUES ('r', 'wf', 'running', 1, 1.0, x'')"
    )

    def steps_of_one_insert(n: int) -> int:
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        db.set_progress_handler(count, 1)
        db.executemany(sql.INSERT_JOURNAL, sql.journal_rows([(entry("r", f"w{n:06d}"), n + 1)]))
        db.set_progress_handler(None, 1)
        return steps

    early = steps_of_one_insert(0)
    db.executemany(
        sql.INSERT_JOURNAL,
        sql.journal_rows([(entry("r", f"w{n:06d}"), n + 1) for n in range(1, 2000)]),
    )
    late = steps_of_one_insert(2000)
    assert late < 2 * early, (early, late)
    seqs = [row[0] for row in db.execute("SELECT seq FROM journal ORDER BY work_item_id")]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 2001


async def test_a_schema_is_not_upgraded_under_the_runtime_that_owns_the_file(
    tmp_path: Path,
) -> None:
    # a server of the old version, still running, wrote journal entries the new schema dropped
    # without a word (the second hostile client of h22, H1): the upgrade waits for its lease
    path = tmp_path / "owned.db"
    with database_at(path, 6) as raw:
        now = time.time()
        raw.execute(
            "INSERT INTO leases VALUES ('runtime', 'old-one', 'elsewhere', 4242, ?, ?, ?)",
            (now, now, now + 1.5),
        )
    with pytest.raises(LeaseHeldError, match="upgraded only once no older runtime writes"):
        async with SQLiteStore(path):
            pass
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 6
    with pytest.raises(LeaseHeldError):
        async with cf.Runtime(db=path):
            pass
    async with cf.Runtime(db=path, wait_for_lease=True) as rt:  # waits, then upgrades
        assert await rt.store.schema_version() == latest_version()  # type: ignore[attr-defined]


def database_at(path: Path, version: int) -> sqlite3.Connection:
    """A database file as the schema stood at ``version`` (a connection to it, which commits
    what its ``with`` block writes)."""
    raw = sqlite3.connect(path)
    with raw:
        raw.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for number, description, statements in MIGRATIONS[:version]:
            for statement in statements:
                raw.execute(statement)
            raw.execute("INSERT INTO schema_version VALUES (?, ?, 0)", (number, description))
    return raw


async def test_listings_filtered_by_workflow_and_status_read_an_index_not_a_scan(
    tmp_path: Path,
) -> None:
    """DESIGN.md: queries never scan. A listing of one flow's runs in one status walked every
    run of the status and filtered the flow row by row (0.36 s on 100,000 runs: hostile h24
    M1). Each listing the store runs is planned here as SQLite plans it."""
    db = tmp_path / "plans.db"
    async with SQLiteStore(db) as store:
        asked: list[tuple[str, tuple[Any, ...]]] = []
        fetch = store._fetchall

        async def noted(query: str, params: tuple[Any, ...], operation: str) -> list[Any]:
            asked.append((query, params))
            return await fetch(query, params, operation)

        store._fetchall = noted  # type: ignore[method-assign]
        for workflow, status in (("orders", "completed"), ("orders", None), (None, "failed")):
            await store.list_runs(workflow=workflow, status=status, limit=10, max_bytes=1_000)
            await store.list_runs(
                workflow=workflow, status=status, limit=10, before=(1.0, "x"), max_bytes=1_000
            )
        await store.unfinished_ids("orders")
    with closing(sqlite3.connect(db)) as connection:
        for query, params in asked:
            plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {query}", params)]
            scans = [step for step in plan if step.startswith("SCAN instances")]
            assert scans == [], (query, plan)
            if params[:2] == ("orders", "completed"):
                index = "instances_by_workflow_status_created (workflow=? AND status=?"
                assert any(index in step for step in plan), plan


async def test_a_file_written_over_under_the_store_fails_it_at_the_first_read(
    tmp_path: Path,
) -> None:
    """A backup copied onto the database file while a server had it open (``cp`` keeps the
    file, so the writer's check saw the same one): reads answered "malformed" as 500s while
    the writer went on acknowledging starts (the newcomer's h25 F2). A read that finds the file
    broken fails the store as the writer's failure does: nothing more is acknowledged."""
    path = tmp_path / "over.db"
    async with SQLiteStore(path) as store:
        for n in range(200):
            await store.commit(only_snapshot(snapshot(f"i{n:03}", body=b"x" * 2000)))
        with closing(sqlite3.connect(path)) as other:  # the log into the file, as it grows
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = path.stat().st_size
        with path.open("r+b") as written_over:
            written_over.write(b"\0" * size)
        with pytest.raises(StoreFailedError, match=f"the database file {path} is broken"):
            await store.list_snapshots(limit=500)
        with pytest.raises(StoreFailedError, match="is broken"):
            await store.commit(only_snapshot(snapshot("late")))

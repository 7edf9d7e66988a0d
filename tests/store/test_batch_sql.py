"""The writer's one hand-off per batch: it leans on aiosqlite's private ``Connection._execute``,
``Connection._tx`` and ``Connection._conn`` (``store/_batch_sql.py``); these tests fail if an
aiosqlite release changes them, and check that a batch is one transaction that is all or nothing."""

from __future__ import annotations

import asyncio
import importlib.metadata
import sqlite3
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from cronflow_actors.errors import DuplicateInstanceError, RevisionConflictError
from cronflow_actors.messages import Mutation
from cronflow_actors.store import SQLiteStore
from cronflow_actors.store._batch import coalesce
from cronflow_actors.store._batch_sql import (
    _Refused,
    post_to_connection,
    run_on_connection,
    write_batch,
)
from tests.store.conftest import snapshot


async def test_a_function_runs_on_the_connections_own_thread_with_its_sqlite3_connection(
    tmp_path: Path,
) -> None:
    async with aiosqlite.connect(tmp_path / "x.db", isolation_level=None) as connection:
        await connection.execute("CREATE TABLE t (v INTEGER)")

        def insert(db: sqlite3.Connection, value: int) -> tuple[int, int]:
            db.execute("INSERT INTO t VALUES (?)", (value,))
            return threading.get_ident(), db.execute("SELECT sum(v) FROM t").fetchone()[0]

        thread, total = await run_on_connection(connection, insert, 41)
        assert total == 41
        assert thread != threading.get_ident()
        # the same thread aiosqlite runs its own statements on
        other, _ = await run_on_connection(connection, insert, 1)
        assert other == thread
        rows = await connection.execute_fetchall("SELECT v FROM t ORDER BY v")
        assert [tuple(r) for r in rows] == [(1,), (41,)]


async def test_a_posted_function_runs_on_the_connections_thread_in_order_and_answers_itself(
    tmp_path: Path,
) -> None:
    async with aiosqlite.connect(tmp_path / "x.db", isolation_level=None) as connection:
        await connection.execute("CREATE TABLE t (v INTEGER)")
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[tuple[int, int]] = loop.create_future()

        def insert(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO t VALUES (7)")
            total = db.execute("SELECT sum(v) FROM t").fetchone()[0]
            loop.call_soon_threadsafe(answered.set_result, (threading.get_ident(), total))

        post_to_connection(connection, insert)
        # queued behind it on the same thread: it sees the row the posted function wrote (an
        # aiosqlite whose thread cannot run a call without a future fails here, not hangs)
        rows = await asyncio.wait_for(connection.execute_fetchall("SELECT v FROM t"), 5)
        thread, total = await asyncio.wait_for(answered, 5)
        assert [tuple(r) for r in rows] == [(7,)]
        assert total == 7
        assert thread != threading.get_ident()


async def test_nothing_is_posted_to_a_closed_connection(tmp_path: Path) -> None:
    connection = await aiosqlite.connect(tmp_path / "x.db", isolation_level=None)
    await connection.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        post_to_connection(connection, lambda db: None)


async def test_the_installed_aiosqlite_is_one_the_writer_was_written_for() -> None:
    # 0.22.1 is the first whose thread runs a queued call without a future (post_to_connection)
    version = tuple(int(part) for part in importlib.metadata.version("aiosqlite").split(".")[:3])
    assert (0, 22, 1) <= version < (0, 23)
    connection = aiosqlite.Connection(lambda: sqlite3.connect(":memory:"), iter_chunk_size=64)
    assert hasattr(connection, "_tx")
    assert connection._running


async def test_an_error_on_the_thread_reaches_the_caller(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "x.db", isolation_level=None) as connection:

        def broken(db: sqlite3.Connection) -> None:
            db.execute("SELECT * FROM missing")

        with pytest.raises(sqlite3.OperationalError, match="missing"):
            await run_on_connection(connection, broken)


async def test_a_refused_batch_writes_nothing_and_each_caller_hears_its_own_answer(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "s.db") as store:
        await store.commit(Mutation(snapshot=snapshot("a", revision=1)))
        # one batch: a good write and a stale one (revision 1 again): the batch rolls back and
        # is written item by item, so only the stale one is refused
        good = store.commit(Mutation(snapshot=snapshot("b", revision=1)))
        stale = store.commit(Mutation(snapshot=snapshot("a", revision=1)))
        results = await asyncio.gather(good, stale, return_exceptions=True)
        assert results[0] is None
        assert isinstance(results[1], DuplicateInstanceError)
        assert (await store.load_snapshot("b")) is not None
        loaded = await store.load_snapshot("a")
        assert loaded is not None
        assert loaded.revision == 1


async def _stored(store: SQLiteStore, *names: str) -> dict[str, tuple[Any, ...]]:
    """Each run's stored (revision, status, terminal, body)."""
    rows = {}
    for name in names:
        loaded = await store.load_snapshot(name)
        assert loaded is not None
        rows[name] = (loaded.revision, loaded.status, loaded.terminal, loaded.body)
    return rows


async def test_a_batch_moving_some_runs_and_not_others_writes_each_as_it_is_and_refuses_stale_ones(
    tmp_path: Path,
) -> None:
    # Updates that keep the indexed columns write the body alone, the others every column
    # (``_batch_sql._update``); in one batch, each row ends as its newest revision says and
    # the listings by status, which read those indexes, agree.
    async with SQLiteStore(tmp_path / "s.db") as store:
        for name in ("same", "done", "stale", "back"):
            await store.commit(Mutation(snapshot=snapshot(name, revision=1)))
        await store.commit(Mutation(snapshot=snapshot("back", revision=2, status="waiting")))
        results = await asyncio.gather(
            store.commit(Mutation(snapshot=snapshot("same", revision=2, body=b"step 1"))),
            store.commit(
                Mutation(snapshot=snapshot("done", revision=2, status="completed", terminal=True))
            ),
            store.commit(Mutation(snapshot=snapshot("stale", revision=3, body=b"lost"))),
            store.commit(Mutation(snapshot=snapshot("back", revision=3, body=b"running again"))),
            return_exceptions=True,
        )
        assert results[:2] == [None, None]
        assert isinstance(results[2], RevisionConflictError)
        assert results[3] is None
        assert await _stored(store, "same", "done", "stale", "back") == {
            "same": (2, "running", False, b"step 1"),
            "done": (2, "completed", True, b"state"),
            "stale": (1, "running", False, b"state"),
            "back": (3, "running", False, b"running again"),
        }
        running = await store.list_runs(status="running")
        assert sorted(r.instance_id for r in running) == ["back", "same", "stale"]
        assert [r.instance_id for r in await store.list_runs(status="completed")] == ["done"]
        assert await store.count_in_flight() == {("wf", "running"): 3}


async def test_one_batch_writes_bodies_alone_and_moved_runs_in_full_and_a_stale_one_refuses_it(
    tmp_path: Path,
) -> None:
    # ``write_batch`` itself, so that the three updates are one batch: "same" keeps its
    # indexed columns (the body-only statement), "done" and "back" change theirs (the full one)
    path = tmp_path / "s.db"
    async with SQLiteStore(path) as store:
        for name in ("same", "done", "back"):
            await store.commit(Mutation(snapshot=snapshot(name, revision=1)))
        await store.commit(Mutation(snapshot=snapshot("back", revision=2, status="waiting")))
    stale = [Mutation(snapshot=snapshot("same", revision=5, body=b"lost"))]
    good = [
        Mutation(snapshot=snapshot("same", revision=2, body=b"step 1")),
        Mutation(snapshot=snapshot("done", revision=2, status="completed", terminal=True)),
        Mutation(snapshot=snapshot("back", revision=3, body=b"running again")),
    ]
    async with aiosqlite.connect(path, isolation_level=None) as connection:
        for mutations in ([*good[1:], *stale], good):
            batch = coalesce(mutations)
            items: list[Any] = [(m, None) for m in mutations]
            write = run_on_connection(connection, write_batch, items, batch, None, None)
            if mutations is good:
                assert await write == ([None, None, None], False)
            else:  # refused as a whole: nothing of it is written
                with pytest.raises(_Refused):
                    await write
                rows = await connection.execute_fetchall(
                    "SELECT instance_id, revision FROM instances ORDER BY instance_id"
                )
                assert [tuple(r) for r in rows] == [("back", 2), ("done", 1), ("same", 1)]
    async with SQLiteStore(path) as store:
        assert await _stored(store, "same", "done", "back") == {
            "same": (2, "running", False, b"step 1"),
            "done": (2, "completed", True, b"state"),
            "back": (3, "running", False, b"running again"),
        }
        assert await store.count_in_flight() == {("wf", "running"): 2}
        assert [r.instance_id for r in await store.list_runs(status="completed")] == ["done"]


async def test_two_closes_at_once_both_return_once_the_batch_in_flight_is_written(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    writes = [store.commit(Mutation(snapshot=snapshot(f"r{n}", revision=1))) for n in range(20)]
    await asyncio.wait_for(asyncio.gather(store.close(), store.close(), *writes), 10)
    async with SQLiteStore(tmp_path / "s.db") as reopened:
        assert len(await reopened.list_runs(limit=100)) == 20


async def test_a_run_said_to_move_skips_the_body_statement_and_a_wrong_hint_writes_right(
    tmp_path: Path,
) -> None:
    # ``Mutation.replaces`` (the indexed columns of the snapshot it follows) sends a run whose
    # status changes to the full statement at once; a hint that is wrong either way costs a
    # statement and writes what no hint would
    path = tmp_path / "s.db"
    async with SQLiteStore(path) as store:
        for name in ("moves", "says_moves", "says_stays", "stale"):
            await store.commit(Mutation(snapshot=snapshot(name, revision=1)))
    before = ("running", False, False)
    mutations = [
        Mutation(
            snapshot=snapshot("moves", revision=2, status="completed", terminal=True),
            replaces=before,
        ),
        # says it moves, but keeps its columns (the body statement would have done)
        Mutation(
            snapshot=snapshot("says_moves", revision=2, body=b"b"),
            replaces=("waiting", False, False),
        ),
        # says it stays, but moves (the body statement finds no row: the full one follows)
        Mutation(
            snapshot=snapshot("says_stays", revision=2, status="waiting"),
            replaces=("waiting", False, False),
        ),
    ]
    bodies: list[str] = []
    async with aiosqlite.connect(path, isolation_level=None) as connection:

        def traced(db: sqlite3.Connection, *args: Any) -> Any:
            db.set_trace_callback(lambda sql: bodies.append(sql) if "SET revision" in sql else None)
            try:
                return write_batch(db, *args)
            finally:
                db.set_trace_callback(None)

        batch = coalesce(mutations)
        items: list[Any] = [(m, None) for m in mutations]
        assert await run_on_connection(connection, traced, items, batch, None, None) == (
            [None, None, None],
            False,
        )
        assert len(bodies) == 1  # "says_stays" alone tried the body statement
        stale = [Mutation(snapshot=snapshot("stale", revision=3), replaces=before)]
        with pytest.raises(_Refused):  # a hint does not make a stale revision pass
            await run_on_connection(
                connection, write_batch, [(stale[0], None)], coalesce(stale), None, None
            )
    async with SQLiteStore(path) as store:
        assert await _stored(store, "moves", "says_moves", "says_stays", "stale") == {
            "moves": (2, "completed", True, b"state"),
            "says_moves": (2, "running", False, b"b"),
            "says_stays": (2, "waiting", False, b"state"),
            "stale": (1, "running", False, b"state"),
        }
        assert [r.instance_id for r in await store.list_runs(status="completed")] == ["moves"]
        assert await store.count_in_flight() == {("wf", "running"): 2, ("wf", "waiting"): 1}

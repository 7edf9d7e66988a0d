"""Several runtimes on one PostgreSQL database when one of them misbehaves (the PostgreSQL
crash tester's findings): a process paused inside a transaction neither stalls the others for
good nor makes them record a failure a run never had; a run is claimed only by a process that
can run it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import cronflow_actors as cf
from cronflow_actors.errors import InstanceBusyError
from cronflow_actors.store.postgres import PostgresStore

FAILED: list[str] = []
"""The runs whose on_failure ran (none should)."""


def sleeper(name: str = "sleeper", nap: str = "1s") -> cf.Flow:
    hooks = cf.Hooks(on_failure=lambda ctx: FAILED.append(ctx.run.id))
    return cf.define(name, hooks=hooks).sleep("nap", nap).step("after", lambda ctx: "woke")


def runtime(url: str, *flows: cf.Flow) -> cf.Runtime:
    store = PostgresStore(url, idle_transaction_timeout=1.0)
    return cf.Runtime(store=store, workflows=list(flows), lease_seconds=2)


@contextlib.asynccontextmanager
async def row_locked(url: str, run_id: str) -> AsyncIterator[None]:
    """The run's row locked by another connection's transaction while the block runs (as a
    process paused in the middle of one holds it)."""
    locker = await asyncpg.connect(url)
    try:
        async with locker.transaction():
            await locker.execute(
                "SELECT 1 FROM instances WHERE instance_id = $1 FOR UPDATE", run_id
            )
            yield
    finally:
        await locker.close()


async def owners(url: str, run_ids: list[str]) -> dict[str, str | None]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT instance_id, owner FROM instances WHERE instance_id = ANY($1)", run_ids
        )
    finally:
        await connection.close()
    return {row[0]: row[1] for row in rows}


async def test_a_transaction_of_ours_left_idle_is_ended_by_the_server(postgres_url: str) -> None:
    """A process paused in the middle of a transaction (SIGSTOP, a frozen VM) held its row
    locks for as long as it stayed paused, and every other process's writer waited on them
    (cluster-wide completions fell to 0/s): the server now ends such a session."""
    store = PostgresStore(postgres_url, idle_transaction_timeout=0.5)
    # a connection as the store makes its own (its own here: one the server ends is closed
    # by this test, not left to the collector)
    connection = await asyncpg.connect(postgres_url, server_settings=store._limits())
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("SELECT 1")
        await asyncio.sleep(1.5)  # idle inside it, as a paused process is
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            await connection.execute("SELECT 1")
    finally:
        connection.terminate()


async def test_a_run_held_by_a_stalled_transaction_is_not_failed_by_a_stale_copy(
    postgres_url: str,
) -> None:
    """Another process's transaction (a process paused in its claim, here a plain connection)
    takes the rows of runs that sleep here, and commits only after their timers fired: the
    copies here find themselves stale, record nothing, and the runs complete, once the process
    that took them is gone, with no failure recorded and no on_failure run (a stale copy's
    recording is tested on its own in tests/engine/test_report_failure.py)."""
    FAILED.clear()
    rt = runtime(postgres_url, sleeper())
    async with rt:
        run_ids = [await rt.trigger("sleeper") for _ in range(4)]
        await rt.wait_idle()
        ghost = await asyncpg.connect(postgres_url)
        try:
            await ghost.execute(
                "INSERT INTO processes (owner, host, pid, started_at, renewed_at, expires_at) "
                "VALUES ('ghost', 'h', 1, extract(epoch from now()), extract(epoch from now()), "
                "extract(epoch from now()) + 3600)"
            )
            async with ghost.transaction():
                await ghost.execute(
                    "UPDATE instances SET owner = 'ghost' WHERE instance_id = ANY($1)", run_ids
                )
                await asyncio.sleep(3)  # the naps end meanwhile: their writes wait, then conflict
            await asyncio.sleep(0.5)
            # the paused process stops as a clean stop does: its runs are anyone's
            await ghost.execute("UPDATE instances SET owner = NULL WHERE owner = 'ghost'")
            await ghost.execute("DELETE FROM processes WHERE owner = 'ghost'")
        finally:
            await ghost.close()
        results = [await rt.wait(run_id, timeout=20) for run_id in run_ids]
    assert [(str(r.status), r.output) for r in results] == [("completed", "woke")] * 4
    assert FAILED == []


async def test_a_row_locked_past_a_moment_is_not_run_unclaimed(postgres_url: str) -> None:
    """A claim that found the row locked for 2 s went on as if it held the run: its copy ran
    unclaimed and its writes waited on the lock. It is refused now, to be asked again."""
    first = runtime(postgres_url, sleeper(nap="1h"))
    second = runtime(postgres_url, sleeper(nap="1h"))
    async with first, second:
        run_id = await first.trigger("sleeper")
        await first.wait_idle()
        async with row_locked(postgres_url, run_id):
            began = time.monotonic()
            with pytest.raises(InstanceBusyError, match="try again in a few seconds"):
                await second.cancel(run_id)
            assert time.monotonic() - began >= 1.5
        assert run_id not in second.instances
        await second.cancel(run_id)  # asked again, once the row is free: carried out
        assert str((await first.wait(run_id, timeout=10)).status) == "canceled"


async def test_a_run_whose_version_is_not_registered_here_is_left_to_one_that_can(
    postgres_url: str,
) -> None:
    """A process took over (or fired the timers of) runs of flows it does not register, and
    kept them: they waited for good while it lived, though a process that runs them was up."""
    other = runtime(postgres_url, sleeper())
    async with other:
        run_ids = [await other.trigger("sleeper") for _ in range(3)]
        await other.wait_idle()
    # stopped cleanly: the runs are anyone's; their naps end while only `here` is up
    here = runtime(postgres_url, cf.define("unrelated").step("s", lambda ctx: 1))
    async with here:
        await asyncio.sleep(3)  # takeovers and timer rounds of a 2 s lease
        assert set((await owners(postgres_url, run_ids)).values()) == {None}
        back = runtime(postgres_url, sleeper())
        async with back:
            results = [await back.wait(run_id, timeout=20) for run_id in run_ids]
    assert [str(r.status) for r in results] == ["completed"] * 3


async def test_an_event_for_a_run_whose_row_is_locked_a_while_is_delivered_once_it_is_free(
    postgres_url: str,
) -> None:
    """The locked claim's refusal dropped an event for the run at DEBUG: the publish answered
    with the run missing from ``delivered`` and the run waited for good (the fixes' verifier's
    N1). The delivery is asked again while the lock lasts a few seconds."""
    waiter = cf.define("waiter").wait_for_event("w", "go").step("after", lambda ctx: ctx.last)
    first = runtime(postgres_url, waiter)
    second = runtime(postgres_url, waiter)
    async with first, second:
        run_id = await first.trigger("waiter")
        await first.wait_idle()
        async with row_locked(postgres_url, run_id):
            publishing = asyncio.ensure_future(second.publish_event("go", {"n": 1}))
            await asyncio.sleep(3)  # the publish's claim finds the row locked meanwhile
            assert not publishing.done()
        published = await asyncio.wait_for(publishing, 15)
        assert published.delivered == [run_id]
        assert (await first.wait(run_id, timeout=10)).output == {"n": 1}


async def test_the_idle_limit_is_the_leases(postgres_url: str) -> None:
    """A process paused longer than its lease has lost it anyway: its idle transaction is ended
    after that much, not after a fixed 5 s (a lease of 8 s ended a 6 s stall's process, the
    verifier's N3)."""
    async with cf.Runtime(db=postgres_url, lease_seconds=8) as rt:
        store: Any = rt.store
        assert store.idle_transaction_timeout == 8
        async with store._pool.acquire() as connection:
            assert await connection.fetchval("SHOW idle_in_transaction_session_timeout") == "8s"


async def test_a_listen_stopped_while_it_connects_leaves_no_connection_open(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime stopped while its LISTEN connection was being set up (a short-lived process
    under load) left that connection to the garbage collector: an unclosed-connection warning
    in whichever test came next. Cancelled there, or finishing after the store closed, the
    connection is ended."""
    opened: list[asyncpg.Connection] = []
    real_connect = asyncpg.connect

    async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        connection = await real_connect(*args, **kwargs)
        opened.append(connection)
        return connection

    entered = asyncio.Event()

    async def slow_listener(self: Any, channel: str, callback: Any) -> None:
        entered.set()
        await asyncio.sleep(30)

    store = PostgresStore(postgres_url)
    await store.open()
    try:
        monkeypatch.setattr(asyncpg, "connect", connect)
        monkeypatch.setattr(asyncpg.Connection, "add_listener", slow_listener)
        listening = asyncio.ensure_future(store.listen(lambda: None, lambda _id: None))
        await asyncio.wait_for(entered.wait(), 10)
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening
        assert [c.is_closed() for c in opened] == [True]
        monkeypatch.setattr(asyncpg.Connection, "add_listener", lambda *a: asyncio.sleep(0))
        store._closing = True  # a close that began while it connected
        await store.listen(lambda: None, lambda _id: None)
        assert [c.is_closed() for c in opened] == [True, True]
        store._closing = False
    finally:
        await store.close()


async def test_a_database_that_does_not_answer_the_heartbeat_is_said_and_not_ready(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL a heartbeat the database did not answer was said nowhere, where the
    SQLite lease's was (review h44 F5); readiness says it overdue on both."""
    async with runtime(postgres_url, sleeper()) as rt:
        thawed = asyncio.Event()
        beat = rt.store.heartbeat  # type: ignore[attr-defined]

        async def frozen(*args: Any) -> Any:
            await thawed.wait()
            return await beat(*args)

        rt.store.heartbeat = frozen  # type: ignore[attr-defined]
        said = "the database has not answered the process lease's renewal for 2 s"
        for _ in range(80):
            await asyncio.sleep(0.1)
            if said in caplog.text and (await rt.readiness())["lease"] != "ok":
                break
        assert said in caplog.text
        assert (await rt.readiness())["lease"].startswith("its renewal is overdue")
        thawed.set()
        for _ in range(50):
            await asyncio.sleep(0.1)
            if "the database answered the process lease's renewal after" in caplog.text:
                break
        assert "the database answered the process lease's renewal after" in caplog.text


async def test_a_prune_turn_waits_for_its_holder_and_ends_with_its_session(
    postgres_url: str,
) -> None:
    """Prunes of one database take turns by a session's advisory lock, which the server lets
    go with the session (review2 h44 F1: a turn timed by each process's clock lapsed)."""
    holder = await asyncpg.connect(postgres_url)  # another process's turn, taken first
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await holder.execute("SELECT pg_advisory_lock(hashtext('cronflow-prune'))")
        waited: list[bool] = []

        async def take() -> None:
            async with store.exclusive("prune", lambda: waited.append(True)):
                pass

        taking = asyncio.ensure_future(take())
        await asyncio.sleep(0.6)
        assert waited == [True]
        assert not taking.done()
        holder.terminate()  # its process died: the server ends the session, and its lock
        await asyncio.wait_for(taking, 10)
    finally:
        holder.terminate()
        await store.close()


async def test_a_heartbeat_never_answered_ends_the_process_lease(postgres_url: str) -> None:
    """A heartbeat the database never answered left the process "running" for good, not ready,
    while another took its runs over (review2 h44 F5): unanswered past its lease twice over,
    the lease has lapsed, and the runtime fails as one that lost it does."""
    async with runtime(postgres_url, sleeper()) as rt:
        never = asyncio.Event()

        async def hung(*args: Any) -> Any:
            await never.wait()

        rt.store.heartbeat = hung  # type: ignore[attr-defined]
        for _ in range(100):
            await asyncio.sleep(0.1)
            if rt.state == "failed":
                break
        assert rt.state == "failed"
        assert "lost its lease" in str(rt.failure)


async def test_a_write_the_database_holds_is_said_and_not_ready(
    postgres_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table an operator locked (VACUUM FULL, ALTER TABLE) held every start for as long with
    /readyz "ok" and nothing in the log: only the heartbeat, on a connection of its own, was
    watched (retest h45 N7)."""
    from cronflow_actors.store import postgres_writer

    monkeypatch.setattr(postgres_writer, "SLOW", 0.5)
    async with runtime(postgres_url, sleeper()) as rt:
        locker = await asyncpg.connect(postgres_url)
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE instances IN ACCESS EXCLUSIVE MODE")
                starting = asyncio.ensure_future(rt.trigger("sleeper"))
                for _ in range(80):
                    await asyncio.sleep(0.1)
                    if (await rt.readiness())["store"] != "ok":
                        break
                store = (await rt.readiness())["store"]
                assert store.startswith("a write has waited "), store  # (2 s or more)
                assert "a write has waited 0.5 s for the database" in caplog.text
                assert not starting.done()
        finally:
            await locker.close()
        run_id = await asyncio.wait_for(starting, 10)
        assert (await rt.readiness())["store"] == "ok"
        assert "a write that waited for the database ended after" in caplog.text
        assert (await rt.wait(run_id, timeout=10)).status == "completed"

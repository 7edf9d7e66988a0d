"""The writer's connection lost under a running runtime (a server restart, an administrator or
a pooler ending sessions) is connected again, no write lost or made twice, where it stopped
every process of a cluster at once (pg h40 F2)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import cronflow_actors as cf
from cronflow_actors.messages import Mutation
from cronflow_actors.messages.records import SnapshotRecord
from cronflow_actors.store.postgres import PostgresStore

CALLS: Counter[tuple[str, int]] = Counter()


def _step(name: str) -> Any:
    def step(ctx: Any) -> int:
        CALLS[(name, int(ctx.payload))] += 1
        return int(ctx.payload) + 1

    return step


STEADY = cf.define("steady").step("a", _step("a")).step("b", _step("b"))


async def _end_sessions(url: str) -> int:
    """Every session of the database but this one ended, as a server restart ends them."""
    killer = await asyncpg.connect(url)
    try:
        ended = await killer.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await killer.close()
    return len(ended)


async def test_runs_go_on_through_sessions_ended_under_them(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    CALLS.clear()
    caplog.set_level(logging.WARNING, "cronflow_actors.store.postgres_writer")
    async with cf.Runtime(store=PostgresStore(postgres_url), workflows=[STEADY]) as rt:
        assert (await rt.wait(await rt.trigger("steady", 0))).output == 1
        assert await _end_sessions(postgres_url) >= 1  # idle: its next write finds it ended
        starting = asyncio.gather(*(rt.trigger("steady", n) for n in range(1, 41)))
        for _ in range(3):  # and while runs are being written
            await asyncio.sleep(0.01)
            await _end_sessions(postgres_url)
        runs = await starting
        results = [await rt.wait(run_id, timeout=30) for run_id in runs]
        assert [(r.status, r.output) for r in results] == [
            ("completed", n + 1) for n in range(1, 41)
        ]
        assert rt.failure is None
        assert rt.state == "running"
    assert "connected again; writes go on" in caplog.text
    assert set(CALLS.values()) == {1}  # no step ran twice: no write was lost or made twice


class _AnswerLostAfterCommit:
    """The writer's connection, whose next transaction's COMMIT takes but whose answer never
    comes back: the connection ends right after it."""

    def __init__(self, real: asyncpg.Connection) -> None:
        self.real = real
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.real.transaction():
            yield
        if not self.lost:
            self.lost += 1
            self.real.terminate()
            raise asyncpg.InterfaceError("connection is closed")


async def test_a_batch_whose_commit_took_but_whose_answer_was_lost_is_not_written_again(
    postgres_url: str,
) -> None:
    CALLS.clear()
    async with cf.Runtime(store=PostgresStore(postgres_url), workflows=[STEADY]) as rt:
        writer: Any = rt.store._writer  # type: ignore[attr-defined]
        writer._connection = flaky = _AnswerLostAfterCommit(writer.connection)
        run_id = await rt.trigger("steady", 5)
        result = await rt.wait(run_id, timeout=30)
        assert (result.status, result.output) == ("completed", 6)
        assert flaky.lost == 1
        assert writer.connection is not flaky  # a new one
        info = await rt.inspect(run_id)
        assert [(s.id, s.attempts, s.redispatches) for s in info.steps] == [
            ("a", 1, 0),
            ("b", 1, 0),
        ]
    assert dict(CALLS) == {("a", 5): 1, ("b", 5): 1}


class _LostWhenAsked:
    """A new connection lost as the writer asks it ``txid_status`` (the server still going
    down), or as it explains a refused item: the query ``lost_on`` names."""

    def __init__(self, real: asyncpg.Connection, lost_on: str) -> None:
        self.real, self.lost_on = real, lost_on

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def fetchval(self, query: str, *args: Any) -> Any:
        self._lose(query)
        return await self.real.fetchval(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        self._lose(query)
        return await self.real.fetchrow(query, *args)

    def _lose(self, query: str) -> None:
        if self.lost_on in query:
            self.real.terminate()
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")


async def test_a_batch_asked_after_on_a_connection_lost_again_is_asked_after_once_more(
    postgres_url: str,
) -> None:
    """Lost again while the writer asked whether the batch had committed, the next attempt
    forgot it and wrote the batch again: the run's start said "already exists" for a run that
    then never ran (review h40 F1)."""
    CALLS.clear()
    async with cf.Runtime(store=PostgresStore(postgres_url), workflows=[STEADY]) as rt:
        writer: Any = rt.store._writer  # type: ignore[attr-defined]
        connect, made = writer._connect, []

        async def connect_flaky() -> Any:
            made.append(1)
            real = await connect()
            return _LostWhenAsked(real, "txid_status") if len(made) == 1 else real

        writer._connect = connect_flaky
        writer._connection = _AnswerLostAfterCommit(writer.connection)
        run_id = await rt.trigger("steady", 5)
        result = await rt.wait(run_id, timeout=30)
        assert (result.status, result.output, len(made)) == ("completed", 6, 2)
    assert dict(CALLS) == {("a", 5): 1, ("b", 5): 1}


async def test_a_connection_lost_while_an_item_is_explained_fails_the_store_not_the_task(
    postgres_url: str,
) -> None:
    """Lost as the writer read why an item was refused, the error ended the writer's task:
    every caller then waited for good (review h40 F5). The store fails and says so."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        writer: Any = store._writer
        writer._connect = None  # (no reconnect: the loss during the explanation is tried)
        writer._connection = _LostWhenAsked(writer.connection, "SELECT revision, owner")
        refused = SnapshotRecord(
            instance_id="i1", workflow="w", status="running", revision=5, updated_at=0.0
        )
        with pytest.raises(cf.errors.StoreFailedError):  # (a write no row it names is there)
            await asyncio.wait_for(store.commit(Mutation(snapshot=refused)), 10)
        with pytest.raises(cf.errors.StoreFailedError):  # and every later one, not a hang
            await asyncio.wait_for(store.kv_incr("ns", "k", 1, now=0.0), 10)
    finally:
        await store.close()


async def test_a_connection_that_does_not_come_back_fails_the_store(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Past ``reconnect_timeout`` the writer gives up: the store fails, as it did at once, in
    a server's words."""
    store = PostgresStore(postgres_url, reconnect_timeout=0.3)
    async with cf.Runtime(store=store, workflows=[STEADY]) as rt:
        store.url = "postgresql://nobody@127.0.0.1:1/none"  # where it connects again: nothing
        await _end_sessions(postgres_url)
        with pytest.raises(cf.errors.StoreFailedError) as failed:
            await rt.trigger("steady", 1)
        assert "check that the database server is up" in str(failed.value)
        assert "could not connect again" in caplog.text
        store.url = postgres_url  # (for its close)


async def _notify(url: str, channel: str, payload: str) -> None:
    sender = await asyncpg.connect(url)
    try:
        await sender.execute("SELECT pg_notify($1, $2)", channel, payload)
    finally:
        await sender.close()


async def test_a_lost_listen_connection_is_connected_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The LISTEN connection lost (a server restart) was never connected again: every call
    between processes waited for the half-second poll from then on. It is, and the work that
    came meanwhile is looked for as it is."""
    from cronflow_actors.store.postgres_cluster import WORK_CHANNEL

    caplog.set_level(logging.INFO, "cronflow_actors.store.postgres_cluster")
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        store._fence("me")
        woken = asyncio.Event()
        await store.listen(woken.set, lambda _posted: None)
        await _notify(postgres_url, WORK_CHANNEL, "me")
        await asyncio.wait_for(woken.wait(), 5)
        woken.clear()
        assert await _end_sessions(postgres_url) >= 1
        await asyncio.wait_for(woken.wait(), 15)  # listening again: told to look for work
        woken.clear()
        await _notify(postgres_url, WORK_CHANNEL, "me")
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await store.close()
    assert "the LISTEN connection to" in caplog.text
    assert "listening to" in caplog.text

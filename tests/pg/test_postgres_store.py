"""The PostgreSQL store beyond the shared contract (tests/store runs that against it too): its
URLs and connection errors, its migrations, the runtime lease and the instance owners that fence
writes when several processes share the database."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

import cronflow_actors as cf
from cronflow_actors.errors import (
    ConfigurationError,
    LeaseHeldError,
    LeaseLostError,
    RevisionConflictError,
    SchemaVersionError,
    StoreFailedError,
)
from cronflow_actors.messages import LeaseRecord, Mutation, TimerRecord
from cronflow_actors.runtime import store_for
from cronflow_actors.store.postgres import PostgresStore
from cronflow_actors.store.postgres_migrations import (
    OUTPUTS_ONCE,
    POSTGRES_MIGRATIONS,
    latest_postgres_version,
)
from tests.pg.server import TemporaryPostgres
from tests.store.conftest import only_snapshot, snapshot
from tests.test_cli_offline import cli


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://", "no host"),
        ("postgresql://user@host:5432/", "no database name"),
        ("postgresql://user@host:99999/db", "Port out of range"),
        ("postgresql://user:secret@host:port/db", "Port could not be cast"),
    ],
)
def test_a_bad_url_is_a_clear_error(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as raised:
        store_for(url)
    assert "secret" not in str(raised.value)


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="postgresql:// URL"):
        store_for("mysql://user@host/db")


def test_a_postgresql_url_gives_the_postgres_store() -> None:
    store = store_for("postgresql://app@127.0.0.1:5432/cronflow")
    assert isinstance(store, PostgresStore)
    assert repr(store) == "PostgresStore('postgresql://app@127.0.0.1:5432/cronflow')"


async def test_an_unreachable_server_is_a_clear_error_quickly(
    postgres_server: TemporaryPostgres,
) -> None:
    from tests.serving import free_port

    store = PostgresStore(f"postgresql://app:pw@127.0.0.1:{free_port()}/x", connect_timeout=5)
    with pytest.raises(ConfigurationError, match=r"connecting failed.*check the URL") as err:
        await store.open()
    assert "pw" not in str(err.value)
    missing = PostgresStore(postgres_server.url("no_such_database"))
    with pytest.raises(ConfigurationError, match="no_such_database"):
        await missing.open()


async def test_processes_opening_a_new_database_together_migrate_it_once(
    postgres_url: str, postgres_server: TemporaryPostgres
) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    assert {await s.schema_version() for s in stores} == {latest_postgres_version()}
    await asyncio.gather(*(s.close() for s in stores))
    rows = postgres_server.psql(
        "SELECT version FROM schema_version ORDER BY version", _db(postgres_url)
    )
    assert rows.split() == [str(v) for v, _, _ in POSTGRES_MIGRATIONS]
    assert [v for v, _, _ in POSTGRES_MIGRATIONS] == list(range(1, len(POSTGRES_MIGRATIONS) + 1))


async def test_a_database_from_a_newer_version_is_refused_untouched(
    postgres_url: str, postgres_server: TemporaryPostgres
) -> None:
    async with PostgresStore(postgres_url):
        pass
    postgres_server.psql(
        "INSERT INTO schema_version VALUES (999, 'from the future', 0)", _db(postgres_url)
    )
    with pytest.raises(SchemaVersionError):
        await PostgresStore(postgres_url).open()


async def test_snapshots_written_once_wait_until_no_older_process_is_live(
    postgres_url: str, postgres_server: TemporaryPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    # A database at the version before: a process of that version is live in the cluster
    async with PostgresStore(postgres_url) as store:
        await store.join_cluster("older", "h", 7, duration=30)
    older = OUTPUTS_ONCE - 1
    postgres_server.psql(f"DELETE FROM schema_version WHERE version > {older}", _db(postgres_url))
    with pytest.raises(LeaseHeldError, match=r"owned by runtime older \(pid 7 on h\).*older"):
        await PostgresStore(postgres_url).open()
    version = postgres_server.psql("SELECT MAX(version) FROM schema_version", _db(postgres_url))
    assert version.split() == [str(older)]  # nothing upgraded under it
    # a runtime that waits for the lease (serve --wait-for-lease) waits for it to stop, then
    # upgrades (it exited 2 at once: review h41 F1)
    waiting = cf.Runtime(db=postgres_url, wait_for_lease=True)
    starting = asyncio.ensure_future(waiting.start())
    await asyncio.sleep(2.5)
    assert not starting.done()
    waiting_said = [r for r in caplog.records if "waiting for it to stop" in r.getMessage()]
    assert len(waiting_said) == 1  # once, not each second (retest h41 N1)
    postgres_server.psql("DELETE FROM processes WHERE owner = 'older'", _db(postgres_url))
    await asyncio.wait_for(starting, 15)  # (it stopped)
    try:
        assert await waiting.store.schema_version() == latest_postgres_version()  # type: ignore[attr-defined]
    finally:
        await waiting.stop()


def lease(owner: str, now: float, duration: float = 5.0) -> LeaseRecord:
    return LeaseRecord(
        owner=owner, host="h", pid=1, acquired_at=now, renewed_at=now, expires_at=now + duration
    )


async def test_an_owner_that_lost_the_runtime_lease_writes_nothing_more(postgres_url: str) -> None:
    async with PostgresStore(postgres_url) as first, PostgresStore(postgres_url) as second:
        await first.acquire_lease(lease("first", now=100, duration=1))
        await first.commit(only_snapshot(snapshot(revision=1)))
        await second.acquire_lease(lease("second", now=200))
        with pytest.raises(LeaseLostError, match=r"runtime first lost its lease.*second holds it"):
            await first.commit(only_snapshot(snapshot(revision=2, status="stale")))
        loaded = await second.load_snapshot("i1")
        assert loaded is not None
        assert loaded.revision == 1
        with pytest.raises(StoreFailedError, match="lost its lease"):
            await first.commit(only_snapshot(snapshot("other", revision=1)))
        await second.commit(only_snapshot(snapshot(revision=2, status="taken over")))


async def test_an_instance_taken_over_by_another_process_fences_the_old_owner(
    postgres_url: str,
) -> None:
    async with PostgresStore(postgres_url) as a, PostgresStore(postgres_url) as b:
        await a.join_cluster("A", "h", 1, duration=0.3)
        await b.join_cluster("B", "h", 2, duration=30)
        running = snapshot(revision=1)
        await a.commit(only_snapshot(_runnable(running)))
        # A holds it while its lease lives: B is told who holds it
        assert (await b.claim("i1", "B")).holder == "A"
        assert await b.take_over("B") == []
        await asyncio.sleep(0.4)  # A's lease expires without a heartbeat
        assert not await a.heartbeat("A", 0.3)
        [taken] = await b.take_over("B")
        assert taken.instance_id == "i1"
        with pytest.raises(RevisionConflictError, match="process B owns it now"):
            await a.commit(only_snapshot(_runnable(snapshot(revision=2, status="stale"))))
        await b.commit(only_snapshot(_runnable(snapshot(revision=2, status="B's"))))
        loaded = await b.load_snapshot("i1")
        assert loaded is not None
        assert (loaded.revision, loaded.status) == (2, "B's")
        # A's writer goes on for the instances it still holds: the refusal was the instance's
        await a.commit(only_snapshot(snapshot("mine", revision=1)))


async def test_the_heartbeat_is_not_kept_waiting_by_a_busy_pool(postgres_url: str) -> None:
    """A burst of deliveries held every connection of the pool, and the heartbeat waited for
    one past the lease: every process exited with its lease lost (pg h43 F5). It has its
    own connection, connected again after one was lost."""
    async with PostgresStore(postgres_url, read_connections=2) as store:
        await store.join_cluster("A", "h", 1, duration=30)
        pool = store._pool
        assert pool is not None
        held = [await pool.acquire() for _ in range(2)]  # every connection busy
        try:
            assert await asyncio.wait_for(store.heartbeat("A", 30), 5)
            assert store._beat is not None
            await store._beat.close()  # lost: the next beat connects again
            with pytest.raises(asyncpg.InterfaceError):
                await store.heartbeat("A", 30)
            assert await asyncio.wait_for(store.heartbeat("A", 30), 5)
        finally:
            for connection in held:
                await pool.release(connection)


async def test_a_waiting_instance_has_no_owner_and_anyone_may_claim_it(postgres_url: str) -> None:
    async with PostgresStore(postgres_url) as a, PostgresStore(postgres_url) as b:
        await a.join_cluster("A", "h", 1, duration=30)
        await b.join_cluster("B", "h", 2, duration=30)
        await a.commit(
            Mutation(
                snapshot=snapshot(revision=1, status="waiting"),
                timers_set=(TimerRecord(timer_id="t", instance_id="i1", due_at=5, kind="sleep"),),
            )
        )
        assert [t.timer_id for t in await b.unheld_due_timers(10)] == ["t"]
        claim = await b.claim("i1", "B")
        assert claim.snapshot is not None
        assert claim.snapshot.revision == 1
        assert (await a.claim("i1", "A")).holder == "B"
        assert await a.unheld_due_timers(10) == []
        assert (await a.claim("ghost", "A")) == type(claim)()
        await b.leave_cluster("B")
        assert (await a.claim("i1", "A")).snapshot is not None


def _runnable(record):  # type: ignore[no-untyped-def]
    import msgspec

    return msgspec.structs.replace(record, runnable=True)


def _db(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def test_two_closes_at_once_both_return_once_the_writes_in_flight_are_durable(
    postgres_url: str,
) -> None:
    # the close is shared by both stores (GroupWrites.close): the second waits for the first
    store = PostgresStore(postgres_url)
    await store.open()
    writes = [store.commit(Mutation(snapshot=snapshot(f"c{n}", revision=1))) for n in range(20)]
    await asyncio.wait_for(asyncio.gather(store.close(), store.close(), *writes), 20)
    async with PostgresStore(postgres_url) as reopened:
        for n in range(20):
            assert await reopened.load_snapshot(f"c{n}") is not None


async def test_the_read_commands_read_a_postgresql_database_and_refuse_an_empty_one(
    postgres_url: str,
) -> None:
    refused = await asyncio.to_thread(cli, "runs", "--db", postgres_url)
    assert refused.returncode == 2
    assert "a cronflow-actors database (it has no schema_version table)" in refused.stderr
    empty = PostgresStore(postgres_url)
    assert await empty.stored_version() is None  # the read created nothing
    flow = cf.define("pg-read").step("one", lambda ctx: {"n": ctx.payload["n"]})
    runtime = cf.Runtime(db=postgres_url, workflows=[flow])
    await runtime.start()
    try:
        first = await runtime.trigger("pg-read", {"n": 6})
        run_id = await runtime.trigger("pg-read", {"n": 7})
        for run in (first, run_id):
            await asyncio.wait_for(runtime.wait_workflow(run), 10)
        listed = await asyncio.to_thread(cli, "runs", "--db", postgres_url, "--json")
        inspected = await asyncio.to_thread(cli, "inspect", run_id, "--db", postgres_url)
        # a password in the URL is never printed (the server trusts loopback: any one does)
        secret = postgres_url.replace("postgres@", "postgres:hunter2@", 1)
        paged = await asyncio.to_thread(cli, "runs", "--db", secret, "--limit", "1")
        missing = await asyncio.to_thread(cli, "inspect", "nope", "--db", secret)
    finally:
        await runtime.stop()
    assert listed.returncode == 0, listed.stderr
    newest, _first = json.loads(listed.stdout)["runs"]
    assert (newest["id"], newest["status"], newest["output"]) == (run_id, "completed", {"n": 7})
    assert inspected.returncode == 0, inspected.stderr
    assert f"run {run_id}  pg-read v1  completed" in inspected.stdout
    assert paged.returncode == 0, paged.stderr
    assert missing.returncode == 3
    for said in (paged.stderr, missing.stderr):
        assert "hunter2" not in said
        assert ":***@" in said


async def test_a_step_error_holding_a_nul_is_retried_and_answered_as_on_sqlite(
    postgres_url: str,
) -> None:
    # PostgreSQL's text cannot hold a NUL: the commit recording such a failure was refused, and
    # the run failed with the store's error at once, no retry, no fallback (hostile h33 M1)
    def refuse(ctx: cf.FlowContext) -> None:
        raise RuntimeError(ctx.payload["m"])

    retried = cf.define("retried").step("boom", refuse, retry=cf.Retry(attempts=3, delay=0))
    answered = cf.define("answered").step("boom", refuse).on_error(lambda ctx: "answered")
    async with cf.Runtime(db=postgres_url, workflows=[retried, answered]) as rt:
        failed = await rt.wait(await rt.trigger("retried", {"m": "bad\x00thing"}), timeout=30)
        said = "step 'boom': RuntimeError: bad\x00thing"
        assert (failed.status, failed.error) == ("failed", said)
        [step] = (await rt.inspect(failed.id)).steps
        assert (step.attempts, step.error_type) == (3, "builtins.RuntimeError")
        journal = await rt.store.load_journal(failed.id)
        assert [entry.error for entry in journal] == ["RuntimeError: bad\\x00thing"] * 3
        fell_back = await rt.wait(await rt.trigger("answered", {"m": "x\x00"}), timeout=30)
        assert (fell_back.status, fell_back.output) == ("completed", "answered")
        [step] = (await rt.inspect(fell_back.id)).steps
        assert step.error == "RuntimeError: x\x00"  # (the snapshot keeps it as it was)

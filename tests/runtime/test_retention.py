"""Retention: finished runs older than the configured age are pruned in the background, with
their history; runs still going are never touched; the file stops growing; ``db prune`` does
it by hand."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import ConfigurationError, InstanceExistsError, NotFoundError
from cronflow_actors.kernel import ManualClock
from cronflow_actors.runtime.pruning import SUCCESSORS

HOUR = 3600.0


def flows() -> list[cf.Flow]:
    def refuse(ctx: cf.FlowContext) -> None:
        raise ValueError("no")

    return [
        cf.define("quick").step("echo", lambda ctx: ctx.payload),
        cf.define("broken").step("refuse", refuse),
        cf.define("held")
        .human_in_the_loop("approve", description="ok?")
        .step("after", lambda ctx: ctx.last["approved"]),
    ]


def rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as raw:
        count: int = raw.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return count


async def test_finished_runs_are_pruned_once_older_than_the_retention(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "keep.db"
    async with cf.Runtime(db=db, clock=clock, workflows=flows(), retention=HOUR) as rt:
        done = [await rt.trigger("quick", n) for n in range(3)]
        failed = await rt.trigger("broken")
        held = await rt.trigger("held")
        canceled = await rt.trigger("held")
        await rt.wait_idle()
        await rt.cancel(canceled)
        await rt.wait_idle()
        assert (await rt.inspect(failed)).status == "failed"
        assert rows(db, "journal") > 0

        clock.advance(HOUR / 2)  # younger than the retention: kept
        await rt.wait_idle()
        for run_id in (*done, failed, canceled):
            await rt.inspect(run_id)

        clock.advance(HOUR)  # now older, and the background pruning has come round
        await rt.wait_idle()
        for run_id in (*done, failed, canceled):
            with pytest.raises(NotFoundError):
                await rt.inspect(run_id)
        # the run that still waits is untouched, and goes on as before
        assert (await rt.inspect(held)).status == "waiting"
        [pause] = await rt.list_paused()
        await rt.resume(pause.token, {"approved": True})
        assert (await rt.wait(held)).output is True
    with sqlite3.connect(db) as raw:
        left = {row[0] for row in raw.execute("SELECT instance_id FROM instances")}
        orphans = raw.execute(
            "SELECT COUNT(*) FROM journal"
            " WHERE instance_id NOT IN (SELECT instance_id FROM instances)"
        ).fetchone()[0]
    assert left == {held}
    assert orphans == 0  # their history went with them


async def test_retention_zero_keeps_everything(tmp_path: Path, clock: ManualClock) -> None:
    async with cf.Runtime(db=tmp_path / "z.db", clock=clock, workflows=flows(), retention=0) as rt:
        run_id = await rt.trigger("quick", 1)
        await rt.wait(run_id)
        clock.advance(10 * 365 * 86400)
        await rt.wait_idle()
        assert (await rt.inspect(run_id)).status == "completed"


async def test_prune_by_hand_returns_how_many(tmp_path: Path, clock: ManualClock) -> None:
    async with cf.Runtime(db=tmp_path / "h.db", clock=clock, workflows=flows(), retention=0) as rt:
        for n in range(2500):  # more than one page of the store's pruning
            await rt.trigger("quick", n)
        await rt.wait_idle()
        clock.advance(60)
        assert await rt.prune(older_than=120) == 0
        assert await rt.prune(older_than=30) == 2500
        assert (await rt.list_runs()) == []


@pytest.mark.parametrize(
    ("name", "value"), [("retention", -1), ("retention", "30d"), ("prune_every", 0)]
)
def test_bad_retention_settings_are_refused(name: str, value: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        cf.Runtime(**{name: value})  # type: ignore[arg-type]
    assert name in str(caught.value)


async def test_the_file_stops_growing(tmp_path: Path) -> None:
    """Pruned runs' pages go back to the file system, so a steady load keeps the file at one
    size instead of growing by every finished run."""
    db = tmp_path / "steady.db"
    sizes = []
    async with cf.Runtime(db=db, workflows=flows(), retention=0, synchronous="OFF") as rt:
        for _ in range(4):
            ids = [await rt.trigger("quick", "x" * 2000) for _ in range(300)]
            for run_id in ids:
                await rt.wait(run_id)
            assert await rt.prune(older_than=0) == 300
            # the database's size as a reader sees it, its log included: the file's own is
            # that of its last checkpoint's moment (143 KB after the first 300 runs, 5.5 MB
            # after the second: a flake once the runs were quicker)
            with sqlite3.connect(db) as raw:
                pages = raw.execute("PRAGMA page_count").fetchone()[0]
                sizes.append(pages * raw.execute("PRAGMA page_size").fetchone()[0])
    assert max(sizes[1:]) <= sizes[0] * 1.1, sizes
    with sqlite3.connect(db) as raw:
        free = raw.execute("PRAGMA freelist_count").fetchone()[0]
        pages = raw.execute("PRAGMA page_count").fetchone()[0]
    assert free < pages / 2, (free, pages)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronflow_actors", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_db_prune_on_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    async with cf.Runtime(db=db, workflows=flows()) as rt:
        done = [await rt.trigger("quick", n) for n in range(5)]
        held = await rt.trigger("held")
        for run_id in done:
            await rt.wait(run_id)
        await rt.wait_idle()
    kept = cli("db", "prune", "--db", str(db), "--older-than", "7d")
    assert kept.returncode == 0, kept.stderr
    assert "pruned 0 finished runs older than 7d" in kept.stdout
    await asyncio.sleep(0.01)  # "0": everything finished before now
    pruned = cli("db", "prune", "--db", str(db), "--older-than", "0")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 5 finished runs" in pruned.stdout
    with sqlite3.connect(db) as raw:
        assert [row[0] for row in raw.execute("SELECT instance_id FROM instances")] == [held]


def test_db_prune_refuses_bad_input(tmp_path: Path) -> None:
    bad = cli("db", "prune", "--db", str(tmp_path / "x.db"), "--older-than", "7 days")
    assert bad.returncode == 2
    assert "--older-than" in bad.stderr
    missing = cli("db", "prune", "--db", str(tmp_path / "missing.db"), "--older-than", "7d")
    assert missing.returncode == 2
    assert f"setting '--db' has the value '{tmp_path / 'missing.db'}'" in missing.stderr
    assert "nothing was deleted" in missing.stderr
    assert not (tmp_path / "missing.db").exists()  # nothing was created


async def test_a_listing_of_big_runs_pages_by_size(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cronflow_actors.runtime import run_views

    monkeypatch.setattr(run_views, "PAGE_BYTES", 20_000)
    async with cf.Runtime(db=tmp_path / "big.db", clock=clock, workflows=flows()) as rt:
        ids = [await rt.trigger("quick", "x" * 5000) for _ in range(12)]
        await rt.wait_idle()
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await rt.list_runs(limit=50, cursor=cursor)
            pages += 1
            assert len(page) < 12  # each page stops near 20 KB of stored state
            assert len(page) > 0  # and the last has runs: no cursor led past it (retest h43)
            seen += [r.id for r in page]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids)
        assert pages > 2


def fragile(broken: list[bool]) -> cf.Flow:
    """A flow whose first step fails while ``broken`` holds, then waits for a person."""

    def check(ctx: cf.FlowContext) -> str:
        if broken:
            raise RuntimeError("down")
        return "checked"

    return (
        cf.define("fragile")
        .step("check", check)
        .human_in_the_loop("approve", description="ok?")
        .step("after", lambda ctx: ctx.last["approved"])
    )


async def test_a_run_is_kept_while_its_resume_goes_on_and_the_chain_goes_with_its_last(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Pruned by its own end, a failed run whose resume still waited freed its id: a duplicate
    delivery of its webhook's key started the work again (ops h41 F3)."""
    broken = [True]
    # (no pruning in the background: the counts are this test's prunes')
    flows = [fragile(broken)]
    async with cf.Runtime(db=tmp_path / "r.db", clock=clock, workflows=flows, retention=None) as rt:
        first = await rt.trigger("fragile", 1, instance_id="delivery-1")
        assert (await rt.wait(first)).status == "failed"
        second = await rt.replay(first, resume=True)  # fails again: a chain of resumes
        assert (await rt.wait(second)).status == "failed"
        broken.clear()
        third = await rt.replay(second, resume=True)
        await rt.wait_idle()
        assert (await rt.inspect(third)).status == "waiting"

        clock.advance(HOUR)
        assert await rt.prune(older_than=60) == 0
        assert (await rt.inspect(first)).current_run_id == third
        with pytest.raises(InstanceExistsError):  # the delivery's duplicate: not a new run
            await rt.trigger("fragile", 1, instance_id="delivery-1")

        [pause] = await rt.list_paused()
        await rt.resume(pause.token, {"approved": True})
        assert (await rt.wait(third)).output is True
        clock.advance(HOUR)
        assert await rt.prune(older_than=60) == 3  # the whole chain, in one prune
        assert await rt.store.kv_items(SUCCESSORS, now=clock.now()) == {}
        assert await rt.list_runs() == []


async def test_a_prune_within_a_minute_of_a_resume_takes_the_chain_whole(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A prune that took a resume's run within a minute of the resume kept the run it resumed,
    with no link to it: a client's retried resume then ran the work a second time (pg h43
    F1). The link of a later run the prune took goes with it, however young."""
    broken = [True]
    flows = [fragile(broken)]
    async with cf.Runtime(db=tmp_path / "y.db", clock=clock, workflows=flows, retention=None) as rt:
        first = await rt.trigger("fragile", 1, instance_id="delivery-1")
        assert (await rt.wait(first)).status == "failed"
        broken.clear()
        resumed = await rt.replay(first, resume=True)
        await rt.wait_idle()
        assert (await rt.inspect(resumed)).replay_of == first  # (ctx.trigger.replay_of)
        [pause] = await rt.list_paused()
        await rt.resume(pause.token, {"approved": True})
        assert (await rt.wait(resumed)).output is True
        clock.advance(5)  # (the link is 5 s old)
        assert await rt.prune(older_than=0) == 2  # the chain, whole
        assert await rt.store.kv_items(SUCCESSORS, now=clock.now()) == {}
        with pytest.raises(NotFoundError):  # a retried resume: no run to resume, not the work
            await rt.replay(first, resume=True)


async def test_a_prune_within_a_minute_of_a_migration_takes_both_runs(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The migrated run was kept, unlinked, when the prune took its new run: a retried migrate
    was told "another caller's migration is under way; ask again" for as long (pg h43 F3)."""
    flows = [
        cf.define("moving", version=v).step("a", lambda ctx: 1).pause("ok") for v in ("v1", "v2")
    ]
    async with cf.Runtime(db=tmp_path / "m.db", clock=clock, workflows=flows, retention=None) as rt:
        old = await rt.trigger("moving")
        await rt.wait_idle()
        version = (await rt.inspect(old)).version
        new = await rt.migrate(old, "v1" if version == "v2" else "v2")
        await rt.wait_idle()
        [pause] = await rt.list_paused()
        await rt.resume(pause.token, {"approved": True})
        await rt.wait(new)
        clock.advance(5)
        assert await rt.prune(older_than=0) == 2
        assert await rt.store.kv_items(SUCCESSORS, now=clock.now()) == {}
        with pytest.raises(NotFoundError):
            await rt.migrate(old, "v2")


async def test_a_refused_resume_leaves_no_link(tmp_path: Path, clock: ManualClock) -> None:
    """A resume writes its link before it reads its run; refused, the link stayed, for good on a
    runtime that prunes nothing (retest3 h42 N4)."""
    async with cf.Runtime(db=tmp_path / "n.db", clock=clock, workflows=flows()) as rt:
        with pytest.raises(NotFoundError):
            await rt.replay("no-such-run", resume=True)
        done = await rt.trigger("quick", 1)
        await rt.wait(done)
        with pytest.raises(cf.errors.ReplayRefusedError):  # a completed run: nothing to resume
            await rt.replay(done, resume=True)
        assert await rt.store.kv_items(SUCCESSORS, now=clock.now()) == {}


async def test_a_resume_asked_again_during_a_prune_never_runs_the_work_again(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The prune took a resumed run in one pass and the run it went on from in the next: a
    resume asked again between the two found the first run stored and its resume gone, and ran
    the work again (review h43 F2). A chain goes from its first run on: asked again after
    any page of the prune, a resume answers the run it started or that there is no run."""
    ran: list[str] = []

    def check(ctx: cf.FlowContext) -> str:
        if ctx.trigger.replay_of is None or ctx.trigger.replay_of.endswith("first"):
            raise RuntimeError("down")  # the first run and its resume fail: a chain of three
        ran.append(ctx.trigger.replay_of)
        return "charged"

    flow = cf.define("fragile").step("check", check)
    db = tmp_path / "c.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow], retention=None) as rt:
        first = await rt.trigger("fragile", 1, instance_id="first")
        await rt.wait(first)
        second = await rt.replay(first, resume=True)
        assert (await rt.wait(second)).status == "failed"
        third = await rt.replay(second, resume=True)
        assert (await rt.wait(third)).status == "completed"
        deleted_by_page = rt.store.prune
        answers: list[str] = []

        async def prune(**page: object) -> int:  # a client asks both resumes again each page
            deleted = await deleted_by_page(**page)  # type: ignore[arg-type]
            for run in (first, second):
                try:
                    answers.append(await rt.replay(run, resume=True))
                except NotFoundError:
                    answers.append("no run")
            return deleted

        rt.store.prune = prune  # type: ignore[method-assign]
        clock.advance(5)
        assert await rt.prune(older_than=0) == 3
        await rt.wait_idle()
        assert ran == [second]  # the work, once
        assert set(answers) <= {second, third, "no run"}
        assert answers[-2:] == ["no run", "no run"]
        assert await rt.list_runs() == []
        assert await rt.store.kv_items(SUCCESSORS, now=clock.now()) == {}


async def test_two_prunes_of_one_database_take_turns(tmp_path: Path, clock: ManualClock) -> None:
    """Two processes pruning one database at once (each serve's retention, or db prune beside
    a serve): one let a chain's first link go, the other read the links then and deleted the
    run after it, which a resume asked again started again (review h44 F1). A prune waits for
    the other's to end."""
    from cronflow_actors.runtime.pruning import prune_finished
    from cronflow_actors.store import SQLiteStore

    db = tmp_path / "turns.db"
    async with cf.Runtime(db=db, clock=clock, workflows=flows(), retention=None) as rt:
        await rt.wait(await rt.trigger("quick", 1))
        other = SQLiteStore(db)  # another process's store of the same file
        await other.open()
        try:
            inside, release = asyncio.Event(), asyncio.Event()
            deletes = other.prune

            async def held(**page: Any) -> int:
                inside.set()
                await release.wait()
                return await deletes(**page)

            other.prune = held  # type: ignore[method-assign]
            now = clock.now() + 1
            first = asyncio.ensure_future(prune_finished(other, finished_before=now, now=now))
            await inside.wait()
            second = asyncio.ensure_future(rt.prune(older_than=0))
            await asyncio.sleep(1.0)
            assert not second.done()  # its turn comes once the other's prune has ended
            release.set()
            assert (await first, await second) == (1, 0)
        finally:
            await other.close()


async def test_a_long_chain_is_read_once_a_prune(tmp_path: Path, clock: ManualClock) -> None:
    """Each pass of a prune read every run of a chain again: 800 resumes took 320,000 reads
    and 24 s (review h44 F2). Each run is read once."""

    def refuse(ctx: cf.FlowContext) -> None:
        raise RuntimeError("down")

    flow = cf.define("again").step("s", refuse)
    db = tmp_path / "chain.db"
    async with cf.Runtime(db=db, clock=clock, workflows=[flow], retention=None) as rt:
        run = await rt.trigger("again", 1)
        await rt.wait(run)
        for _ in range(20):  # a chain of 21 runs, each resuming the one before
            run = await rt.replay(run, resume=True)
            await rt.wait(run)
        reads = 0
        load = rt.store.load_snapshot

        async def counted(run_id: str) -> Any:
            nonlocal reads
            reads += 1
            return await load(run_id)

        rt.store.load_snapshot = counted  # type: ignore[method-assign]
        clock.advance(HOUR)
        assert await rt.prune(older_than=60) == 21
        assert reads <= 21, reads


async def test_a_prune_that_keeps_failing_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock file no prune could open was said at each pass, once a second for as long as the
    service ran (retest h45 N5): said once, and again when it fails otherwise."""
    db = tmp_path / "said.db"
    async with cf.Runtime(db=db, workflows=flows(), retention=3600, prune_every=0.05) as rt:
        await asyncio.sleep(0.1)  # (a pass or two that work)
        lock = f"{db}-prune.lock"
        os.unlink(lock)
        os.mkdir(lock)  # no prune can open it
        await asyncio.sleep(0.5)  # about ten passes
        said = [r for r in caplog.records if "pruning finished runs failed" in r.message]
        assert len(said) == 1, [r.message for r in said]
        assert "which this process cannot open" in said[0].message
        os.rmdir(lock)
        await asyncio.sleep(0.2)
        assert (await rt.readiness())["runtime"] == "ok"

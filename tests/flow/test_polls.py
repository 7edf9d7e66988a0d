"""``on_poll``: the poll function is called at every multiple of its interval on the runtime's
clock; each new item starts one run, an item seen before never starts another (across a
restart too); a poll that fails is logged and counted and the next one goes on."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.kernel import ManualClock

START = 1_800_000_000.0  # a multiple of 60: polls fall on START + 60, + 120, ...


class Inbox:
    """What a poll function reads: the items it returns, and who called it when."""

    def __init__(self, *items: Any) -> None:
        self.items: list[Any] = list(items)
        self.calls: list[cf.PollContext] = []
        self.threads: list[str] = []
        self.fail = False

    def poll(self, ctx: cf.PollContext) -> list[Any]:
        self.calls.append(ctx)
        self.threads.append(threading.current_thread().name)
        if self.fail:
            raise ConnectionError("the mail server is down")
        return list(self.items)


def mail_flow(inbox: Inbox, handled: list[Any], **options: Any) -> cf.Flow:
    def handle(ctx: Any) -> Any:
        handled.append(ctx.payload)
        return {"subject": ctx.payload["subject"], "kind": ctx.trigger.kind}

    return cf.define("mail").step("handle", handle).on_poll(inbox.poll, interval="1m", **options)


async def runs_of(rt: cf.Runtime, workflow: str) -> list[cf.RunResult]:
    snapshots = await rt.store.list_snapshots(workflow=workflow)
    return [await rt.wait(s.instance_id, timeout=5) for s in snapshots]


async def test_each_new_item_starts_one_run(tmp_path: Path) -> None:
    clock = ManualClock(start=START)
    inbox = Inbox({"id": "m1", "subject": "hello"}, {"id": "m2", "subject": "invoice"})
    handled: list[Any] = []
    async with cf.Runtime(db=tmp_path / "poll.db", clock=clock) as rt:
        rt.register(mail_flow(inbox, handled))
        await rt.wait_idle()
        assert inbox.calls == []  # the first poll is at the next multiple of the interval
        clock.advance(60)
        await rt.wait_idle()
        assert [ctx.now for ctx in inbox.calls] == [START + 60]
        assert sorted(r.output["subject"] for r in await runs_of(rt, "mail")) == [
            "hello",
            "invoice",
        ]
        inbox.items.append({"id": "m3", "subject": "late"})
        clock.advance(60)
        await rt.wait_idle()
        results = await runs_of(rt, "mail")
        assert sorted(r.output["subject"] for r in results) == ["hello", "invoice", "late"]
        assert {r.output["kind"] for r in results} == {"poll"}
        assert [item["id"] for item in handled] == ["m1", "m2", "m3"]  # in the order returned
        stats = rt.polls.stats["mail"]
        assert (stats.polls, stats.started, stats.seen, stats.failures) == (2, 3, 2, 0)
        # plain functions run on the blocking pool, as plain step handlers do
        assert threading.main_thread().name not in inbox.threads
        ctx = inbox.calls[0]
        assert (ctx.workflow_id, ctx.interval) == ("mail", 60.0)


async def test_a_poll_keeps_a_cursor_in_the_flows_state(rt: cf.Runtime, clock: ManualClock) -> None:
    clock.set(START)
    feed = [{"id": n, "n": n} for n in range(1, 6)]
    cursors: list[Any] = []

    async def poll(ctx: cf.PollContext) -> list[Any]:  # async: awaited on the loop
        cursor = await ctx.state.get("cursor", 0)
        cursors.append(cursor)
        new = [item for item in feed if item["n"] > cursor][:2]
        if new:
            await ctx.state.set("cursor", new[-1]["n"])
        return new

    async def seen_cursor(ctx: Any) -> Any:
        return [ctx.payload["n"], await ctx.state.get("cursor")]

    rt.register(cf.define("feed").step("s", seen_cursor).on_poll(poll, interval=10))
    await rt.wait_idle()
    for _ in range(4):
        clock.advance(10)
        await rt.wait_idle()
    assert cursors == [0, 2, 4, 5]
    assert sorted(r.output[0] for r in await runs_of(rt, "feed")) == [1, 2, 3, 4, 5]


async def test_keys_and_payloads(rt: cf.Runtime, clock: ManualClock) -> None:
    clock.set(START)
    returned = [
        {"id": "c1", "payload": {"email": "a@x"}},  # Cronflow's shape: the payload is inside
        {"id": "c2", "payload": {"email": "b@x"}},
        {"id": "c1", "payload": {"email": "again@x"}},  # the same key in one poll: once
    ]
    rt.register(
        cf.define("cronflow-shape")
        .step("s", lambda ctx: ctx.payload)
        .on_poll(lambda ctx: returned, interval="1m")
    )
    tickets = [{"ticket": 7, "title": "a"}, {"ticket": "7", "title": "b"}, "plain", 42]
    rt.register(
        cf.define("keyed")
        .step("s", lambda ctx: ctx.payload)
        .on_poll(
            lambda ctx: tickets,
            interval="1m",
            key=lambda item: item["ticket"] if isinstance(item, dict) else item,
        )
    )
    await rt.wait_idle()
    clock.advance(60)
    await rt.wait_idle()
    outputs = [r.output for r in await runs_of(rt, "cronflow-shape")]
    assert sorted(o["email"] for o in outputs) == ["a@x", "b@x"]
    keyed = [r.output for r in await runs_of(rt, "keyed")]
    assert len(keyed) == 4  # 7 and "7" are two keys; a str and an int item are their own key
    assert rt.polls.stats["cronflow-shape"].seen == 1


async def test_a_failing_poll_is_logged_and_counted_and_the_next_goes_on(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.set(START)
    inbox = Inbox({"id": "m1", "subject": "one"})
    handled: list[Any] = []
    rt.register(mail_flow(inbox, handled))
    await rt.wait_idle()
    inbox.fail = True
    with caplog.at_level(logging.ERROR, logger="cronflow_actors.runtime.polls"):
        clock.advance(60)
        await rt.wait_idle()
    assert "the poll of mail failed" in caplog.text
    assert "the mail server is down" in caplog.text  # with its traceback
    assert handled == []
    inbox.fail = False
    clock.advance(60)
    await rt.wait_idle()
    assert [item["id"] for item in handled] == ["m1"]
    stats = rt.polls.stats["mail"]
    assert (stats.failures, stats.polls, stats.started) == (1, 1, 1)
    metrics = rt.metrics.registry
    assert (
        metrics.get_sample_value("cronflow_polls_total", {"workflow": "mail", "outcome": "failed"})
        == 1.0
    )
    assert (
        metrics.get_sample_value(
            "cronflow_poll_items_total", {"workflow": "mail", "outcome": "started"}
        )
        == 1.0
    )


async def test_bad_returns_and_bad_items_are_refused_and_the_rest_start(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.set(START)
    answers: list[Any] = [
        {"id": "not a list"},
        None,  # nothing new
        [{"no": "id"}, {"id": ["a", "list"]}, {"id": "ok"}, True],
    ]
    rt.register(
        cf.define("picky")
        .step("s", lambda ctx: ctx.payload)
        .on_poll(lambda ctx: answers.pop(0) if answers else [], interval=5)
    )
    await rt.wait_idle()
    with caplog.at_level(logging.ERROR, logger="cronflow_actors.runtime.polls"):
        for _ in range(3):
            clock.advance(5)
            await rt.wait_idle()
    assert "returns a list of items (or None); it returned {'id': 'not a list'}" in caplog.text
    assert 'needs an "id", or give on_poll a key=' in caplog.text
    assert "a poll key is a non-empty string or an int, got ['a', 'list']" in caplog.text
    assert [r.output for r in await runs_of(rt, "picky")] == [{"id": "ok"}]
    stats = rt.polls.stats["picky"]
    assert (stats.failures, stats.polls, stats.started, stats.refused) == (1, 2, 1, 3)


async def test_an_item_is_never_started_twice_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "dedup.db"
    inbox = Inbox({"id": "m1", "subject": "one"}, {"id": "m2", "subject": "two"})
    handled: list[Any] = []
    clock = ManualClock(start=START)
    async with cf.Runtime(db=db, clock=clock, workflows=[mail_flow(inbox, handled)]) as rt:
        clock.advance(60)
        await rt.wait_idle()
        assert len(await runs_of(rt, "mail")) == 2
    inbox.items.append({"id": "m3", "subject": "three"})
    clock = ManualClock(start=START + 3600)
    async with cf.Runtime(db=db, clock=clock, workflows=[mail_flow(inbox, handled)]) as rt:
        clock.advance(60)
        await rt.wait_idle()
        assert sorted(r.output["subject"] for r in await runs_of(rt, "mail")) == [
            "one",
            "three",
            "two",
        ]
        assert (rt.polls.stats["mail"].started, rt.polls.stats["mail"].seen) == (1, 2)
        # A start whose mark was lost (a crash right after the start): its run id guards it.
        assert await rt.store.kv_delete("cronflow:polls:mail", '"m3"')
        clock.advance(60)
        await rt.wait_idle()
        assert len(await runs_of(rt, "mail")) == 3
    assert [item["id"] for item in handled] == ["m1", "m2", "m3"]  # each handled once


async def test_an_item_stays_seen_after_its_run_is_pruned(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    clock.set(START)
    inbox = Inbox({"id": "m1", "subject": "one"})
    handled: list[Any] = []
    rt.register(mail_flow(inbox, handled))
    await rt.wait_idle()
    clock.advance(60)
    await rt.wait_idle()
    clock.advance(1)
    assert await rt.prune(older_than=0) == 1
    assert await rt.store.list_snapshots(workflow="mail") == []
    clock.advance(60)
    await rt.wait_idle()
    assert [item["id"] for item in handled] == ["m1"]


async def test_no_caller_takes_the_run_of_an_item_before_its_poll(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    # an item's run id was 32 hex digits anyone could work out and start first (POST /runs):
    # the item was then seen, its run never run (the third hostile client's H1)
    clock.set(START)
    inbox = Inbox({"id": "m1", "subject": "one"})
    handled: list[Any] = []
    legacy = uuid.uuid5(uuid.UUID("3f6d2c1a-97b4-4e0a-8c55-1d2e7b9a4f60"), 'mail|"m1"').hex
    rt.register(mail_flow(inbox, handled))
    await rt.trigger("mail", {"subject": "forged"}, instance_id=legacy)
    await rt.wait_idle()
    clock.advance(60)
    await rt.wait_idle()
    assert [item["subject"] for item in handled] == ["forged", "one"]
    assert (await rt.wait(f"poll:{legacy}", timeout=5)).output["subject"] == "one"


async def test_polls_stop_with_the_runtime(tmp_path: Path) -> None:
    clock = ManualClock(start=START)
    inbox = Inbox()
    async with cf.Runtime(db=tmp_path / "stop.db", clock=clock) as rt:
        rt.register(mail_flow(inbox, []))
        await rt.wait_idle()
        clock.advance(60)
        await rt.wait_idle()
    clock.advance(600)
    await asyncio.sleep(0)
    assert len(inbox.calls) == 1


def test_poll_definitions_are_checked() -> None:
    flow = (
        cf.define("bad-polls")
        .step("s", str)
        .on_poll("not a function")  # type: ignore[arg-type]
        .on_poll(lambda ctx: [], interval="soon")
        .on_poll(lambda ctx: [], interval=0)
        .on_poll(lambda: [])
        .on_poll(lambda ctx: [], key=lambda a, b: a)
    )
    with pytest.raises(cf.errors.InvalidWorkflowError) as invalid:
        flow.build()
    text = str(invalid.value)
    assert (
        "the poll function must be a function, fn(ctx) -> list of items; got 'not a function'"
        in text
    )
    assert "on_poll interval must be a number of seconds or a string like" in text
    assert "interval must be longer than 0, got 0" in text
    assert (
        "the poll function must take one argument, as in fn(ctx) -> list of items; it takes ()"
        in text
    )
    assert "key must take one argument, as in key(item) -> str | int; it takes (a, b)" in text
    assert flow.polls == []

"""A detached action's record: dispatched, then completed or failed with its error, attempts and
its handler's own times; dispatched again (and shown as such) after a restart; never failing
the run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cronflow_actors as cf
from cronflow_actors.cli.client import render_run
from cronflow_actors.engine.detached import NOT_REDISPATCHED
from cronflow_actors.http.routes.runs import run_json
from cronflow_actors.kernel import ManualClock
from cronflow_actors.messages import Message
from cronflow_actors.messages.engine import ActionStateChanged


def action_changes(rt: cf.Runtime) -> list[ActionStateChanged]:
    seen: list[ActionStateChanged] = []

    def watch(changes: list[Message]) -> None:
        seen.extend(c for c in changes if isinstance(c, ActionStateChanged))

    rt.observe(watch)
    return seen


async def test_a_failing_action_is_recorded_as_failed_with_its_error_and_real_times(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    gate = asyncio.Event()

    async def mail(ctx: Any) -> None:
        await gate.wait()
        raise ConnectionError("mail server down")

    rt.register(cf.define("acts").step("a", lambda ctx: "A").action("mail", mail).step("b", str))
    changes = action_changes(rt)
    run_id = await rt.trigger("acts")
    assert (await rt.wait(run_id)).status == "completed"  # the run did not wait for the action
    step = {s.id: s for s in (await rt.inspect(run_id)).steps}["mail"]
    dispatched_at = clock.now()
    assert (step.kind, step.status, step.attempts, step.error) == ("action", "dispatched", 1, None)
    assert step.started_at == dispatched_at
    assert step.finished_at is None

    began = clock.now()
    clock.advance(2.5)  # the handler runs for 2.5 s of the clock
    gate.set()
    await rt.wait_idle()
    info = await rt.inspect(run_id)
    step = {s.id: s for s in info.steps}["mail"]
    assert info.status == "completed"  # an action never fails the run
    assert (step.status, step.attempts, step.redispatches) == ("failed", 1, 0)
    assert step.error == "ConnectionError: mail server down"
    assert step.error_type == "builtins.ConnectionError"
    assert step.started_at == began
    assert step.finished_at == began + 2.5
    assert [(c.prev, c.next, c.task, c.workflow) for c in changes] == [
        (None, "dispatched", "mail", "acts"),
        ("dispatched", "failed", "mail", "acts"),
    ]
    assert (changes[-1].started_at, changes[-1].finished_at) == (began, began + 2.5)


async def test_a_succeeding_action_is_completed_and_shown_over_http_and_in_the_cli_tree(
    rt: cf.Runtime,
) -> None:
    def blocking(ctx: Any) -> str:  # a plain def: runs on the blocking pool
        return "sent"

    rt.register(cf.define("acts").action("mail", blocking).step("b", lambda ctx: "B"))
    run_id = await rt.trigger("acts")
    await rt.wait(run_id)
    await rt.wait_idle()
    info = await rt.inspect(run_id)
    [step] = [s for s in info.steps if s.id == "mail"]
    assert (step.status, step.error, step.attempts, step.output) == ("completed", None, 1, None)
    assert step.started_at is not None
    assert step.finished_at is not None
    assert step.finished_at >= step.started_at
    shown = run_json(info)
    [mail] = [s for s in shown["steps"] if s["id"] == "mail"]
    assert (mail["status"], mail["attempts"], mail["redispatches"]) == ("completed", 1, 0)
    assert "mail [action] completed attempts=1" in render_run(shown)


async def test_actions_still_out_at_a_restart_are_dispatched_again_and_shown_as_such(
    tmp_path: Path,
) -> None:
    db = tmp_path / "actions.db"
    gate, both = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def send(ctx: Any) -> None:
        calls.append(ctx.attempt)
        if len(calls) == 2:
            both.set()
        await gate.wait()

    def flow() -> cf.Flow:
        return (
            cf.define("mail")
            .step("a", lambda ctx: 1)
            .action("send", send)
            .action("ping", send, durable=False)
        )

    async with cf.Runtime(db=db, workflows=[flow()]) as first:
        run_id = await first.trigger("mail")
        assert (await first.wait(run_id)).status == "completed"
        await both.wait()
        assert {s.id: s.status for s in (await first.inspect(run_id)).steps} == {
            "a": "completed",
            "send": "dispatched",
            "ping": "dispatched",
        }
    # the runtime stopped with both actions out: their handlers never reported
    assert calls == [1, 1]
    calls.clear()
    gate.set()
    second = cf.Runtime(db=db, workflows=[flow()])
    changes = action_changes(second)  # before the start, which dispatches them again
    async with second:
        await second.wait_idle()
        info = await second.inspect(run_id)
        steps = {s.id: s for s in info.steps}
        assert calls == [2]  # only the durable one, told it is its second dispatch
        assert (steps["send"].status, steps["send"].attempts) == ("completed", 2)
        assert steps["send"].redispatches == 1
        assert (steps["ping"].status, steps["ping"].error) == ("failed", NOT_REDISPATCHED)
        assert steps["ping"].redispatches == 0
        assert info.status == "completed"
        assert "send [action] completed attempts=2 (dispatched again after 1 restart)" in (
            render_run(run_json(info))
        )
        redispatched = [(c.task, c.next) for c in changes if c.redispatched]
        assert redispatched == [("send", "dispatched")]


async def test_an_action_its_on_error_answered_keeps_the_error_it_answered(
    rt: cf.Runtime,
) -> None:
    def send(ctx: Any) -> None:
        raise ConnectionError("smtp down")

    flow = (
        cf.define("mailer")
        .action("mail", send)
        .on_error(lambda ctx: "queued for later")
        .step("after", lambda ctx: "done")
    )
    rt.register(flow)
    run_id = await rt.trigger("mailer", {})
    assert (await rt.wait(run_id, timeout=5)).output == "done"
    await rt.wait_idle()
    mail = next(s for s in (await rt.inspect(run_id)).steps if s.id == "mail")
    assert (str(mail.status), mail.error) == ("completed", "ConnectionError: smtp down")

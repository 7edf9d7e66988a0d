"""The class of a step's failure, where a fallback or an alert tells failures apart by it: a
``wait_for_event``'s timeout named none (conform h35 F2), and a failure an ``on_error``
answered kept its words in inspect but not its class (conform h35 F5)."""

from __future__ import annotations

from typing import Any

import cronflow_actors as cf
from cronflow_actors.kernel import ManualClock

TIMEOUT = "cronflow_actors.errors.StepTimeoutError"


async def test_a_wait_for_events_timeout_names_its_class(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    seen: list[Any] = []

    def answer(ctx: cf.FlowContext) -> str:
        seen.append((ctx.error.type, str(ctx.error)))
        return "gave up"

    rt.register(cf.define("told").wait_for_event("w", "never", timeout="30s").on_error(answer))
    rt.register(cf.define("untold").wait_for_event("w", "never", timeout="30s"))
    told, untold = await rt.trigger("told"), await rt.trigger("untold")
    await rt.wait_idle()
    clock.advance(30)
    assert (await rt.wait(told, timeout=5)).output == "gave up"
    said = "StepTimeoutError: timed out after 30 s waiting for event 'never'"
    assert seen == [(TIMEOUT, said)]
    [step] = (await rt.inspect(told)).steps
    assert (step.status, step.error, step.error_type) == ("completed", said, TIMEOUT)
    failed = await rt.inspect(untold)
    assert (failed.status, failed.error, failed.error_type) == (
        "failed",
        f"step 'w': {said}",
        TIMEOUT,
    )
    assert failed.steps[0].error_type == TIMEOUT


async def test_a_failure_its_on_error_answered_keeps_its_class(rt: cf.Runtime) -> None:
    def boom(ctx: cf.FlowContext) -> None:
        raise ValueError("bad")

    def twice(ctx: cf.FlowContext) -> None:
        raise KeyError("the first fallback fails too")

    flow = (
        cf.define("answered")
        .step("raise", boom)
        .on_error(lambda ctx: "fallback")
        .step("again", boom)
        .on_error(twice)
        .on_error(lambda ctx: "second fallback")
        .action("notify", boom)
        .on_error(lambda ctx: None)
    )
    rt.register(flow)
    run_id = await rt.trigger("answered")
    assert (await rt.wait(run_id, timeout=5)).status == "completed"
    await rt.wait_idle()
    steps = {step.id: step for step in (await rt.inspect(run_id)).steps}
    assert (steps["raise"].status, steps["raise"].error, steps["raise"].error_type) == (
        "completed",
        "ValueError: bad",
        "builtins.ValueError",
    )
    assert (steps["again"].error, steps["again"].error_type) == (
        "KeyError: 'the first fallback fails too'",  # what the last fallback answered
        "builtins.KeyError",
    )
    assert (steps["notify"].status, steps["notify"].error_type) == (
        "completed",
        "builtins.ValueError",
    )


async def test_an_answered_failures_class_is_carried_by_a_resume_and_a_migration(
    rt: cf.Runtime, clock: ManualClock
) -> None:
    fail = {"on": True}

    def boom(ctx: cf.FlowContext) -> None:
        raise ValueError("bad")

    def last(ctx: cf.FlowContext) -> str:
        if fail["on"]:
            raise RuntimeError("the last step fails")
        return "ok"

    def flow(version: str) -> cf.Flow:
        built = cf.define("carry", version=version).step("raise", boom).on_error(lambda ctx: 1)
        built = built.wait_for_event("w", "never", timeout="30s").on_error(lambda ctx: 2)
        return built.step("last", last)

    rt.register(flow("v1"))
    failed = await rt.trigger("carry")
    await rt.wait_idle()
    clock.advance(30)
    assert (await rt.wait(failed, timeout=5)).status == "failed"
    fail["on"] = False
    resumed = await rt.replay(failed, resume=True)
    assert (await rt.wait(resumed, timeout=5)).status == "completed"
    steps = {step.id: step for step in (await rt.inspect(resumed)).steps}
    assert (steps["raise"].carried, steps["raise"].error_type) == (True, "builtins.ValueError")
    assert (steps["w"].carried, steps["w"].error_type) == (True, TIMEOUT)

    held = cf.define("held", version="v1").step("raise", boom).on_error(lambda ctx: 1)
    rt.register(held.pause("approve"))
    paused = await rt.trigger("held")
    await rt.wait_idle()
    rt.register(
        cf.define("held", version="v2").step("raise", boom).on_error(lambda ctx: 1).pause("ok")
    )
    moved = await rt.migrate(paused, "v2")
    await rt.wait_idle()
    [step, _] = (await rt.inspect(moved)).steps
    assert (step.id, step.carried, step.error_type) == ("raise", True, "builtins.ValueError")


async def test_one_fallback_reads_the_class_of_a_steps_and_a_groups_failure(
    rt: cf.Runtime,
) -> None:
    """A step's fallback gets the exception, a group's a record of it; ``ctx.error_type``
    names the class for both, so one fallback serves both (newcomer h35 F6)."""
    seen: list[Any] = []

    def fallback(ctx: cf.FlowContext) -> str:
        seen.append((ctx.step_name, ctx.error_type))
        return "skipped"

    def down(ctx: cf.FlowContext) -> None:
        raise LookupError("search is down")

    def hook(ctx: cf.FlowContext) -> None:
        seen.append(("on_failure", ctx.error_type))

    flow = (
        cf.define("shared_fallback", hooks=cf.Hooks(on_failure=hook))
        .step("kb", down)
        .on_error(fallback)
        .parallel("checks", [down, down])
        .on_error(fallback)
        .step("last", lambda ctx: (ctx.error_type, ctx.error))
        .step("fails", down)
    )
    rt.register(flow)
    run = await rt.trigger("shared_fallback")
    assert (await rt.wait(run, timeout=5)).status == "failed"
    await rt.wait_idle()  # (the run's end hooks run after its end is recorded)
    assert seen == [
        ("kb", "builtins.LookupError"),
        ("checks", "builtins.LookupError"),
        ("on_failure", "builtins.LookupError"),
    ]
    steps = {step.id: step for step in (await rt.inspect(run)).steps}
    assert steps["last"].output == [None, None]


async def test_a_resume_keeps_what_a_subflows_and_a_for_eachs_fallback_answered(
    rt: cf.Runtime,
) -> None:
    """A carried subflow or for_each lost the error its fallback answered, where a batch and
    a step kept it (conform h36 F5)."""
    tries: list[str] = []

    def boom(*_: Any) -> None:
        raise ValueError("bad")

    def last(ctx: cf.FlowContext) -> str:
        tries.append("last")
        if len(tries) == 1:
            raise RuntimeError("the last step fails once")
        return "done"

    child = cf.define("kid").step("k", boom)
    rt.register(child)
    rt.register(
        cf.define("answers")
        .subflow("sub", child)
        .on_error(lambda ctx: "sub answered")
        .for_each("each", lambda ctx: [1, 2], boom)
        .on_error(lambda ctx: "each answered")
        .step("last", last)
    )
    failed = await rt.trigger("answers")
    assert (await rt.wait(failed, timeout=5)).status == "failed"
    before = {step.id: (step.error, step.error_type) for step in (await rt.inspect(failed)).steps}
    resumed = await rt.replay(failed, resume=True)
    assert (await rt.wait(resumed, timeout=5)).status == "completed"
    after = {step.id: step for step in (await rt.inspect(resumed)).steps}
    for name, said in (
        ("sub", "step 'k': ValueError: bad"),
        ("each", "ValueError: bad"),
    ):
        assert before[name] == (said, "builtins.ValueError"), name
        assert after[name].carried, name
        assert (after[name].error, after[name].error_type) == before[name], name

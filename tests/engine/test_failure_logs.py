"""A failed attempt leaves one record in the server's log, through the engine's own logger: the
run, the step, the work item and the attempt, with the traceback of the user's code (an
``async def`` step on the loop, a plain ``def`` one on the thread pool alike) when it is the
step's end; ERROR when no retry remains, WARNING when another attempt follows (its traceback at
DEBUG only), INFO and no traceback for a bare retry request; a detached action's failure is a
WARNING naming its run."""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Any

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import RetryRequested
from cronflow_actors.kernel import ManualClock

LOGGER = "cronflow_actors.engine.handlers"


def helper(ctx: Any) -> Any:
    return ctx.payload["missing"]


async def async_step(ctx: Any) -> Any:
    return helper(ctx)


def plain_step(ctx: Any) -> Any:
    return helper(ctx)


def frames(tb: TracebackType | None) -> list[str]:
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


@pytest.mark.parametrize("step", [async_step, plain_step], ids=["async def", "def"])
async def test_a_failed_step_is_logged_with_its_run_step_attempt_and_traceback(
    rt: cf.Runtime, caplog: pytest.LogCaptureFixture, step: Any
) -> None:
    rt.register(cf.define("f").step("a", lambda ctx: 1).step("b", step))
    caplog.set_level(logging.INFO, logger=LOGGER)
    run_id = await rt.trigger("f", {})
    run = await rt.wait(run_id)
    assert run.status == "failed"
    [record] = records(caplog)
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert message.startswith(f"run {run_id}: step 'b' (work item {run_id}.w2, attempt 1)")
    assert "no retry remains" in message
    assert "KeyError: 'missing'" in message
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)
    assert frames(record.exc_info[2])[-2:] == [step.__name__, "helper"]  # the user's own code
    assert (record.run_id, record.workflow, record.step) == (run_id, "f", "b")  # type: ignore[attr-defined]


async def retried_twice(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture, level: int
) -> list[logging.LogRecord]:
    """The records of a step that fails twice, retried once, with the logger at ``level``."""
    rt.register(cf.define("r").step("b", async_step, retry=cf.Retry(attempts=2, delay="1s")))
    caplog.set_level(level, logger=LOGGER)
    run_id = await rt.trigger("r", {})
    await rt.wait_idle()
    clock.advance(1)
    assert (await rt.wait(run_id)).status == "failed"
    return records(caplog)


async def test_an_attempt_that_is_retried_is_a_warning_and_the_last_one_an_error(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    first, last = await retried_twice(rt, clock, caplog, logging.INFO)
    assert first.levelno == logging.WARNING
    assert "attempt 1) failed; another attempt follows in 1 s: KeyError" in first.getMessage()
    # one line: a retried step's tracebacks filled the log (the newcomer's M2)
    assert first.exc_info is None
    assert last.levelno == logging.ERROR
    assert "attempt 2) failed, and no retry remains" in last.getMessage()
    assert last.exc_info is not None


async def test_a_retried_attempt_has_its_traceback_at_debug_level(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    first, _last = await retried_twice(rt, clock, caplog, logging.DEBUG)
    assert first.levelno == logging.WARNING
    assert first.exc_info is not None
    assert isinstance(first.exc_info[1], KeyError)
    assert "helper" in frames(first.exc_info[2])  # the cause's traceback, not the retry's


async def test_a_bare_retry_request_is_one_short_info_line(
    rt: cf.Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[int] = []

    def busy(ctx: Any) -> str:
        asked.append(1)
        if len(asked) == 1:
            raise RetryRequested(5, "the printer is busy")
        return "printed"

    rt.register(cf.define("p").step("print", busy))
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    run_id = await rt.trigger("p")
    await rt.wait_idle()
    clock.advance(5)
    assert (await rt.wait(run_id)).output == "printed"
    [record] = records(caplog)
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert "asked for a retry; another attempt follows in 5 s" in record.getMessage()


async def test_a_failed_detached_action_is_a_warning_naming_its_run(
    rt: cf.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    def mail(ctx: Any) -> None:
        raise ConnectionError("the mail server is down")

    rt.register(cf.define("acts").action("mail", mail).step("b", lambda ctx: "B"))
    caplog.set_level(logging.INFO, logger=LOGGER)
    run_id = await rt.trigger("acts")
    assert (await rt.wait(run_id)).output == "B"
    await rt.wait_idle()
    [record] = records(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"run {run_id}: action 'mail' (work item {run_id}.")
    assert "failed (the run goes on): ConnectionError" in record.getMessage()
    assert record.exc_info is not None


async def test_a_failure_an_on_error_answers_is_one_warning(
    rt: cf.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A step's or an action's failure that its ``on_error`` answered was logged nowhere
    (hostile h34 L2), where README promises a WARNING line; once, without a traceback."""
    flow = (
        cf.define("fb")
        .step("b", plain_step)
        .on_error(lambda ctx: "answered")
        .action("mail", plain_step)
        .on_error(lambda ctx: None)
    )
    rt.register(flow)
    caplog.set_level(logging.INFO, logger=LOGGER)
    run_id = await rt.trigger("fb", {})
    assert (await rt.wait(run_id)).output == "answered"
    await rt.wait_idle()
    said = sorted((r.step, r.levelno, r.getMessage()) for r in records(caplog))  # type: ignore[attr-defined]
    assert [(step, level) for step, level, _ in said] == [
        ("b", logging.WARNING),
        ("mail", logging.WARNING),
    ]
    for _step, _level, message in said:
        assert "failed; its on_error answers it: KeyError: 'missing'" in message
    assert all(r.exc_info is None for r in records(caplog))


async def test_an_errors_line_breaks_start_no_line_of_the_log(
    rt: cf.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """An error whose message holds a payload's line break wrote it as is: a webhook's sender
    could forge a line that reads as the server's own (hostile h32 L6)."""

    def validate(ctx: Any) -> None:
        raise ValueError(f"order {ctx.payload['id']}: the amount must be positive")

    forged = "x\n2026-12-03 11:00:00,000 CRITICAL cronflow_actors.serve: FAKE\u2028\r"
    rt.register(cf.define("orders").step("validate", validate))
    caplog.set_level(logging.INFO)
    run = await rt.wait(await rt.trigger("orders", {"id": forged}))
    assert run.status == "failed"
    said = [r.getMessage() for r in caplog.records if "FAKE" in r.getMessage()]
    assert said, caplog.text
    for message in said:
        assert len(message.splitlines()) == 1, message
        assert "order x\\n2026-12-03 11:00:00,000 CRITICAL" in message
    assert run.error is not None
    assert "\n" in run.error  # (recorded as it was raised)


def test_serve_s_text_log_keeps_a_traceback_s_lines_from_reading_as_records() -> None:
    """The traceback under a failed step's line ends with the exception's message as raised: a
    sender's line break in it still wrote a line that read as the server's own, and a NUL made
    the log a binary file to grep (hostile h33 L1). Serve's text log indents every line after a
    record's first, and writes a NUL (and the other breaks) as escapes."""
    from cronflow_actors.cli.serve import _TextFormatter

    forged = "o-9\n2026-12-03 13:40:00,000 INFO cronflow_actors.serve: FORGED\x00\u2028"
    try:
        raise ValueError(f"order {forged}: the amount must be positive")
    except ValueError:
        record = logging.LogRecord(
            "cronflow_actors.engine.handlers",
            logging.ERROR,
            __file__,
            1,
            "step failed: %s",
            (cf.errors.one_line("ValueError: order " + forged),),
            exc_info=sys.exc_info(),
        )
    text = _TextFormatter().format(record)
    first, *after = text.split("\n")
    assert " ERROR cronflow_actors.engine.handlers: step failed: ValueError: order o-9\\n" in first
    assert after
    assert all(line.startswith("    ") for line in after), text
    assert "    Traceback (most recent call last):" in after
    forged_line = "    2026-12-03 13:40:00,000 INFO cronflow_actors.serve: FORGED\\x00\\u2028: "
    assert forged_line + "the amount must be positive" in after, after
    assert "\x00" not in text
    assert "\u2028" not in text
    # and every other control a terminal acts on, and the bidi controls (review h33 F7)
    odd = "\x07\x08\x7f\x9b\u202e"
    record.args, record.exc_info, record.exc_text = (odd,), None, None
    said = _TextFormatter().format(record)
    assert said.endswith("step failed: \\x07\\x08\\x7f\\x9b\\u202e"), said


async def test_a_step_cut_by_the_store_failing_is_no_failure_of_its_own(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A step whose own write meets a failed store (a full disk under its ``ctx.state``) did not
    fail: nothing of it is recorded, and the next start runs it again. It was logged "failed,
    and no retry remains", for a run that then completed (crash h41 F2)."""
    import asyncio

    reached, broken = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def counts(ctx: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            reached.set()
            await broken.wait()
        return await ctx.state.incr("done")

    asked: list[BaseException] = []

    def retry_on(error: BaseException) -> bool:
        asked.append(error)
        return True

    # with retries: none is asked for, as none would mend it (it asked retry_on, and said
    # "failed; another attempt follows": retest h41)
    flow = cf.define("counted").step("count", counts, retry=cf.Retry(attempts=3, retry_on=retry_on))
    db = tmp_path / "cut.db"
    caplog.set_level(logging.INFO, logger=LOGGER)
    lease = {"lease_seconds": 1, "wait_for_lease": True}  # the failed one's lease lapses
    async with cf.Runtime(db=db, workflows=[flow], **lease) as rt:
        run_id = await rt.trigger("counted")
        await reached.wait()
        rt.store._writer.fail(OSError("database or disk is full"))  # type: ignore[attr-defined]
        broken.set()
        for _ in range(200):
            if records(caplog):
                break
            await asyncio.sleep(0.01)
    [record] = records(caplog)
    assert record.levelno == logging.WARNING
    assert "was cut by the runtime's own failure; the next start runs it again" in (
        record.getMessage()
    )
    assert "StoreFailedError" in record.getMessage()
    async with cf.Runtime(db=db, workflows=[flow], **lease) as rt:  # the disk has room again
        run = await rt.wait(run_id)
    assert (run.status, run.output, len(calls)) == ("completed", 1, 2)
    assert asked == []

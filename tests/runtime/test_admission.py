"""``Runtime(max_active_runs=N)``: new runs start only while fewer than N runs are in memory;
the starts beyond it wait in line, in order, with nothing written, and go ahead as runs finish
or are set aside. Starts from steps are never held back, a canceled or refused start keeps no
place, and ``serve --max-active-runs`` sets it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cronflow_actors as cf
from cronflow_actors.cli.main import _settings, build_parser
from cronflow_actors.errors import (
    ConfigurationError,
    InstanceExistsError,
    RuntimeNotRunningError,
)
from cronflow_actors.runtime.admission import Admission
from cronflow_actors.runtime.config import load_config
from tests.serving import ROOT, serving


def gated(name: str, gate: asyncio.Event, log: list[Any]) -> cf.Flow:
    """Each run's step logs its payload, then waits for ``gate``."""

    async def hold(ctx: Any) -> Any:
        log.append(ctx.payload)
        await gate.wait()
        return ctx.payload

    return cf.define(name).step("hold", hold)


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 5 s")


async def stored_runs(rt: cf.Runtime) -> list[Any]:
    return sorted(run.payload for run in await rt.list_runs(limit=100))


def waiting_gauge(rt: cf.Runtime) -> float | None:
    return rt.metrics.registry.get_sample_value("cronflow_starts_waiting", {})


async def test_starts_beyond_the_limit_wait_in_line_with_nothing_written(tmp_path: Path) -> None:
    gate, log = asyncio.Event(), []
    flow = gated("gated", gate, log)
    async with cf.Runtime(db=tmp_path / "a.db", workflows=[flow], max_active_runs=2) as rt:
        starts = [asyncio.create_task(rt.trigger("gated", n)) for n in range(5)]
        await until(lambda: len(log) == 2)
        await asyncio.sleep(0.1)  # time enough for a start that was not held back
        assert log == [0, 1]
        assert [start.done() for start in starts] == [True, True, False, False, False]
        assert await stored_runs(rt) == [0, 1]  # the three in line wrote nothing
        assert rt.instances.starts_waiting == 3
        await rt.telemetry.sample()
        assert waiting_gauge(rt) == 3
        gate.set()
        run_ids = await asyncio.gather(*starts)
        results = [await rt.wait(run_id) for run_id in run_ids]
        assert [(r.status, r.output) for r in results] == [("completed", n) for n in range(5)]
        assert log == [0, 1, 2, 3, 4]  # the line kept the order the starts came in
        assert rt.instances.starts_waiting == 0


async def test_a_run_set_aside_gives_its_place_up(tmp_path: Path) -> None:
    paused = (
        cf.define("paused")
        .human_in_the_loop("approve", description="ok?")
        .step("after", lambda ctx: "approved")
    )
    quick = cf.define("quick").step("one", lambda ctx: ctx.payload * 2)
    async with cf.Runtime(db=tmp_path / "b.db", workflows=[paused, quick], max_active_runs=1) as rt:
        waiting = await rt.trigger("paused")
        await rt.wait_idle()
        assert len(rt.instances) == 0  # paused for a human: out of memory
        done = await asyncio.wait_for(rt.wait(await rt.trigger("quick", 21)), 5)
        assert (done.status, done.output) == ("completed", 42)
        [pause] = await rt.list_paused()
        await rt.resume(pause.token)
        assert (await asyncio.wait_for(rt.wait(waiting), 5)).output == "approved"


async def test_a_step_that_starts_a_run_and_waits_for_it_is_never_held_back(
    tmp_path: Path,
) -> None:
    runtime: list[cf.Runtime] = []

    async def call_child(ctx: Any) -> Any:
        rt = runtime[0]
        return (await rt.wait(await rt.trigger("child", ctx.payload))).output

    parent = cf.define("parent").step("call", call_child)
    child = cf.define("child").step("double", lambda ctx: ctx.payload * 2)
    async with cf.Runtime(db=tmp_path / "c.db", workflows=[parent, child], max_active_runs=1) as rt:
        runtime.append(rt)
        result = await asyncio.wait_for(rt.wait(await rt.trigger("parent", 5)), 5)
        assert (result.status, result.output) == ("completed", 10)


async def test_a_start_canceled_in_line_writes_nothing_and_keeps_no_place(
    tmp_path: Path,
) -> None:
    gate, log = asyncio.Event(), []
    flow = gated("gated", gate, log)
    async with cf.Runtime(db=tmp_path / "d.db", workflows=[flow], max_active_runs=1) as rt:
        first = await rt.trigger("gated", "first")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(rt.trigger("gated", "given up"), 0.05)
        behind = asyncio.create_task(rt.trigger("gated", "behind"))
        await until(lambda: rt.instances.starts_waiting == 1)
        gate.set()
        assert (await rt.wait(first)).output == "first"
        assert (await asyncio.wait_for(rt.wait(await behind), 5)).output == "behind"
        assert await stored_runs(rt) == ["behind", "first"]  # nothing of the canceled start
        assert log == ["first", "behind"]
        # every place is free again: the limit's one run starts at once
        assert (await asyncio.wait_for(rt.wait(await rt.trigger("gated", "last")), 5)).output


async def test_stopping_fails_the_starts_in_line_and_nothing_of_them_is_kept(
    tmp_path: Path,
) -> None:
    gate, log = asyncio.Event(), []
    flow = gated("gated", gate, log)
    db = tmp_path / "e.db"
    rt = cf.Runtime(db=db, workflows=[flow], max_active_runs=1)
    await rt.start()
    held = await rt.trigger("gated", "held")
    in_line = asyncio.create_task(rt.trigger("gated", "in line"))
    await until(lambda: rt.instances.starts_waiting == 1)
    await rt.stop()
    with pytest.raises(RuntimeNotRunningError):
        await in_line
    gate.set()
    async with cf.Runtime(db=db, workflows=[flow]) as again:
        assert await stored_runs(again) == ["held"]
        assert (await asyncio.wait_for(again.wait(held), 5)).output == "held"


@pytest.mark.parametrize("limit", [0, -3, True, 2.5, "4"])
def test_a_limit_that_is_not_a_whole_number_of_runs_is_refused(limit: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_active_runs") as bad:
        cf.Runtime(max_active_runs=limit)
    assert "whole number >= 1" in str(bad.value)


def test_serve_takes_the_limit_from_its_settings(tmp_path: Path) -> None:
    assert load_config(None, environ={}).max_active_runs is None
    environ = {"CRONFLOW_MAX_ACTIVE_RUNS": "128"}
    assert load_config(None, environ=environ).max_active_runs == 128
    args = build_parser().parse_args(["serve", "--max-active-runs", "64"])
    assert _settings(args).max_active_runs == 64
    with pytest.raises(ConfigurationError, match="max_active_runs") as bad:
        load_config(None, environ={"CRONFLOW_MAX_ACTIVE_RUNS": "0"})
    assert "CRONFLOW_MAX_ACTIVE_RUNS" in str(bad.value)


def slow_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float) -> tuple[str, Path]:
    """``tests/serve_slow_app.py`` (flow ``slow``: a step of ``seconds``) and the file its steps
    mark ``started`` and ``finished`` in."""
    mark = tmp_path / "mark"
    monkeypatch.setenv("SLOW_MARK", str(mark))
    monkeypatch.setenv("SLOW_SECONDS", str(seconds))
    return str(ROOT / "tests" / "serve_slow_app.py"), mark


def test_serve_with_a_limit_of_one_runs_one_run_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, mark = slow_app(tmp_path, monkeypatch, 0.3)
    with serving(app, tmp_path / "serve.db", "--max-active-runs", "1") as served:
        url = f"http://127.0.0.1:{served.port}"

        def start(n: int) -> httpx.Response:
            return httpx.post(f"{url}/runs", json={"workflow": "slow", "payload": n}, timeout=20)

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(start, range(3)))
        assert [answer.status_code for answer in answers] == [202, 202, 202]
        for answer in answers:
            run = answer.json()["run_id"]
            for _ in range(200):
                status = httpx.get(f"{url}/runs/{run}", timeout=5).json()["status"]
                if status == "completed":
                    break
                time.sleep(0.05)
            assert status == "completed"
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert "cronflow_starts_waiting 0.0" in metrics
    # each run's step began only after the one before had finished
    assert mark.read_text().split() == ["started", "finished"] * 3


async def test_a_step_starting_a_queued_flow_or_an_id_waiting_in_line_is_not_blocked(
    tmp_path: Path,
) -> None:
    """An outside start waits in line before it locks its flow's queue or claims its id, so a
    step of the run holding the one place can start that flow, or that id, meanwhile."""
    gate = asyncio.Event()
    runtime: list[cf.Runtime] = []

    async def call(ctx: Any) -> Any:
        await gate.wait()
        rt = runtime[0]
        queued = await rt.trigger("limited", "from the step")
        await rt.trigger("limited", "by id", instance_id="order-7")
        return (await rt.wait(queued)).output

    parent = cf.define("parent").step("call", call)
    limited = cf.define("limited", concurrency=5).step("one", lambda ctx: ctx.payload)
    async with cf.Runtime(
        db=tmp_path / "f.db", workflows=[parent, limited], max_active_runs=1
    ) as rt:
        runtime.append(rt)
        started = await rt.trigger("parent")
        outside = asyncio.create_task(rt.trigger("limited", "outside"))
        same_id = asyncio.create_task(rt.trigger("limited", "outside", instance_id="order-7"))
        await until(lambda: rt.instances.starts_waiting == 2)
        gate.set()
        assert (await asyncio.wait_for(rt.wait(started), 5)).output == "from the step"
        assert (await asyncio.wait_for(rt.wait(await outside), 5)).output == "outside"
        with pytest.raises(InstanceExistsError):  # the step took the id first
            await asyncio.wait_for(same_id, 5)
        assert (await rt.wait("order-7")).output == "by id"
        # the refused start gave its place back: the next one goes ahead
        assert (await asyncio.wait_for(rt.wait(await rt.trigger("limited", "next")), 5)).output


async def test_a_plain_def_step_on_the_thread_pool_is_not_held_back(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    runtime: list[cf.Runtime] = []

    def call_child(ctx: Any) -> Any:  # a plain def: it runs on the thread pool
        started = asyncio.run_coroutine_threadsafe(runtime[0].trigger("child", 5), loop)
        return started.result(timeout=5)

    parent = cf.define("parent").step("call", call_child)
    child = cf.define("child").step("double", lambda ctx: ctx.payload * 2)
    async with cf.Runtime(db=tmp_path / "g.db", workflows=[parent, child], max_active_runs=1) as rt:
        runtime.append(rt)
        result = await asyncio.wait_for(rt.wait(await rt.trigger("parent")), 10)
        assert result.status == "completed", result.error
        assert (await asyncio.wait_for(rt.wait(result.output), 5)).output == 10


async def test_net_starts_wait_in_line_too(tmp_path: Path) -> None:
    gate, log = asyncio.Event(), []
    flow = gated("gated", gate, log)
    async with cf.Runtime(db=tmp_path / "h.db", workflows=[flow], max_active_runs=1) as rt:
        first = await rt.start_workflow("gated", 1)
        second = asyncio.create_task(rt.start_workflow("gated", 2))
        await until(lambda: rt.instances.starts_waiting == 1)
        assert await stored_runs(rt) == [1]
        gate.set()
        await asyncio.wait_for(second, 5)
        assert (await rt.wait(first)).output == 1


def test_a_limit_needs_idle_runs_to_leave_memory() -> None:
    with pytest.raises(ConfigurationError, match="passivate=False") as bad:
        cf.Runtime(max_active_runs=10, passivate=False)
    assert "max_active_runs" in str(bad.value)
    cf.Runtime(passivate=False)  # without a limit it is fine


async def test_starts_canceled_in_line_while_places_free_up_keep_none() -> None:
    """A start canceled in line stays there until its task runs again: a place freed meanwhile
    goes to the next start, not to it (it would hold it for good)."""
    in_memory = [2]
    admission = Admission(2, lambda: in_memory[0])

    async def start() -> str:
        return "started"

    waiting = [asyncio.create_task(admission.start(start)) for _ in range(3)]
    await until(lambda: admission.waiting == 3)
    waiting[0].cancel()
    waiting[1].cancel()
    in_memory[0] = 1  # a run left memory before the canceled tasks ran
    admission.run_left()
    assert await waiting[2] == "started"
    for task in waiting[:2]:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert admission.waiting == 0
    in_memory[0] = 0  # every run left: both places are free, none held by the canceled starts
    assert await asyncio.gather(admission.start(start), admission.start(start)) == ["started"] * 2
    admission.close()
    with pytest.raises(RuntimeNotRunningError):
        await admission.start(start)


def test_serve_fails_the_starts_in_line_as_its_drain_begins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the admitted run's step runs until the test opens its gate (20 s at most): a fixed step
    # could end, and admit a start in line, while a loaded machine was still lining them up
    app, mark = slow_app(tmp_path, monkeypatch, 20)
    gate = tmp_path / "gate"
    monkeypatch.setenv("SLOW_GATE", str(gate))
    db = tmp_path / "drain.db"
    with serving(app, db, "--max-active-runs", "1", "--drain-timeout", "30") as served:
        url = f"http://127.0.0.1:{served.port}"

        def start(n: int) -> int:
            answer = httpx.post(f"{url}/runs", json={"workflow": "slow", "payload": n}, timeout=30)
            return answer.status_code

        assert start(0) == 202
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            in_line = [pool.submit(start, n) for n in (1, 2)]
            deadline = time.monotonic() + 30
            while "cronflow_starts_waiting 2.0" not in (
                metrics := httpx.get(f"{url}/metrics", timeout=5).text
            ):
                assert time.monotonic() < deadline, metrics
                time.sleep(0.05)
            served.process.send_signal(signal.SIGTERM)
            answers = [future.result() for future in in_line]
        # refused at once (503, nothing written), not after the running step's drain: the step
        # is still running (its gate shut) when both answers are in
        assert answers == [503, 503]
        assert mark.read_text().split() == ["started"]
        gate.touch()
        assert served.process.wait(30) == 0
    assert mark.read_text().split() == ["started", "finished"]  # the one admitted run's step


async def test_the_drain_leaves_nothing_of_the_refused_starts(tmp_path: Path) -> None:
    gate, log = asyncio.Event(), []
    flow = gated("gated", gate, log)
    db = tmp_path / "i.db"
    async with cf.Runtime(db=db, workflows=[flow], max_active_runs=1) as rt:
        await rt.trigger("gated", "admitted")
        in_line = asyncio.create_task(rt.trigger("gated", "in line"))
        await until(lambda: rt.instances.starts_waiting == 1)
        rt.stop_admitting()
        with pytest.raises(RuntimeNotRunningError):
            await in_line
        with pytest.raises(RuntimeNotRunningError):
            await rt.trigger("gated", "after")
        gate.set()
        await rt.wait_idle()
        assert await stored_runs(rt) == ["admitted"]


async def test_the_runtime_logs_the_limit_it_starts_with(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cronflow_actors")
    async with cf.Runtime(db=tmp_path / "j.db", max_active_runs=64):
        pass
    assert "max_active_runs 64: new runs wait in line" in caplog.text

"""EagerTask: a coroutine's first step taken at once, as the task it runs in; and an actor made
before it is spawned (``ActorSystem.spawn_made``) that takes over such a task."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

import pykka
import pytest

from cronflow_actors.errors import ActorSystemNotRunningError
from cronflow_actors.kernel import ActorSystem, LoopActor
from cronflow_actors.kernel._eager import EagerTask

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")


async def test_a_coroutine_that_never_waits_is_done_at_once(system: ActorSystem) -> None:
    seen: list[Any] = []

    async def quick() -> int:
        seen.append(asyncio.current_task())
        MARK.set("inside")
        return 7

    outer = asyncio.current_task()
    run = EagerTask(system.work, quick(), "quick")
    assert run.done
    assert run.result == 7
    assert seen == [run.task]  # it ran as its own task, not as the caller
    assert asyncio.current_task() is outer
    assert MARK.get() == "unset"  # in the task's context, not the caller's
    assert system.busy >= 1  # the task counts until its step ends it
    assert await run.task == 7
    await system.wait_idle()


async def test_a_coroutine_that_waits_goes_on_in_its_task(system: ActorSystem) -> None:
    gate = asyncio.Event()
    seen: list[Any] = []
    told: list[Any] = []

    async def slow() -> str:
        MARK.set("slow")
        async with asyncio.timeout(10):  # bound to the task it runs in
            seen.append(asyncio.current_task())
            await gate.wait()
            seen.append(asyncio.current_task())
        return MARK.get()

    run = EagerTask(system.work, slow(), "slow")
    assert not run.done
    run.then = told.append
    gate.set()
    assert await run.task == "slow"
    assert seen == [run.task, run.task]
    assert told == ["slow"]
    assert MARK.get() == "unset"


async def test_a_timeout_begun_in_the_first_step_cancels_its_task_only(
    system: ActorSystem,
) -> None:
    async def slow() -> str:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)
        return "never"

    run = EagerTask(system.work, slow(), "slow")
    with pytest.raises(TimeoutError):
        await run.task
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_a_cancelled_task_cancels_the_coroutine_where_it_waits(
    system: ActorSystem,
) -> None:
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")

    run = EagerTask(system.work, waits(), "waits")
    await asyncio.sleep(0)
    run.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run.task
    assert cleaned == ["finally"]


async def test_an_exception_in_the_first_step_is_raised_by_the_task(system: ActorSystem) -> None:
    async def fails() -> None:
        raise asyncio.CancelledError  # a BaseException, not an Exception

    run = EagerTask(system.work, fails(), "fails")
    assert not run.done
    with pytest.raises(asyncio.CancelledError):
        await run.task


class Adopter(LoopActor):
    hears_child_stops = False

    def __init__(self, task: asyncio.Task[Any]) -> None:
        super().__init__()
        self.task = task

    def on_start(self) -> None:
        self.adopt_task(self.task)


async def test_a_made_actor_is_spawned_and_takes_over_a_task(system: ActorSystem) -> None:
    async def waits() -> None:
        await asyncio.sleep(10)

    run = EagerTask(system.work, waits(), "waits")
    actor = Adopter(run.task)
    ref = system.spawn_made(actor)
    assert system.get_by_urn(ref.actor_urn) is ref
    await ref.stop(block=False)
    await system.wait_idle()
    assert run.task.cancelled()  # its task was cancelled with it
    assert system.get_by_urn(ref.actor_urn) is None


async def test_spawn_made_needs_a_running_system() -> None:
    system = ActorSystem()
    with pytest.raises(ActorSystemNotRunningError):
        system.spawn_made(LoopActor())


async def test_spawn_made_refuses_a_dead_parent(system: ActorSystem) -> None:
    parent = system.spawn(LoopActor)
    await parent.stop(block=False)
    await system.wait_idle()
    with pytest.raises(pykka.ActorDeadError):
        system.spawn_made(LoopActor(), parent=parent)


async def test_a_cancel_before_the_tasks_first_round_reaches_the_coroutine(
    system: ActorSystem,
) -> None:
    # the task's coroutine had not begun when a cancel came in the same round: it ended
    # without the handler's except or finally (its timeout, its task group left open; the
    # review of h22, M1)
    cleaned: list[str] = []
    told: list[Any] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise
        finally:
            cleaned.append("finally")

    run = EagerTask(system.work, waits(), "waits")
    run.then = told.append
    run.task.cancel()  # no round of the loop in between
    with pytest.raises(asyncio.CancelledError):
        await run.task
    assert cleaned == ["cancelled", "finally"]
    assert told == []

    async def catches() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "stopped cleanly"
        return "slept"

    caught = EagerTask(system.work, catches(), "catches")
    caught.then = told.append
    caught.task.cancel()
    assert await caught.task == "stopped cleanly"
    assert told == ["stopped cleanly"]
    await system.wait_idle()


async def test_what_the_first_step_raises_is_raised_in_the_tasks_round(
    system: ActorSystem,
) -> None:
    async def broken() -> None:
        raise ValueError("at once")

    run = EagerTask(system.work, broken(), "broken")
    assert not run.done
    with pytest.raises(ValueError, match="at once"):
        await run.task


async def test_the_loops_task_factory_is_not_used(system: ActorSystem) -> None:
    # a factory that runs a task's first step inside create_task (3.12's eager_task_factory)
    # took the step EagerTask takes: the coroutine was driven twice and the run hung (the
    # review of h22, H1); the task is a plain asyncio.Task whatever the factory
    made: list[str | None] = []

    def factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(kwargs.get("name"))
        return asyncio.Task(coro, loop=loop, **kwargs)

    await runs_as_without_a_factory(system, factory)
    assert made == []


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.eager_task_factory: 3.12+")
async def test_a_loop_wide_eager_task_factory_changes_nothing(system: ActorSystem) -> None:
    await runs_as_without_a_factory(system, asyncio.eager_task_factory)  # type: ignore[attr-defined]


async def runs_as_without_a_factory(system: ActorSystem, factory: Any) -> None:
    """Under the loop's task ``factory``: a coroutine that waits goes on and is told, one that
    never waits is done at once."""
    loop = asyncio.get_running_loop()
    loop.set_task_factory(factory)
    try:
        gate, told = asyncio.Event(), []

        async def slow() -> str:
            await gate.wait()
            return "ok"

        run = EagerTask(system.work, slow(), "slow")
        run.then = told.append
        gate.set()
        assert await run.task == "ok"
        assert told == ["ok"]

        async def quick() -> int:
            return 5

        done = EagerTask(system.work, quick(), "quick")
        assert done.done
        assert await done.task == 5
    finally:
        loop.set_task_factory(None)


def test_the_asyncio_seams_it_uses_are_there() -> None:
    # EagerTask makes its task current around the first step with asyncio's own functions (no
    # public ones on 3.11): a Python that drops them fails here, not in a run
    from asyncio import tasks

    assert callable(tasks._enter_task)
    assert callable(tasks._leave_task)

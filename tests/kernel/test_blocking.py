from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from cronflow_actors.calls import call_user
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.kernel import ActorSystem, BlockingPool, LoopActor, PoolStatistics


class Counter(LoopActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count


async def test_a_blocking_call_does_not_delay_loop_actor_messages(system: ActorSystem) -> None:
    counter = system.spawn(Counter)
    blocking = system.run_blocking(time.sleep, 0.3)
    answers = [await counter.ask("tick", block=False) for _ in range(200)]
    # All 200 round trips finished while the 0.3 s call was still blocking its pool thread.
    assert not blocking.done()
    assert answers == list(range(1, 201))
    assert await blocking is None


async def test_blocking_calls_run_concurrently_up_to_the_pool_size() -> None:
    async with ActorSystem("pool", blocking_workers=2) as system:
        barrier = threading.Barrier(2, timeout=5)
        # Each call waits for the other: this only finishes if they run on two threads at once.
        first = system.run_blocking(barrier.wait)
        second = system.run_blocking(barrier.wait)
        assert sorted([await first, await second]) == [0, 1]
        assert system.blocking.size == 2
        assert system.blocking.in_flight == 0


async def test_a_blocking_calls_exception_reaches_the_awaiter(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(x: int) -> int:
        raise ValueError(f"bad {x}")

    with caplog.at_level(logging.INFO), pytest.raises(ValueError, match="bad 3") as raised:
        await system.run_blocking(broken, 3)
    assert raised.traceback[-1].name == "broken"  # the caller sees where it was raised
    # and it is the caller's to log: pykka's record of an exception "returned to caller" was a
    # second traceback of every failed plain-def step, without the run it belongs to
    assert [r for r in caplog.records if r.name.startswith("pykka")] == []
    assert await system.run_blocking(lambda a, b=0: a + b, 1, b=2) == 3


async def test_wait_idle_waits_for_blocking_calls(system: ActorSystem) -> None:
    done: list[bool] = []
    system.run_blocking(lambda: (time.sleep(0.05), done.append(True)))
    await system.wait_idle()
    assert done == [True]


async def test_pool_size_must_be_positive(system: ActorSystem) -> None:
    with pytest.raises(ConfigurationError, match="blocking_workers"):
        BlockingPool(system, 0)


async def test_statistics_count_busy_threads_and_queued_calls() -> None:
    async with ActorSystem("pool", blocking_workers=2) as system:
        assert system.blocking_statistics() == PoolStatistics(threads=2)  # not started yet
        release = threading.Event()
        calls = [system.run_blocking(release.wait, 10) for _ in range(3)]
        assert system.blocking_statistics() == PoolStatistics(threads=2, busy=2, queued=1)
        release.set()
        for call in calls:
            assert await call is True
        assert system.blocking_statistics() == PoolStatistics(threads=2, busy=0, queued=0)


async def test_a_call_given_up_while_it_waits_for_a_thread_never_runs() -> None:
    async with ActorSystem("pool", blocking_workers=1) as system:
        release = threading.Event()
        ran: list[str] = []
        busy = system.run_blocking(release.wait, 10)  # holds the one thread
        late = system.run_blocking(ran.append, "late")
        kept = system.run_blocking(ran.append, "kept")
        late.give_up()  # its caller stopped waiting (a timeout): it must not run afterwards
        release.set()
        assert await busy is True
        assert await kept is None
        with pytest.raises(asyncio.CancelledError):
            await late
        assert ran == ["kept"]
        assert system.blocking.in_flight == 0


async def test_a_call_starts_only_once_the_pool_admits_it() -> None:
    """``admit_blocking``: asked on the worker's thread as each call is about to start (a
    runtime's lease): True runs it, False gives it up, None waits until it says one or the
    other (a lease whose renewal is overdue: the heartbeat has yet to tell)."""
    verdicts: list[bool | None] = [None, None, True]
    async with ActorSystem("pool", blocking_workers=1) as system:
        system.admit_blocking(lambda: verdicts.pop(0) if len(verdicts) > 1 else verdicts[0])
        ran: list[str] = []
        assert await system.run_blocking(ran.append, "after two not-yets") is None
        verdicts[:] = [False]
        with pytest.raises(asyncio.CancelledError):
            await system.run_blocking(ran.append, "refused")
        system.admit_blocking(None)
        assert await system.run_blocking(ran.append, "unasked") is None
        assert ran == ["after two not-yets", "unasked"]


async def test_a_call_user_cancelled_while_queued_gives_its_call_up() -> None:
    async with ActorSystem("pool", blocking_workers=1) as system:
        release = threading.Event()
        ran: list[int] = []
        busy = system.run_blocking(release.wait, 10)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call_user(ran.append, 1, run_blocking=system.run_blocking), 0.05)
        release.set()
        await busy
        await system.wait_idle()
        assert ran == []


async def test_a_stop_leaves_a_call_still_running_to_end_on_its_daemon_thread() -> None:
    release = threading.Event()
    returned = threading.Event()

    def held() -> None:
        release.wait(10)
        returned.set()

    system = ActorSystem("pool", blocking_workers=2)
    await system.__aenter__()
    system.run_blocking(held)  # nothing awaits it: its caller went away (a cancelled step)
    assert await system.run_blocking(lambda: "idle worker") == "idle worker"
    await asyncio.wait_for(system.stop(leave_running=True), 5)  # (a plain stop waits for it)
    assert system.state == "stopped"
    assert not returned.is_set()
    [thread] = [t for t in threading.enumerate() if t.name.startswith("BlockingWorker")]
    assert thread.daemon  # it holds no exit
    release.set()
    thread.join(5)
    assert returned.is_set()
    assert not thread.is_alive()  # its worker stopped once the call returned


def test_a_call_left_running_that_returns_after_its_loop_closed_raises_nothing() -> None:
    failures: list[BaseException | None] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: failures.append(args.exc_value)
    try:

        async def main() -> None:
            system = ActorSystem("gone")
            await system.__aenter__()
            system.run_blocking(time.sleep, 0.2)
            await system.stop(leave_running=True)  # does not wait for it

        asyncio.run(main())  # the loop closes while the call still sleeps
        time.sleep(0.5)  # it returns now: its answer has no loop to go to
    finally:
        threading.excepthook = hook
    assert failures == []  # (it was 'Event loop is closed', then queue.Full, on the thread)


async def test_a_plain_stop_waits_for_the_calls_still_running() -> None:
    returned = threading.Event()

    def short() -> None:
        time.sleep(0.1)
        returned.set()

    system = ActorSystem("pool", blocking_workers=1)
    await system.__aenter__()
    system.run_blocking(short)
    await system.stop()
    assert returned.is_set()  # an embedded runtime's stop without a drain: as it always did

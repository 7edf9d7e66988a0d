from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from cronflow_actors.kernel import ActorSystem, Clock, ManualClock, SystemClock


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(ManualClock(), Clock)


async def test_system_clock_reads_real_time() -> None:
    clock = SystemClock()
    assert abs(clock.now() - time.time()) < 1
    before = clock.monotonic()
    await clock.sleep(0.01)
    assert clock.monotonic() >= before + 0.009


async def test_system_clock_agrees_with_itself_where_time_is_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its ``now`` is ``time.time`` itself, taken when it was defined: its sleeps read the same,
    so a test that patches ``time.time`` (to a fixed moment, say) does not leave a sleep waiting
    for the distance between the two (it waited 1.8e9 s)."""
    clock = SystemClock()
    monkeypatch.setattr(time, "time", lambda: 0.0)
    await asyncio.wait_for(clock.sleep_until(clock.now() + 0.01), 5)
    await asyncio.wait_for(clock.sleep(0.01), 5)


async def test_manual_clock_wakes_sleepers_in_deadline_order(clock: ManualClock) -> None:
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 30), ("a", 10), ("b", 20))]
    await asyncio.sleep(0)
    assert clock.next_deadline() == 1_000_010.0
    clock.advance(15)
    await asyncio.sleep(0)
    assert woke == ["a"]
    clock.set(1_000_030.0)
    await asyncio.gather(*tasks)
    assert woke == ["a", "b", "c"]
    assert clock.sleepers == 0


async def test_manual_clock_sleep_until_the_past_returns_at_once(clock: ManualClock) -> None:
    await clock.sleep_until(clock.now() - 5)
    assert clock.sleepers == 0


def test_manual_clock_never_goes_back(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(0)


async def test_a_task_cancelled_while_parked_leaves_the_system_idle(clock: ManualClock) -> None:
    async with ActorSystem("parked", clock=clock) as system:
        task = system.create_task(clock.sleep(60))
        await asyncio.wait_for(system.wait_idle(), 1)  # parked on the clock: idle
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert system.busy == 0
        await asyncio.wait_for(system.wait_idle(), 1)


async def test_sleeping_on_the_system_clock_is_not_work_in_flight() -> None:
    clock = SystemClock()
    async with ActorSystem("sleepy", clock=clock) as system:
        sleeper = system.create_task(clock.sleep(60))
        busy = system.create_task(asyncio.sleep(0.05))
        await asyncio.wait_for(system.wait_idle(), 1)  # waits for busy, not for sleeper
        assert busy.done()
        assert not sleeper.done()
        woken = system.create_task(clock.sleep(0.01))
        await asyncio.wait_for(system.wait_idle(), 1)
        await asyncio.wait_for(woken, 1)
        assert system.busy == 0  # the sleeper left is parked, not busy
        sleeper.cancel()

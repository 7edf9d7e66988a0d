from __future__ import annotations

import asyncio
import queue
import threading

import pykka
import pytest

from cronflow_actors.errors import WouldBlockLoopError
from cronflow_actors.kernel import LoopFuture, wrap_future


async def test_await_returns_a_value_set_before() -> None:
    future: LoopFuture[int] = LoopFuture()
    future.set(7)
    assert await future == 7
    assert future.done()


async def test_await_is_woken_by_a_set_on_the_loop() -> None:
    future: LoopFuture[str] = LoopFuture()
    asyncio.get_running_loop().call_soon(future.set, "late")
    assert await future == "late"


async def test_await_is_woken_by_a_set_from_another_thread() -> None:
    future: LoopFuture[str] = LoopFuture()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not future.done():
            ticks += 1
            await asyncio.sleep(0)

    started = threading.Event()

    def setter() -> None:
        started.wait()
        future.set("from thread")

    thread = threading.Thread(target=setter)
    thread.start()
    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started.set()
    assert await future == "from thread"
    await ticking
    thread.join()
    # The loop kept running other coroutines while the future was pending.
    assert ticks > 0


async def test_awaiting_raises_the_exception_that_was_set() -> None:
    future: LoopFuture[int] = LoopFuture()
    try:
        raise KeyError("missing")
    except KeyError:
        future.set_exception()
    with pytest.raises(KeyError, match="missing"):
        await future
    assert isinstance(future.exception(), KeyError)


async def test_get_on_the_loop_thread_refuses_to_block() -> None:
    future: LoopFuture[int] = LoopFuture()
    with pytest.raises(WouldBlockLoopError, match="await it"):
        future.get()
    with pytest.raises(pykka.Timeout):
        future.get(timeout=0)
    future.set(1)
    assert future.get() == 1


def test_get_from_a_thread_blocks_until_set() -> None:
    future: LoopFuture[int] = LoopFuture()
    timer = threading.Timer(0.05, future.set, args=(5,))
    timer.start()
    assert future.get(timeout=5) == 5
    timer.join()


def test_get_times_out_like_pykka() -> None:
    future: LoopFuture[int] = LoopFuture()
    with pytest.raises(pykka.Timeout):
        future.get(timeout=0.01)


def test_a_second_set_raises_queue_full_like_pykka() -> None:
    future: LoopFuture[int] = LoopFuture()
    future.set(1)
    with pytest.raises(queue.Full):
        future.set(2)
    with pytest.raises(queue.Full):
        future.set_exception((ValueError, ValueError("x"), None))
    assert future.get() == 1


async def test_map_filter_reduce_join_are_awaitable() -> None:
    a: LoopFuture[list[int]] = LoopFuture()
    b: LoopFuture[int] = LoopFuture()
    mapped = a.map(len)
    filtered = a.filter(lambda x: x > 1)
    reduced = a.reduce(lambda acc, x: acc + x, 100)
    joined = a.join(b)
    a.set([1, 2, 3])
    b.set(9)
    assert await mapped == 3
    assert list(await filtered) == [2, 3]
    assert await reduced == 106
    assert list(await joined) == [[1, 2, 3], 9]


async def test_join_fails_with_the_first_failure() -> None:
    a: LoopFuture[int] = LoopFuture()
    b: LoopFuture[int] = LoopFuture()
    joined = a.join(b)
    b.set_exception((ValueError, ValueError("b broke"), None))
    with pytest.raises(ValueError, match="b broke"):
        await joined
    a.set(1)  # a late success changes nothing


async def test_a_failing_map_function_fails_the_derived_future() -> None:
    a: LoopFuture[int] = LoopFuture()
    mapped = a.map(lambda x: 1 // x)
    a.set(0)
    with pytest.raises(ZeroDivisionError):
        await mapped


async def test_a_threading_future_is_awaited_without_blocking_the_loop() -> None:
    threaded: pykka.ThreadingFuture[int] = pykka.ThreadingFuture()
    wrapped = wrap_future(threaded)
    assert wrap_future(wrapped) is wrapped
    asyncio.get_running_loop().call_later(0.01, threaded.set, 11)
    assert await wrapped == 11


async def test_a_pykka_get_hook_future_is_awaited_off_the_loop() -> None:
    source: LoopFuture[int] = LoopFuture()
    hooked: LoopFuture[int] = LoopFuture()
    hooked.set_get_hook(lambda timeout: source.get(timeout=timeout) * 2)
    asyncio.get_running_loop().call_later(0.01, source.set, 21)
    assert await hooked == 42

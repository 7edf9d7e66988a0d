"""``calls.call_user``: where each kind of callable runs, and what is awaited."""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cronflow_actors.calls import InOrder, call_user


async def add_async(x: int, y: int) -> int:
    return x + y


def add_plain(x: int, y: int) -> int:
    return x + y


class Adder:
    async def method(self, x: int, y: int) -> int:
        return x + y

    async def __call__(self, x: int, y: int) -> int:
        return x + y


def returns_a_coroutine(x: int, y: int) -> Awaitable[int]:
    return add_async(x, y)  # a plain function handing back an awaitable: awaited


async def returns_a_coroutine_too(x: int, y: int) -> Awaitable[int]:
    return add_async(x, y)  # awaited once only: the inner coroutine comes back as it is


def _threads(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` noting the thread it ran on."""

    @functools.wraps(fn)
    def noted(*args: Any) -> Any:
        ran_on.append(threading.get_ident())
        return fn(*args)

    return noted


ran_on: list[int] = []


async def _pool(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking pool: the function runs on another thread."""
    return await asyncio.to_thread(_threads(fn), *args)


CALLABLES: list[tuple[str, Callable[..., Any], bool]] = [
    # (what, callable, runs on the loop although a pool is given)
    ("async def", add_async, True),
    ("partial of an async def", functools.partial(add_async, 1), True),
    ("bound async method", Adder().method, True),
    ("plain function", add_plain, False),
    ("partial of a plain function", functools.partial(add_plain, 1), False),
    ("plain function returning a coroutine", returns_a_coroutine, False),
    # an object whose __call__ is async: not a coroutine function to inspect; its result, a
    # coroutine, is awaited all the same
    ("object with an async __call__", Adder(), False),
]


@pytest.mark.parametrize(("what", "fn", "on_loop"), CALLABLES, ids=[c[0] for c in CALLABLES])
async def test_each_kind_of_callable_runs_where_it_should(
    what: str, fn: Callable[..., Any], on_loop: bool
) -> None:
    args = (2,) if isinstance(fn, functools.partial) else (1, 2)
    ran_on.clear()
    assert await call_user(fn, *args, run_blocking=_pool) == 3, what
    assert (not ran_on) is on_loop, what  # ran_on is only noted on the pool
    if not on_loop:
        assert ran_on != [threading.get_ident()]
    ran_on.clear()
    assert await call_user(fn, *args) == 3, what  # no pool: everything on the loop
    assert not ran_on


async def test_only_one_level_of_awaitable_is_awaited() -> None:
    inner = await call_user(returns_a_coroutine_too, 1, 2)
    assert inspect.iscoroutine(inner)
    assert await inner == 3


@pytest.mark.skipif(sys.version_info < (3, 12), reason="markcoroutinefunction is 3.12+")
async def test_a_function_marked_as_a_coroutine_function_runs_on_the_loop() -> None:
    def marked(x: int, y: int) -> Awaitable[int]:
        return add_async(x, y)

    inspect.markcoroutinefunction(marked)  # type: ignore[attr-defined,unused-ignore]
    ran_on.clear()
    assert await call_user(marked, 1, 2, run_blocking=_pool) == 3
    assert not ran_on


async def test_in_order_calls_a_keys_callbacks_one_after_another() -> None:
    line = InOrder()
    called: list[str] = []

    async def slow(name: str) -> None:
        await asyncio.sleep(0.05)
        called.append(name)

    calls = [
        asyncio.ensure_future(line.call("run", slow, "first", what="first")),
        asyncio.ensure_future(line.call("run", called.append, "second", what="second")),
        asyncio.ensure_future(line.call("other", called.append, "other run", what="other")),
    ]
    await asyncio.gather(*calls)
    assert called == ["other run", "first", "second"]  # another key does not wait


async def test_in_order_waits_for_a_hung_callback_only_so_long() -> None:
    line = InOrder(patience=0.1)
    never = asyncio.Event()
    called: list[str] = []
    hung = asyncio.ensure_future(line.call("run", never.wait, what="a hung on_pause"))
    await asyncio.wait_for(line.call("run", called.append, "on_success", what="on_success"), 5)
    assert called == ["on_success"]
    never.set()
    await hung

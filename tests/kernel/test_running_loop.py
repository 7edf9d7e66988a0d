"""``running_loop()``: the loop running on the calling thread, as ``asyncio.get_running_loop()``
says, though it keeps the last one it found (kernel/_loop.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cronflow_actors.kernel import running_loop


async def _found() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
    return running_loop(), asyncio.get_running_loop()


def test_it_is_the_loop_that_runs_now_one_loop_after_another_on_one_thread() -> None:
    first = asyncio.run(_found())
    second = asyncio.run(_found())
    assert first[0] is first[1]
    assert second[0] is second[1]
    assert first[0] is not second[0]


def test_each_thread_gets_its_own_loop_while_both_run() -> None:
    """Two loops running at once on two threads, each asking in turn: neither is given the
    other's (the one kept was found on the other thread)."""
    asked = threading.Barrier(2, timeout=5)
    found: dict[str, list[bool]] = {"a": [], "b": []}

    async def ask(name: str) -> None:
        for _ in range(20):
            await asyncio.to_thread(asked.wait)
            found[name].append(running_loop() is asyncio.get_running_loop())

    other = threading.Thread(target=asyncio.run, args=(ask("b"),))
    other.start()
    asyncio.run(ask("a"))
    other.join()
    assert found == {"a": [True] * 20, "b": [True] * 20}


def test_a_loop_of_another_kind_is_the_one_that_runs() -> None:
    """uvloop's loop is not a BaseEventLoop (it does not say its thread): asked every time."""
    uvloop = pytest.importorskip("uvloop")
    asyncio.run(_found())  # an asyncio loop was kept, and has stopped
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        found, running = runner.run(_found())
    assert isinstance(found, uvloop.Loop)
    assert found is running


def test_outside_a_running_loop_it_raises_as_asyncio_does() -> None:
    asyncio.run(_found())  # a loop was kept, and has stopped
    with pytest.raises(RuntimeError, match="no running event loop"):
        running_loop()

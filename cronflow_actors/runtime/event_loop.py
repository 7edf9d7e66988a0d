"""The event loop of a long-lived runtime process (``serve``): asyncio's own, or uvloop's.

asyncio's event loop is written in Python: every callback it schedules (a task's next step, a
future's waiters, a commit's answers: about twenty a three-step run) goes through three Python
calls and a Python ``Handle``. uvloop, a drop-in asyncio event loop written in Cython (the one
uvicorn takes when it is installed), does that in C: three-step runs one at a time took 4-7%
less time (p50; three pairs alternated), and the net engine's benchmark ran 5% more runs a
second at 500 in flight (``cf.define``'s: within the noise); the whole test suite passes on
either. ``serve`` runs on uvloop when it is installed, as it is with
cronflow-actors on Linux and macOS (``--loop auto``, the default); ``--loop asyncio`` keeps
asyncio's own, ``--loop uvloop`` insists on it. A program that runs a ``Runtime`` itself picks
its own loop (``asyncio.run(main(), loop_factory=uvloop.new_event_loop)`` on Python 3.12, or
``asyncio.Runner(loop_factory=...)``).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Literal

from cronflow_actors.errors import ConfigurationError

__all__ = ["LOOPS", "LoopName", "loop_factory", "loop_name"]

LoopName = Literal["auto", "asyncio", "uvloop"]
LOOPS: tuple[LoopName, ...] = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: str) -> LoopFactory | None:
    """What makes the event loop ``name`` asks for; None for asyncio's own. ``auto`` is uvloop
    when it can be imported. ``ConfigurationError`` for another name, or for ``uvloop`` when it
    is not installed."""
    if name not in LOOPS:
        raise ConfigurationError("loop", name, f"one of {', '.join(LOOPS)}")
    if name == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if name == "auto":
            return None
        raise ConfigurationError(
            "loop", name, "asyncio, or uvloop once it is installed (pip install uvloop)"
        ) from None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(factory: LoopFactory | None) -> str:
    """``asyncio`` or ``uvloop``, as a log line says which loop serves."""
    return "asyncio" if factory is None else factory.__module__.partition(".")[0]

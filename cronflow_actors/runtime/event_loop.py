"""The event loop of a long-lived runtime process (``serve``): asyncio's own, or uvloop's.

asyncio's event loop is written in Python: every callback it schedules (a task's next step, a
future's waiters, a commit's answers: about twenty a three-step run) goes through three Python
calls and a Python ``Handle``. uvloop, a drop-in asyncio event loop written in Cython (the one
uvicorn takes when it is installed), does that in C: three-step runs one at a time took 4-7%
less time (p50; three pairs alternated), and the net engine's benchmark ran 5% more runs a
second at 500 in flight (``cf.define``'s: within the noise); the whole test suite passes on
either. ``serve`` runs on uvloop once installed (``pip install -e '.[uvloop]'`` in the checkout;
``--loop auto``, the default); ``--loop asyncio`` runs on asyncio's own, whatever event loop
policy the served application installed; ``--loop uvloop`` insists on uvloop. A program that
runs a ``Runtime`` itself picks its own loop (``asyncio.Runner(loop_factory=...)``).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from typing import Literal, get_args

from cronflow_actors.errors import ConfigurationError

__all__ = ["LOOPS", "LoopFactory", "LoopName", "loop_factory"]

LoopName = Literal["auto", "asyncio", "uvloop"]
LOOPS: tuple[str, ...] = get_args(LoopName)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _asyncio_loop() -> asyncio.AbstractEventLoop:
    """asyncio's own loop for this platform, whatever policy is installed."""
    return asyncio.DefaultEventLoopPolicy().new_event_loop()


def loop_factory(name: str) -> tuple[str, LoopFactory]:
    """The loop the setting ``name`` asks for: (``asyncio`` or ``uvloop``, what makes it).
    ``auto`` is uvloop when it can be imported. ``ConfigurationError`` for another name, or for
    ``uvloop`` when it is not installed."""
    if name not in LOOPS:
        raise ConfigurationError("loop", name, f"one of {', '.join(LOOPS)}")
    if name == "asyncio":
        return "asyncio", _asyncio_loop
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if name == "auto":
            return "asyncio", _asyncio_loop
        where = (
            "asyncio (uvloop does not run on Windows)"
            if sys.platform == "win32"
            else "asyncio, or uvloop once it is installed (in the cronflow-actors checkout: "
            "pip install -e '.[uvloop]')"
        )
        raise ConfigurationError("loop", name, where) from None
    factory: LoopFactory = uvloop.new_event_loop
    return "uvloop", factory

"""The actor kernel: pykka actors on asyncio. It knows nothing of workflows.

- ``LoopActor``: a pykka actor whose inbox is drained on the event loop (no thread per actor).
- ``LoopFuture``: a pykka future that can be awaited on the loop and ``.get()`` from threads.
- ``ActorSystem``: spawning, a registry of its own, supervision, ``wait_idle()``, orderly stop.
- ``BlockingPool``: pykka ThreadingActors for blocking callables.
- ``Clock``: ``SystemClock`` and ``ManualClock``.
"""

from cronflow_actors.kernel._actor import LoopActor, LoopActorRef
from cronflow_actors.kernel._blocking import (
    BlockingPool,
    BlockingWorker,
    PoolStatistics,
    RunBlocking,
)
from cronflow_actors.kernel._future import LoopFuture, wrap_future
from cronflow_actors.kernel._system import ActorSystem, current_system
from cronflow_actors.kernel.clock import Clock, ManualClock, SystemClock

__all__ = [
    "ActorSystem",
    "BlockingPool",
    "BlockingWorker",
    "Clock",
    "LoopActor",
    "LoopActorRef",
    "LoopFuture",
    "ManualClock",
    "PoolStatistics",
    "RunBlocking",
    "SystemClock",
    "current_system",
    "wrap_future",
]

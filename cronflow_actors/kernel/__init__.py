"""The actor kernel: pykka actors on asyncio. It knows nothing of workflows.

- ``LoopActor``: a pykka actor whose inbox is drained on the event loop (no thread per actor);
  ``CoroutineActor``: one whose handler is a coroutine, run one message at a time.
- ``LoopFuture``: a pykka future that can be awaited on the loop and ``.get()`` from threads.
- ``ActorSystem``: spawning, a registry of its own, supervision, ``wait_idle()``, orderly stop;
  ``ActorHost``: what an actor needs of it; ``WorkInFlight``: what ``wait_idle()`` waits for.
- ``BlockingPool``: pykka ThreadingActors for blocking callables.
- ``Clock``: ``SystemClock`` and ``ManualClock``; ``ParkingClock`` and ``SleepListener``, the
  hook by which a clock's sleepers do not count as work.

- ``running_loop()``: ``asyncio.get_running_loop()``, without its system call on Python 3.11.

Modules, each importing only those before it: ``_loop``, ``clock``, ``_future``, ``_work``,
``_eager``, ``_mailbox``, ``_ref``, ``_blocking``, ``_actor``, ``_coroutine``, ``_system``.
"""

from cronflow_actors.kernel._actor import ActorHost, LoopActor, LoopActorRef
from cronflow_actors.kernel._blocking import (
    BlockingPool,
    BlockingWorker,
    PoolStatistics,
    RunBlocking,
)
from cronflow_actors.kernel._coroutine import CoroutineActor
from cronflow_actors.kernel._future import LoopFuture, wrap_future
from cronflow_actors.kernel._loop import running_loop
from cronflow_actors.kernel._system import ActorSystem, current_system
from cronflow_actors.kernel._work import WorkInFlight
from cronflow_actors.kernel.clock import (
    Clock,
    ManualClock,
    ParkingClock,
    SleepListener,
    SystemClock,
)

__all__ = [
    "ActorHost",
    "ActorSystem",
    "BlockingPool",
    "BlockingWorker",
    "Clock",
    "CoroutineActor",
    "LoopActor",
    "LoopActorRef",
    "LoopFuture",
    "ManualClock",
    "ParkingClock",
    "PoolStatistics",
    "RunBlocking",
    "SleepListener",
    "SystemClock",
    "WorkInFlight",
    "current_system",
    "running_loop",
    "wrap_future",
]

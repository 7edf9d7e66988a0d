"""Actor kernel throughput: LoopActor against pykka's ThreadingActor and a bare asyncio.Queue.

Measures, in one run:
- tells/s: messages sent without waiting, until the receiver has handled them all;
- ask round trips/s: one caller sends, waits for the answer, sends the next (and, for the
  LoopActor and the queue, also 100 concurrent callers);
- LoopActor spawn+stop/s with 10,000 other actors alive: churn in rounds of 100 actors spawned
  and stopped, the way workflow instances come and go; and, for information, one burst that
  spawns 20,000 and then stops them all.

    python benchmarks/kernel.py [--quick]

The last line is JSON, e.g. {"loop_tells_per_s": ..., "thread_tells_per_s": ...,
"loop_asks_per_s": ..., "spawn_stop_per_s": ...}.
Targets on a 2-core machine: LoopActor tells >= 600,000/s and >= 3x ThreadingActor in the same
run; awaited asks >= 100,000/s; spawn+stop >= 50,000/s with 10,000 live.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

# Benchmarks run as scripts; their folder holds http.py, which would shadow the standard library's
# http package, so the folder leaves sys.path and the repository root (for ``benchmarks.*``) joins.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import pykka

from benchmarks._report import figures, table
from cronflow_actors.kernel import ActorSystem, LoopActor


class LoopCounter(LoopActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return message


class ThreadCounter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return message


class Idle(LoopActor):
    pass


def best(runs: list[float]) -> float:
    """The best of several rounds: the machine's capability, least disturbed by other load."""
    return max(runs)


# -- LoopActor ------------------------------------------------------------------------------------


async def loop_tells(n: int) -> float:
    async with ActorSystem("bench") as system:
        ref = system.spawn(LoopCounter)
        started = time.perf_counter()
        for i in range(n):
            ref.tell(i)
        await ref.ask("last", block=False)
        return n / (time.perf_counter() - started)


async def loop_asks(n: int, callers: int) -> float:
    async with ActorSystem("bench") as system:
        ref = system.spawn(LoopCounter)

        async def caller(count: int) -> None:
            for i in range(count):
                await ref.ask(i, block=False)

        started = time.perf_counter()
        await asyncio.gather(*(caller(n // callers) for _ in range(callers)))
        return (n // callers * callers) / (time.perf_counter() - started)


async def spawn_stop_churn(rounds: int, per_round: int, live: int) -> tuple[float, int]:
    async with ActorSystem("bench") as system:
        keep = [system.spawn(Idle) for _ in range(live)]
        await system.wait_idle()
        started = time.perf_counter()
        for _ in range(rounds):
            for _ in range(per_round):
                system.spawn(Idle).stop(block=False)
            await system.wait_idle()
        rate = rounds * per_round / (time.perf_counter() - started)
        alive = len(system)
        del keep
        return rate, alive


async def spawn_stop_burst(n: int, live: int) -> float:
    async with ActorSystem("bench") as system:
        keep = [system.spawn(Idle) for _ in range(live)]
        await system.wait_idle()
        started = time.perf_counter()
        refs = [system.spawn(Idle) for _ in range(n)]
        for ref in refs:
            ref.stop(block=False)
        await system.wait_idle()
        del keep
        return n / (time.perf_counter() - started)


# -- pykka ThreadingActor -------------------------------------------------------------------------


def thread_tells(n: int) -> float:
    ref = ThreadCounter.start()
    try:
        started = time.perf_counter()
        for i in range(n):
            ref.tell(i)
        ref.ask("last")
        return n / (time.perf_counter() - started)
    finally:
        ref.stop()


def thread_asks(n: int) -> float:
    ref = ThreadCounter.start()
    try:
        started = time.perf_counter()
        for i in range(n):
            ref.ask(i)
        return n / (time.perf_counter() - started)
    finally:
        ref.stop()


# -- bare asyncio.Queue ---------------------------------------------------------------------------


async def queue_tells(n: int) -> float:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    finished = asyncio.get_running_loop().create_future()

    async def consumer() -> None:
        count = 0
        while True:
            await inbox.get()
            count += 1
            if count == n:
                finished.set_result(None)
                return

    task = asyncio.create_task(consumer())
    started = time.perf_counter()
    for i in range(n):
        inbox.put_nowait(i)
    await finished
    await task
    return n / (time.perf_counter() - started)


async def queue_asks(n: int, callers: int) -> float:
    inbox: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()

    async def server() -> None:
        while True:
            message, reply = await inbox.get()
            reply.set_result(message)

    task = asyncio.create_task(server())
    loop = asyncio.get_running_loop()

    async def caller(count: int) -> None:
        for i in range(count):
            reply = loop.create_future()
            inbox.put_nowait((i, reply))
            await reply

    started = time.perf_counter()
    await asyncio.gather(*(caller(n // callers) for _ in range(callers)))
    rate = (n // callers * callers) / (time.perf_counter() - started)
    task.cancel()
    return rate


def run(coro_factory: Any, rounds: int) -> float:
    return best([asyncio.run(coro_factory()) for _ in range(rounds)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="under 20 seconds")
    args = parser.parse_args()
    scale = 1 if args.quick else 4
    rounds = 3
    tells = 200_000 * scale
    asks = 50_000 * scale
    thread_n = 50_000 * scale

    results: dict[str, float] = {}
    results["loop_tells_per_s"] = run(lambda: loop_tells(tells), rounds)
    results["thread_tells_per_s"] = best([thread_tells(thread_n) for _ in range(rounds)])
    results["queue_tells_per_s"] = run(lambda: queue_tells(tells), rounds)
    results["loop_asks_per_s"] = run(lambda: loop_asks(asks, 1), rounds)
    results["loop_asks_100_callers_per_s"] = run(lambda: loop_asks(asks, 100), rounds)
    results["thread_asks_per_s"] = best([thread_asks(thread_n // 2) for _ in range(rounds)])
    results["queue_asks_per_s"] = run(lambda: queue_asks(asks, 1), rounds)
    results["queue_asks_100_callers_per_s"] = run(lambda: queue_asks(asks, 100), rounds)
    churn = [asyncio.run(spawn_stop_churn(100 * scale, 100, 10_000)) for _ in range(rounds)]
    results["spawn_stop_per_s"] = best([rate for rate, _ in churn])
    live_after = churn[-1][1]
    results["spawn_stop_burst_per_s"] = run(lambda: spawn_stop_burst(20_000, 10_000), rounds)

    ratio_tells = results["loop_tells_per_s"] / results["thread_tells_per_s"]
    ratio_asks = results["loop_asks_per_s"] / results["thread_asks_per_s"]
    table(
        f"Actor kernel (best of {rounds} rounds)",
        [
            ("tells/s        LoopActor", f"{results['loop_tells_per_s']:>12,.0f}"),
            ("               pykka ThreadingActor", f"{results['thread_tells_per_s']:>12,.0f}"),
            ("               asyncio.Queue baseline", f"{results['queue_tells_per_s']:>12,.0f}"),
            ("               LoopActor / ThreadingActor", f"{ratio_tells:>12.1f}x"),
            ("asks/s         LoopActor, 1 caller", f"{results['loop_asks_per_s']:>12,.0f}"),
            (
                "               LoopActor, 100 callers",
                f"{results['loop_asks_100_callers_per_s']:>12,.0f}",
            ),
            ("               pykka ThreadingActor", f"{results['thread_asks_per_s']:>12,.0f}"),
            ("               asyncio.Queue, 1 caller", f"{results['queue_asks_per_s']:>12,.0f}"),
            (
                "               asyncio.Queue, 100 callers",
                f"{results['queue_asks_100_callers_per_s']:>12,.0f}",
            ),
            ("               LoopActor / ThreadingActor", f"{ratio_asks:>12.1f}x"),
            (
                "spawn+stop/s   churn, 10,000 live",
                f"{results['spawn_stop_per_s']:>12,.0f}   ({live_after:,} alive after)",
            ),
            (
                "               burst of 20,000, 10,000 live",
                f"{results['spawn_stop_burst_per_s']:>12,.0f}",
            ),
        ],
    )
    figures(
        {key: round(value) for key, value in results.items()}
        | {
            "loop_vs_thread_tells": round(ratio_tells, 2),
            "loop_vs_thread_asks": round(ratio_asks, 2),
        }
    )


if __name__ == "__main__":
    main()

"""The process lease's heartbeat in a cluster: a failed one is tried again within half a
second, not a third of the lease later. With a 15 s lease, an 8 s outage of PostgreSQL ended
the lease of processes whose writer was back, as their next heartbeat came 5 s after the one
that failed (retest h40 N1)."""

from __future__ import annotations

from typing import Any

from cronflow_actors.errors import LeaseLostError
from cronflow_actors.runtime.cluster import ClusterLease


class _Clock:
    def __init__(self) -> None:
        self.now, self.pauses = 0.0, list[float]()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


class _Outage:
    """Heartbeats: two refused (the server down), then renewed, then found expired."""

    def __init__(self) -> None:
        self.answers: list[Any] = [ConnectionRefusedError(), ConnectionRefusedError(), True]

    async def heartbeat(self, owner: str, duration: float) -> bool:
        answer = self.answers.pop(0) if self.answers else False
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)


async def test_a_failed_heartbeat_is_tried_again_within_half_a_second() -> None:
    clock, lost = _Clock(), list[Exception]()
    lease: Any = ClusterLease(_Outage(), clock, duration=15, on_lost=lost.append)  # type: ignore[arg-type]
    lease.held = True
    await lease._beat()
    assert clock.pauses == [5.0, 0.5, 0.5, 5.0]  # each third of the lease, once it renews
    assert [type(error) for error in lost] == [LeaseLostError]

"""The memory store's reads of its run queue (the runs waiting under a concurrency limit):
the same answers as the SQLite store's, from one dictionary."""

from __future__ import annotations

from cronflow_actors.messages import QueuedRun
from cronflow_actors.store._protocol import Cursor, check_page

__all__ = ["MemoryQueue"]


class MemoryQueue:
    """What ``MemoryStore`` reads of its queued runs."""

    def __init__(self) -> None:
        self._queue: dict[str, QueuedRun] = {}
        """Instance id -> its queued run."""
        self._queue_seq = 0

    def _require_open(self, operation: str) -> None:
        raise NotImplementedError  # the store's own

    async def queue_lengths(self) -> dict[str, int]:
        self._require_open("count queued runs")
        lengths: dict[str, int] = {}
        for run in self._queue.values():
            lengths[run.queue] = lengths.get(run.queue, 0) + 1
        return lengths

    async def queued_by_workflow(self) -> dict[str, int]:
        self._require_open("count queued runs")
        lengths: dict[str, int] = {}
        for run in self._queue.values():
            lengths[run.workflow] = lengths.get(run.workflow, 0) + 1
        return lengths

    async def queued(self, queue: str, *, limit: int = 100, after: int = 0) -> list[QueuedRun]:
        self._require_open("list queued runs")
        check_page(limit)
        runs = sorted(
            (r for r in self._queue.values() if r.queue == queue and r.seq > after),
            key=lambda r: r.seq,
        )
        return runs[:limit]

    async def list_queued(
        self, *, workflow: str | None = None, limit: int = 50, before: Cursor | None = None
    ) -> list[QueuedRun]:
        self._require_open("list queued runs")
        check_page(limit)
        found = (
            r
            for r in self._queue.values()
            if (workflow is None or r.workflow == workflow)
            and (before is None or (r.queued_at, r.instance_id) < before)
        )
        return sorted(found, key=lambda r: (r.queued_at, r.instance_id), reverse=True)[:limit]

    async def queued_run(self, instance_id: str) -> QueuedRun | None:
        self._require_open("find a queued run")
        return self._queue.get(instance_id)

    async def queue_length(self, queue: str) -> int:
        self._require_open("count queued runs")
        return sum(1 for r in self._queue.values() if r.queue == queue)

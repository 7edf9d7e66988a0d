"""What both group writers do around a batch (SQLite's ``_writer.GroupWriter``, PostgreSQL's
``postgres_writer.PostgresWriter``): which queued items make the next batch, how the writer
fails, how a refused batch is written again item by item so that only the caller at fault hears
of it, and how the callers are answered and the batch counted. How a batch reaches its database
is each writer's own."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any

from cronflow_actors.errors import LeaseLostError, StoreFailedError
from cronflow_actors.messages import Mutation
from cronflow_actors.store._ops import LEASE_OPS, FileGoneError, Item
from cronflow_actors.store._protocol import CommitObserver, StoreStatistics

__all__ = ["Failure", "GroupAnswers", "take_batch"]

logger = logging.getLogger(__name__)


class Failure:
    """An item's answer when it was not written: ``error`` goes to its caller."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def take_batch(queue: list[Item], max_batch: int) -> list[Item]:
    """The next batch, taken off the front of ``queue``: the items before the first lease
    operation (which runs alone), at most ``max_batch``."""
    count = 0
    for payload, _future in queue[:max_batch]:
        # a snapshot's mutation (nearly every item) is none: its type first, as an isinstance
        # against message classes goes through their metaclass (~600 instructions a class)
        if type(payload) is not Mutation and isinstance(payload, LEASE_OPS):
            break
        count += 1
    items = queue[:count]
    del queue[:count]
    return items


def _describe(error: BaseException) -> str:
    if isinstance(error, FileGoneError | LeaseLostError):
        return str(error)
    said = f"the database refused a write ({type(error).__name__}: {error})"
    if getattr(error, "sqlite_errorcode", 0) & 0xFF == 5:  # SQLITE_BUSY: not the disk's fault
        said += " because another process kept it locked (a sqlite3 shell or another tool)"
    return said


class GroupAnswers(ABC):
    """The writers' shared part. A writer has a queue of ``(payload, future)`` items, a name,
    its failure (None while it writes), its statistics and its commit observer, and says how it
    writes a batch (``_transaction``), which errors are no item's fault (``_is_fatal``) and what
    an item's error means (``_explain``)."""

    _name: str
    _queue: list[Item]
    failure: BaseException | None
    stats: StoreStatistics
    observer: CommitObserver | None

    @abstractmethod
    async def _transaction(self, items: list[Item]) -> tuple[list[Any], int, int]:
        """Write ``items`` as one batch: their results, the snapshots written and seen."""

    @abstractmethod
    async def _explain(self, payload: Any, error: Exception) -> BaseException:
        """The error the caller of ``payload`` gets for ``error``."""

    @staticmethod
    @abstractmethod
    def _is_fatal(error: BaseException) -> bool:
        """An error no item caused: the writer cannot go on."""

    def _take_queue(self) -> list[Item]:
        """Everything queued, leaving the queue empty."""
        queued, self._queue = self._queue, []
        return queued

    def fail(self, error: BaseException) -> StoreFailedError:
        """Stop writing: the waiting callers and every later one get ``StoreFailedError``."""
        if isinstance(error, StoreFailedError):
            failure = error
        else:
            failure = StoreFailedError(self._name, _describe(error))
        if self.failure is None:
            self.failure = failure
            logger.error("%s", failure)
        for _payload, future in self._take_queue():
            if not future.done():
                future.set_exception(failure)
        return failure

    def _fail_batch(self, items: list[Item], error: BaseException) -> None:
        """``error`` is fatal: the writer fails; the batch's callers hear why (a lost lease
        says so), later ones get the failure."""
        failure = self.fail(error)
        told = error if isinstance(error, LeaseLostError) else failure
        for _payload, future in items:
            if not future.done():
                future.set_exception(told)

    async def _one_by_one(self, items: list[Item]) -> tuple[list[Any], int, int]:
        """A batch was refused: write its items one by one, so that only the caller whose item
        is at fault gets an error. Their results, the snapshots written and seen."""
        results: list[Any] = []
        written = seen = 0
        for item in items:
            if self.failure is not None:
                results.append(Failure(self.failure))
                continue
            try:
                (result,), one_written, one_seen = await self._transaction([item])
            except Exception as error:
                if self._is_fatal(error):
                    results.append(Failure(self.fail(error)))
                    continue
                result = Failure(await self._explain(item[0], error))
            else:
                written += one_written
                seen += one_seen
            results.append(result)
        return results, written, seen

    def _answer(
        self, items: list[Item], results: list[Any], written: int, seen: int, started: float
    ) -> None:
        """Tell each caller of the batch ``items`` how its item went; count the batch."""
        for (_payload, future), result in zip(items, results, strict=True):
            if future.done():  # the caller was cancelled; its write happened all the same
                continue
            if isinstance(result, Failure):
                future.set_exception(result.error)
            else:
                future.set_result(result)
        seconds = time.perf_counter() - started
        stats, size = self.stats, len(items)  # (its size asked once: every batch)
        self.stats = StoreStatistics(
            batches=stats.batches + 1,
            mutations=stats.mutations + size,
            snapshots_written=stats.snapshots_written + written,
            snapshots_coalesced=stats.snapshots_coalesced + (seen - written),
            largest_batch=max(stats.largest_batch, size),
            last_batch_seconds=seconds,
        )
        if self.observer is not None:
            try:
                self.observer(seconds, size)
            except Exception:
                logger.exception("the commit observer of the store %s failed", self._name)

"""The memory store's audit trail: each commit's spans packed, as the SQLite store keeps them
(``_spans.py``), so both read back the same values."""

from __future__ import annotations

from collections.abc import Set

from cronflow_actors.errors import MutationRejectedError
from cronflow_actors.messages.audit import AuditSpan
from cronflow_actors.store._batch import Coalesced
from cronflow_actors.store._protocol import check_page
from cronflow_actors.store._spans import pack, page, position

__all__ = ["MemorySpans"]


class MemorySpans:
    """What ``MemoryStore`` keeps of the audit trail, and reads of it."""

    def __init__(self) -> None:
        self._spans: dict[str, dict[int, bytes]] = {}
        """Trace id -> revision -> that commit's spans, packed."""

    def _require_open(self, operation: str) -> None:
        raise NotImplementedError  # the store's own

    def _check_spans(self, batch: Coalesced, known: Set[str]) -> None:
        """Refuse, before anything is written, spans of a run with no snapshot and a
        (trace, revision) already written."""
        for rows in batch.spans:
            trace_id, revision = rows.trace_id, rows.revision
            if trace_id not in known:
                raise MutationRejectedError(trace_id, f"instance {trace_id!r} has no snapshot")
            if revision in self._spans.get(trace_id, ()):
                raise MutationRejectedError(
                    trace_id, f"the spans of revision {revision} are already written"
                )

    def _keep_spans(self, batch: Coalesced) -> None:
        for rows in batch.spans:
            self._spans.setdefault(rows.trace_id, {})[rows.revision] = pack(rows)

    async def read_spans(
        self, trace_id: str, *, after: str | None = None, limit: int = 1000
    ) -> list[AuditSpan]:
        self._require_open("read an audit trail")
        check_page(limit)
        start = position(after)
        rows = sorted(self._spans.get(trace_id, {}).items())
        return page(trace_id, rows, start, limit)

"""How both stores keep the audit trail: the spans of one commit as one packed row.

A transaction's spans share their trace (the run) and their revision (the snapshot's), so a
store keeps them together, keyed by (trace, revision): one row per commit, not one per span (a
three-step run records some thirty spans; a row each would cost the writer several times the
snapshot's own writes). The row's value is ``SpanRows.row`` packed as it is, in one encoder
call: the transaction's events as the engine records them (about 1.3 KB for a three-step run),
or the first layout (an array per span); either way without what the key already says (the
trace, the revision), the run's id left out where an id is the run's own. The spans are
rebuilt when read (``unpack``); both stores read a page of a trace the same way (``page``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.messages import decoder_for, encode
from cronflow_actors.messages.audit import AuditSpan, SpanRows, spans_of

__all__ = ["pack", "page", "position", "unpack"]

_decoder = decoder_for(list[Any])


def pack(spans: SpanRows) -> bytes:
    """The spans of one commit, as its row holds them: ``row``, encoded in one call."""
    return encode(spans.row)


def unpack(trace_id: str, revision: int, packed: bytes) -> tuple[AuditSpan, ...]:
    """The spans of commit ``revision`` of run ``trace_id`` from its row (either layout)."""
    return spans_of(trace_id, revision, _decoder.decode(packed))


def position(span_id: str | None) -> tuple[int, int]:
    """Where span ``span_id`` (``"<revision>.<n>"``) stands in its trace; (0, 0) for None (the
    start). ``ConfigurationError`` for anything else."""
    if span_id is None:
        return (0, 0)
    revision, dot, n = span_id.partition(".") if isinstance(span_id, str) else ("", "", "")
    if not (dot and revision.isdigit() and n.isdigit()):
        raise ConfigurationError(
            "after", span_id, "None or the span_id of a span (\"<revision>.<n>\", e.g. '3.1')"
        )
    return (int(revision), int(n))


def page(
    trace_id: str, rows: Iterable[tuple[int, bytes]], after: tuple[int, int], limit: int
) -> list[AuditSpan]:
    """At most ``limit`` spans past position ``after``, from ``rows`` ((revision, packed), in
    revision order)."""
    found: list[AuditSpan] = []
    for revision, packed in rows:
        if revision < after[0]:
            continue
        for span in unpack(trace_id, revision, packed):
            if revision == after[0] and position(span.span_id) <= after:
                continue
            found.append(span)
            if len(found) == limit:
                return found
    return found

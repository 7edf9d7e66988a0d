"""How both stores keep the audit trail: the spans of one commit as one row.

A transaction's spans share their trace (the run) and their revision (the snapshot's), so a
store keeps them together, keyed by (trace, revision): one row per commit, not one per span (a
three-step run records some thirty spans; a row each would cost the writer several times the
snapshot's own writes). The row's value is the msgpack of the spans, encoded and decoded in
one call each. Both stores read a page of a trace the same way (``page``).
"""

from __future__ import annotations

from collections.abc import Iterable

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.messages import decoder_for, encode
from cronflow_actors.messages.audit import AuditSpan

__all__ = ["SpanGroup", "group", "pack", "page", "position", "unpack"]

SpanGroup = tuple[str, int, tuple[AuditSpan, ...]]
"""(trace id, revision, its spans): what one row holds."""

_decoder = decoder_for(list[AuditSpan])

pack = encode
"""The spans of one (trace, revision), as a row holds them."""


def group(spans: tuple[AuditSpan, ...]) -> SpanGroup:
    """A mutation's spans, keyed by the first one's trace and revision: they are one commit's
    (``Store.read_spans``)."""
    first = spans[0]
    return first.trace_id, first.revision, spans


def unpack(packed: bytes) -> list[AuditSpan]:
    spans: list[AuditSpan] = _decoder.decode(packed)
    return spans


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


def page(rows: Iterable[tuple[int, bytes]], after: tuple[int, int], limit: int) -> list[AuditSpan]:
    """At most ``limit`` spans past position ``after``, from ``rows`` ((revision, packed), in
    revision order)."""
    found: list[AuditSpan] = []
    for revision, packed in rows:
        if revision < after[0]:
            continue
        for span in unpack(packed):
            if revision == after[0] and position(span.span_id) <= after:
                continue
            found.append(span)
            if len(found) == limit:
                return found
    return found

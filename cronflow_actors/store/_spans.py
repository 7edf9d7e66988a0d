"""How both stores keep the audit trail: the spans of one commit as one packed row.

A transaction's spans share their trace (the run) and their revision (the snapshot's), so a
store keeps them together, keyed by (trace, revision): one row per commit, not one per span (a
three-step run records some thirty spans; a row each would cost the writer several times the
snapshot's own writes). The row's value is packed: msgpack of one array per span, without what
the key already says (the trace, the revision, the field names), the run's id left out where
an id is the run's own: a third of the size of the spans' own encoding, which is what the
writer pays for (``pack``, ``unpack``). Both stores read a page of a trace the same way
(``page``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.messages import decoder_for, encode
from cronflow_actors.messages.audit import AuditSpan

__all__ = ["SpanGroup", "group", "pack", "page", "position", "unpack"]

SpanGroup = tuple[str, int, tuple[AuditSpan, ...]]
"""(trace id, revision, its spans): what one row holds."""

_Packed = tuple[int, int, str | None, str, str | None, float, float, dict[str, Any]]
"""n (of span ``<revision>.<n>``), the parent's n (0: none), the instance (None: the run's),
the operation, the element (None: the run's id), start, end, attributes."""
_decoder = decoder_for(list[_Packed])


def group(spans: tuple[AuditSpan, ...]) -> SpanGroup:
    """A mutation's spans, keyed by the first one's trace and revision: they are one commit's
    (``Store.read_spans``)."""
    first = spans[0]
    return first.trace_id, first.revision, spans


def pack(trace_id: str, spans: Iterable[AuditSpan]) -> bytes:
    """The spans of one commit of run ``trace_id``, as its row holds them."""
    return encode(
        [
            (
                int(s.span_id[s.span_id.index(".") + 1 :]),
                0 if s.parent_id is None else int(s.parent_id[s.parent_id.index(".") + 1 :]),
                None if s.instance_id == trace_id else s.instance_id,
                s.operation,
                None if s.element == trace_id else s.element,
                s.started_at,
                s.ended_at,
                s.attributes,
            )
            for s in spans
        ]
    )


def unpack(trace_id: str, revision: int, packed: bytes) -> list[AuditSpan]:
    """The spans of commit ``revision`` of run ``trace_id`` from its row."""
    prefix = f"{revision}."
    return [
        AuditSpan(
            trace_id=trace_id,
            span_id=f"{prefix}{n}",
            parent_id=f"{prefix}{parent}" if parent else None,
            instance_id=trace_id if instance_id is None else instance_id,
            operation=operation,
            element=trace_id if element is None else element,
            started_at=started_at,
            ended_at=ended_at,
            revision=revision,
            attributes=attributes,
        )
        for n, parent, instance_id, operation, element, started_at, ended_at, attributes in (
            _decoder.decode(packed)
        )
    ]


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

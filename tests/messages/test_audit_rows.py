"""An audit row as the engine records it (``EVENTS``) reads back as spans: nesting by frame,
routing on the completion, errors on failures, times from the clock readings; a row that is
not one is refused with where it went wrong."""

from __future__ import annotations

import pytest

from cronflow_actors.messages.audit import (
    ENTER,
    ERROR,
    EVENTS,
    EXIT,
    ITEM,
    LEAVE,
    MARK,
    ROUTE,
    TASK,
    TIME,
    SpanRows,
    spans_of,
)


def test_events_read_back_as_nested_spans_with_their_times() -> None:
    row = [
        EVENTS,
        TIME, 100.0,
        ENTER,  # the turn: an item completes
        ITEM, None, "r.w1", "review", 0, "started", "completed",
        ENTER,  # its task hears of it and completes, routing to "ship"
        TASK, None, "review", 1, "started", "completed",
        ROUTE, None, "review", "xor", ["c_ship"],
        MARK, None, "c_ship", 0, 1,
        ENTER,
        TASK, None, "ship", 1, "disabled", "enabled",
        EXIT,
        TIME, 100.5,
        EXIT,
        ITEM, None, "r.w2", "other", 0, "started", "failed",
        LEAVE,
        TIME, 101.0,
        ERROR, "r.w2", "ValueError: bad",
    ]  # fmt: skip
    spans = SpanRows(trace_id="r", revision=4, row=row).spans()
    assert [(s.span_id, s.parent_id, s.operation, s.element) for s in spans] == [
        ("4.1", None, "WorkItem.complete", "r.w1"),
        ("4.2", "4.1", "Task.complete", "review"),
        ("4.3", "4.2", "Task.route", "review"),
        ("4.4", "4.2", "Condition.mark", "c_ship"),
        ("4.5", "4.2", "Task.enable", "ship"),
        ("4.6", "4.1", "WorkItem.fail", "r.w2"),
    ]
    assert spans[1].attributes == {
        "before": "started",
        "after": "completed",
        "generation": 1,
        "split": "xor",
        "outputs": ["c_ship"],
    }
    assert spans[3].attributes == {"before": 0, "after": 1}
    assert spans[5].attributes["error"] == "ValueError: bad"
    assert {s.instance_id for s in spans} == {"r"}
    # the inner frames end at the reading they ended at; the turn's spans with the row
    assert (spans[4].started_at, spans[4].ended_at) == (100.0, 100.0)
    assert spans[1].ended_at == 100.5
    assert (spans[0].ended_at, spans[5].ended_at) == (101.0, 101.0)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([EVENTS, 99], "99 at 1 is no event"),
        ([EVENTS, TASK, None, "t"], "event 4 at 1 is cut short"),
        ([EVENTS, EXIT], "a frame ends that did not begin"),
    ],
)
def test_a_row_that_is_not_one_is_refused_with_where(row: list[object], message: str) -> None:
    with pytest.raises(ValueError, match="the audit row of run 'r', revision 2: " + message):
        spans_of("r", 2, list(row))

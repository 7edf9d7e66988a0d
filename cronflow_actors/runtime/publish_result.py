"""What a publish of an event did (``Runtime.publish_event``'s answer, ``runtime/events.py``):
the runs it started, the flows that refused it, the waiting steps it reached."""

from __future__ import annotations

import msgspec

__all__ = ["EventFilterError", "EventRefusal", "PublishResult"]


class EventRefusal(msgspec.Struct, frozen=True, kw_only=True):
    """A flow that did not start for an event: its payload did not match the flow's schema, or
    its start raised (its first node's function: the error is logged with its traceback)."""

    workflow: str
    detail: str
    """What did not match (msgspec's message), or what the start raised."""
    path: str = "$"
    """The JSON path of the field at fault (``$`` for the whole payload)."""


class EventFilterError(msgspec.Struct, frozen=True, kw_only=True):
    """A run whose waiting step's ``filter`` (or ``validate``) raised on the event: the step
    did not take it and waits on (its next event is heard); the error is logged with its
    traceback."""

    run_id: str
    detail: str
    """What it raised (``TypeError: ...``)."""


class PublishResult(list[str]):
    """What ``publish_event`` did: a list of the ids of the runs it started, ``refused``, the
    flows whose schema refused the payload or whose start raised, ``delivered``, the runs whose
    waiting step took the event (its filter accepted it), and ``held``, the runs with a step
    waiting for the event that did not hear it yet because they cannot run here (``blocked``:
    their definition changed under their version; or their workflow is not registered): the
    event is kept for them and delivered when they run again; ``filter_errors``, the runs whose
    waiting step's filter raised on it; ``not_kept``, the runs that cannot run here and keep as
    many events as they may (``pinning.KEPT_EVENTS``, ``KEPT_BYTES``): the event is not kept
    for them, publish it again once they run (each empty when there are none)."""

    def __init__(
        self,
        started: list[str],
        refused: list[EventRefusal],
        held: list[str] | None = None,
        delivered: list[str] | None = None,
        *,
        filter_errors: list[EventFilterError] | None = None,
        not_kept: list[str] | None = None,
        note: str | None = None,
    ) -> None:
        super().__init__(started)
        self.refused = refused
        self.held = held if held is not None else []
        self.delivered = delivered if delivered is not None else []
        self.filter_errors = filter_errors if filter_errors is not None else []
        self.not_kept = not_kept if not_kept is not None else []
        self.note = note
        """Said of a publish that reached nothing because nothing here hears its name (no
        flow starts on it, no step waits for it), with the closest name heard, if any."""

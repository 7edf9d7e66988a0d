"""How a flow's run was started, as ``inspect`` shows it beside its payload: by what (a call, a
webhook, a schedule, an event), and what its webhook kept of the request (path parameters, the
query, the headers it keeps). A Temporal or DBOS user reads a run's whole input in its view; a
webhook's kept headers and query were seen only by its steps (newcomer h33 F9)."""

from __future__ import annotations

from typing import Any

import msgspec

from cronflow_actors.flow.envelope import read_envelope

__all__ = ["RunTrigger", "read_trigger"]


class RunTrigger(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What started a run of a flow (``RunInfo.trigger``): ``ctx.trigger`` as its steps read
    it, but for a raw body (``parse_raw_body``), whose bytes are its steps' alone."""

    kind: str
    """``manual``, ``webhook``, ``schedule``, ``event``, ``poll`` (a replay keeps its run's: a
    replay of a webhook's run reads ``webhook``, started by whoever asked, ``started_by``)."""
    webhook: str | None = None
    """The path (as declared) of the webhook that started it."""
    params: dict[str, str] = msgspec.field(default_factory=dict)
    """The webhook's path parameters."""
    query: dict[str, str] = msgspec.field(default_factory=dict)
    """The webhook's query parameters."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """The request headers its webhook keeps (``keep_headers``, ``required_headers``)."""


def read_trigger(stored: Any) -> tuple[Any, str | None, str | None, RunTrigger | None]:
    """A stored run payload's user payload, the run it replays, who started it, and how."""
    envelope = read_envelope(stored)
    if envelope is None:
        return stored, None, None, None
    trigger = RunTrigger(
        kind=envelope.kind,
        webhook=envelope.webhook,
        params=envelope.params,
        query=envelope.query,
        headers=envelope.headers,
    )
    return envelope.payload, envelope.replay_of, envelope.by, trigger

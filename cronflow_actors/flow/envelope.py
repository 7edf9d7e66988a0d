"""The trigger envelope: how a flow run's trigger is stored as its workflow's payload.

Every run of a flow (and every subflow and per-item child it starts) is started with a
``TriggerEnvelope``: the user's payload and how it came (headers, trigger kind, path
parameters, the raw body, the run it replays). It is stored as the map it encodes to, the same
bytes the dict envelope of earlier versions was, so runs stored by them load and read the same.

Reading a stored payload back (``read_envelope``) decodes that map as the Struct: the user's
payload is a field of it, whatever keys it has itself. A stored payload that does not decode
is one stored bare (a net start of a flow by an earlier version), read as the payload itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from cronflow_actors.messages.migrations import CarriedChild, KeptEvent, MigrationSource

__all__ = ["EMPTY", "Resumed", "TriggerEnvelope", "flow_payload", "open_envelope", "read_envelope"]

EMPTY = ":empty"
"""The stored name of ``TriggerEnvelope.empty``: a per-item flow's payload for an empty list."""


class Resumed(msgspec.Struct, frozen=True, kw_only=True):
    """What a resume keeps of the run it goes on from: its version, and the outputs of the
    steps it completed, by step."""

    version: str
    outputs: dict[str, Any]
    caught: list[str] | None = None
    """Which of ``outputs`` are failures their steps caught (``WorkflowRecord.caught``; None:
    a resume written before those were kept, told by their shape)."""
    keys: dict[str, str] = msgspec.field(default_factory=dict)
    """The idempotency keys of the root's steps it began and did not complete, by step, as runs
    resumed before ``CarriedChild.keys`` (the root's entry among ``children``) stored them: read,
    no longer written."""
    children: list[CarriedChild] = msgspec.field(default_factory=list)
    """The steps its child workflows (subflows' runs, items) completed."""
    kept: list[KeptEvent] = msgspec.field(default_factory=list)
    """Events kept for its waiting steps (while it was held, or carried to it) that no step
    took: the resumed run's steps that wait for them hear them (newcomer h27 F3)."""
    answered: dict[str, str] = msgspec.field(default_factory=dict)
    """The errors the fallbacks of ``outputs``' steps answered, by step
    (``MigrationRecord.answered``)."""
    answered_types: dict[str, str] = msgspec.field(default_factory=dict)
    """Their classes (``module.Name``), by step, where known."""
    root: MigrationSource | None = None
    """The run's root as it ended, its outputs left out (``outputs`` has them): the resumed
    run's ``ctx.migrating_from``, where its ``if_`` splits read the branch the run took
    (conform h39 F5). None: a resume written before it was kept."""


class TriggerEnvelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A flow run's trigger, as stored (field order and omitted defaults keep the bytes of the
    dict envelope earlier versions wrote)."""

    payload: Any
    """The payload the run was started with, as given."""
    headers: dict[str, str]
    """The request headers a webhook keeps (``ctx.trigger.headers``)."""
    kind: str
    """How the run started: ``manual``, ``webhook``, ``schedule``, ``event``, ``poll``,
    ``subflow``, ``for_each``, ``batch``, ..."""
    params: dict[str, str] = msgspec.field(default_factory=dict)
    """A webhook's path parameters."""
    raw_body: bytes | None = None
    """The exact request body (a webhook with ``parse_raw_body=True``)."""
    replay_of: str | None = None
    """The run this one replays."""
    rest: list[Any] | None = None
    """A ``batch`` child's chunks still to run after this one."""
    empty: bool = msgspec.field(default=False, name=EMPTY)
    """A per-item child started for an empty list: it ends at once."""
    query: dict[str, str] = msgspec.field(default_factory=dict)
    """A webhook's query parameters (``?code=...``: a GET webhook has no body)."""
    body_digest: str | None = None
    """A digest of the request's body as JSON reads it, for a webhook whose idempotency key is
    a header: a retry under the key is compared with it (another body is refused)."""
    by: str | None = None
    """Who started the run: the principal of the API token that asked, if any."""
    webhook: str | None = None
    """The path (as declared) of the webhook that started the run, if one did: a replay's new
    payload passes its checks."""
    resumed: Resumed | None = None
    """A replay that goes on from its run (``replay_of``): the steps that run completed, with
    the outputs it recorded, read when the resume was asked (``Runtime.replay(...,
    resume=True)``): they are not run again."""


def flow_payload(
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    kind: str = "manual",
    params: Mapping[str, str] | None = None,
    raw_body: bytes | None = None,
    replay_of: str | None = None,
    query: Mapping[str, str] | None = None,
    body_digest: str | None = None,
    by: str | None = None,
    resumed: Resumed | None = None,
    webhook: str | None = None,
) -> TriggerEnvelope:
    """The envelope a flow run is started with (``replay_of``: the run it replays)."""
    return TriggerEnvelope(
        payload=payload,
        headers=dict(headers or {}),
        kind=kind,
        params=dict(params or {}),
        raw_body=bytes(raw_body) if raw_body is not None else None,
        replay_of=replay_of,
        query=dict(query or {}),
        body_digest=body_digest,
        by=by,
        resumed=resumed,
        webhook=webhook,
    )


def read_envelope(stored: Any) -> TriggerEnvelope | None:
    """The envelope a stored flow payload holds; None for a payload stored bare."""
    if type(stored) is TriggerEnvelope:
        return stored
    if type(stored) is not dict:
        return None
    try:
        return msgspec.convert(stored, TriggerEnvelope)
    except msgspec.ValidationError:
        return None


def open_envelope(stored: Any) -> TriggerEnvelope:
    """The envelope a stored flow payload holds, or a manual one around a payload stored bare."""
    envelope = read_envelope(stored)
    if envelope is None:
        return TriggerEnvelope(payload=stored, headers={}, kind="manual")
    return envelope

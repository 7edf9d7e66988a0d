"""What the API says of a run: ``RunInfo`` (``inspect``, and each run of a listing), its status,
and ``RunResult`` (``wait``). A listing's runs carry a big payload or output as ``null``, named
in ``clipped``: a run with a 30 MB output made every page that held it 30 MB, and the console,
which shows none of it, fetched that every 2.5 s (console h40 F1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, TypeVar

import msgspec

from cronflow_actors.runtime.run_trigger import RunTrigger
from cronflow_actors.runtime.step_views import StepInfo

__all__ = ["LISTED_VALUE", "RunInfo", "RunResult", "RunStatus", "as_listed"]

T = TypeVar("T", bound=msgspec.Struct)

LISTED_VALUE = 64 * 1024
"""Bytes of JSON at most of a run's payload, and of its output, in a listing."""


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    BLOCKED = "blocked"
    """Held: the definition registered under its version changed since it started
    (``RunInfo.blocked`` says how, and what to do)."""


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: RunStatus
    output: Any = None
    error: str | None = None


def _single(what: str) -> msgspec.Meta:
    """The API document's words for a field ``inspect`` fills in and a listing leaves out
    (hostile h34 L4: ``GET /runs`` read as "no trigger recorded")."""
    return msgspec.Meta(
        description=f"{what[0].upper()}{what[1:]}: said by GET /runs/{{run_id}}; null in the "
        "pages of GET /runs, which do not look"
    )


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    workflow: str
    status: RunStatus
    payload: Any = None
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    """The class (``module.Name``) of the exception that failed the run, if a step raised."""
    steps: list[StepInfo] = msgspec.field(default_factory=list)
    created_at: float = 0.0
    finished_at: float | None = None
    replay_of: str | None = None
    """The run this one replays (``Runtime.replay``)."""
    workflow_name: str | None = None
    """The flow's ``define(name=...)`` (its id if none), while the flow is registered."""
    migrated_from: str | None = None
    """The run a migration replaced with this one (``Runtime.migrate``)."""
    migrated_to: str | None = None
    """The run a migration replaced this one with."""
    version: str = ""
    """The version of the flow (or net) the run started on, and runs on."""
    blocked: str | None = None
    """Why a run cannot run here, and what to do about it: it is ``blocked`` (its definition
    changed under its version), or its version is not registered here (it stays ``waiting``
    or ``running``)."""
    started_by: str | None = None
    """Who started it: the principal of the API token that asked (``POST /runs``, a replay, a
    webhook that takes a token); None for the runtime's own triggers and this process's
    calls."""
    migration_pending: Annotated[bool | None, _single("whether its migration is pending")] = None
    """Its ``migrated_to`` run has not started: the migration is pending (its start failed:
    fix the cause and ``migrate`` again, or ``cancel`` this run to give the migration up; or a
    crash cut it: the next start of a runtime carries it on).
    Said by ``inspect`` (``GET /runs/{id}``: true or false); None in listings, which do not
    look."""
    resumed_as: Annotated[
        str | None,
        msgspec.Meta(description="The run that resumes this one (in GET /runs' pages too)"),
    ] = None
    """The run that resumes this one (``replay(..., resume=True)``), where its work goes on: a
    failed run pointed nowhere after it, and offered a resume (newcomer h31 F2). Said by
    ``inspect`` of an ended run, and by listings (newcomer h35 F5)."""
    trigger: Annotated[RunTrigger | None, _single("how the run was started")] = None
    """How a flow's run was started, and what its webhook kept of the request (``inspect``;
    None for a net's instance, and in listings)."""
    clipped: list[str] | None = None
    """In a listing: the fields left out for their size (``payload``, ``output``: over 64 KiB
    of JSON each), which ``inspect`` (``GET /runs/{id}``) has; None when none was."""
    current_run_id: Annotated[str | None, _single("where its work is now")] = None
    """The run at the end of the resumes and migrations its work went on through, where it is
    now (newcomer h33 F4: one hop named a run that had ended too); said by ``inspect`` of a
    run that went on; None otherwise, and in listings."""


def as_listed(info: T, stored: int, fields: tuple[str, ...] = ("payload", "output")) -> T:
    """``info`` (a run's, a pause's: a Struct with ``clipped``) as a listing shows it: each of
    its ``fields`` over ``LISTED_VALUE`` bytes of JSON is left out (``inspect`` and the run's
    pause have it), named in ``clipped``. ``stored``: the bytes of what it was read from, under
    which none can be that big (nothing to measure)."""
    if stored <= LISTED_VALUE:
        return info
    left_out = [name for name in fields if _too_big(getattr(info, name))]
    if not left_out:
        return info
    return msgspec.structs.replace(info, clipped=left_out, **dict.fromkeys(left_out))


def _too_big(value: Any) -> bool:
    """Whether ``value`` is over ``LISTED_VALUE`` bytes of JSON (or is no JSON at all)."""
    if value is None or isinstance(value, bool | int | float):
        return False
    try:
        return len(msgspec.json.encode(value)) > LISTED_VALUE
    except (TypeError, ValueError, OverflowError):  # (as the API would show it: not JSON)
        return True

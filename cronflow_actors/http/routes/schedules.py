"""When a flow's schedules fire next: ``GET /flows/{id}/next-fires`` gives, for each cron
schedule and interval of the flow, its next ``count`` ticks after now (epoch seconds), as the
runtime's scheduler computes them (a cron expression in its time zone, an interval aligned to
multiples of its length). The web console shows them with each flow's triggers.
``POST /flows/{id}/fire`` starts a run now as a tick of one of them would (``Runtime.
fire_schedule``). ``POST /flows/{id}/schedules/pause`` and ``.../resume`` pause and resume them
all (``Runtime.pause_schedules``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.http.edge import Edge, json_response, route
from cronflow_actors.http.key_headers import no_idempotency_key
from cronflow_actors.http.requests import query_int
from cronflow_actors.http.routes.runs import ONE_LINE_TEXT, RunId, started
from cronflow_actors.runtime import FlowTrigger, SchedulePause

__all__ = [
    "FireSchedule",
    "NextFires",
    "PauseSchedules",
    "ResumeSchedules",
    "ScheduleFires",
    "SchedulesPaused",
    "SchedulesResumed",
    "routes",
]


class ScheduleFires(msgspec.Struct, frozen=True, kw_only=True):
    """One schedule or interval trigger and its next ticks, soonest first (fewer when the
    expression has none left in the next 50 years)."""

    trigger: FlowTrigger
    next: list[float]


class NextFires(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /flows/{id}/next-fires``: the flow, the server's time, each schedule, and their
    pause (null while they run: a paused schedule's ticks start no run)."""

    flow: str
    now: float
    schedules: list[ScheduleFires]
    paused: SchedulePause | None = None


class PauseSchedules(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /flows/{id}/schedules/pause``: why (shown with the pause, and logged)."""

    note: Annotated[str, ONE_LINE_TEXT] = ""  # (checked as a cancel's reason)


class ResumeSchedules(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /flows/{id}/schedules/resume``: nothing, or ``{}``. Read all the same: a body
    never read let malformed JSON, one over the limit or unknown fields resume the schedules
    (hostile h42 F1), where every other route refuses them and changes nothing."""


class SchedulesPaused(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of a pause: the flow, and its pause (as it was, if paused already)."""

    flow: str
    paused: SchedulePause


class SchedulesResumed(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of a resume: the flow, and whether its schedules were paused."""

    flow: str
    resumed: bool


class FireSchedule(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /flows/{id}/fire``: which schedule (its cron expression as declared, with its
    zone as ``0 9 * * * (Europe/Paris)`` where one expression has two, or an interval's length
    as ``every 15m``; none for the flow's only one), and an optional run id (a repeat of it
    starts nothing: 409 instance-exists)."""

    schedule: str | None = None
    instance_id: RunId | None = None


def routes(edge: Edge) -> list[Route]:
    runtime = edge.runtime

    async def next_fires(request: Request) -> Response:
        flow_id = request.path_params["id"]
        compiled = runtime.catalog.root(flow_id)  # 404 for a flow not registered
        count = query_int(request, "count", 5, low=1, high=50)
        now = runtime.clock.now()
        crons = iter(compiled.triggers.schedules)
        intervals = iter(compiled.triggers.intervals)
        found = []
        next_after: Callable[[float], float]
        for trigger in compiled.description.triggers:
            if trigger.kind == "schedule":
                next_after = next(crons).next_after
            elif trigger.kind == "interval":
                next_after = _aligned(next(intervals))
            else:
                continue
            ticks: list[float] = []
            at = now
            while len(ticks) < count:
                at = next_after(at)
                if math.isinf(at):
                    break
                ticks.append(at)
            found.append(ScheduleFires(trigger=trigger, next=ticks))
        paused = await runtime.schedules_paused(flow_id)
        return json_response(NextFires(flow=flow_id, now=now, schedules=found, paused=paused))

    async def pause(request: Request) -> Response:
        expected = 'nothing or {"note": "why"}'
        body = await edge.body_as(request, PauseSchedules, expected, optional=True)
        flow_id = request.path_params["id"]
        paused = await runtime.pause_schedules(
            flow_id, note=body.note, principal=edge.caller(request)
        )
        return json_response(SchedulesPaused(flow=flow_id, paused=paused))

    async def resume(request: Request) -> Response:
        await edge.body_as(request, ResumeSchedules, "nothing or {}", optional=True)
        flow_id = request.path_params["id"]
        resumed = await runtime.resume_schedules(flow_id)
        return json_response(SchedulesResumed(flow=flow_id, resumed=resumed))

    async def fire(request: Request) -> Response:
        expected = 'nothing or {"schedule": expression, "instance_id": ...}'
        fire = await edge.body_as(request, FireSchedule, expected, optional=True)
        no_idempotency_key(request, "a fire", fire.instance_id)
        run_id = await runtime.fire_schedule(
            request.path_params["id"],
            fire.schedule,
            instance_id=fire.instance_id,
            principal=edge.caller(request),
        )
        return started(run_id)

    return [
        route("/flows/{id}/next-fires", edge.auth, get=next_fires),
        route("/flows/{id}/fire", edge.auth, post=fire),
        route("/flows/{id}/schedules/pause", edge.auth, post=pause),
        route("/flows/{id}/schedules/resume", edge.auth, post=resume),
    ]


def _aligned(seconds: float) -> Callable[[float], float]:
    """An interval's ticks: the multiples of its length (as the runtime's scheduler fires
    them, ``runtime/schedules.py``)."""

    def next_after(when: float) -> float:
        return (math.floor(when / seconds) + 1) * seconds

    return next_after

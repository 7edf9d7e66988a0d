"""The OpenAPI operations of a flow's schedules (``GET /flows/{id}/next-fires``,
``POST /flows/{id}/fire``, ``.../schedules/pause`` and ``.../schedules/resume``, in
``routes/schedules.py``), which ``openapi.py`` adds to the document."""

from __future__ import annotations

from typing import Any

from cronflow_actors.http.answers import RunStarted
from cronflow_actors.http.routes.schedules import (
    FireSchedule,
    NextFires,
    PauseSchedules,
    ResumeSchedules,
    SchedulesPaused,
    SchedulesResumed,
)

__all__ = ["SCHEDULE_TYPES", "schedule_paths"]

SCHEDULE_TYPES: list[Any] = [
    NextFires,
    FireSchedule,
    PauseSchedules,
    ResumeSchedules,
    SchedulesPaused,
    SchedulesResumed,
]
"""The types these operations name, for the document's components."""


def schedule_paths(
    b: Any, *, flow_id: dict[str, Any], count: dict[str, Any], location: dict[str, Any]
) -> dict[str, Any]:
    """The paths, described with the document's builder ``b`` (``openapi._Builder``);
    ``flow_id`` the path parameter, ``count`` the ticks asked, ``location`` the started run's
    ``Location`` header."""
    return {
        "/flows/{id}/next-fires": {
            "get": b.op(
                "When the flow's cron schedules and intervals fire next",
                {"200": b.answer("each schedule's next ticks", NextFires)},
                "400 404",
                params=[flow_id, count],
            )
        },
        "/flows/{id}/fire": {
            "post": b.op(
                "Start a run now as a tick of one of the flow's schedules would (its payload "
                "a tick's, scheduled_at now, fired_now true); the schedule's own ticks go on",
                {"202": b.answer("started", RunStarted, headers=location)},
                "400 404 409 413 415 500 503",
                body={"anyOf": [{"$ref": b.refs[FireSchedule]}, {"type": "null"}]},
                params=[flow_id],
            )
        },
        "/flows/{id}/schedules/pause": {
            "post": b.op(
                "Pause every cron schedule and interval of the flow: their ticks start no run, "
                "in every process on the database, until resumed (fire still starts one); "
                "paused already: that pause, as it was",
                {"200": b.answer("paused", SchedulesPaused)},
                "400 404 413 415 503",
                body={"anyOf": [{"$ref": b.refs[PauseSchedules]}, {"type": "null"}]},
                params=[flow_id],
            )
        },
        "/flows/{id}/schedules/resume": {
            "post": b.op(
                "Resume the flow's paused schedules: the next tick starts a run, and the ticks "
                "that passed while they were paused are not caught up",
                {"200": b.answer("whether they were paused", SchedulesResumed)},
                "400 404 413 415 503",
                body={"anyOf": [{"$ref": b.refs[ResumeSchedules]}, {"type": "null"}]},
                params=[flow_id],
            )
        },
    }

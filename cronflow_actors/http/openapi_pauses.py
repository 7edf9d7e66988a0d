"""The OpenAPI operations of runs paused for a person (``POST /resume/{token}``,
``GET /paused``, ``GET /runs/{run_id}/pause``, in ``routes/runs.py``), which ``openapi.py``
adds to the document."""

from __future__ import annotations

from typing import Any

from cronflow_actors.http.answers import PausedPage, Resumed
from cronflow_actors.runtime import PausedRun

__all__ = ["pause_paths"]

_RESUME: dict[str, Any] = {
    "type": ["object", "null"],
    "description": (
        'the decision, {"approved": true} (or false), with "reason" and "approved_by" if '
        "given; no body (or null): not approved"
    ),
}
_NOT_PAUSED = (
    "no such run (not-found), or the run waits for no person (not-paused: it runs, sleeps, "
    "waits for an event or has ended)"
)


def pause_paths(
    b: Any, *, token: dict[str, Any], run_id: dict[str, Any], page: list[dict[str, Any]]
) -> dict[str, Any]:
    """The three paths, described with the document's builder ``b`` (``openapi._Builder``);
    ``token`` and ``run_id`` are the path parameters, ``page`` a listing's query parameters."""
    run_pause = b.op(
        "The pause a run waits in, with its resume token (the oldest, if its children wait in "
        "several): one read, however many runs are paused",
        {"200": b.answer("the pause", PausedRun)},
        "404",
        params=[run_id],
    )
    run_pause["responses"]["404"]["description"] = _NOT_PAUSED
    return {
        "/resume/{token}": {
            "post": b.op(
                "Resume a run paused for a human",
                {"200": b.answer("resumed", Resumed)},
                "400 404 409 413 415 500 503",
                body=_RESUME,
                params=[token],
            )
        },
        "/paused": {
            "get": b.op(
                "Runs paused for a human, oldest first, with their resume tokens (?run_id=: "
                "that run's pauses, its children's and its net's work items' included); a page "
                "ends early, its next_cursor going on, once its pauses reach about 8 MB",
                {"200": b.answer("a page of pauses (the one reaching 8 MB its last)", PausedPage)},
                "400 404",
                params=page,
            )
        },
        "/runs/{run_id}/pause": {"get": run_pause},
    }

"""The OpenAPI operations of a run's audit trail (``GET /runs/{run_id}/trace`` and
``GET /runs/{run_id}/state?at=...``, in ``routes/runs.py``), which ``openapi.py`` adds to the
document: their operation ids, the answers' types (``Trace``, ``StateAt``) and their paths."""

from __future__ import annotations

from typing import Any

from cronflow_actors.runtime.audit import StateAt, Trace

__all__ = ["AUDIT_OPERATIONS", "AUDIT_TYPES", "audit_paths"]

AUDIT_OPERATIONS = {
    ("/runs/{run_id}/trace", "get"): "getRunTrace",
    ("/runs/{run_id}/state", "get"): "getRunStateAt",
}
AUDIT_TYPES: list[Any] = [Trace, StateAt]

_AT = {
    "name": "at",
    "in": "query",
    "required": True,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        # epoch seconds, or a date, a time and a zone (what parse_instant reads; it reads more)
        "pattern": (
            r"^(-?[0-9]{1,12}(\.[0-9]{1,9})?"
            r"|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
            r"(Z|[+-][0-9]{2}:?[0-9]{2}))$"
        ),
    },
    "description": "epoch seconds, or an ISO 8601 time with a time zone",
}


def audit_paths(b: Any, run_id: dict[str, Any]) -> dict[str, Any]:
    """The two paths, described with the document's builder ``b`` (``openapi._Builder``);
    ``run_id`` is the path parameter."""
    return {
        "/runs/{run_id}/trace": {
            "get": b.op(
                "The run's audit trail: every engine operation as a span, under its cause",
                {"200": b.answer("the trace (no spans: recorded with the audit off)", Trace)},
                "404",
                params=[run_id],
            )
        },
        "/runs/{run_id}/state": {
            "get": b.op(
                "The run as it was at a moment, rebuilt from its audit trail",
                {"200": b.answer("its workflows, markings, tasks and work items", StateAt)},
                "400 404",
                params=[run_id, _AT],
            )
        },
    }

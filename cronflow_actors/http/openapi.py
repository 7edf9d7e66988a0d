"""The OpenAPI document of the HTTP API, generated from the msgspec types it speaks."""

from __future__ import annotations

from typing import Any

import msgspec

from cronflow_actors.runtime import PausedRun, RunInfo

__all__ = ["openapi_document"]


class RunStarted(msgspec.Struct):
    run_id: str


class StartRun(msgspec.Struct):
    workflow: str
    payload: Any = None


class ErrorBody(msgspec.Struct):
    error: str


class RunList(msgspec.Struct):
    runs: list[RunInfo]
    limit: int
    offset: int


class PausedList(msgspec.Struct):
    paused: list[PausedRun]


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": ref}}}}


def _op(summary: str, responses: dict[str, Any], body: Any = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    return operation


def _ok(description: str, ref: str | None = None) -> dict[str, Any]:
    return {"description": description, **(_json(ref) if ref else {})}


def openapi_document(
    webhooks: list[tuple[str, Any]], title: str = "cronflow-actors"
) -> dict[str, Any]:
    """OpenAPI 3.1 for the fixed routes and the given ``(flow id, WebhookSpec)`` webhooks."""
    types: list[Any] = [RunStarted, StartRun, ErrorBody, RunInfo, RunList, PausedList]
    types += [spec.schema for _, spec in webhooks if isinstance(spec.schema, type)]
    template = "#/components/schemas/{name}"
    schemas, components = msgspec.json.schema_components(types, ref_template=template)
    refs = {t: s["$ref"] for t, s in zip(types, schemas, strict=True) if "$ref" in s}
    error = _ok("refused; nothing changed", refs[ErrorBody])
    started = _ok("accepted", refs[RunStarted])
    paths: dict[str, Any] = {
        "/runs": {
            "post": _op(
                "Trigger a run of a registered flow",
                {"202": started, "400": error, "404": error},
                _json(refs[StartRun]),
            ),
            "get": _op(
                "List runs (filters: workflow, status; limit, offset)",
                {"200": _ok("runs", refs[RunList]), "400": error},
            ),
        },
        "/runs/{run_id}": {
            "get": _op("A run with its steps", {"200": _ok("the run", refs[RunInfo]), "404": error})
        },
        "/runs/{run_id}/cancel": {
            "post": _op("Cancel a run", {"200": _ok("canceled"), "404": error, "409": error})
        },
        "/events/{name}": {"post": _op("Publish an event", {"202": _ok("published")})},
        "/resume/{token}": {
            "post": _op("Resume a paused run", {"200": _ok("resumed"), "404": error, "409": error})
        },
        "/paused": {
            "get": _op("Runs paused for a human", {"200": _ok("pauses", refs[PausedList])})
        },
        "/healthz": {"get": _op("Liveness", {"200": _ok("running")})},
        "/work-items/{work_item_id}/{action}": {
            "post": _op(
                "start, complete, fail, cancel or reset a work item (bearer token)",
                {"200": _ok("done"), "400": error, "401": error, "403": error, "409": error},
            )
        },
    }
    for flow_id, spec in webhooks:
        body = _json(refs[spec.schema]) if spec.schema in refs else {"content": {}}
        paths.setdefault(spec.route, {})[spec.method.lower()] = _op(
            f"Webhook: start a run of {flow_id!r}",
            {"202": started, "400": error, "401": error, "413": error},
            body,
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {"schemas": components},
    }

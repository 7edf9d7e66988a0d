"""The OpenAPI 3.1 document of the HTTP API: every route, parameter, body and answer, generated
from the msgspec types the routes speak (webhook payload schemas included)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from cronflow_actors.http.problems import MEDIA_TYPE, ProblemBody
from cronflow_actors.http.routes.runs import StartRun
from cronflow_actors.http.routes.workflows import WORK_ITEM_ACTIONS, StartWorkflow
from cronflow_actors.runtime import (
    PausedRun,
    RunInfo,
    RunStatus,
    TaskState,
    WorkflowInfo,
    WorkItemInfo,
)

__all__ = ["openapi_document"]


class RunStarted(msgspec.Struct):
    run_id: str


class WebhookAnswered(msgspec.Struct, omit_defaults=True):
    """200 from a webhook: a duplicate (the first run's id), or a condition that was not met."""

    run_id: str | None
    duplicate: bool = False
    condition_met: bool = True


class RunPage(msgspec.Struct):
    runs: list[RunInfo]
    limit: int
    next_cursor: str | None


class PausedPage(msgspec.Struct):
    paused: list[PausedRun]
    next_cursor: str | None


class Canceled(msgspec.Struct):
    run_id: str
    status: str


class Published(msgspec.Struct):
    started: list[str]


class Resumed(msgspec.Struct):
    status: str


class WorkflowStarted(msgspec.Struct):
    workflow_id: str


class WorkflowView(WorkflowInfo, frozen=True, kw_only=True):
    tasks: dict[str, TaskState]


class WorkflowCanceled(msgspec.Struct):
    workflow_id: str
    state: str


class WorkItemList(msgspec.Struct):
    work_items: list[WorkItemInfo]


class WorkItemCreated(msgspec.Struct):
    work_item_id: str


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    detail: str | None = None


class Readiness(msgspec.Struct):
    ready: bool
    checks: dict[str, str]


WorkItemAction = StrEnum("WorkItemAction", {a.upper(): a for a in WORK_ITEM_ACTIONS})  # type: ignore[misc]

_FIXED: list[Any] = [
    ProblemBody,
    RunStarted,
    WebhookAnswered,
    StartRun,
    RunInfo,
    RunPage,
    PausedPage,
    Canceled,
    Published,
    Resumed,
    StartWorkflow,
    WorkflowStarted,
    WorkflowView,
    WorkflowCanceled,
    WorkItemList,
    WorkItemCreated,
    WorkItemInfo,
    Health,
    Readiness,
]
_MEANINGS = {
    "400": "the request is malformed or does not fit the schema; nothing was changed",
    "401": "a bearer token (or a valid signature) is needed; nothing was changed",
    "403": "the action's policy refused the caller; nothing was changed",
    "404": "no such run, workflow, work item, flow or token",
    "409": "the element's state does not allow it (or the id is taken); nothing was changed",
    "413": "the request body is too large",
    "415": "the body must be application/json",
    "500": "a webhook callback raised (its traceback is in the server's log)",
    "503": "the runtime is not running (stopping, or its store failed); retry later",
}


def openapi_document(
    webhooks: list[tuple[str, Any]], *, with_metrics: bool = True, title: str = "cronflow-actors"
) -> dict[str, Any]:
    """OpenAPI 3.1 for the fixed routes and the given ``(flow id, WebhookSpec)`` webhooks."""
    user_types = [spec.schema for _, spec in webhooks if isinstance(spec.schema, type)]
    types = [*_FIXED, *user_types]
    template = "#/components/schemas/{name}"
    schemas, components = msgspec.json.schema_components(types, ref_template=template)
    refs = {t: s.get("$ref") for t, s in zip(types, schemas, strict=True)}
    problem = refs[ProblemBody]

    def json(ref: Any) -> dict[str, Any]:
        schema = ref if isinstance(ref, dict) else {"$ref": refs[ref]}
        return {"application/json": {"schema": schema}}

    def answer(description: str, ref: Any, **extra: Any) -> dict[str, Any]:
        return {"description": description, "content": json(ref), **extra}

    def op(
        summary: str,
        answers: dict[str, Any],
        errors: str,
        *,
        body: Any = None,
        params: list[dict[str, Any]] | None = None,
        secured: bool = True,
    ) -> dict[str, Any]:
        responses = dict(answers)
        for code in errors.split():
            responses[code] = {
                "description": _MEANINGS[code],
                "content": {MEDIA_TYPE: {"schema": {"$ref": problem}}},
            }
        operation: dict[str, Any] = {"summary": summary, "responses": responses}
        if params:
            operation["parameters"] = params
        if body is not None:
            operation["requestBody"] = {"content": json(body), "required": False}
        if not secured:
            operation["security"] = []
        return operation

    def path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schema or {"type": "string"},
        }

    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": schema, "description": description}

    limit = query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size")
    cursor = query(
        "cursor", {"type": "string", "maxLength": 500}, "the previous page's next_cursor"
    )
    status = query("status", {"type": "string", "enum": [s.value for s in RunStatus]}, "run status")
    workflow = query("workflow", {"type": "string", "maxLength": 200}, "flow id")
    any_json: dict[str, Any] = {}
    location = {"Location": {"schema": {"type": "string"}, "description": "the run's URL"}}

    paths: dict[str, Any] = {
        "/healthz": {
            "get": op(
                "Liveness: 503 once the runtime has failed",
                {"200": answer("alive", Health), "503": answer("failed", Health)},
                "",
                secured=False,
            )
        },
        "/readyz": {
            "get": op(
                "Readiness: runtime running, store writable, database lease held",
                {"200": answer("ready", Readiness), "503": answer("not ready", Readiness)},
                "",
                secured=False,
            )
        },
        "/openapi.json": {
            "get": op(
                "This document",
                {"200": {"description": "OpenAPI 3.1", "content": json({"type": "object"})}},
                "",
                secured=False,
            )
        },
        "/runs": {
            "get": op(
                "Runs, newest first, a page at a time",
                {"200": answer("a page of runs (without their steps)", RunPage)},
                "400 401",
                params=[workflow, status, limit, cursor],
            ),
            "post": op(
                "Start a run of a registered flow (answered once the start is durable)",
                {"202": answer("started", RunStarted, headers=location)},
                "400 401 404 409 413 415 503",
                body=StartRun,
            ),
        },
        "/runs/{run_id}": {
            "get": op(
                "A run with its steps",
                {"200": answer("the run", RunInfo)},
                "401 404",
                params=[path_param("run_id")],
            )
        },
        "/runs/{run_id}/cancel": {
            "post": op(
                "Cancel a run",
                {"200": answer("canceled", Canceled)},
                "401 404 409 503",
                params=[path_param("run_id")],
            )
        },
        "/events/{name}": {
            "post": op(
                "Publish an event: start the flows listening, wake the steps waiting",
                {"202": answer("published", Published)},
                "400 401 409 413 415 503",
                body=any_json,
                params=[path_param("name")],
            )
        },
        "/resume/{token}": {
            "post": op(
                "Resume a run paused for a human",
                {"200": answer("resumed", Resumed)},
                "400 401 404 409 413 415 503",
                body=any_json,
                params=[path_param("token")],
            )
        },
        "/paused": {
            "get": op(
                "Runs paused for a human, oldest first, with their resume tokens",
                {"200": answer("a page of pauses", PausedPage)},
                "400 401",
                params=[limit, cursor],
            )
        },
        "/workflows": {
            "post": op(
                "Start a net workflow (its initialize action, with the caller's principal)",
                {"201": answer("started", WorkflowStarted)},
                "400 401 403 404 409 413 415 503",
                body=StartWorkflow,
            )
        },
        "/workflows/{workflow_id}": {
            "get": op(
                "A net workflow instance and its tasks' states",
                {"200": answer("the workflow", WorkflowView)},
                "401 404",
                params=[path_param("workflow_id")],
            )
        },
        "/workflows/{workflow_id}/cancel": {
            "post": op(
                "Cancel a net workflow (its cancel action, with the caller's principal)",
                {"200": answer("canceled", WorkflowCanceled)},
                "400 401 403 404 409 503",
                params=[path_param("workflow_id")],
            )
        },
        "/workflows/{workflow_id}/tasks/{task}/work-items": {
            "get": op(
                "The work items of a task's latest generation",
                {"200": answer("work items", WorkItemList)},
                "401 404",
                params=[path_param("workflow_id"), path_param("task")],
            ),
            "post": op(
                "Initialize a work item (its initialize action, with the caller's principal)",
                {"201": answer("initialized", WorkItemCreated)},
                "400 401 403 404 409 413 415 503",
                body=any_json,
                params=[path_param("workflow_id"), path_param("task")],
            ),
        },
        "/work-items/{work_item_id}/{action}": {
            "post": op(
                "Start, complete, fail, cancel or reset a work item (its action)",
                {"200": answer("the work item after the action", WorkItemInfo)},
                "400 401 403 404 409 413 415 503",
                body=any_json,
                params=[
                    path_param("work_item_id"),
                    path_param("action", {"type": "string", "enum": list(WORK_ITEM_ACTIONS)}),
                ],
            )
        },
    }
    if with_metrics:
        paths["/metrics"] = {
            "get": op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "the text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                "401",
            )
        }
    for flow_id, spec in webhooks:
        body = spec.schema if isinstance(spec.schema, type) else any_json
        paths.setdefault(spec.route, {})[spec.method.lower()] = op(
            f"Webhook: start a run of {flow_id!r}",
            {
                "202": answer("started", RunStarted, headers=location),
                "200": answer("a duplicate, or a condition that was not met", WebhookAnswered),
            },
            "400 401 413 415 500 503",
            body=body,
            params=[path_param(name) for name in spec.params],
            secured=spec.require_token,
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }

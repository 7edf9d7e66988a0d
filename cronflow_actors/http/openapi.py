"""The OpenAPI 3.1 document of the HTTP API: every route, parameter, body and answer, generated
from the msgspec types the routes speak (``answers.py``; webhook payload schemas included)."""

from __future__ import annotations

from typing import Any

import msgspec

from cronflow_actors.http import openapi_words as words
from cronflow_actors.http.answers import (
    FIXED,
    Canceled,
    FlowList,
    Health,
    NetList,
    Published,
    Readiness,
    ResumedBefore,
    RunMigrated,
    RunPage,
    RunStarted,
    WebhookAnswered,
    WorkflowCanceled,
    WorkflowMigrated,
    WorkflowStarted,
    WorkflowView,
)
from cronflow_actors.http.openapi_audit import AUDIT_TYPES, audit_paths
from cronflow_actors.http.openapi_links import LINKS, OPERATIONS
from cronflow_actors.http.openapi_pauses import pause_paths
from cronflow_actors.http.openapi_schedules import SCHEDULE_TYPES, schedule_paths
from cronflow_actors.http.openapi_tasks import task_paths
from cronflow_actors.http.problems import MEDIA_TYPE, ProblemBody
from cronflow_actors.http.routes.nets import NetView
from cronflow_actors.http.routes.runs import WAIT_LIMIT, CancelRun, ReplayRun, StartRun
from cronflow_actors.http.routes.workflows import (
    WORK_ITEM_ACTIONS,
    MigrateWorkflow,
    StartWorkflow,
)
from cronflow_actors.runtime import (
    RunInfo,
    RunStatus,
    WorkflowDescription,
    WorkItemInfo,
)

__all__ = ["openapi_document"]


_NET_ACTION = "400 401 403"
"""A net action is called with the caller's principal: without a token (or on a server with
none configured) an action that needs authentication answers 401, its policy 403."""

_NOT_PARAMETERS = frozenset({"authorization", "content-type", "accept"})  # OpenAPI forbids them


class _Builder:
    """What every operation of one document shares: the schemas' references, and whether the
    API needs a bearer token."""

    def __init__(self, refs: dict[Any, Any], tokens: bool) -> None:
        self.refs = refs
        self.tokens = tokens

    def json(self, ref: Any) -> dict[str, Any]:
        schema = ref if isinstance(ref, dict) else {"$ref": self.refs[ref]}
        return {"application/json": {"schema": schema}}

    def answer(self, description: str, ref: Any, **extra: Any) -> dict[str, Any]:
        return {"description": description, "content": self.json(ref), **extra}

    def op(
        self,
        summary: str,
        answers: dict[str, Any],
        errors: str,
        *,
        body: Any = None,
        body_required: bool = False,
        params: list[dict[str, Any]] | None = None,
        secured: bool | None = None,
        signed: bool = False,
    ) -> dict[str, Any]:
        """One operation. ``secured``: it needs a bearer token (401 without one; by default
        when the API does); ``signed``: a signature (401 without a valid one). A body may be
        too large (413), of another media type (415), sent too slowly (408) or nested too
        deeply (400); a path parameter may name nothing (404); a query parameter the operation
        does not declare is refused (400, ``http/queries.py``)."""
        if secured is None:
            secured = self.tokens
        codes = set(errors.split()) | {"400", "503"}  # any request may meet the connection limit
        if secured or signed:
            codes.add("401")
        if body is not None:
            codes |= {"400", "408", "413", "415"}
        if any(p["in"] == "path" for p in params or ()):
            codes.add("404")
        responses = dict(answers)
        problem = {MEDIA_TYPE: {"schema": {"$ref": self.refs[ProblemBody]}}}
        for code in sorted(codes):
            responses[code] = {"description": words.MEANINGS[code], "content": problem}
        operation: dict[str, Any] = {"summary": summary, "responses": responses}
        if params:
            operation["parameters"] = params
        if body is not None:
            operation["requestBody"] = words.body_of(self.json(body), body_required)
        if secured != self.tokens:  # not as the document's default
            operation["security"] = [{"bearer": []}] if secured else []
        return operation


def path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema or {"type": "string", "minLength": 1, "pattern": words.PATH_TEXT},
    }


def header(name: str, required: bool, description: str, schema: Any = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "schema": schema or {"type": "string"},
        "description": description,
    }


_PUBLISH_KEY = header(
    "Idempotency-Key",
    False,
    "names this publish: sent again with it, no listening flow starts twice",
    words.PUBLISH_KEY,
)


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A query parameter; a text one is not empty or blank (``requests.query_text``)."""
    if schema.get("type") == "string" and "enum" not in schema:
        schema = {"minLength": 1, "pattern": "\\S", **schema}  # (" " too: retest h44 N1)
    return {"name": name, "in": "query", "schema": schema, "description": description}


_LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size")
_CURSOR = query("cursor", {"type": "string", "maxLength": 500}, "the previous page's next_cursor")
_RUN = query("run_id", {"type": "string", "maxLength": 500}, "this run's pauses only")
_STATUS = query("status", {"type": "string", "enum": [s.value for s in RunStatus]}, "run status")
_WORKFLOW = query("workflow", {"type": "string", "maxLength": 200}, "flow id")
_COUNT = query("count", {"type": "integer", "minimum": 1, "maximum": 50}, "ticks per schedule")
_WAIT = query(
    "wait",
    {"type": "integer", "minimum": 0, "maximum": WAIT_LIMIT},
    "seconds to wait for the run to end before answering (0: at once)",
)
_ANY_JSON: dict[str, Any] = {}
_LOCATION = {"Location": {"schema": {"type": "string"}, "description": "the run's URL"}}


def _webhook_op(b: _Builder, flow_id: str, spec: Any) -> dict[str, Any]:
    schema = spec.schema if isinstance(spec.schema, type) else None
    params = [path_param(name) for name in spec.params]
    params += [
        header(name, True, "required by this webhook", words.KEPT_HEADER)
        for name in spec.required_headers
        if name not in _NOT_PARAMETERS
    ]
    if spec.hmac_secret is not None:
        params.append(header(spec.signature_header, True, words.signature(spec.signature_schemes)))
    if isinstance(spec.idempotency_key, str):
        params.append(header(spec.idempotency_key, False, words.IDEMPOTENCY, words.KEY_HEADER))
    errors = "400 500 503"  # a callback, or the flow's first node (a condition), may raise
    if spec.idempotency_key is not None:
        errors += " 409"  # the key names a run of another flow
    if isinstance(spec.idempotency_key, str):
        errors += " 422"  # the key names a run started with another body
    if spec.require_token:
        errors += " 403"  # a read-only token: a webhook starts a run, a GET one too
    answers = {
        "202": b.answer("started", RunStarted, headers=_LOCATION),
        "200": b.answer("a duplicate, or a condition that was not met", WebhookAnswered),
    }
    if spec.on_success is not None:
        answers["202"] = b.answer(
            "started: the body on_success gives", _ANY_JSON, headers=_LOCATION
        )
        answers["200"] = b.answer(
            "a duplicate (the body on_success gives), or a condition that was not met", _ANY_JSON
        )
    if spec.on_success is not None or spec.on_error is not None:
        answers["default"] = b.answer(
            "the answer (status, JSON body) the webhook's on_success or on_error callback gives",
            _ANY_JSON,
        )
    operation = b.op(
        f"Webhook: start a run of {flow_id!r}",
        answers,
        errors,
        body=None if spec.method == "GET" else schema or _ANY_JSON,  # a GET's input: its query
        body_required=schema is not None and spec.method != "GET",
        params=params,
        secured=spec.require_token,
        signed=spec.hmac_secret is not None,
    )
    if spec.on_error is not None:
        for code, answer in operation["responses"].items():
            if code[0] in "45":  # on_error may answer a refusal with a body of its own
                answer["content"] = {**answer["content"], **b.json(_ANY_JSON)}
    return operation


def _fixed_paths(b: _Builder) -> dict[str, Any]:
    cancel = {"anyOf": [{"$ref": b.refs[CancelRun]}, {"type": "null"}]}
    return {
        "/healthz": {
            "get": b.op(
                "Liveness: 503 once the runtime has failed",
                {"200": b.answer("alive", Health), "503": b.answer("failed", Health)},
                "",
                secured=False,
            )
        },
        "/readyz": {
            "get": b.op(
                "Readiness: runtime running, store writable, database lease held",
                {"200": b.answer("ready", Readiness), "503": b.answer("not ready", Readiness)},
                "",
                secured=False,
            )
        },
        "/openapi.json": {
            "get": b.op(
                "This document",
                {"200": {"description": "OpenAPI 3.1", "content": b.json({"type": "object"})}},
                "",
                secured=False,
            )
        },
        "/runs": {
            "get": b.op(
                "Runs, newest first, a page at a time",
                {"200": b.answer("a page of runs (without their steps)", RunPage)},
                "400 500",
                params=[_WORKFLOW, _STATUS, _LIMIT, _CURSOR],
            ),
            "post": b.op(
                "Start a run of a registered flow (answered once the start is durable)",
                {"202": b.answer("started", RunStarted, headers=_LOCATION)},
                "400 404 409 413 415 500 503",
                body=StartRun,
                body_required=True,
            ),
        },
        "/runs/{run_id}": {
            "get": b.op(
                "A run with its steps; with wait=N, answered once the run has ended (completed, "
                "failed or canceled) or after N seconds, as it stands then (a long poll; a "
                "drain of the server answers it at once, and so is one beyond the number the "
                "server lets wait: half its connections)",
                {"200": b.answer("the run", RunInfo)},
                "400 404 500",
                params=[path_param("run_id"), _WAIT],
            )
        },
        "/runs/{run_id}/cancel": {
            "post": b.op(
                "Cancel a run (a net workflow's through its cancel action, with the caller); "
                "the body's reason, if any, is recorded as its error",
                {"200": b.answer("canceled", Canceled)},
                "400 401 403 404 409 415 500 503",
                body=cancel,
                params=[path_param("run_id")],
            )
        },
        "/runs/{run_id}/replay": {
            "post": b.op(
                "Start a new run of the run's flow from its recorded trigger (or a new payload; "
                "a payload of null replays the recorded one). A net workflow's instance is not "
                "replayable (409 not-replayable)",
                {
                    "202": b.answer("the new run started", RunStarted, headers=_LOCATION),
                    "200": b.answer(
                        "a resume asked again: the run's resume started before",
                        ResumedBefore,
                        headers=_LOCATION,
                    ),
                },
                "400 404 409 500 503",
                body={"anyOf": [{"$ref": b.refs[ReplayRun]}, {"type": "null"}]},
                params=[path_param("run_id")],
            )
        },
        "/flows": {
            "get": b.op(
                "The registered flows: name, description, tags, version, triggers, limits",
                {"200": b.answer("the flows, by id", FlowList)},
                "",
            )
        },
        "/flows/{id}": {
            "get": b.op(
                "One registered flow",
                {"200": b.answer("the flow", WorkflowDescription)},
                "404",
                params=[path_param("id")],
            )
        },
        "/events/{name}": {
            "post": b.op(
                "Publish an event: start the flows listening, wake the steps waiting",
                {"202": b.answer("published", Published)},
                "400 409 413 415 422 503",
                body=_ANY_JSON,
                params=[path_param("name", words.EVENT_NAME), _PUBLISH_KEY],
            )
        },
        "/workflows": {
            "post": b.op(
                "Start a net workflow (its initialize action, with the caller's principal)",
                {"201": b.answer("started", WorkflowStarted)},
                _NET_ACTION + " 404 409 413 415 500 503",
                body=StartWorkflow,
                body_required=True,
            )
        },
        "/workflows/{workflow_id}": {
            "get": b.op(
                "A net workflow instance and its tasks' states",
                {"200": b.answer("the workflow", WorkflowView)},
                "404",
                params=[path_param("workflow_id")],
            )
        },
        "/workflows/{workflow_id}/cancel": {
            "post": b.op(
                "Cancel a net workflow (its cancel action, with the caller's principal); the "
                "body's reason, if any, is recorded as its error",
                {"200": b.answer("canceled", WorkflowCanceled)},
                _NET_ACTION + " 404 409 415 500 503",
                body=cancel,
                params=[path_param("workflow_id")],
            )
        },
        "/workflows/{workflow_id}/migrate": {
            "post": b.op(
                "Migrate a running net instance (or a flow's run) to another version: its root "
                "is canceled for the migration and a new root starts fast-forwarded",
                {"201": b.answer("migrated", WorkflowMigrated)},
                "409 503",
                params=[path_param("workflow_id")],
                body=MigrateWorkflow,
                body_required=True,
            )
        },
        "/runs/{run_id}/migrate": {
            "post": b.op(
                "Migrate a flow's run to another version of its flow: it is canceled for the "
                "migration and a new run starts with the steps it completed kept",
                {"201": b.answer("migrated", RunMigrated, headers=_LOCATION)},
                "400 401 403 404 409 413 415 503",
                params=[path_param("run_id")],
                body=MigrateWorkflow,
                body_required=True,
            )
        },
        "/nets": {
            "get": b.op(
                "The registered net workflows: versions, the one new instances take, the "
                "deprecated ones, the migrations between them, the root's declared actions",
                {"200": b.answer("the nets, by name", NetList)},
                "",
            )
        },
        "/workflows/{workflow_id}/net": {
            "get": b.op(
                "A root net workflow's net: conditions with their tokens, tasks with their states",
                {"200": b.answer("the net, marked", NetView)},
                "404",
                params=[path_param("workflow_id")],
            )
        },
        "/work-items/{work_item_id}/{action}": {
            "post": b.op(
                "Start, complete, fail, cancel or reset a work item (its action)",
                {"200": b.answer("the work item after the action", WorkItemInfo)},
                _NET_ACTION + " 404 409 413 415 500 503",
                body=_ANY_JSON,
                params=[
                    path_param("work_item_id"),
                    path_param("action", {"type": "string", "enum": list(WORK_ITEM_ACTIONS)}),
                ],
            )
        },
    }


def _refused_as(b: _Builder, operation: dict[str, Any], code: str) -> None:
    """``operation`` may also answer ``code`` with a problem (if it does not list it yet)."""
    if code not in operation["responses"]:
        problem = {MEDIA_TYPE: {"schema": {"$ref": b.refs[ProblemBody]}}}
        operation["responses"][code] = {"description": words.MEANINGS[code], "content": problem}


_INTEGERS = {"minimum": -(2**63), "maximum": 2**64 - 1}
"""What a JSON integer the server decodes may be (beyond, a 400 number-out-of-range)."""


def _bound_integers(schema: Any) -> None:
    """Give every integer in ``schema`` (the components, in place) the bounds the server
    decodes, unless it has its own: an OpenAPI client should not send what is refused."""
    if isinstance(schema, dict):
        if schema.get("type") == "integer":
            for bound, value in _INTEGERS.items():
                schema.setdefault(bound, value)
        for value in schema.values():
            _bound_integers(value)
    elif isinstance(schema, list):
        for value in schema:
            _bound_integers(value)


def openapi_document(
    webhooks: list[tuple[str, Any]],
    *,
    with_metrics: bool = True,
    tokens: bool = False,
    metrics_token: bool = False,
    host_check: bool = False,
    title: str = "cronflow-actors",
) -> dict[str, Any]:
    """OpenAPI 3.1 for the fixed routes and the given ``(flow id, WebhookSpec)`` webhooks, as
    this server is configured: with ``tokens``, the API routes need a bearer token (else they
    are open); ``/metrics`` needs one with ``tokens`` or ``metrics_token``; with
    ``host_check`` (``hosts.py``) any route refuses a Host it does not answer to."""
    user_types = [spec.schema for _, spec in webhooks if isinstance(spec.schema, type)]
    types = [*FIXED, NetView, *SCHEDULE_TYPES, *AUDIT_TYPES, *user_types]
    template = "#/components/schemas/{name}"
    schemas, components = msgspec.json.schema_components(types, ref_template=template)
    _bound_integers(components)
    b = _Builder({t: s.get("$ref") for t, s in zip(types, schemas, strict=True)}, tokens)
    run_id = path_param("run_id")
    paths = _fixed_paths(b) | audit_paths(b, run_id)
    paths |= pause_paths(b, token=path_param("token"), run_id=run_id, page=[_LIMIT, _CURSOR, _RUN])
    paths |= schedule_paths(b, flow_id=path_param("id"), count=_COUNT, location=_LOCATION)
    paths |= task_paths(
        b,
        params=[path_param("workflow_id"), path_param("task")],
        child_type=query("workflow", {"type": "string", "maxLength": 200}, "child type"),
        refusals=_NET_ACTION + " 404 409 413 415 500 503",
    )
    if with_metrics:
        paths["/metrics"] = {
            "get": b.op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "the text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                "",
                secured=tokens or metrics_token,
            )
        }
    for flow_id, spec in webhooks:
        operation = _webhook_op(b, flow_id, spec)
        operation["operationId"] = f"webhook:{flow_id}:{spec.method.lower()}:{spec.route}"
        paths.setdefault(spec.route, {})[spec.method.lower()] = operation
    for path_item in paths.values():
        for method, operation in path_item.items():
            if method not in ("get", "head") or host_check:  # the cross-site or Host refusal
                _refused_as(b, operation, "403")
    for (path, method), operation_id in OPERATIONS.items():
        if path in paths:
            operation = paths[path][method]
            operation["operationId"] = operation_id
            for (source, status), targets in LINKS.items():
                if source == operation_id:
                    operation["responses"][status]["links"] = {
                        target: {"operationId": target, "parameters": parameters}
                        for target, parameters in targets.items()
                    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if tokens:
        document["security"] = [{"bearer": []}]
    return document

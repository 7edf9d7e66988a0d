"""The HTTP edge: a Starlette app over one ``Runtime``, JSON in and out.

Routes: the webhooks of the registered flows, ``POST /runs``, ``GET /runs``, ``GET /runs/{id}``,
``POST /runs/{id}/cancel``, ``POST /events/{name}``, ``POST /resume/{token}``, ``GET /paused``,
``GET /healthz``.
Bad input always gets a 4xx with what was wrong and changes nothing: unknown route 404, wrong
method 405, malformed JSON 400, a body over ``max_body`` bytes 413, a payload that does not
match a webhook's schema 400 (with the field path). The runtime starts and stops with the app's
lifespan.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import inspect
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.errors import (
    ActionDeniedError,
    AuthenticationRequiredError,
    ConfigurationError,
    CronflowError,
    InstanceExistsError,
    InternalOnlyActionError,
    InvalidPayloadError,
    NotFoundError,
)
from cronflow_actors.http.exposition import metrics_endpoint
from cronflow_actors.http.instrumentation import RequestMetrics
from cronflow_actors.http.openapi import openapi_document
from cronflow_actors.messages import Principal
from cronflow_actors.runtime import ResumeError, Runtime

__all__ = ["create_app"]

_json = msgspec.json.Encoder()
_NAMESPACE = uuid.UUID("0d5b8f5e-4a6b-4c2f-9d71-6b1f0b2a3c44")
_PATH_IN_ERROR = re.compile(r" - at `(?P<path>[^`]+)`$")


class BodyTooLarge(Exception):
    pass


def json_response(content: Any, status: int = 200) -> Response:
    return Response(_json.encode(content), status_code=status, media_type="application/json")


def error(
    status: int, message: str, *, headers: dict[str, str] | None = None, **details: Any
) -> Response:
    response = json_response({"error": message, **details}, status)
    if headers:
        response.headers.update(headers)
    return response


class Unauthenticated(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body; ``BodyTooLarge`` over ``limit`` bytes (checked while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return body


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON (None when empty); 413 over ``limit`` bytes, 400 if malformed."""
    body = await read_body(request, limit)
    if not body.strip():
        return None
    return msgspec.json.decode(body)


def run_json(info: Any) -> dict[str, Any]:
    return {
        "id": info.id,
        "workflow": info.workflow,
        "status": str(info.status),
        "payload": info.payload,
        "output": info.output,
        "error": info.error,
        "error_type": info.error_type,
        "created_at": info.created_at,
        "finished_at": info.finished_at,
        "steps": [msgspec.to_builtins(step) for step in info.steps],
    }


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def create_app(  # noqa: PLR0915 - the routes, one closure each
    runtime: Runtime,
    *,
    max_body: int = 1_000_000,
    tokens: Mapping[str, Principal] | None = None,
    drain: float | None = None,
) -> Starlette:
    """The app for ``runtime`` (started and stopped by the app's lifespan).

    ``tokens`` maps bearer tokens to principals. With tokens configured, every route but
    ``/healthz`` and the webhooks needs ``Authorization: Bearer <token>`` (401 otherwise);
    work-item and workflow actions pass the caller's principal to the action's policy (403 when
    it says no). Without tokens the API is open, and net actions are called as an anonymous
    principal (so only actions that need no authentication pass).
    """
    known = dict(tokens or {})

    def principal_of(request: Request, *, required: bool) -> Principal | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip() in known:
            return known[token.strip()]
        if header or (required and known):
            raise Unauthenticated("a valid 'Authorization: Bearer <token>' header is required")
        return None

    def authenticated(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def check(request: Request) -> Response:
            principal_of(request, required=True)
            result: Response = await handler(request)
            return result

        return check

    def caller(request: Request) -> Principal:
        """The principal of a net action call: the token's, or an anonymous one."""
        return principal_of(request, required=bool(known)) or Principal(id=None)

    async def guarded(request: Request, handler: Callable[[Request], Any]) -> Response:
        try:
            result: Response = await handler(request)
        except BodyTooLarge:
            return error(413, f"the request body is larger than {max_body} bytes")
        except msgspec.DecodeError as bad:
            return error(400, "the request body is not valid JSON", detail=str(bad))
        except (Unauthenticated, AuthenticationRequiredError) as unknown:
            return error(401, str(unknown), headers={"WWW-Authenticate": "Bearer"})
        except (ActionDeniedError, InternalOnlyActionError) as denied:
            return error(403, str(denied), type=type(denied).__name__)
        except InvalidPayloadError as invalid:
            return error(400, str(invalid), type="InvalidPayloadError")
        except ConfigurationError as bad:  # a bad argument: a cursor, a status, an id
            return error(400, str(bad), type="ConfigurationError")
        except (NotFoundError, ResumeError) as missing:
            status = 409 if isinstance(missing, ResumeError) and missing.ended else 404
            return error(status, str(missing))
        except CronflowError as refused:
            return error(409, str(refused), type=type(refused).__name__)
        return result

    # -- runs ---------------------------------------------------------------------------------

    async def post_runs(request: Request) -> Response:
        body = await read_json(request, max_body)
        if not isinstance(body, dict) or not isinstance(body.get("workflow"), str):
            return error(400, 'expected a JSON object {"workflow": name, "payload": ...}')
        headers = dict(request.headers)
        run_id = await runtime.trigger(body["workflow"], body.get("payload"), headers=headers)
        return json_response({"run_id": run_id}, 202)

    async def get_run(request: Request) -> Response:
        return json_response(run_json(await runtime.inspect(request.path_params["run_id"])))

    async def list_runs(request: Request) -> Response:
        query = request.query_params
        if "offset" in query:
            return error(400, "paging is by cursor: pass the next_cursor of the previous page")
        limit_text = query.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            return error(400, "limit must be a whole number from 1 to 1000")
        limit = int(limit_text)
        runs = await runtime.list_runs(
            workflow=query.get("workflow"),
            status=query.get("status"),
            limit=limit,
            cursor=query.get("cursor"),
        )
        page = [{k: v for k, v in run_json(run).items() if k != "steps"} for run in runs]
        return json_response({"runs": page, "limit": limit, "next_cursor": runs.next_cursor})

    async def cancel_run(request: Request) -> Response:
        await runtime.cancel(request.path_params["run_id"])
        return json_response({"run_id": request.path_params["run_id"], "status": "canceled"})

    async def publish(request: Request) -> Response:
        payload = await read_json(request, max_body)
        started = await runtime.publish_event(request.path_params["name"], payload)
        return json_response({"started": started}, 202)

    async def resume(request: Request) -> Response:
        payload = await read_json(request, max_body)
        await runtime.resume(request.path_params["token"], payload)
        return json_response({"token": request.path_params["token"], "status": "resumed"})

    async def paused(request: Request) -> Response:
        query = request.query_params
        limit_text = query.get("limit", "100")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            return error(400, "limit must be a whole number from 1 to 1000")
        page = await runtime.list_paused(limit=int(limit_text), cursor=query.get("cursor"))
        return json_response(
            {"paused": [msgspec.to_builtins(p) for p in page], "next_cursor": page.next_cursor}
        )

    catalog = runtime.catalog
    hooks = [
        (flow_id, spec)
        for flow_id in sorted(catalog.roots)
        for spec in catalog.flows[flow_id].webhooks
    ]
    document = openapi_document(hooks)

    async def openapi(_request: Request) -> Response:
        return json_response(document)

    async def healthz(_request: Request) -> Response:
        status = 200 if runtime.state == "running" else 503
        return json_response({"status": "ok" if status == 200 else runtime.state}, status)

    # -- net workflows and work items (actions with the caller's principal) -----------------------

    async def start_net_workflow(request: Request) -> Response:
        body = await read_json(request, max_body)
        if not isinstance(body, dict) or not isinstance(body.get("workflow"), str):
            return error(400, 'expected a JSON object {"workflow": name, "payload": ...}')
        workflow_id = await runtime.start_workflow(
            body["workflow"], body.get("payload"), principal=caller(request)
        )
        return json_response({"workflow_id": workflow_id}, 201)

    async def get_net_workflow(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        info = await runtime.workflow(workflow_id)
        tasks = await runtime.task_states(workflow_id)
        return json_response(
            {**msgspec.to_builtins(info), "tasks": {k: str(v) for k, v in tasks.items()}}
        )

    async def cancel_net_workflow(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        await runtime.cancel_workflow(workflow_id, principal=caller(request))
        return json_response({"workflow_id": workflow_id, "state": "canceled"})

    async def list_work_items(request: Request) -> Response:
        params = request.path_params
        items = await runtime.work_items(params["workflow_id"], params["task"])
        return json_response({"work_items": [msgspec.to_builtins(i) for i in items]})

    async def initialize_work_item(request: Request) -> Response:
        params = request.path_params
        payload = await read_json(request, max_body)
        item_id = await runtime.initialize_work_item(
            params["workflow_id"], params["task"], payload, principal=caller(request)
        )
        return json_response({"work_item_id": item_id}, 201)

    async def work_item_action(request: Request) -> Response:
        item_id, action = request.path_params["work_item_id"], request.path_params["action"]
        act = {
            "start": runtime.start_work_item,
            "complete": runtime.complete_work_item,
            "fail": runtime.fail_work_item,
            "cancel": runtime.cancel_work_item,
            "reset": runtime.reset_work_item,
        }.get(action)
        if act is None:
            return error(
                404, f"no work item action {action!r}; use start, complete, fail, cancel or reset"
            )
        payload = await read_json(request, max_body)
        await act(item_id, payload, principal=caller(request))
        info = await runtime.work_item(item_id)
        return json_response(msgspec.to_builtins(info))

    # -- webhooks -------------------------------------------------------------------------------

    def webhook(flow_id: str, spec: Any) -> Callable[[Request], Any]:
        async def receive(request: Request) -> Response:
            headers = {k.lower(): v for k, v in request.headers.items()}
            if spec.require_token:
                principal_of(request, required=True)
                if "authorization" not in headers:
                    raise Unauthenticated("this webhook needs 'Authorization: Bearer <token>'")
            missing = [h for h in spec.required_headers if h not in headers]
            if missing:
                return error(400, f"missing required headers: {missing}")
            raw = await read_body(request, max_body)
            if spec.hmac_secret is not None:
                expected = hmac.new(spec.hmac_secret.encode(), raw, hashlib.sha256).hexdigest()
                given = headers.get(spec.signature_header, "")
                if not hmac.compare_digest(given, f"sha256={expected}"):
                    runtime.metrics.webhook_signature_failures.labels(flow_id).inc()
                    raise Unauthenticated(f"the {spec.signature_header} signature does not match")
            payload = msgspec.json.decode(raw) if raw.strip() else None
            if spec.schema is not None:
                try:
                    payload = msgspec.to_builtins(msgspec.convert(payload, spec.schema))
                except msgspec.ValidationError as invalid:
                    text = str(invalid)
                    match = _PATH_IN_ERROR.search(text)
                    return error(
                        400,
                        "the payload does not match the webhook's schema",
                        detail=text,
                        path=match.group("path") if match else "$",
                    )
            if spec.validate is not None:
                verdict = await _maybe(spec.validate(payload))
                if verdict is not True:
                    detail = verdict if isinstance(verdict, str) else "rejected by validate()"
                    return error(400, "the payload failed validation", detail=detail)
            if spec.condition is not None and not await _maybe(
                spec.condition({"payload": payload, "headers": headers})
            ):
                return json_response({"run_id": None, "condition_met": False}, 200)
            instance_id = None
            if spec.idempotency_key is not None:
                key = spec.idempotency_key
                value = (
                    headers.get(key.lower())
                    if isinstance(key, str)
                    else await _maybe(key(payload, headers))
                )
                if value:
                    digest = hashlib.sha256(str(value).encode()).hexdigest()
                    instance_id = uuid.uuid5(_NAMESPACE, f"{flow_id}|{digest}").hex
            try:
                run_id = await runtime.runs.trigger(
                    flow_id,
                    payload,
                    headers=headers,
                    kind="webhook",
                    instance_id=instance_id,
                    params=dict(request.path_params),
                )
            except InstanceExistsError:
                runtime.metrics.webhook_duplicates.labels(flow_id).inc()
                return json_response({"run_id": instance_id, "duplicate": True}, 200)
            return json_response({"run_id": run_id}, 202)

        return receive

    def wrap(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await guarded(request, handler)

        return endpoint

    def api(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        return wrap(authenticated(handler))

    routes = [
        Route("/healthz", wrap(healthz), methods=["GET"]),
        Route("/openapi.json", wrap(openapi), methods=["GET"]),
        Route("/metrics", metrics_endpoint(runtime), methods=["GET"]),
        Route("/runs", api(post_runs), methods=["POST"]),
        Route("/runs", api(list_runs), methods=["GET"]),
        Route("/runs/{run_id}", api(get_run), methods=["GET"]),
        Route("/runs/{run_id}/cancel", api(cancel_run), methods=["POST"]),
        Route("/events/{name}", api(publish), methods=["POST"]),
        Route("/resume/{token}", api(resume), methods=["POST"]),
        Route("/paused", api(paused), methods=["GET"]),
        Route("/workflows", wrap(start_net_workflow), methods=["POST"]),
        Route("/workflows/{workflow_id}", api(get_net_workflow), methods=["GET"]),
        Route("/workflows/{workflow_id}/cancel", wrap(cancel_net_workflow), methods=["POST"]),
        Route(
            "/workflows/{workflow_id}/tasks/{task}/work-items",
            api(list_work_items),
            methods=["GET"],
        ),
        Route(
            "/workflows/{workflow_id}/tasks/{task}/work-items",
            wrap(initialize_work_item),
            methods=["POST"],
        ),
        Route("/work-items/{work_item_id}/{action}", wrap(work_item_action), methods=["POST"]),
    ]
    for flow_id in sorted(catalog.roots):
        for spec in catalog.flows[flow_id].webhooks:
            routes.append(Route(spec.route, wrap(webhook(flow_id, spec)), methods=[spec.method]))

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: "no such route", 405: "method not allowed"}.get(exc.status_code, exc.detail)
        response = error(exc.status_code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await runtime.start()
        except Exception as failure:
            report = getattr(app.state, "on_start_failure", None)
            if report is not None:
                report(failure)
            raise
        try:
            yield
        finally:
            await runtime.stop(drain=drain)

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(RequestMetrics, metrics=runtime.metrics)],
    )

"""The flows' webhooks: each request is checked (token, required headers, signature, media type,
schema, ``validate``, ``condition``) before a run starts; a refused request starts nothing.

Only what a run needs is kept with it: the headers the flow declares (``required_headers`` and
``keep_headers``), never ``Authorization``, ``Cookie`` or the signature header.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.errors import InstanceExistsError
from cronflow_actors.http.auth import SECRET_HEADERS
from cronflow_actors.http.edge import Edge, json_response, route
from cronflow_actors.http.problems import Problem
from cronflow_actors.http.requests import decode_json, is_json, read_body
from cronflow_actors.http.routes.runs import started

__all__ = ["routes"]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("0d5b8f5e-4a6b-4c2f-9d71-6b1f0b2a3c44")
_PATH_IN_ERROR = re.compile(r" - at `(?P<path>[^`]+)`$")


async def _call(callback: Callable[..., Any], name: str, hook: str, *args: Any) -> Any:
    """A webhook callback of the user's; one that raises is a 500 that names it."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        logger.exception("the %s callback of webhook %s raised", name, hook)
        raise Problem(
            500,
            "webhook-callback-failed",
            f"the webhook's {name} callback raised; its traceback is in the server's log",
        ) from None
    return result


def _receiver(edge: Edge, flow_id: str, spec: Any) -> Callable[[Request], Any]:
    keep = (set(spec.required_headers) | set(spec.keep_headers)) - SECRET_HEADERS
    keep.discard(spec.signature_header)
    hook = f"{spec.method} {spec.path}"

    async def receive(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if spec.require_token and edge.tokens.principal(request) is None:
            raise Problem(
                401,
                "authentication-required",
                "this webhook needs 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        missing = [h for h in spec.required_headers if h not in headers]
        if missing:
            raise Problem(400, "missing-headers", f"missing required headers: {missing}")
        raw = await read_body(request, edge.limits)
        if spec.hmac_secret is not None:
            try:
                await edge.signatures.verify(
                    hook=hook,
                    secret=spec.hmac_secret,
                    header=spec.signature_header,
                    tolerance=spec.signature_tolerance,
                    value=headers.get(spec.signature_header),
                    body=raw,
                )
            except Problem:
                edge.runtime.metrics.webhook_signature_failures.labels(flow_id).inc()
                raise
        payload = None
        if raw.strip():
            if not is_json(headers.get("content-type", "")):
                given = headers.get("content-type") or "none"
                raise Problem(
                    415,
                    "unsupported-media-type",
                    f"this webhook takes 'Content-Type: application/json' (got {given})",
                )
            payload = decode_json(raw, edge.limits)
        if spec.schema is not None:
            try:
                payload = msgspec.to_builtins(msgspec.convert(payload, spec.schema))
            except msgspec.ValidationError as invalid:
                text = str(invalid)
                match = _PATH_IN_ERROR.search(text)
                raise Problem(
                    400,
                    "invalid-payload",
                    f"the payload does not match the webhook's schema: {text}",
                    path=match.group("path") if match else "$",
                ) from None
        if spec.validate is not None:
            verdict = await _call(spec.validate, "validate", hook, payload)
            if verdict is not True:
                detail = verdict if isinstance(verdict, str) else "refused by validate()"
                raise Problem(400, "validation-failed", f"the payload failed validation: {detail}")
        if spec.condition is not None and not await _call(
            spec.condition, "condition", hook, {"payload": payload, "headers": headers}
        ):
            return json_response({"run_id": None, "condition_met": False})
        instance_id = None
        if spec.idempotency_key is not None:
            key = spec.idempotency_key
            value = (
                headers.get(key.lower())
                if isinstance(key, str)
                else await _call(key, "idempotency_key", hook, payload, headers)
            )
            if value:
                digest = hashlib.sha256(str(value).encode()).hexdigest()
                instance_id = uuid.uuid5(_NAMESPACE, f"{flow_id}|{digest}").hex
        kept = {name: value for name, value in headers.items() if name in keep}
        try:
            run_id = await edge.runtime.runs.trigger(
                flow_id,
                payload,
                headers=kept,
                kind="webhook",
                instance_id=instance_id,
                params=dict(request.path_params),
            )
        except InstanceExistsError:
            edge.runtime.metrics.webhook_duplicates.labels(flow_id).inc()
            return json_response({"run_id": instance_id, "duplicate": True})
        return started(run_id)

    return receive


def routes(edge: Edge) -> list[Route]:
    """One route per path: webhooks on one path with different methods share it (so a 405
    lists them all)."""
    catalog = edge.runtime.catalog
    by_path: dict[str, dict[str, Callable[[Request], Any]]] = {}
    for flow_id in sorted(catalog.roots):
        for spec in catalog.flows[flow_id].webhooks:
            methods = by_path.setdefault(spec.route, {})
            methods[spec.method.lower()] = _receiver(edge, flow_id, spec)
    return [route(path, **methods) for path, methods in by_path.items()]

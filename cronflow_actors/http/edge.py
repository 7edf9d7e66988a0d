"""What the route groups share: the runtime, the request limits, the callers' authentication,
JSON answers, and one route per path whatever its methods (so a 405 lists every method the path
allows)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronflow_actors.http.auth import BearerAuth, Caller, Signatures, Tokens
from cronflow_actors.http.problems import CLOSE, Problem, flow_code_problem, problem_response
from cronflow_actors.http.requests import (
    SAFE_METHODS,
    BodyLimits,
    check_media_type,
    check_path_encoding,
    read_json,
)
from cronflow_actors.messages import Principal
from cronflow_actors.runtime import Runtime

__all__ = [
    "CutByStop",
    "Edge",
    "Handler",
    "OneFraming",
    "json_response",
    "route",
    "webhook_route",
]

Handler = Callable[[Request], Awaitable[Response]]
B = TypeVar("B")

_encode = msgspec.json.Encoder().encode


def json_response(
    content: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
) -> Response:
    body = _encode(content)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class OneFraming:
    """Refuses, on every route, a request with both a Content-Length and a Transfer-Encoding
    (400 ``ambiguous-headers``), and closes its connection: a proxy in front may have framed
    its body, and so the request after it, otherwise (RFC 9112 6.3). Only the routes that read
    a body refused it, and the connection stayed open (retest h38 R2)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = origin_form(scope)
            names = [name for name, _value in scope["headers"]]
            if b"transfer-encoding" in names and b"content-length" in names:
                detail = "the request has both Content-Length and Transfer-Encoding; send one"
                refused = problem_response(400, "ambiguous-headers", detail, headers=CLOSE)
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


class CutByStop:
    """Answers a request the server's stop cut before its answer (uvicorn cancels what still
    runs once the drain's time is up: a write waiting on a frozen disk, say) with a 503 that says
    the outcome is unknown: it ended in a 500 and a traceback in the log (retest-edge h44 N6).
    Only uvicorn's cancel at a stop (``stopping()``, a drain begun or the runtime failed: review
    h45 F17) is answered; any other cancel (a caller's own timeout) goes on as it came (F4)."""

    def __init__(self, app: ASGIApp, stopping: Callable[[], bool]) -> None:
        self.app = app
        self._stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = False

        async def sending(message: Message) -> None:
            nonlocal began
            began = began or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError as cut:
            task = asyncio.current_task()
            if began or not self._stopping() or _STOP_CANCEL not in str(cut) or task is None:
                raise
            task.uncancel()  # (taken: the task ends with the answer, as asyncio asks)
            headers = {**CLOSE, "Retry-After": "5"}
            detail = _CUT_READ if scope["method"] in SAFE_METHODS else _CUT_WRITE
            await problem_response(503, "unavailable", detail, headers=headers)(
                scope, receive, send
            )


_STOP_CANCEL = "graceful shutdown"
"""What uvicorn's cancel at the drain's end says ("... timeout graceful shutdown exceeded")."""
_CUT_WRITE = (
    "the server stopped before it answered (its drain timeout passed while this request waited; "
    "the database did not answer?): what it asked may or may not have been done. Ask again once "
    "the server is back with the same Idempotency-Key or instance_id (a request with neither "
    "may start a second run), or read the run's state first"
)
_CUT_READ = (
    "the server stopped before it answered (its drain timeout passed while this request "
    "waited): ask again once the server is back"
)


def origin_form(scope: Scope) -> Scope:
    """A request whose target is in absolute form (``GET http://host/healthz``, as a client
    sends through a forward proxy) read as its path, the target's host taking the place of the
    Host header, as RFC 9112 3.2.2 says a server must: it was answered 404 "no route
    /http://host/healthz" (hostile h42 F4)."""
    path = scope["path"]
    if not path.lower().startswith(("http://", "https://")):
        return scope
    host, _, rest = path.partition("://")[2].partition("/")
    headers = [(name, value) for name, value in scope["headers"] if name != b"host"]
    raw = scope.get("raw_path") or b""
    raw_path = b"/" + raw.partition(b"://")[2].partition(b"/")[2]
    return {
        **scope,
        "path": "/" + rest,
        "raw_path": raw_path,
        "headers": [*headers, (b"host", host.encode("latin-1"))],
    }


def route(path: str, auth: Sequence[Middleware] = (), /, **handlers: Handler) -> Route:
    """One route for ``path``, its handlers by method (``get=...``, ``post=...``); ``auth``:
    the authentication its callers pass first (``Edge.auth``), none for an open route.

    HEAD is answered as GET, without the body (these GETs only read). An unsafe method that
    names a media type other than JSON is refused (415) before its handler runs, with a body or
    without, so a route that reads no body (``POST /runs/{run_id}/cancel``) is as safe from a
    cross-site form as one that does (``check_media_type``)."""
    by_method = {method.upper(): handler for method, handler in handlers.items()}

    async def dispatch(request: Request) -> Response:
        check_path_encoding(request)
        if request.method not in SAFE_METHODS:
            check_media_type(request)
        method = "GET" if request.method == "HEAD" else request.method
        try:
            return await by_method[method](request)
        except Exception as error:  # a flow's code that refused the call names itself
            problem = flow_code_problem(error)
            if problem is None:
                raise
            raise problem from None

    return Route(path, dispatch, methods=sorted(by_method), middleware=auth)


def webhook_route(path: str, /, **handlers: Handler) -> Route:
    """One route for a path of the flows' webhooks, its handlers by method.

    No HEAD: a GET webhook starts a run, and HEAD must start nothing (405, as any method the
    path does not take). Each handler checks the media type itself, after the webhook's token
    and signature (a bad one is refused first) and so that its ``on_error`` answers that
    refusal too."""
    by_method = {method.upper(): handler for method, handler in handlers.items()}

    async def dispatch(request: Request) -> Response:
        check_path_encoding(request)
        return await by_method[request.method](request)

    found = Route(path, dispatch, methods=sorted(by_method))
    found.methods = set(by_method)  # Starlette adds HEAD to a route that takes GET
    return found


class Edge:
    """The runtime an app serves, and how it reads and authenticates requests."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        limits: BodyLimits,
        tokens: Tokens,
        metrics_token: str | None = None,
        long_polls: int = 500,
    ) -> None:
        self.runtime = runtime
        self.limits = limits
        self.tokens = tokens
        self.metrics_token = metrics_token
        self.long_polls = long_polls
        """How many requests may wait for a run's end at once (``GET /runs/{id}?wait=``); the
        others are answered at once, so waiting clients cannot take every connection."""
        self.signatures = Signatures(runtime.store, runtime.clock)
        need = "this server needs 'Authorization: Bearer <token>'"
        self.auth = BearerAuth(tokens, required=tokens.configured, missing=need).middleware()
        """API routes: with tokens configured, a valid bearer token is needed."""

    async def json(self, request: Request) -> Any:
        return await read_json(request, self.limits)

    async def body_as(
        self, request: Request, kind: type[B], expected: str, *, optional: bool = False
    ) -> B:
        """The request's JSON body as ``kind`` (``optional``: no body, or null, is ``{}``); a
        400 ``invalid-body`` saying what was ``expected`` and what did not match."""
        body = await self.json(request)
        if body is None and not optional:  # ("got `null`" for a body never sent: console h40 F6)
            raise Problem(400, "invalid-body", f"expected {expected}: the body is empty (or null)")
        try:
            return msgspec.convert({} if optional and body is None else body, kind)
        except msgspec.ValidationError as invalid:
            raise Problem(400, "invalid-body", f"expected {expected}: {invalid}") from None

    @staticmethod
    def caller(request: Request) -> Principal:
        """Net actions: the token's principal, or an anonymous one (which every net action
        refuses, 401: an outside call needs an identity, ``engine/actions.py``)."""
        user = request.user
        return user.principal if isinstance(user, Caller) else Principal(None)

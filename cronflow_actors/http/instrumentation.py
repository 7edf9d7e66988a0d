"""Request metrics for the HTTP edge: a pure ASGI middleware around the whole app.

It sits outside the router and the exception handlers, so every answer is counted: the routes'
own, the 404 of a path no route matches and the 405 of a method a route does not take, and a
500 when the app raised. Each request is counted and timed (until the last byte of its response
is sent) under ``cronflow_http_requests_total`` and ``cronflow_http_request_duration_seconds``,
labelled with the matched route's template (``/runs/{run_id}``, never the path itself;
``unmatched`` when no route matched), the method (``other`` for one outside the standard set) and
the status.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronflow_actors.metrics import HTTP_METHODS, RuntimeMetrics

__all__ = ["RequestMetrics"]

UNMATCHED = "unmatched"


class RequestMetrics:
    """``Middleware(RequestMetrics, metrics=runtime.metrics)``."""

    def __init__(self, app: ASGIApp, *, metrics: RuntimeMetrics) -> None:
        self.app = app
        self._requests = metrics.http_requests
        self._duration = metrics.http_duration
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before it responds

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # the router put the route it matched (fully, or by path only: a 405) in the scope
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            requests, duration = self._labelled(route, method, status)
            requests.inc()
            duration.observe(time.perf_counter() - started)

    def _labelled(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = self._children[key] = (
                self._requests.labels(*labels),
                self._duration.labels(*labels),
            )
        return children

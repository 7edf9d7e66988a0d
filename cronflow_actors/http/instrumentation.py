"""Request metrics for the HTTP edge: a pure ASGI middleware around the whole app.

It sits outside the router and the exception handlers, so every answer is counted: the routes'
own, the 404 of a path no route matches and the 405 of a method a route does not take, and a 500
when the app raised. Each request is counted and timed (until the last byte of its response is
sent) under ``cronflow_http_requests_total`` and ``cronflow_http_request_duration_seconds``,
labelled with the matched route's template (``/runs/{run_id}``, never the path itself;
``unmatched`` when no route matched; a read that long-polls, ``GET /runs/{run_id}?wait=N``, as
``/runs/{run_id}?wait``, its wait no slow answer), the method (``other`` for one outside the
standard set) and the status (a 4xx is counted, not timed); an error also under
``cronflow_http_errors_total`` by route and class (``4xx``, ``5xx``). Series born at their
first increment hide it from ``rate()`` and ``increase()``, so those of the errors exist at 0
from the start, as do those of each
operation's documented answers (``200`` of ``GET /runs``, ``202`` of ``POST /runs``, ...): a
rare operator action, a cancel or an approval, was missing from the requests and latency panels
(newcomer h31 F3). An answer given before the router (a 503 of too many big bodies, a refused
``Host``, the server's connection limit) is labelled with the route the path would have taken.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronflow_actors.metrics import HTTP_METHODS, RuntimeMetrics

__all__ = ["RequestMetrics", "documented_answers"]

UNMATCHED = "unmatched"


class RequestMetrics:
    """``Middleware(RequestMetrics, metrics=runtime.metrics, routes=routes, answers=...)``;
    ``answers``: the (route, method, status) whose series exist from the start
    (``documented_answers``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: RuntimeMetrics,
        routes: Sequence[BaseRoute] = (),
        answers: Iterable[tuple[str, str, int]] = (),
    ) -> None:
        self.app = app
        self._requests = metrics.http_requests
        self._duration = metrics.http_duration
        self._routes = routes
        """The app's routes, for an answer given before its router ran."""
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        errors = self._error_family = metrics.http_errors
        self._errors = {  # every route's from the start, at 0: a series born at its first
            # error hid that error from rate() and increase() (newcomer h29 F4)
            (template, kind): errors.labels(template, kind)
            for template in {*filter(None, map(_template, routes)), UNMATCHED}
            for kind in ("4xx", "5xx")
        }
        for route, method, status in answers:
            self._labelled(route, method, status)

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
            route = _template(scope.get("route")) or self._route_of(scope)
            if route == LONG_POLLED and _waits(scope):  # (a wait's time is no slow answer:
                route += "?wait"  # newcomer h35 F7, a p95 of 8.75 s from `run`'s long polls)
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            requests, duration = self._labelled(route, method, status)
            requests.inc()
            if duration is not None:
                duration.observe(time.perf_counter() - started)
            if status >= 400:
                self._error(route, "5xx" if status >= 500 else "4xx").inc()

    def count_unread(self) -> None:
        """A request the server answered 400 as it could not read it as HTTP (no route, no
        method known): counted as ``unmatched``, ``other``, 400, as the errors of the path no
        route knows are."""
        self._labelled(UNMATCHED, "other", 400)[0].inc()
        self._error(UNMATCHED, "4xx").inc()

    def _route_of(self, scope: Scope) -> str:
        """The template of the route ``scope``'s path takes, when the router did not run."""
        for route in self._routes:
            if route.matches(scope)[0] is not Match.NONE:
                return _template(route) or UNMATCHED
        return UNMATCHED

    def _labelled(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        """The request counter of (route, method, status), and its latency histogram: none
        for a 4xx, which a client without a token can provoke on every route and method at
        will (16 series each: 8,000 series more from 1,320 requests, metrics h41 F5); its
        counter is one series, and a refusal's time says nothing of the server's."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            labels = (route, method, str(status))
            timed = not 400 <= status < 500
            children = self._children[key] = (
                self._requests.labels(*labels),
                self._duration.labels(*labels) if timed else None,
            )
        return children

    def _error(self, route: str, kind: str) -> Any:
        series = self._errors.get((route, kind))
        if series is None:  # (a route made after the app: its first error makes it)
            series = self._errors[route, kind] = self._error_family.labels(route, kind)
        return series


def documented_answers(document: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """The successful answers each operation of ``document`` (an OpenAPI document) declares:
    (path template, method, status), as ``RequestMetrics`` labels them."""
    return [
        (path, method.upper(), int(status))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method.upper() in HTTP_METHODS and isinstance(operation, dict)
        for status in operation.get("responses", ())
        if str(status).startswith("2")
    ]


LONG_POLLED = "/runs/{run_id}"
"""The route a ``?wait=N`` (N > 0) long-polls, whose waiting reads are labelled apart."""


def _waits(scope: Scope) -> bool:
    """Whether the request asks to wait (``?wait=`` a number other than 0)."""
    query = scope.get("query_string") or b""
    return any(
        part.startswith(b"wait=") and part[5:].strip(b"0") not in (b"", b".")
        for part in query.split(b"&")
    )


def _template(route: object) -> str | None:
    """A route's template as its label: without a parameter's converter (``/events/{name}``
    for ``/events/{name:path}``, whose names may hold a slash)."""
    return getattr(route, "path_format", None) or getattr(route, "path", None)

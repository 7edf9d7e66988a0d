"""The query parameters each route takes, as the OpenAPI document names them: any other is refused.

A misspelt parameter (``GET /runs?limitt=5``, ``/flows/{id}/next-fires?limit=10`` for ``count``)
silently meant the default, and the client read a page it did not ask for as the answer (the
hostile client's h26 L2). The API refuses unknown fields in its bodies; a query names its fields
the same way, so a name the route's operation does not declare is a 400 ``invalid-argument`` that
names the ones it takes. A webhook's query is its sender's (``ctx.trigger.query``), never checked,
and a route the document leaves out (the console's pages) is not either; nor are the routes
machines poll (``/metrics``, the probes, the document): a scrape config's ``params`` or a probe's
cache-buster is no typo of a client reading an answer (the reviewer's h27 L7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from cronflow_actors.errors import clipped
from cronflow_actors.http.problems import problem_response

__all__ = ["KnownQueries", "documented_queries"]

_POLLED = frozenset({"/metrics", "/healthz", "/readyz", "/openapi.json"})

Taken = Mapping[str, Mapping[str, frozenset[str]]]
"""The query parameters a route's template takes, by method."""


def documented_queries(document: Mapping[str, Any]) -> dict[str, dict[str, frozenset[str]]]:
    """The query parameters each operation of ``document`` (an OpenAPI document) declares, by
    path template and method; the webhooks' operations left out (their query is their own)."""
    taken: dict[str, dict[str, frozenset[str]]] = {}
    for path, operations in document["paths"].items():
        if path in _POLLED:
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue  # a path's shared "parameters", a "summary"
            if str(operation.get("operationId", "")).startswith("webhook:"):
                continue
            names = frozenset(
                parameter["name"]
                for parameter in operation.get("parameters", ())
                if parameter.get("in") == "query"
            )
            taken.setdefault(path, {})[method.upper()] = names
    return taken


class KnownQueries:
    """``Middleware(KnownQueries, taken=documented_queries(document), routes=routes)``: a request
    with a query parameter its route's operation does not declare is answered 400."""

    def __init__(self, app: ASGIApp, *, taken: Taken, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self._taken = taken
        self._routes = [
            (route, template, self._taken[template])
            for route in routes
            if (template := getattr(route, "path_format", "")) in self._taken
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            unknown = self._unknown(scope)
            if unknown is not None:
                answer = problem_response(400, "invalid-argument", unknown)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _unknown(self, scope: Scope) -> str | None:
        """What is wrong with ``scope``'s query for its route's operation; None: nothing (or
        no documented operation there: the router answers it, a 404 or 405 as it would)."""
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        for route, template, by_method in self._routes:
            if route.matches(scope)[0] is Match.NONE:
                continue
            names = by_method.get(method)
            if names is None:
                return None
            query = scope["query_string"].decode("latin-1")
            given = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
            strangers = sorted({name for name in given if name not in names})
            if not strangers:
                return None
            listed = ", ".join(clipped(name, 60) for name in strangers[:5])
            if not names:
                return f"{method} {template} takes no query parameter (given: {listed})"
            return (
                f"{method} {template} has no query parameter {listed}; it takes "
                f"{', '.join(sorted(names))} (a misspelt one would have meant its default)"
            )
        return None

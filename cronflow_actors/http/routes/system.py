"""The runtime's own routes: liveness, readiness, metrics and the OpenAPI document.

``/healthz`` says whether the process should be kept (503 once the runtime has failed: its
store broke or its lease was taken); ``/readyz`` whether it can take work now (the runtime runs,
its store is writable and its database lease is held). ``/metrics`` needs a token when one is
configured for it, or when API tokens are; it renders off the event loop, in OpenMetrics when
the scraper asks for it (``exposition.py``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.errors import Problem
from cronflow_actors.http.auth import BearerAuth, Tokens
from cronflow_actors.http.edge import Edge, json_response, route
from cronflow_actors.http.exposition import metrics_response
from cronflow_actors.messages import Principal

__all__ = ["metrics_route", "routes"]


def metrics_route(edge: Edge) -> Route:
    auth = edge.auth
    if edge.metrics_token:
        other = (  # (newcomer h27: an API token was told the server did not know it)
            "/metrics takes only the metrics token (--metrics-token), not an API token: give "
            "the scraper that one"
        )
        own = Tokens({edge.metrics_token: Principal("metrics")}, unknown=other)
        need = "/metrics needs 'Authorization: Bearer <metrics token>'"
        auth = BearerAuth(own, required=True, missing=need).middleware()
    elif edge.tokens.configured:  # a scraper was told only of API tokens (newcomer h31 F8)
        need = (
            "/metrics needs 'Authorization: Bearer <token>': an API token, or a token of the "
            "scraper's own that serve takes with --metrics-token"
        )
        auth = BearerAuth(edge.tokens, required=True, missing=need).middleware()

    async def metrics(request: Request) -> Response:
        return await metrics_response(edge.runtime, request)

    return route("/metrics", auth, get=metrics)


def routes(edge: Edge, document: dict[str, Any], *, with_metrics: bool) -> list[Route]:
    runtime = edge.runtime

    async def healthz(_request: Request) -> Response:
        failure = await runtime.liveness()
        if failure is not None:
            body = {"status": "failed", "detail": str(failure)}
            return json_response(body, 503)
        return json_response({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        checks = await runtime.readiness()
        ready = all(value == "ok" for value in checks.values())
        return json_response({"ready": ready, "checks": checks}, 200 if ready else 503)

    async def openapi(_request: Request) -> Response:
        return json_response(document)

    found = [
        route("/healthz", get=healthz),
        route("/readyz", get=readyz),
        route("/openapi.json", get=openapi),
    ]
    if with_metrics:
        found.append(metrics_route(edge))
    else:  # a bare 404 left a scrape job on this port to guess (newcomer h42 F12)

        async def elsewhere(_request: Request) -> Response:
            raise Problem(
                404,
                "no-route",
                "no route /metrics on the API's port: this server serves its metrics on the "
                "port --metrics-port names; scrape that one",
            )

        # (any method: a POST was a 405 "use GET, HEAD" where a GET is this 404: retest2 N6)
        methods = ("get", "post", "put", "patch", "delete")
        found.append(route("/metrics", **dict.fromkeys(methods, elsewhere)))
    return found

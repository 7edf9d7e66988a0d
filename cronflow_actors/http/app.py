"""The HTTP edge: a Starlette app over one ``Runtime``, JSON in and out.

Route groups (``routes/``): runs of flows, the flows registered, net workflows and work items,
the flows' webhooks, and the system routes (``/healthz``, ``/readyz``, ``/metrics``,
``/openapi.json``). Every bad input gets a 4xx problem (``application/problem+json``,
``problems.py``, through Starlette's ``exception_handlers``) and changes nothing; requests are
read strictly (``requests.py``); callers authenticate with bearer tokens compared in constant
time, through Starlette's ``AuthenticationMiddleware`` on each authenticated route, and webhooks
may require signed requests (``auth.py``). The runtime starts and stops with the app's lifespan.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware

from cronflow_actors.http import console
from cronflow_actors.http.auth import Tokens
from cronflow_actors.http.big_bodies import BigBodies
from cronflow_actors.http.edge import CutByStop, Edge, OneFraming
from cronflow_actors.http.hosts import AllowedHosts
from cronflow_actors.http.instrumentation import RequestMetrics, documented_answers
from cronflow_actors.http.openapi import openapi_document
from cronflow_actors.http.problems import exception_handlers
from cronflow_actors.http.queries import KnownQueries, documented_queries
from cronflow_actors.http.requests import BodyLimits
from cronflow_actors.http.routes import flows, nets, runs, schedules, system, webhooks, workflows
from cronflow_actors.messages import Principal
from cronflow_actors.runtime import Runtime

__all__ = ["create_app"]

logger = logging.getLogger("cronflow_actors.serve")


def create_app(
    runtime: Runtime,
    *,
    max_body: int = 1_000_000,
    max_json_depth: int = 64,
    body_timeout: float = 30.0,
    tokens: Mapping[str, Principal] | None = None,
    read_only_tokens: Collection[str] = (),
    metrics_token: str | None = None,
    serve_metrics: bool = True,
    drain: float | None = None,
    big_bodies: int = 8,
    allowed_hosts: list[str] | None = None,
    long_polls: int = 500,
) -> Starlette:
    """The app for ``runtime`` (started and stopped by the app's lifespan).

    ``tokens`` maps bearer tokens to principals. With tokens configured, every route but
    ``/healthz``, ``/readyz``, ``/openapi.json`` and the webhooks needs
    ``Authorization: Bearer <token>`` (401 otherwise); work-item and workflow actions pass the
    caller's principal to the action's policy (403 when it says no). Without tokens the API is
    open, and net actions are called as an anonymous principal (so only actions that need no
    authentication pass). ``read_only_tokens`` (of ``tokens``) may only read: any other
    method is a 403 ``read-only-token``. ``/metrics`` needs ``metrics_token`` when one is given
    (else an API token, when there are); ``serve_metrics=False`` leaves it out (served on its
    own port).
    ``big_bodies``: how many requests with a body over 64 KiB are handled at once
    (``big_bodies.py``); the others wait their turn up to ``body_timeout``, then get a 503.
    ``allowed_hosts``: the host names it answers to (``hosts.py``; None: any).
    ``long_polls``: how many ``GET /runs/{id}?wait=`` may wait at once; the others are
    answered at once, as the run stands (``serve``: half of ``--max-connections``).
    """
    limits = BodyLimits(max_bytes=max_body, max_depth=max_json_depth, read_timeout=body_timeout)
    edge = Edge(
        runtime,
        limits=limits,
        tokens=Tokens(tokens or {}, read_only_tokens),
        metrics_token=metrics_token,
        long_polls=long_polls,
    )
    document = openapi_document(
        runtime.catalog.webhooks(),
        with_metrics=serve_metrics,
        tokens=bool(tokens),
        metrics_token=metrics_token is not None,
        host_check=allowed_hosts is not None,
    )
    routes = [
        *system.routes(edge, document, with_metrics=serve_metrics),
        *runs.routes(edge),
        *flows.routes(edge),
        *workflows.routes(edge),
        *nets.routes(edge),
        *schedules.routes(edge),
        *webhooks.routes(edge),
        *console.routes(),  # last: a flow's webhook keeps its path
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await runtime.start()
        except Exception as failure:
            report = getattr(app.state, "on_start_failure", None)
            if report is not None:
                report(failure)
            raise
        _say_what_is_served(runtime)
        try:
            yield
        finally:
            await runtime.stop(drain=drain)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
        middleware=[
            Middleware(
                RequestMetrics,
                metrics=runtime.metrics,
                routes=routes,
                answers=documented_answers(document),
            ),
            Middleware(CutByStop, stopping=lambda: runtime.draining or runtime.state != "running"),
            Middleware(OneFraming),
            *_host_check(allowed_hosts),
            Middleware(KnownQueries, taken=documented_queries(document), routes=routes),
            Middleware(
                BigBodies,
                at_once=big_bodies,
                patience=body_timeout,
                budget=32 * max_body,
                known=edge.tokens.known,
            ),
        ],
    )
    # /runs/ is not /runs: a 404, not a redirect to a URL built from the client's Host header
    # (which would carry a resume token of /resume/<token>/ along)
    app.router.redirect_slashes = False
    return app


def metrics_app(
    runtime: Runtime, *, metrics_token: str | None = None, allowed_hosts: list[str] | None = None
) -> Starlette:
    """An app that serves only ``/metrics`` (for ``--metrics-port``)."""
    edge = Edge(runtime, limits=BodyLimits(), tokens=Tokens({}), metrics_token=metrics_token)
    app = Starlette(
        routes=[system.metrics_route(edge)],
        exception_handlers=exception_handlers(),
        middleware=[Middleware(OneFraming), *_host_check(allowed_hosts)],
    )
    app.router.redirect_slashes = False
    return app


def _host_check(allowed_hosts: list[str] | None) -> list[Middleware]:
    return [] if allowed_hosts is None else [Middleware(AllowedHosts, names=allowed_hosts)]


def _say_what_is_served(runtime: Runtime) -> None:
    """One line once the runtime has started: the flows it serves, their webhooks, and where
    the console is (an operator reads what a newcomer would have had to look up)."""
    flows = sorted(runtime.catalog.roots)
    nets = [name for name in runtime.registry.names() if name not in runtime.catalog.roots]
    hooks = [f"{hook.method} {hook.path} ({flow})" for flow, hook in runtime.catalog.webhooks()]
    served = f"{len(nets)} net workflow(s) (POST /workflows): {', '.join(nets)}; " if nets else ""
    timed = []
    for flow in flows:
        triggers = runtime.catalog.compiled[flow].triggers
        timed += [f"{flow} ({cron.text} {cron.timezone})" for cron in triggers.schedules]
        timed += [f"{flow} (every {seconds:g} s)" for seconds in triggers.intervals]
    logger.info(
        "serving %d flow(s): %s; %swebhooks: %s; schedules: %s; the console is at /ui/",
        len(flows),
        ", ".join(flows) or "none",
        served,
        ", ".join(hooks) or "none",
        ", ".join(timed) or "none",
    )

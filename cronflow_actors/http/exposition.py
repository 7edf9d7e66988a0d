"""The body of ``GET /metrics``: the runtime's metrics in the format the scraper asks for.

Prometheus' text format by default; OpenMetrics when the ``Accept`` header asks for
``application/openmetrics-text`` (Prometheus itself does). The sampled gauges (runs in flight by
status, actors, the blocking pool) are brought up to date on the event loop first, reading the
store through its reader; the rendering itself runs on a thread, so a scrape never holds the
loop. Who may scrape is the route's business (``routes/system.py``).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from cronflow_actors.metrics import OPENMETRICS, TEXT, wants_openmetrics
from cronflow_actors.runtime import Runtime

__all__ = ["metrics_response"]


async def metrics_response(runtime: Runtime, request: Request) -> Response:
    """``runtime``'s metrics for the scraper that sent ``request``."""
    await runtime.telemetry.sample(store_open=runtime.state == "running")
    openmetrics = wants_openmetrics(request.headers.get("accept", ""))
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(None, runtime.metrics.render, openmetrics)
    return Response(body, media_type=OPENMETRICS if openmetrics else TEXT)

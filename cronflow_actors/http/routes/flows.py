"""The registered Cronflow-style flows: what each is called, says and is tagged with, its
version, triggers and limits (``Runtime.get_workflows()``)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.http.edge import Edge, json_response, route

__all__ = ["routes"]


def routes(edge: Edge) -> list[Route]:
    runtime = edge.runtime

    async def list_flows(request: Request) -> Response:
        flows = [msgspec.to_builtins(flow) for flow in runtime.get_workflows()]
        return json_response({"flows": flows})

    async def get_flow(request: Request) -> Response:
        return json_response(msgspec.to_builtins(runtime.get_workflow(request.path_params["id"])))

    return [
        route("/flows", edge.auth, get=list_flows),
        route("/flows/{id}", edge.auth, get=get_flow),
    ]

"""A net workflow drawn: its conditions with their tokens (the marking) and its tasks with their
split, join and state, from the definition the instance runs (``GET /workflows/{id}/net``).

The web console draws it; any client may read it. Only root instances are drawn: a child
workflow's definition belongs to its parent's composite task, which is drawn as one task.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.http.answers import NetList
from cronflow_actors.http.edge import Edge, json_response, route
from cronflow_actors.http.problems import Problem

__all__ = ["NetCondition", "NetTask", "NetView", "routes"]


class NetCondition(msgspec.Struct, frozen=True, kw_only=True):
    """A place: ``tokens`` is its marking; ``implicit`` when a task -> task flow made it."""

    name: str
    implicit: bool
    tokens: int


class NetTask(msgspec.Struct, frozen=True, kw_only=True):
    """A transition: its kind (task, composite, dynamic_composite, dummy), split and join
    types, state, the conditions before and after it, and what its completion cancels."""

    name: str
    kind: str
    split: str
    join: str
    state: str
    inputs: list[str]
    outputs: list[str]
    cancels: list[str]


class NetView(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /workflows/{workflow_id}/net``: the instance's state and its net, marked."""

    workflow_id: str
    name: str
    version: str
    state: str
    start: str
    end: str
    conditions: list[NetCondition]
    tasks: list[NetTask]


def routes(edge: Edge) -> list[Route]:
    runtime = edge.runtime

    async def get_net(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        info = await runtime.workflow(workflow_id)
        if info.parent_id is not None:
            raise Problem(
                404,
                "not-found",
                f"{workflow_id!r} is a child workflow; its net is drawn as the composite task "
                f"{info.parent_task!r} of {info.parent_id!r}: ask for that workflow's net",
            )
        spec = runtime.registry.get(info.name, info.version)
        marking = await runtime.marking(workflow_id)
        states = await runtime.task_states(workflow_id)
        conditions = [
            NetCondition(name=name, implicit=c.implicit, tokens=marking.get(name, 0))
            for name, c in spec.conditions.items()
        ]
        tasks = [
            NetTask(
                name=name,
                kind=str(t.kind),
                split=str(t.split),
                join=str(t.join),
                state=str(states.get(name, "disabled")),
                inputs=list(t.inputs),
                outputs=list(t.outputs),
                cancels=sorted(t.cancel_tasks | t.cancel_conditions),
            )
            for name, t in spec.tasks.items()
        ]
        view = NetView(
            workflow_id=workflow_id,
            name=info.name,
            version=info.version,
            state=str(info.state),
            start=spec.start,
            end=spec.end,
            conditions=conditions,
            tasks=tasks,
        )
        return json_response(view)

    async def list_nets(request: Request) -> Response:
        return json_response(NetList(nets=runtime.get_nets()))

    return [
        route("/workflows/{workflow_id}/net", edge.auth, get=get_net),
        route("/nets", edge.auth, get=list_nets),
    ]

"""Net workflows and their work items, through their actions with the caller's principal
(``request.user``, set by the routes' authentication)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cronflow_actors.http.edge import Edge, json_response, route
from cronflow_actors.http.key_headers import no_idempotency_key
from cronflow_actors.http.problems import Problem
from cronflow_actors.http.requests import query_text
from cronflow_actors.http.routes.runs import RunId, cancel_body, canceling
from cronflow_actors.messages.states import WorkItemVerb

__all__ = ["WORK_ITEM_ACTIONS", "MigrateWorkflow", "routes"]

WORK_ITEM_ACTIONS = tuple(WorkItemVerb)


class StartWorkflow(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /workflows``: the net workflow to start, its payload, and an optional instance id
    (a repeat of it starts nothing: 409 instance-exists)."""

    workflow: str
    payload: Any = None
    instance_id: RunId | None = None


class MigrateWorkflow(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /workflows/{id}/migrate``: the version to migrate the instance to."""

    to_version: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    """A version's name (at most 200 characters: one longer names none, and its refusal
    would echo it)."""


def routes(edge: Edge) -> list[Route]:
    runtime = edge.runtime
    acts = {
        "start": runtime.start_work_item,
        "complete": runtime.complete_work_item,
        "fail": runtime.fail_work_item,
        "cancel": runtime.cancel_work_item,
        "reset": runtime.reset_work_item,
    }

    async def start_workflow(request: Request) -> Response:
        principal = edge.caller(request)
        expected = '{"workflow": name, "payload": ..., "instance_id": ...}'
        start = await edge.body_as(request, StartWorkflow, expected)
        no_idempotency_key(request, "POST /workflows", start.instance_id)
        workflow_id = await runtime.start_workflow(
            start.workflow, start.payload, principal=principal, instance_id=start.instance_id
        )
        return json_response(
            {"workflow_id": workflow_id}, 201, headers={"Location": f"/workflows/{workflow_id}"}
        )

    async def get_workflow(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        info = await runtime.workflow(workflow_id)
        tasks = await runtime.task_states(workflow_id)
        body = msgspec.to_builtins(info)
        body["tasks"] = {name: str(state) for name, state in tasks.items()}
        if info.parent_id is None:  # a root: how it stands to migrations
            links = await runtime.migration_links(workflow_id)
            body["migrated_from"], body["migrated_to"] = links.migrated_from, links.migrated_to
        return json_response(body)

    async def cancel_workflow(request: Request) -> Response:
        principal = edge.caller(request)
        workflow_id = request.path_params["workflow_id"]
        body = await cancel_body(edge, request)
        with canceling(body):
            await runtime.cancel_workflow(
                workflow_id, principal=principal, reason=body.reason, terminate=body.terminate
            )
        return json_response({"workflow_id": workflow_id, "state": "canceled"})

    async def migrate_workflow(request: Request) -> Response:
        return await migrated(edge, request, "workflow_id", "/workflows")

    async def list_work_items(request: Request) -> Response:
        params = request.path_params
        items = await runtime.work_items(params["workflow_id"], params["task"])
        return json_response({"work_items": [msgspec.to_builtins(i) for i in items]})

    async def work_list(request: Request) -> Response:
        items = await runtime.open_work_items(request.path_params["workflow_id"])
        return json_response({"work_items": [msgspec.to_builtins(i) for i in items]})

    async def initialize_work_item(request: Request) -> Response:
        principal = edge.caller(request)
        params = request.path_params
        payload = await edge.json(request)
        item_id = await runtime.initialize_work_item(
            params["workflow_id"], params["task"], payload, principal=principal
        )
        return json_response({"work_item_id": item_id}, 201)

    async def work_item_action(request: Request) -> Response:
        item_id, action = request.path_params["work_item_id"], request.path_params["action"]
        act = acts.get(action)
        if act is None:
            raise Problem(
                404,
                "no-such-action",
                f"no work item action {action!r}; use {', '.join(WORK_ITEM_ACTIONS)}",
            )
        payload = await edge.json(request)
        await act(item_id, payload, principal=edge.caller(request))
        return json_response(msgspec.to_builtins(await runtime.work_item(item_id)))

    return [
        route("/workflows", edge.auth, post=start_workflow),
        route("/workflows/{workflow_id}", edge.auth, get=get_workflow),
        route("/workflows/{workflow_id}/cancel", edge.auth, post=cancel_workflow),
        route("/workflows/{workflow_id}/migrate", edge.auth, post=migrate_workflow),
        route("/workflows/{workflow_id}/work-items", edge.auth, get=work_list),
        route(
            "/workflows/{workflow_id}/tasks/{task:path}/work-items",  # a name may hold "/"
            edge.auth,
            get=list_work_items,
            post=initialize_work_item,
        ),
        _children(edge),
        route("/work-items/{work_item_id}/{action}", edge.auth, post=work_item_action),
        _run_migration(edge),
    ]


async def migrated(edge: Edge, request: Request, key: str, where: str) -> Response:
    """Migrate the instance the path names (``key``: its parameter, the answer's field) to the
    body's ``to_version``: 201 with the new root's id (``WorkflowMigrated``, ``RunMigrated``),
    found under ``where``. The caller is the one a net instance's ``cancel`` action must admit
    (a migration ends it; the action's callback is skipped, spec section 9)."""
    old_id = request.path_params[key]
    migrate = await edge.body_as(request, MigrateWorkflow, '{"to_version": version}')
    principal = edge.caller(request)
    new_id = await edge.runtime.migrate(old_id, migrate.to_version, principal=principal)
    answer = {key: new_id, "migrated_from": old_id, "version": migrate.to_version}
    return json_response(answer, 201, headers={"Location": f"{where}/{new_id}"})


def _run_migration(edge: Edge) -> Route:
    """``POST /runs/{run_id}/migrate``: a flow's run moved to another version, where a run's
    other actions are (a 404 with no word there sent its caller looking for ``/workflows``)."""

    async def migrate_run(request: Request) -> Response:
        return await migrated(edge, request, "run_id", "/runs")

    return route("/runs/{run_id}/migrate", edge.auth, post=migrate_run)


def _children(edge: Edge) -> Route:
    """A composite task's child workflows: listed, and one initialized by an outside caller."""
    runtime = edge.runtime

    async def list_children(request: Request) -> Response:
        params = request.path_params
        children = await runtime.child_workflows(params["workflow_id"], params["task"])
        return json_response({"workflows": [msgspec.to_builtins(c) for c in children]})

    async def initialize_child(request: Request) -> Response:
        principal = edge.caller(request)
        params = request.path_params
        payload = await edge.json(request)
        child_id = await runtime.initialize_workflow(
            params["workflow_id"],
            params["task"],
            payload,
            workflow=query_text(request, "workflow", max_length=200),
            principal=principal,
        )
        return json_response(
            {"workflow_id": child_id}, 201, headers={"Location": f"/workflows/{child_id}"}
        )

    return route(
        "/workflows/{workflow_id}/tasks/{task:path}/children",  # a name may hold "/"
        edge.auth,
        get=list_children,
        post=initialize_child,
    )

"""The OpenAPI operations on a net task's children: its work items (``GET``, ``POST``
``/workflows/{workflow_id}/tasks/{task}/work-items``) and a composite task's child workflows
(``.../children``), and an instance's work list (``GET /workflows/{workflow_id}/work-items``),
in ``routes/workflows.py``, which ``openapi.py`` adds to the document."""

from __future__ import annotations

from typing import Any

from cronflow_actors.http.answers import (
    ChildWorkflowList,
    OpenWorkItemList,
    WorkflowStarted,
    WorkItemCreated,
    WorkItemList,
)

__all__ = ["task_paths"]

_LOCATION = {
    "Location": {"schema": {"type": "string"}, "description": "the workflow instance's URL"}
}


def task_paths(
    b: Any, *, params: list[dict[str, Any]], child_type: dict[str, Any], refusals: str
) -> dict[str, Any]:
    """The three paths, described with the document's builder ``b`` (``openapi._Builder``);
    ``params`` are the path parameters (workflow_id, task), ``child_type`` the query
    parameter naming a dynamic composite task's child, ``refusals`` what a net action may
    answer besides."""
    return {
        "/workflows/{workflow_id}/work-items": {
            "get": b.op(
                "A net instance's work list: the work items of its open tasks, and of its child "
                "workflows', that an outside caller may act on now, each with the actions its "
                "state allows (a pause's resume token too)",
                {"200": b.answer("work items", OpenWorkItemList)},
                "404",
                params=params[:1],
            ),
        },
        "/workflows/{workflow_id}/tasks/{task}/work-items": {
            "get": b.op(
                "The work items of a task's latest generation",
                {"200": b.answer("work items", WorkItemList)},
                "404",
                params=params,
            ),
            "post": b.op(
                "Initialize a work item (its initialize action, with the caller's principal); "
                "a task holds at most its max_work_items (1,000 unless it says) from outside "
                "callers in a generation (409 work-item-limit), and an instance at most 16 MiB "
                "of state from outside calls (409 instance-too-large)",
                {"201": b.answer("initialized", WorkItemCreated)},
                refusals,
                body={},
                params=params,
            ),
        },
        "/workflows/{workflow_id}/tasks/{task}/children": {
            "get": b.op(
                "The child workflows of a composite task's latest generation (their ids lead "
                "to their tasks' work items)",
                {"200": b.answer("child workflows", ChildWorkflowList)},
                "404",
                params=params,
            ),
            "post": b.op(
                "Initialize a child workflow of a composite task (its latest generation), "
                "through the child's initialize action with the caller's principal; "
                "?workflow= names the child type, which a dynamic composite task needs (400 "
                "without it); a task holds at most its max_work_items (1,000 unless it says) "
                "children from outside callers in a generation (409 work-item-limit)",
                {"201": b.answer("initialized", WorkflowStarted, headers=_LOCATION)},
                refusals,
                body={},
                params=[*params, child_type],
            ),
        },
    }

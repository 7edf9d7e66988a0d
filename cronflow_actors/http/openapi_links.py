"""The OpenAPI document's operation ids (``operationId``) and the links between operations:
where one operation's answer gives another its parameters (``openapi.py`` uses both)."""

from __future__ import annotations

from typing import Any

from cronflow_actors.http.openapi_audit import AUDIT_OPERATIONS

__all__ = ["LINKS", "OPERATIONS"]

OPERATIONS = {
    **AUDIT_OPERATIONS,
    ("/healthz", "get"): "health",
    ("/readyz", "get"): "readiness",
    ("/openapi.json", "get"): "openapi",
    ("/metrics", "get"): "metrics",
    ("/runs", "get"): "listRuns",
    ("/runs", "post"): "startRun",
    ("/runs/{run_id}", "get"): "getRun",
    ("/runs/{run_id}/cancel", "post"): "cancelRun",
    ("/runs/{run_id}/replay", "post"): "replayRun",
    ("/runs/{run_id}/migrate", "post"): "migrateRun",
    ("/flows", "get"): "listFlows",
    ("/nets", "get"): "listNets",
    ("/flows/{id}", "get"): "getFlow",
    ("/flows/{id}/next-fires", "get"): "getNextFires",
    ("/flows/{id}/fire", "post"): "fireSchedule",
    ("/flows/{id}/schedules/pause", "post"): "pauseSchedules",
    ("/flows/{id}/schedules/resume", "post"): "resumeSchedules",
    ("/events/{name}", "post"): "publishEvent",
    ("/resume/{token}", "post"): "resumeRun",
    ("/paused", "get"): "listPaused",
    ("/runs/{run_id}/pause", "get"): "getRunPause",
    ("/workflows", "post"): "startWorkflow",
    ("/workflows/{workflow_id}", "get"): "getWorkflow",
    ("/workflows/{workflow_id}/cancel", "post"): "cancelWorkflow",
    ("/workflows/{workflow_id}/migrate", "post"): "migrateWorkflow",
    ("/workflows/{workflow_id}/net", "get"): "getWorkflowNet",
    ("/workflows/{workflow_id}/work-items", "get"): "listOpenWorkItems",
    ("/workflows/{workflow_id}/tasks/{task}/work-items", "get"): "listWorkItems",
    ("/workflows/{workflow_id}/tasks/{task}/work-items", "post"): "initializeWorkItem",
    ("/workflows/{workflow_id}/tasks/{task}/children", "get"): "listChildWorkflows",
    ("/workflows/{workflow_id}/tasks/{task}/children", "post"): "initializeChildWorkflow",
    ("/work-items/{work_item_id}/{action}", "post"): "actOnWorkItem",
}
"""Each operation's id (``operationId``), which the links between them name."""

_RUN = {"run_id": "$response.body#/run_id"}
LINKS: dict[tuple[str, str], dict[str, Any]] = {
    ("startRun", "202"): {
        "getRun": _RUN,
        "getRunPause": _RUN,
        "cancelRun": _RUN,
        "replayRun": _RUN,
    },
    ("replayRun", "202"): {"getRun": _RUN, "cancelRun": _RUN},
    ("fireSchedule", "202"): {"getRun": _RUN, "cancelRun": _RUN},
    ("migrateRun", "201"): {"getRun": _RUN, "cancelRun": _RUN, "migrateRun": _RUN},
    ("listFlows", "200"): {
        name: {"id": "$response.body#/flows/0/id"} for name in ("getFlow", "getNextFires")
    },
    ("listRuns", "200"): {"getRun": {"run_id": "$response.body#/runs/0/id"}},
    ("listPaused", "200"): {"resumeRun": {"token": "$response.body#/paused/0/token"}},
    ("getRunPause", "200"): {"resumeRun": {"token": "$response.body#/token"}},
    ("startWorkflow", "201"): {
        name: {"workflow_id": "$response.body#/workflow_id"}
        for name in ("getWorkflow", "getWorkflowNet", "cancelWorkflow", "migrateWorkflow")
    },
    ("migrateWorkflow", "201"): {
        name: {"workflow_id": "$response.body#/workflow_id"}
        for name in ("getWorkflow", "getWorkflowNet", "cancelWorkflow", "migrateWorkflow")
    },
    ("initializeChildWorkflow", "201"): {
        name: {"workflow_id": "$response.body#/workflow_id"}
        for name in ("getWorkflow", "getWorkflowNet")
    },
    ("listChildWorkflows", "200"): {
        name: {"workflow_id": "$response.body#/workflows/0/id"}
        for name in ("getWorkflow", "getWorkflowNet")
    },
    ("initializeWorkItem", "201"): {
        "actOnWorkItem": {"work_item_id": "$response.body#/work_item_id"}
    },
}
"""Where one operation's answer gives another its parameters (what a client would chain)."""

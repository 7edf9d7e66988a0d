"""The net layer: NetSpec, its builder, markings and the pure semantics of YAWL-style nets.

Pure data and functions only: no asyncio, no IO, no clock (tests/test_layers.py enforces it).
The engine's actors carry out what these functions compute.

    from cronflow_actors import net

    review = net.work_item("review").actions(complete=net.action(Review, policy=...))
    hire = (net.workflow("hire", version="v1")
            .start_condition("start").end_condition("end")
            .task("screen", net.task(screen).split("xor").route(router))
            ...
            .build())
"""

from cronflow_actors.net import jobs
from cronflow_actors.net.builder import (
    ActionSpec,
    TaskBuilder,
    WorkflowBuilder,
    WorkItemBuilder,
    WorkItemSpec,
    action,
    composite_task,
    dummy_task,
    dynamic_composite_task,
    task,
    work_item,
    workflow,
)
from cronflow_actors.net.marking import Route
from cronflow_actors.net.migration import (
    MigrationBuilder,
    MigrationMode,
    MigrationSpec,
    migration,
)
from cronflow_actors.net.policies import (
    all_policies,
    any_policy,
    require_all_scopes,
    require_any_scope,
    require_scope,
)
from cronflow_actors.net.spec import (
    CaughtFailure,
    ConditionSpec,
    JoinType,
    NetSpec,
    SplitType,
    TaskKind,
    TaskSpec,
    WaitSpec,
    caught,
)

__all__ = [
    "ActionSpec",
    "CaughtFailure",
    "ConditionSpec",
    "JoinType",
    "MigrationBuilder",
    "MigrationMode",
    "MigrationSpec",
    "NetSpec",
    "Route",
    "SplitType",
    "TaskBuilder",
    "TaskKind",
    "TaskSpec",
    "WaitSpec",
    "WorkItemBuilder",
    "WorkItemSpec",
    "WorkflowBuilder",
    "action",
    "all_policies",
    "any_policy",
    "caught",
    "composite_task",
    "dummy_task",
    "dynamic_composite_task",
    "jobs",
    "migration",
    "require_all_scopes",
    "require_any_scope",
    "require_scope",
    "task",
    "work_item",
    "workflow",
]

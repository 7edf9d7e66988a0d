"""The engine layer: the actors that run a NetSpec and what they need.

- ``WorkflowActor`` (one per root instance, the unit of consistency), in ``workflow_actor``, and
  ``HandlerActor`` (one per running handler: ``WorkItemActor``, ``ActionActor``), in
  ``handlers``; ``actors`` imports them all;
- the elements, one module each: ``workflows``, ``tasks``, ``work_items`` (each an actor with
  its record and one ``receive``; none imports another), and ``cascade``, the one dispatcher
  that delivers their messages depth-first on the instance's turn;
- ``commands`` (one transaction per command), ``actions`` (the external boundary),
  ``context`` (what user code gets), ``states`` (the three state machines), ``timers``,
  ``registry`` (versions).
"""

from cronflow_actors.engine.actors import (
    ActionActor,
    EngineServices,
    HandlerActor,
    WorkflowActor,
    WorkItemActor,
)
from cronflow_actors.engine.context import (
    Context,
    TaskInfo,
    Transition,
    WorkflowInfo,
    WorkItemInfo,
)
from cronflow_actors.engine.registry import WorkflowRegistry
from cronflow_actors.engine.states import TaskState, WorkflowState, WorkItemState
from cronflow_actors.engine.timers import TimerService

__all__ = [
    "ActionActor",
    "Context",
    "EngineServices",
    "HandlerActor",
    "TaskInfo",
    "TaskState",
    "TimerService",
    "Transition",
    "WorkItemActor",
    "WorkItemInfo",
    "WorkItemState",
    "WorkflowActor",
    "WorkflowInfo",
    "WorkflowRegistry",
    "WorkflowState",
]

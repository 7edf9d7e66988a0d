"""The engine's actors, in one place to import them from.

- ``WorkflowActor`` (one per root instance, the unit of consistency), in
  ``engine.workflow_actor``, and ``EngineServices`` (what all of them share), in
  ``engine.services``;
- ``HandlerActor`` (one per running handler), as ``WorkItemActor`` (an attempt of a work item)
  and ``ActionActor`` (a detached action), in ``engine.handlers``.
"""

from cronflow_actors.engine.handlers import (
    ActionActor,
    HandlerActor,
    WorkItemActor,
    storable_attributes,
)
from cronflow_actors.engine.services import EngineServices, decode_snapshot_body, decode_state
from cronflow_actors.engine.workflow_actor import WorkflowActor, WorkflowMessage

__all__ = [
    "ActionActor",
    "EngineServices",
    "HandlerActor",
    "WorkItemActor",
    "WorkflowActor",
    "WorkflowMessage",
    "decode_snapshot_body",
    "decode_state",
    "storable_attributes",
]

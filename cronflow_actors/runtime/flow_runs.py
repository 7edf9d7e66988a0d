"""Whether a run is a flow's or a net instance: one answer for every part that asks.

A flow's run and a net's instance differ for their callers: a flow's run is canceled and
resumed as an operator's (its pause's payload wrapped in the flow's resume shape, its error
said in steps' words); a net's instance only through its declared actions, each with its policy
and schema. The run's root workflow decides, never the workflow that holds a step (a net's
child may bear a flow's name: the reviewer's h28 H2).
"""

from __future__ import annotations

from collections.abc import Callable, Container

from cronflow_actors.flow.compile import ITEM_KINDS
from cronflow_actors.flow.envelope import read_envelope
from cronflow_actors.messages.engine import InstanceState

__all__ = ["is_flows_run"]


def is_flows_run(
    workflow: str,
    state: Callable[[], InstanceState],
    *,
    flows: Container[str],
) -> bool:
    """Whether the run whose root is ``workflow`` is a flow's. Its ``state`` marked as a net's
    instance is a net's, whatever is registered under its name now (a release that replaced a
    net by a flow of that name took its instances for runs any writer may cancel: hostile h30
    H1); else a flow's if registered here as a flow (``flows``); else, registered as a net (a
    flow replaced by a net of its name) or as nothing (a flow dropped from the app,
    a database read without its code), if it was started with a flow's trigger and holds a step
    the flow compiler makes. An unmarked instance (from before the mark) with a trigger-shaped
    payload is a net's unless it holds such a step: a net's payload is its caller's to shape
    (the second verifier's h28)."""
    decoded = state()
    if decoded.net:
        return False
    if workflow in flows:
        return True
    if read_envelope(decoded.workflows[decoded.id].payload) is None:
        return False
    return any(item.kind in ITEM_KINDS for item in decoded.work_items.values())

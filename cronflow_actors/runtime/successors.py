"""Where a run's work went on: the run a migration of it started, or its resume, each in turn,
to the run at the end of that chain (a webhook's duplicate answer names it, ``inspect`` says it
as ``current_run_id``, a refused cancel of an ended run points there)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cronflow_actors.engine.actors import decode_state
from cronflow_actors.errors import NotFoundError
from cronflow_actors.messages import SnapshotRecord
from cronflow_actors.runtime.ids import resume_id
from cronflow_actors.store import Store

__all__ = ["going_on"]


async def going_on(
    read: Callable[[str], Awaitable[SnapshotRecord]], store: Store, run_id: str
) -> str:
    """The run whose work ``run_id``'s goes on in: the run a migration of it started, or its
    resume, each in turn; ``run_id`` itself when none did (newcomer h29 F7)."""
    current = run_id
    while True:  # (each hop a newer run: a chain, never a cycle)
        try:
            state = decode_state((await read(current)).body, current)
        except NotFoundError:
            return current
        after = state.migrated_to
        if after is None or not await store.instance_exists(after):
            after = resume_id(current)
            if not await store.instance_exists(after):
                return current
        current = after

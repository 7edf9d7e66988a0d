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

__all__ = ["chain_end", "going_on"]


async def going_on(
    read: Callable[[str], Awaitable[SnapshotRecord]], store: Store, run_id: str
) -> str:
    """The run whose work ``run_id``'s goes on in: the run a migration of it started, or its
    resume, each in turn; ``run_id`` itself when none did (newcomer h29 F7)."""
    return (await chain_end(read, store, run_id))[0]


async def chain_end(
    read: Callable[[str], Awaitable[SnapshotRecord]], store: Store, run_id: str
) -> tuple[str, bool]:
    """``going_on``'s run, and whether a migration of it is pending (it names a run a
    migration is to start, not stored: a hop of a migration through versions in between that
    failed, which the run first asked about read as done: h42 versions F3)."""
    current = run_id
    while True:  # (each hop a newer run: a chain, never a cycle)
        try:
            state = decode_state((await read(current)).body, current)
        except NotFoundError:
            return current, False
        after = state.migrated_to
        pending = after is not None and not await store.instance_exists(after)
        if after is None or pending:
            after = resume_id(current)
            if not await store.instance_exists(after):
                return current, pending
        current = after

"""Pruning finished runs (``Runtime.prune``, ``serve --retention``, ``db prune``), and what it
must leave: the runs a migration under way still needs, and a run whose work goes on in another
still stored (its resume, the run its migration started).

A finished run whose work goes on elsewhere still answers for it: a webhook's duplicate delivery
finds it by the id its key names and is told where the work is now (``current_run_id``). Pruned
by its own end, its id was free again while its resume still ran, and the duplicate started the
work a second time (ops h41 F3). So each resume and each migration's hop records which run goes
on from which (namespace ``cronflow:successors``: the earlier run's id -> the later one's), and a
run is kept while the run that goes on from it is stored: a chain goes with its last run, in the
same prune. A resume or migration made by a release before this one recorded nothing: its run
is pruned by its own end, as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from cronflow_actors.runtime.migration_plans import kept_by_migrations
from cronflow_actors.store import Store

__all__ = ["SUCCESSORS", "prune_finished", "record_successors"]

SUCCESSORS = "cronflow:successors"
"""The namespace of the links: a run's id -> the id of the run its work went on in."""

_PAGE = 1000  # the store's page: of prunes, and of the ids one existence read takes


async def record_successors(store: Store, pairs: Iterable[tuple[str, str]], now: float) -> None:
    """Record that the work of each pair's first run goes on in its second, before that one is
    started (a link to a run never started keeps nothing, and goes with its first run)."""
    for run_id, successor in pairs:
        await store.kv_set(SUCCESSORS, run_id, successor, now=now)


async def prune_finished(
    store: Store,
    *,
    finished_before: float,
    now: float,
    on_page: Callable[[int], object] | None = None,
) -> int:
    """Delete the runs that finished before ``finished_before``, with their history, and the
    expired state keys; returns how many runs (``on_page`` hears each page's count as it is
    committed: a prune that fails later has deleted those). Kept: the runs a migration under way
    needs (read once: a migration that begins later cancels its run after the cutoff), and each
    run whose successor is still stored."""
    planned = await kept_by_migrations(store, now)
    links: dict[str, str] = {
        run: after
        for run, after in (await store.kv_items(SUCCESSORS, now=now)).items()
        if isinstance(after, str)
    }
    total = 0
    alive = await _stored(store, set(links.values()))
    while True:
        kept = planned | {run for run, after in links.items() if after in alive}
        pruned = 0
        while (page := await store.prune(finished_before=finished_before, keep=kept)) > 0:
            pruned += page
            if on_page is not None:
                on_page(page)
        total += pruned
        if not pruned:
            break
        now_alive = await _stored(store, alive)
        if now_alive == alive:  # no successor went: nothing more is freed
            break
        alive = now_alive  # a chain's later run went: the one before it may go now
    for gone in set(links) - await _stored(store, set(links)):
        await store.kv_delete(SUCCESSORS, gone)
    await store.kv_purge_expired(now)
    return total


async def _stored(store: Store, ids: Collection[str]) -> set[str]:
    """Of ``ids``, those stored, a page of them a read."""
    ordered = sorted(ids)
    found: set[str] = set()
    for start in range(0, len(ordered), _PAGE):
        found |= await store.existing_among(ordered[start : start + _PAGE])
    return found
